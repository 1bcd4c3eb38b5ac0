#include "faultline/api/tls_files.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "faultline/api/cat.h"

namespace faultline::api {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Cert = std::unique_ptr<X509, X509Free>;
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

absl::StatusOr<std::string> ReadFile(const char* flag, const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError(Cat(flag, ": required"));
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(Cat(flag, " ", path, ": cannot read it"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Bio Memory(const std::string& text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// The certificates in a PEM text, in order; none when it holds no parsable one.
std::vector<Cert> Certificates(const std::string& pem) {
  std::vector<Cert> certs;
  Bio bio = Memory(pem);
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) certs.emplace_back(cert);
  ERR_clear_error();  // the read that ends the loop leaves "no start line" behind
  return certs;
}

// A password callback that refuses: OpenSSL's default one would prompt on the terminal.
int NoPassword(char*, int, int, void*) { return -1; }

}  // namespace

absl::StatusOr<TlsPem> LoadTlsFiles(const TlsFiles& files, const TlsFlags& flags) {
  TlsPem pem;
  for (auto [flag, path, text] :
       {std::tuple{flags.cert, &files.cert, &pem.cert_chain}, std::tuple{flags.key, &files.key, &pem.key},
        std::tuple{flags.ca, &files.ca, &pem.ca}}) {
    auto read = ReadFile(flag, *path);
    if (!read.ok()) return read.status();
    *text = *std::move(read);
  }
  std::vector<Cert> chain = Certificates(pem.cert_chain);
  if (chain.empty()) {
    return absl::InvalidArgumentError(Cat(flags.cert, " ", files.cert, ": no PEM certificate in it"));
  }
  if (Certificates(pem.ca).empty()) {
    return absl::InvalidArgumentError(Cat(flags.ca, " ", files.ca, ": no PEM certificate in it"));
  }
  Bio key_bio = Memory(pem.key);
  Key key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, NoPassword, nullptr));
  ERR_clear_error();
  if (!key) {
    return absl::InvalidArgumentError(
        Cat(flags.key, " ", files.key, ": no PEM private key in it (encrypted keys are not supported)"));
  }
  if (X509_check_private_key(chain.front().get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(Cat(flags.key, " ", files.key, " is not the key of the certificate in ",
                                          flags.cert, " ", files.cert));
  }
  return pem;
}

}  // namespace faultline::api
