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
  return faultline::v1::Agent::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

}  // namespace faultline::ctl
