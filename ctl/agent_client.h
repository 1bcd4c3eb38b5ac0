// faultctl's connection to one agent.
#pragma once

#include <memory>
#include <string>

#include "faultline/v1/agent.grpc.pb.h"

namespace faultline::ctl {

// "unix:/path" or "HOST:PORT"; FAULTLINE_AGENT when --agent is not given; else the default socket.
std::string ResolveAgentAddress(const std::string& flag);

// A stub on a channel to `address`. Plain-text channels only until TLS lands (issue 4).
std::unique_ptr<faultline::v1::Agent::Stub> ConnectAgent(const std::string& address);

}  // namespace faultline::ctl
