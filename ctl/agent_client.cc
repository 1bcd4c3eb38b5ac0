#include "agent_client.h"

#include <grpcpp/grpcpp.h>

#include <cstdlib>

#include "faultline/api/cat.h"
#include "faultline/api/units.h"

namespace faultline::ctl {

using api::Cat;

std::string ResolveAgentAddress(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("FAULTLINE_AGENT"); env != nullptr && *env != '\0') return env;
  return "unix:/run/faultline/faultlined.sock";
}

absl::StatusOr<std::unique_ptr<faultline::v1::Agent::Stub>> ConnectAgent(const std::string& address,
                                                                         const api::TlsFiles& tls) {
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!address.starts_with("unix:")) {
    auto endpoint = api::ParseHostPort(address);
    if (!endpoint.ok()) {
      return absl::InvalidArgumentError(
          Cat("agent address: ", endpoint.status().message(), "; use unix:PATH or HOST:PORT"));
    }
    if (endpoint->port == 0) return absl::InvalidArgumentError(Cat("agent address ", address, ": port 0"));
    if (tls.any()) {
      auto pem = api::LoadTlsFiles(tls, {"--tls-cert", "--tls-key", "--ca"});
      if (!pem.ok()) return pem.status();
      grpc::SslCredentialsOptions options;
      options.pem_root_certs = pem->ca;
      options.pem_private_key = pem->key;
      options.pem_cert_chain = pem->cert_chain;
      credentials = grpc::SslCredentials(options);
    } else if (!api::IsLoopbackHost(endpoint->host)) {
      return absl::InvalidArgumentError(
          Cat("agent ", address,
              " is not a loopback address, so the connection needs TLS: give --tls-cert, --tls-key and --ca "
              "(or FAULTLINE_TLS_CERT, FAULTLINE_TLS_KEY and FAULTLINE_CA)"));
    }
  }
  // gRPC's default reconnect backoff grows to seconds after one refused connection; an agent that is
  // starting or restarting is usually back within milliseconds, and halt must not wait on a backoff.
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  arguments.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  return faultline::v1::Agent::NewStub(grpc::CreateCustomChannel(address, credentials, arguments));
}

}  // namespace faultline::ctl
