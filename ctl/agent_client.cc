#include "agent_client.h"

#include <grpcpp/grpcpp.h>

#include <cstdlib>

namespace faultline::ctl {

std::string ResolveAgentAddress(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("FAULTLINE_AGENT"); env != nullptr && *env != '\0') return env;
  return "unix:/run/faultline/faultlined.sock";
}

std::unique_ptr<faultline::v1::Agent::Stub> ConnectAgent(const std::string& address) {
  // gRPC's default reconnect backoff grows to seconds after one refused connection; an agent that is
  // starting or restarting is usually back within milliseconds, and halt must not wait on a backoff.
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  arguments.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  return faultline::v1::Agent::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), arguments));
}

}  // namespace faultline::ctl
