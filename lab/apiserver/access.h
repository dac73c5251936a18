// Who may do what on the lab API server: authentication (the lab's admin tokens, client
// certificates, ServiceAccount tokens), RBAC authorization over the roles and bindings in the
// store (rbac.h), and the API objects about access: SelfSubjectAccessReview,
// SubjectAccessReview (`kubectl auth can-i`), TokenRequest (`kubectl create token`) and the
// token Secrets the token controller fills in.
#pragma once

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/base/result.h"
#include "common/http/message.h"
#include "lab/apiserver/rbac.h"
#include "lab/apiserver/store.h"
#include "lab/apiserver/tokens.h"

namespace cw::lab {

class Access {
 public:
  // `admin_tokens`: bearer token → user name; these users are in system:masters (the lab's
  // admin credentials, as kubeadm's admin.conf is).
  Access(std::map<std::string, std::string> admin_tokens, TokenIssuer issuer, const Store& store)
      : admin_tokens_(std::move(admin_tokens)), issuer_(std::move(issuer)), store_(store) {}

  // nullopt: 401. A ServiceAccount token is valid while its ServiceAccount (same uid) and, for
  // a Secret's token, its Secret exist.
  std::optional<UserInfo> authenticate(const http::Request& req) const;
  Decision authorize(const RequestAttributes& request) const;

  // A SelfSubjectAccessReview (`self`, for `requester`) or SubjectAccessReview, answered:
  // the request object with status.allowed/denied/reason. kInvalidArgument when malformed.
  Result<nlohmann::json> review(const nlohmann::json& body, const UserInfo& requester, bool self) const;

  // A TokenRequest for `service_account`: its status (token, expirationTimestamp). The
  // requested expirationSeconds is kept within [600, 48h] as kube-apiserver bounds it.
  Result<nlohmann::json> token_request(const nlohmann::json& body, const nlohmann::json& service_account,
                                       std::chrono::system_clock::time_point now) const;

  // A Secret of type kubernetes.io/service-account-token, filled in as the token controller
  // does: data.token, data["ca.crt"], data.namespace, and the ServiceAccount's uid annotation.
  void fill_token_secret(nlohmann::json& secret, const nlohmann::json& service_account, const std::string& ca_pem,
                         std::chrono::system_clock::time_point now) const;

 private:
  RbacObjects rbac_objects() const;

  std::map<std::string, std::string> admin_tokens_;
  TokenIssuer issuer_;
  const Store& store_;
};

}  // namespace cw::lab
