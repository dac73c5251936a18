// ServiceAccount tokens, as kube-apiserver issues them for TokenRequest
// (`kubectl create token`) and for Secrets of type kubernetes.io/service-account-token: JWTs
// whose subject is system:serviceaccount:<ns>:<name>, with the kubernetes.io claims (the
// namespace, the ServiceAccount's name and uid, and for a Secret's token the Secret's). The
// lab signs them with HMAC-SHA256 and a key of its own kept in --pki-dir (kube-apiserver signs
// with RS256 and --service-account-key-file); clients treat tokens as opaque, so this
// difference is invisible to them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/base/result.h"
#include "lab/apiserver/rbac.h"

namespace cw::lab {

struct TokenClaims {
  std::string ns, service_account, service_account_uid;
  std::string secret_name, secret_uid;  // a Secret's long-lived token; empty for TokenRequest
  std::vector<std::string> audiences;
  std::int64_t issued_at = 0;
  std::int64_t expires = 0;  // unix seconds; 0: never (a Secret's token)
};

class TokenIssuer {
 public:
  // The key in `pki_dir`/sa.key (0600), made the first time; with an empty `pki_dir`, a new
  // random key (tokens then die with the server).
  static Result<TokenIssuer> load_or_create(const std::string& pki_dir);

  std::string issue(const TokenClaims& claims) const;
  // The claims of a token this issuer signed and that has not expired at `now` (unix s).
  std::optional<TokenClaims> verify(const std::string& token, std::int64_t now) const;

  TokenIssuer(const TokenIssuer&) = delete;
  TokenIssuer& operator=(const TokenIssuer&) = delete;
  TokenIssuer(TokenIssuer&& other) noexcept;
  TokenIssuer& operator=(TokenIssuer&&) = delete;
  ~TokenIssuer();  // wipes the key

 private:
  explicit TokenIssuer(std::string key) : key_(std::move(key)) {}
  std::string sign(const std::string& data) const;
  std::string key_;
};

inline constexpr const char* kServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local";

// The user a ServiceAccount authenticates as, with the groups kube-apiserver gives it.
UserInfo service_account_user(const std::string& ns, const std::string& name, const std::string& uid);

}  // namespace cw::lab
