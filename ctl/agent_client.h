// faultctl's connection to one agent: the one place its channels are made.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "faultline/api/tls_files.h"
#include "faultline/v1/agent.grpc.pb.h"

namespace faultline::ctl {

// "unix:/path" or "HOST:PORT"; FAULTLINE_AGENT when --agent is not given; else the default socket.
std::string ResolveAgentAddress(const std::string& flag);

// A stub on a channel to `address`:
//   unix:PATH   plain; the socket's mode decides who may connect
//   HOST:PORT   mutual TLS with the `tls` files (--tls-cert, --tls-key, --ca); without them, plain
//               text, which only a loopback host may be sent (the agent's --insecure-listen)
// Errors are INVALID_ARGUMENT and name the flag at fault. Nothing connects until the first call.
absl::StatusOr<std::unique_ptr<faultline::v1::Agent::Stub>> ConnectAgent(const std::string& address,
                                                                         const api::TlsFiles& tls = {});

}  // namespace faultline::ctl
