// Experiments the agent must refuse, each one mistake away from a valid partition or loss experiment on
// interface veth0 in netns /run/netns/x. Unit tests assert the exact message; integration tests send each
// one to a running faultlined and assert that nothing changed in the kernel.
#pragma once

#include <string>
#include <vector>

#include "faultline/api/validate.h"
#include "faultline/v1/experiment.pb.h"

namespace faultline::test {

struct InvalidExperiment {
  std::string name;  // [a-z0-9_], usable as a gtest parameter name
  faultline::v1::Experiment experiment;
  std::string expected_error;  // the whole INVALID_ARGUMENT message
};

// The limits the table is written against: a maximum duration of one hour. An agent under test must be
// started with the same maximum for the "duration_over_max" entries to be refused.
faultline::api::Limits InvalidExperimentLimits();

// Every experiment has an id of "invalid-" and its name with '_' as '-', unless the entry is about the id.
std::vector<InvalidExperiment> InvalidExperiments();

// The valid experiments the table's entries are variations of.
faultline::v1::Experiment ValidPartitionExperiment();
faultline::v1::Experiment ValidLossExperiment();

}  // namespace faultline::test
