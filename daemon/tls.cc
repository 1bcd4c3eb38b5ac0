#include "tls.h"

#include <grpcpp/security/server_credentials.h>
#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <memory>

#include "faultline/api/cat.h"

namespace faultline {
namespace {

// gRPC 1.51 has no setting for the lowest TLS version (its TLS credentials gained one later) and sets
// TLS 1.2 on every SSL_CTX it makes. OpenSSL's "Protocol" setting, applied to each new SSL_CTX from
// the process-wide system default, disables versions by SSL_OP_NO_* options, which that minimum does
// not clear. gRPC links the system OpenSSL, so setting that default here leaves TLS 1.3 alone.
// The agent makes no other TLS connections.
absl::Status RequireTls13() {
  // Load the system configuration first: OpenSSL loads it once, and a later load would replace ours.
  if (OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, nullptr) != 1) {
    return absl::InternalError("cannot initialise OpenSSL");
  }
  static constexpr char kConfig[] =
      "openssl_conf = faultline\n"
      "[faultline]\n"
      "ssl_conf = faultline_ssl\n"
      "[faultline_ssl]\n"
      "system_default = faultline_tls\n"
      "[faultline_tls]\n"
      "Protocol = -ALL, TLSv1.3\n"
      "CipherString = DEFAULT:@SECLEVEL=2\n";
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(kConfig, -1), BIO_free);
  std::unique_ptr<CONF, decltype(&NCONF_free)> conf(NCONF_new(nullptr), NCONF_free);
  long error_line = 0;
  if (!bio || !conf || NCONF_load_bio(conf.get(), bio.get(), &error_line) <= 0 ||
      CONF_modules_load(conf.get(), nullptr, 0) <= 0) {
    char reason[256] = {};
    ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
    return absl::InternalError(api::Cat("cannot restrict OpenSSL to TLS 1.3: ", reason));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MutualTlsServerCredentials(const api::TlsPem& pem) {
  if (absl::Status s = RequireTls13(); !s.ok()) return s;
  grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = pem.ca;
  options.pem_key_cert_pairs.push_back({pem.key, pem.cert_chain});
  return grpc::SslServerCredentials(options);
}

}  // namespace faultline
