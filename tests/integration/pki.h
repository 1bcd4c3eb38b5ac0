// The certificates the TLS tests present: a CA, the agent's certificate and clients with and without
// a role, made with the openssl command at test time.
#pragma once

#include <string>

#include "faultline/api/tls_files.h"

namespace faultline::test {

// A CA and the certificates the tests present, made with the openssl command in a private directory,
// which is removed with it. Keys are P-256: quick to make. The agent's certificate ("server") names
// localhost, 127.0.0.1 and ::1, and the sandbox host's 198.18.0.1 and 2001:db8::1.
class TestPki {
 public:
  TestPki();
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  // The files a client called `name` connects with.
  api::TlsFiles Client(const std::string& name) const;
  std::string FaultctlFlags(const std::string& name) const;

 private:
  void MakeCa(const std::string& name, const std::string& subject);
  void Issue(const std::string& name, const std::string& ca, const std::string& subject,
             const std::string& san, const std::string& validity = "-days 2");

  std::string dir_;
};

// Why the TLS tests cannot run here: root and namespaces, and the openssl command (the VMs of
// tests/vm carry none); "" when they can.
std::string MissingPkiTools();

}  // namespace faultline::test
