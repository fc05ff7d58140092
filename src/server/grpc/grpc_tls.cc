#include "server/grpc/grpc_tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace kyrodb::server {

namespace {

Result<std::string> ReadPem(const char* key, const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    return Status::InvalidArgument(std::string("tls.") + key + ": cannot read " + path + ": " +
                                   std::strerror(errno));
  }
  std::ostringstream text;
  text << f.rdbuf();
  return text.str();
}

// The first PEM certificate of `pem` (null if none), and how many there are.
struct Certs {
  X509* first = nullptr;
  int count = 0;
  ~Certs() { X509_free(first); }
};

void ParseCerts(const std::string& pem, Certs* out) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    if (out->first == nullptr) {
      out->first = cert;
    } else {
      X509_free(cert);
    }
    ++out->count;
  }
  BIO_free(bio);
  ERR_clear_error();  // the end of the input reads as an error
}

Status CheckCerts(const char* key, const std::string& path, const std::string& pem) {
  Certs certs;
  ParseCerts(pem, &certs);
  if (certs.count == 0) {
    return Status::InvalidArgument(std::string("tls.") + key + ": " + path +
                                   " holds no PEM certificate");
  }
  return Status::Ok();
}

// The key parses and belongs to the chain's first (leaf) certificate.
Status CheckKeyPair(const ServerConfig::Tls& tls, const std::string& cert_pem,
                    const std::string& key_pem) {
  Certs certs;
  ParseCerts(cert_pem, &certs);
  BIO* bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ERR_clear_error();
  if (pkey == nullptr) {
    return Status::InvalidArgument("tls.key_file: " + tls.key_file +
                                   " holds no PEM private key (or it is encrypted)");
  }
  const bool match = X509_check_private_key(certs.first, pkey) == 1;
  EVP_PKEY_free(pkey);
  ERR_clear_error();
  if (!match) {
    return Status::InvalidArgument("tls.key_file: " + tls.key_file +
                                   " is not the private key of the certificate in " +
                                   tls.cert_file);
  }
  return Status::Ok();
}

}  // namespace

Result<std::shared_ptr<::grpc::ServerCredentials>> GrpcServerCredentials(
    const ServerConfig::Tls& tls) {
  if (!tls.enabled) return ::grpc::InsecureServerCredentials();
  auto cert = ReadPem("cert_file", tls.cert_file);
  if (!cert.ok()) return cert.status();
  auto key = ReadPem("key_file", tls.key_file);
  if (!key.ok()) return key.status();
  KYRODB_RETURN_IF_ERROR(CheckCerts("cert_file", tls.cert_file, *cert));
  KYRODB_RETURN_IF_ERROR(CheckKeyPair(tls, *cert, *key));
  std::string ca;
  if (!tls.ca_file.empty()) {
    auto read = ReadPem("ca_file", tls.ca_file);
    if (!read.ok()) return read.status();
    ca = std::move(read).value();
    KYRODB_RETURN_IF_ERROR(CheckCerts("ca_file", tls.ca_file, ca));
  }
  ::grpc::SslServerCredentialsOptions options(
      ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                 : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = std::move(ca);
  options.pem_key_cert_pairs.push_back({std::move(key).value(), std::move(cert).value()});
  return ::grpc::SslServerCredentials(options);
}

}  // namespace kyrodb::server
