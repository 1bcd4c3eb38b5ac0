// Validation of experiments, shared by faultlined (before anything touches the kernel) and faultctl
// (before anything is sent). Errors are INVALID_ARGUMENT and start with the field path:
//   faults[0].target.peers[1]: "10.0.0.0/33" is not a CIDR: prefix length 33 is over 32
#pragma once

#include "absl/status/status.h"
#include "faultline/v1/experiment.pb.h"
#include "google/protobuf/duration.pb.h"

namespace faultline::api {

struct Limits {
  google::protobuf::Duration max_duration;  // zero: no limit
  int max_experiments = 0;                  // not ended at once (the agent's ExperimentManager); 0: no limit
};

absl::Status ValidateExperiment(const faultline::v1::Experiment& experiment, const Limits& limits);

// Whether a fault acts on packets (and so needs a Target).
bool IsNetworkFault(const faultline::v1::Fault& fault);
// The fault kind's name as users write it: "partition", "loss", "cpu", ...
std::string FaultKindName(const faultline::v1::Fault& fault);
// One line for people and logs: "partition egress 198.18.0.2/32 port 53 udp on veth0 in /run/netns/app".
std::string DescribeFault(const faultline::v1::Fault& fault);

}  // namespace faultline::api
