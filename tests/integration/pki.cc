#include "pki.h"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "faultline/api/cat.h"
#include "sandbox.h"

namespace faultline::test {

using api::Cat;

TestPki::TestPki() {
  char dir_template[] = "/tmp/faultline-pki-XXXXXX";
  dir_ = mkdtemp(dir_template);
  std::filesystem::create_directory(dir_ + "/issued");
  std::ofstream(dir_ + "/index.txt");
  std::ofstream(dir_ + "/serial") << "1000\n";
  // `openssl ca`, unlike `openssl x509 -req`, takes any validity period: the expired certificate.
  std::ofstream(dir_ + "/ca.cnf") << "[ca]\ndefault_ca = test\n[test]\ndatabase = " << dir_
                                  << "/index.txt\nnew_certs_dir = " << dir_ << "/issued\nserial = " << dir_
                                  << "/serial\ndefault_md = sha256\npolicy = anything\nunique_subject = no\n"
                                     "copy_extensions = copy\n[anything]\ncommonName = optional\n"
                                     "organizationName = optional\n";
  MakeCa("ca", "/CN=faultline test CA");
  MakeCa("other-ca", "/CN=another test CA");
  Issue("server", "ca", "/CN=faultlined", "DNS:localhost,IP:127.0.0.1,IP:::1,IP:198.18.0.1,IP:2001:db8::1");
  Issue("operator", "ca", "/CN=alice", "DNS:alice.example");
  Issue("viewer", "ca", "/CN=ci", "URI:spiffe://faultline.test/ci");
  Issue("stranger", "ca", "/CN=mallory", "DNS:mallory.example");
  Issue("anonymous", "ca", "/O=faultline tests", "");
  Issue("common-name", "ca", "/CN=nightly-runner", "");
  Issue("other-ca-operator", "other-ca", "/CN=alice", "DNS:alice.example");
  Issue("expired-operator", "ca", "/CN=alice", "DNS:alice.example",
        "-startdate 20200101000000Z -enddate 20200102000000Z");
  std::ofstream(Path("access")) << "# who may do what\n"
                                << "operator alice.example\n"
                                << "viewer   spiffe://faultline.test/ci\n"
                                << "viewer   nightly-runner\n";
}

TestPki::~TestPki() { std::filesystem::remove_all(dir_); }

api::TlsFiles TestPki::Client(const std::string& name) const {
  return {Path(name + ".pem"), Path(name + ".key"), Path("ca.pem")};
}

std::string TestPki::FaultctlFlags(const std::string& name) const {
  return Cat("--tls-cert ", Path(name + ".pem"), " --tls-key ", Path(name + ".key"), " --ca ",
             Path("ca.pem"));
}

void TestPki::MakeCa(const std::string& name, const std::string& subject) {
  Shell(Cat("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj '", subject,
            "' -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -keyout ",
            Path(name + ".key"), " -out ", Path(name + ".pem")));
}

void TestPki::Issue(const std::string& name, const std::string& ca, const std::string& subject,
                    const std::string& san, const std::string& validity) {
  Shell(Cat("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '", subject, "' ",
            san.empty() ? "" : "-addext subjectAltName=" + san, " -keyout ", Path(name + ".key"), " -out ",
            Path(name + ".csr")));
  Shell(Cat("openssl ca -batch -notext -config ", Path("ca.cnf"), " -cert ", Path(ca + ".pem"), " -keyfile ",
            Path(ca + ".key"), " ", validity, " -in ", Path(name + ".csr"), " -out ", Path(name + ".pem")));
}

std::string MissingPkiTools() {
  if (std::string missing = MissingPrivileges(); !missing.empty()) return missing;
  if (std::system("openssl version >/dev/null 2>&1") != 0) return "needs the openssl command";
  return "";
}

}  // namespace faultline::test
