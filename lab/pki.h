// A throw-away certificate authority for the lab and tests: the lab API servers serve
// HTTPS with certificates it issues, and kubeconfigs carry its certificate. EC P-256 keys,
// SHA-256 signatures. Not for production use: keys live in memory as PEM.
#pragma once

#include <string>
#include <vector>

#include "common/base/result.h"

namespace cw::lab {

struct Issued {
  std::string cert_pem;
  std::string key_pem;
};

class CertificateAuthority {
 public:
  static Result<CertificateAuthority> create(const std::string& common_name, int valid_days = 30);
  // The authority kept in `dir` (ca.crt, and ca.key with mode 0600), made there the first
  // time: a restarted lab API server keeps its CA, so its clients' kubeconfigs stay valid.
  static Result<CertificateAuthority> load_or_create(const std::string& dir, const std::string& common_name,
                                                     int valid_days = 30);

  const std::string& cert_pem() const { return ca_.cert_pem; }
  // A server certificate for these DNS names and IP addresses (subjectAltName).
  Result<Issued> issue_server(const std::string& common_name,
                              const std::vector<std::string>& dns_names,
                              const std::vector<std::string>& ip_addresses) const;
  // A client certificate; Kubernetes reads the user from CN and groups from O.
  Result<Issued> issue_client(const std::string& common_name,
                              const std::vector<std::string>& organizations = {}) const;

 private:
  explicit CertificateAuthority(Issued ca, int valid_days) : ca_(std::move(ca)), valid_days_(valid_days) {}
  Result<Issued> issue(const std::string& common_name, const std::vector<std::string>& orgs,
                       const std::string& san, bool server) const;

  Issued ca_;
  int valid_days_;
};

}  // namespace cw::lab
