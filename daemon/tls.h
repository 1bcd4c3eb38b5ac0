// Server credentials for --listen: mutual TLS, TLS 1.3 only.
#pragma once

#include <grpcpp/security/server_credentials.h>

#include <memory>

#include "absl/status/statusor.h"
#include "faultline/api/tls_files.h"

namespace faultline {

// Client certificates are required and verified against `pem.ca`; a handshake without one, with one
// from another CA, or with an expired one fails before any call is read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MutualTlsServerCredentials(const api::TlsPem& pem);

}  // namespace faultline
