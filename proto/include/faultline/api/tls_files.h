// The PEM files of mutual TLS, read and checked the same way by faultlined and faultctl, so a wrong
// file is reported at start with the flag that named it, not as a failed handshake later.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace faultline::api {

struct TlsFiles {
  std::string cert;  // this side's certificate chain, leaf first
  std::string key;   // its private key (unencrypted)
  std::string ca;    // the CA certificates that sign the other side's certificates
  bool any() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

// The flags the paths came from, for messages: {"--tls-cert", "--tls-key", "--ca"}.
struct TlsFlags {
  const char* cert;
  const char* key;
  const char* ca;
};

struct TlsPem {
  std::string cert_chain;
  std::string key;
  std::string ca;
};

// Reads the three files (all are required) and checks that each parses, and that the key belongs
// to the leaf certificate. Validity dates and the chain are left to the handshake.
absl::StatusOr<TlsPem> LoadTlsFiles(const TlsFiles& files, const TlsFlags& flags);

}  // namespace faultline::api
