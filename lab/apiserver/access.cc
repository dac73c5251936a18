#include "lab/apiserver/access.h"

#include <ctime>

#include "common/base/base64.h"

namespace cw::lab {
namespace {

using nlohmann::json;

std::int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::string rfc3339(std::int64_t unix) {
  const std::time_t t = static_cast<std::time_t>(unix);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

std::string uid_of(const json& object) { return str(object.value("metadata", json::object()), "uid"); }

}  // namespace

std::optional<UserInfo> Access::authenticate(const http::Request& req) const {
  if (!req.peer_common_name.empty()) {  // a client certificate from the server's CA: CN and O
    UserInfo user{req.peer_common_name, req.peer_organizations, ""};
    user.groups.push_back("system:authenticated");
    return user;
  }
  const auto auth = req.header("Authorization");
  if (!auth || auth->rfind("Bearer ", 0) != 0) return std::nullopt;
  const std::string token = auth->substr(7);
  if (auto it = admin_tokens_.find(token); it != admin_tokens_.end()) {
    return UserInfo{it->second, {"system:masters", "system:authenticated"}, ""};
  }
  auto claims = issuer_.verify(token, unix_seconds(std::chrono::system_clock::now()));
  if (!claims) return std::nullopt;
  auto sa = store_.get({"serviceaccounts", claims->ns, claims->service_account});
  if (!sa || uid_of(*sa) != claims->service_account_uid) return std::nullopt;  // deleted, or a new one by that name
  if (!claims->secret_name.empty()) {
    auto secret = store_.get({"secrets", claims->ns, claims->secret_name});
    if (!secret || uid_of(*secret) != claims->secret_uid) return std::nullopt;
  }
  return service_account_user(claims->ns, claims->service_account, claims->service_account_uid);
}

RbacObjects Access::rbac_objects() const {
  RbacObjects out;
  auto all = [&](const char* resource, std::vector<json>& into) {
    if (auto page = store_.list(resource, "", nullptr, 0, "")) into = std::move(page->items);
  };
  all("roles.rbac.authorization.k8s.io", out.roles);
  all("clusterroles.rbac.authorization.k8s.io", out.cluster_roles);
  all("rolebindings.rbac.authorization.k8s.io", out.role_bindings);
  all("clusterrolebindings.rbac.authorization.k8s.io", out.cluster_role_bindings);
  return out;
}

Decision Access::authorize(const RequestAttributes& request) const {
  for (const auto& g : request.user.groups) {
    if (g == "system:masters") return {true, ""};  // no need to read the roles
  }
  return lab::authorize(rbac_objects(), request);
}

Result<json> Access::review(const json& body, const UserInfo& requester, bool self) const {
  if (!body.is_object()) return Error(ErrorCode::kInvalidArgument, "the review is not an object");
  const json spec = body.value("spec", json::object());
  const bool has_resource = spec.contains("resourceAttributes") && spec["resourceAttributes"].is_object();
  const bool has_path = spec.contains("nonResourceAttributes") && spec["nonResourceAttributes"].is_object();
  const std::string kind = self ? "SelfSubjectAccessReview" : "SubjectAccessReview";
  if (has_resource == has_path) {
    return Error(ErrorCode::kInvalidArgument,
                 kind + ".authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of "
                        "nonResourceAttributes or resourceAttributes must be specified");
  }
  RequestAttributes r;
  if (self) {
    r.user = requester;
  } else {
    r.user.name = str(spec, "user");
    r.user.uid = str(spec, "uid");
    if (spec.contains("groups") && spec["groups"].is_array()) {
      for (const auto& g : spec["groups"]) {
        if (g.is_string()) r.user.groups.push_back(g.get<std::string>());
      }
    }
    if (r.user.name.empty() && r.user.groups.empty()) {
      return Error(ErrorCode::kInvalidArgument, "SubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.user: Invalid value: "
                                                "\"\": at least one of user or group must be specified");
    }
  }
  if (has_resource) {
    const json& a = spec["resourceAttributes"];
    r.resource_request = true;
    r.verb = str(a, "verb");
    r.api_group = str(a, "group");
    r.resource = str(a, "resource");
    r.subresource = str(a, "subresource");
    r.ns = str(a, "namespace");
    r.name = str(a, "name");
  } else {
    const json& a = spec["nonResourceAttributes"];
    r.resource_request = false;
    r.verb = str(a, "verb");
    r.path = str(a, "path");
  }
  const Decision d = authorize(r);
  json out = body;
  out["apiVersion"] = "authorization.k8s.io/v1";
  out["kind"] = kind;
  if (!out.contains("metadata") || !out["metadata"].is_object()) out["metadata"] = json::object();
  out["metadata"]["creationTimestamp"] = nullptr;
  json status{{"allowed", d.allowed}};
  if (!d.reason.empty()) status["reason"] = d.reason;
  out["status"] = status;
  return out;
}

Result<json> Access::token_request(const json& body, const json& service_account,
                                   std::chrono::system_clock::time_point now) const {
  const json spec = body.is_object() ? body.value("spec", json::object()) : json::object();
  std::int64_t seconds = 3600;
  if (spec.contains("expirationSeconds") && spec["expirationSeconds"].is_number_integer()) {
    seconds = spec["expirationSeconds"].get<std::int64_t>();
    if (seconds < 600) {
      return Error(ErrorCode::kInvalidArgument, "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: "
                                                "Invalid value: " + std::to_string(seconds) + ": may not specify a duration less than 10 minutes");
    }
    seconds = std::min<std::int64_t>(seconds, 48 * 3600);
  }
  TokenClaims c;
  const json& m = service_account["metadata"];
  c.ns = m.value("namespace", "");
  c.service_account = m.value("name", "");
  c.service_account_uid = m.value("uid", "");
  c.issued_at = unix_seconds(now);
  c.expires = c.issued_at + seconds;
  if (spec.contains("audiences") && spec["audiences"].is_array() && !spec["audiences"].empty()) {
    for (const auto& a : spec["audiences"]) {
      if (a.is_string()) c.audiences.push_back(a.get<std::string>());
    }
  } else {
    c.audiences = {kServiceAccountIssuer};
  }
  json out = body.is_object() ? body : json::object();
  out["apiVersion"] = "authentication.k8s.io/v1";
  out["kind"] = "TokenRequest";
  out["metadata"] = {{"name", c.service_account}, {"namespace", c.ns}, {"creationTimestamp", rfc3339(c.issued_at)}};
  out["spec"] = spec;
  out["spec"]["audiences"] = c.audiences;
  out["spec"]["expirationSeconds"] = seconds;
  out["status"] = {{"token", issuer_.issue(c)}, {"expirationTimestamp", rfc3339(c.expires)}};
  return out;
}

void Access::fill_token_secret(json& secret, const json& service_account, const std::string& ca_pem,
                               std::chrono::system_clock::time_point now) const {
  TokenClaims c;
  const json& sa = service_account["metadata"];
  c.ns = sa.value("namespace", "");
  c.service_account = sa.value("name", "");
  c.service_account_uid = sa.value("uid", "");
  c.secret_name = secret["metadata"].value("name", "");
  c.secret_uid = secret["metadata"].value("uid", "");
  c.issued_at = unix_seconds(now);
  c.audiences = {kServiceAccountIssuer};
  secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"] = c.service_account_uid;
  if (!secret.contains("data") || !secret["data"].is_object()) secret["data"] = json::object();
  secret["data"]["token"] = base64_encode(issuer_.issue(c));
  secret["data"]["ca.crt"] = base64_encode(ca_pem);
  secret["data"]["namespace"] = base64_encode(c.ns);
}

}  // namespace cw::lab
