#include "lab/pki.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

namespace cw::lab {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Free>;
using Cert = std::unique_ptr<X509, Free>;
using Bio = std::unique_ptr<BIO, Free>;

Error openssl_error(const std::string& what) {
  return Error(ErrorCode::kInternal, "pki: " + what + " failed");
}

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

Result<std::string> to_key_pem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)) {
    return openssl_error("writing key");
  }
  return bio_string(bio.get());
}

Result<std::string> to_cert_pem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_X509(bio.get(), cert)) return openssl_error("writing certificate");
  return bio_string(bio.get());
}

Key read_key(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return Key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

Cert read_cert(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return Cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

bool add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// A new certificate for `key`, with a random serial, valid from an hour ago (clock skew
// between lab processes is nil, but a little slack costs nothing).
Cert new_cert(EVP_PKEY* key, const std::string& cn, const std::vector<std::string>& orgs,
              int valid_days) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400L * valid_days);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const auto& o : orgs) {
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(o.c_str()), -1, -1, 0);
  }
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  return cert;
}

}  // namespace

Result<CertificateAuthority> CertificateAuthority::create(const std::string& common_name,
                                                          int valid_days) {
  Key key(EVP_EC_gen("P-256"));
  if (!key) return openssl_error("generating the CA key");
  Cert cert = new_cert(key.get(), common_name, {}, valid_days);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  if (!add_ext(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE") ||
      !add_ext(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") ||
      !add_ext(cert.get(), cert.get(), NID_subject_key_identifier, "hash")) {
    return openssl_error("CA extensions");
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return openssl_error("signing the CA");
  auto c = to_cert_pem(cert.get());
  auto k = to_key_pem(key.get());
  if (!c) return c.error();
  if (!k) return k.error();
  return CertificateAuthority(Issued{*c, *k}, valid_days);
}

Result<CertificateAuthority> CertificateAuthority::load_or_create(const std::string& dir, const std::string& common_name,
                                                                   int valid_days) {
  const std::string cert_path = dir + "/ca.crt", key_path = dir + "/ca.key";
  auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  if (std::filesystem::exists(cert_path) && std::filesystem::exists(key_path)) {
    Issued ca{slurp(cert_path), slurp(key_path)};
    if (!read_cert(ca.cert_pem) || !read_key(ca.key_pem)) {
      return Error(ErrorCode::kInvalidArgument, "pki: " + dir + " holds no usable ca.crt and ca.key");
    }
    return CertificateAuthority(std::move(ca), valid_days);
  }
  auto ca = create(common_name, valid_days);
  if (!ca) return ca.error();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error(ErrorCode::kUnavailable, "pki: cannot create " + dir + ": " + ec.message());
  {
    std::ofstream key(key_path, std::ios::trunc);
    ::chmod(key_path.c_str(), 0600);
    key << ca->ca_.key_pem;
    std::ofstream cert(cert_path, std::ios::trunc);
    cert << ca->ca_.cert_pem;
    if (!key || !cert) return Error(ErrorCode::kUnavailable, "pki: cannot write the CA to " + dir);
  }
  return ca;
}

Result<Issued> CertificateAuthority::issue(const std::string& common_name,
                                           const std::vector<std::string>& orgs,
                                           const std::string& san, bool server) const {
  Key ca_key = read_key(ca_.key_pem);
  Cert ca_cert = read_cert(ca_.cert_pem);
  if (!ca_key || !ca_cert) return openssl_error("reading the CA");
  Key key(EVP_EC_gen("P-256"));
  if (!key) return openssl_error("generating a key");
  Cert cert = new_cert(key.get(), common_name, orgs, valid_days_);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
  bool ok = add_ext(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE") &&
            add_ext(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
            add_ext(cert.get(), ca_cert.get(), NID_ext_key_usage, server ? "serverAuth" : "clientAuth") &&
            add_ext(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always");
  if (ok && !san.empty()) ok = add_ext(cert.get(), ca_cert.get(), NID_subject_alt_name, san);
  if (!ok) return openssl_error("certificate extensions");
  if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) == 0) return openssl_error("signing");
  auto c = to_cert_pem(cert.get());
  auto k = to_key_pem(key.get());
  if (!c) return c.error();
  if (!k) return k.error();
  return Issued{*c, *k};
}

Result<Issued> CertificateAuthority::issue_server(const std::string& common_name,
                                                  const std::vector<std::string>& dns_names,
                                                  const std::vector<std::string>& ip_addresses) const {
  std::string san;
  for (const auto& d : dns_names) san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
  for (const auto& ip : ip_addresses) san += (san.empty() ? "" : ",") + std::string("IP:") + ip;
  return issue(common_name, {}, san, true);
}

Result<Issued> CertificateAuthority::issue_client(const std::string& common_name,
                                                  const std::vector<std::string>& organizations) const {
  return issue(common_name, organizations, "", false);
}

}  // namespace cw::lab
