// How faultctl prints the agent's answers: for people, or as JSON for programs (--json).
#pragma once

#include <google/protobuf/message.h>

#include <string>

#include "faultline/v1/agent.pb.h"

namespace faultline::ctl {

// One JSON document on one line, field names as in the .proto files.
std::string ToJson(const google::protobuf::Message& message);

std::string FormatCapabilities(const faultline::v1::CapabilitiesResponse& caps);
// A few lines: id, state, reason, times, and each fault with its kernel objects and counters.
std::string FormatStatus(const faultline::v1::ExperimentStatus& status);
// One line per experiment, under a header.
std::string FormatList(const faultline::v1::ListResponse& list);
std::string FormatEvent(const faultline::v1::ExperimentEvent& event);
// "ACTIVE" for STATE_ACTIVE.
std::string StateName(faultline::v1::ExperimentState state);

}  // namespace faultline::ctl
