#include "lab/apiserver/rbac.h"

#include <algorithm>
#include <optional>

namespace cw::lab {
namespace {

using nlohmann::json;

constexpr const char* kMasters = "system:masters";

std::vector<std::string> strings(const json& object, const char* key) {
  std::vector<std::string> out;
  if (!object.is_object() || !object.contains(key) || !object[key].is_array()) return out;
  for (const auto& v : object[key]) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

std::string text(const json& object, const char* key) {
  if (!object.is_object() || !object.contains(key) || !object[key].is_string()) return "";
  return object[key].get<std::string>();
}

bool has(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

bool any(const std::vector<std::string>& list, const std::string& value) { return has(list, "*") || has(list, value); }

// rbac/v1 helpers: VerbMatches, APIGroupMatches, ResourceMatches, ResourceNameMatches,
// NonResourceURLMatches.
bool rule_allows(const RequestAttributes& r, const json& rule) {
  if (!any(strings(rule, "verbs"), r.verb)) return false;
  if (!r.resource_request) {
    for (const auto& url : strings(rule, "nonResourceURLs")) {
      if (url == "*" || url == r.path) return true;
      if (!url.empty() && url.back() == '*' && r.path.rfind(url.substr(0, url.size() - 1), 0) == 0) return true;
    }
    return false;
  }
  if (!any(strings(rule, "apiGroups"), r.api_group)) return false;
  const std::string combined = r.subresource.empty() ? r.resource : r.resource + "/" + r.subresource;
  bool resource = false;
  for (const auto& res : strings(rule, "resources")) {
    if (res == "*" || res == combined || (!r.subresource.empty() && res == "*/" + r.subresource)) resource = true;
  }
  if (!resource) return false;
  const auto names = strings(rule, "resourceNames");
  return names.empty() || has(names, r.name);
}

const json* find_named(const std::vector<json>& objects, const std::string& name, const std::string& ns) {
  for (const auto& o : objects) {
    const json& m = o.value("metadata", json::object());
    if (m.value("name", "") == name && m.value("namespace", "") == ns) return &o;
  }
  return nullptr;
}

// The binding's subject that is this user, described as kube-apiserver does; "" for none.
std::string matching_subject(const json& binding, const UserInfo& user) {
  const std::string binding_ns = binding.value("metadata", json::object()).value("namespace", "");
  if (!binding.contains("subjects") || !binding["subjects"].is_array()) return "";
  for (const auto& s : binding["subjects"]) {
    const std::string kind = text(s, "kind"), name = text(s, "name");
    if (kind == "User" && name == user.name) return "User \"" + name + "\"";
    if (kind == "Group" && has(user.groups, name)) return "Group \"" + name + "\"";
    if (kind == "ServiceAccount") {
      const std::string ns = text(s, "namespace").empty() ? binding_ns : text(s, "namespace");
      if (user.name == "system:serviceaccount:" + ns + ":" + name) return "ServiceAccount \"" + name + "/" + ns + "\"";
    }
  }
  return "";
}

}  // namespace

Decision authorize(const RbacObjects& rbac, const RequestAttributes& request) {
  if (has(request.user.groups, kMasters)) return {true, ""};
  std::vector<std::string> errors;
  auto rules_of = [&](const json& binding, const std::string& binding_ns) -> const json* {
    const json& ref = binding.value("roleRef", json::object());
    const std::string kind = text(ref, "kind"), name = text(ref, "name");
    const json* role = kind == "ClusterRole" ? find_named(rbac.cluster_roles, name, "")
                       : kind == "Role"      ? find_named(rbac.roles, name, binding_ns)
                                             : nullptr;
    if (!role) {
      errors.push_back(kind == "Role" ? "role.rbac.authorization.k8s.io \"" + name + "\" not found"
                                      : "clusterrole.rbac.authorization.k8s.io \"" + name + "\" not found");
    }
    return role;
  };
  auto try_binding = [&](const json& binding, const std::string& binding_ns, const char* what) -> std::optional<Decision> {
    const std::string subject = matching_subject(binding, request.user);
    if (subject.empty()) return std::nullopt;
    const json* role = rules_of(binding, binding_ns);
    if (!role || !role->contains("rules") || !(*role)["rules"].is_array()) return std::nullopt;
    for (const auto& rule : (*role)["rules"]) {
      if (!rule_allows(request, rule)) continue;
      const std::string name = binding["metadata"].value("name", "");
      const json& ref = binding["roleRef"];
      return Decision{true, std::string("RBAC: allowed by ") + what + " \"" +
                                (binding_ns.empty() ? name : name + "/" + binding_ns) + "\" of " + text(ref, "kind") +
                                " \"" + text(ref, "name") + "\" to " + subject};
    }
    return std::nullopt;
  };
  for (const auto& b : rbac.cluster_role_bindings) {
    if (text(b.value("roleRef", json::object()), "kind") != "ClusterRole") continue;
    if (auto d = try_binding(b, "", "ClusterRoleBinding")) return *d;
  }
  if (request.resource_request && !request.ns.empty()) {
    for (const auto& b : rbac.role_bindings) {
      const std::string ns = b.value("metadata", json::object()).value("namespace", "");
      if (ns != request.ns) continue;
      if (auto d = try_binding(b, ns, "RoleBinding")) return *d;
    }
  }
  std::string reason;
  for (const auto& e : errors) reason += (reason.empty() ? "RBAC: " : ", ") + e;
  if (errors.size() > 1) reason = "RBAC: [" + reason.substr(6) + "]";
  return {false, reason};
}

std::string forbidden_message(const RequestAttributes& r) {
  if (!r.resource_request) {
    return "forbidden: User \"" + r.user.name + "\" cannot " + r.verb + " path \"" + r.path + "\"";
  }
  const std::string qualified = r.api_group.empty() ? r.resource : r.resource + "." + r.api_group;
  const std::string resource = r.subresource.empty() ? r.resource : r.resource + "/" + r.subresource;
  std::string why = "User \"" + r.user.name + "\" cannot " + r.verb + " resource \"" + resource + "\" in API group \"" +
                    r.api_group + "\"" + (r.ns.empty() ? " at the cluster scope" : " in the namespace \"" + r.ns + "\"");
  return r.name.empty() ? qualified + " is forbidden: " + why : qualified + " \"" + r.name + "\" is forbidden: " + why;
}

std::vector<json> bootstrap_policy() {
  auto role = [](const std::string& name, json rules) {
    return json{{"apiVersion", "rbac.authorization.k8s.io/v1"},
                {"kind", "ClusterRole"},
                {"metadata", {{"name", name}, {"labels", {{"kubernetes.io/bootstrapping", "rbac-defaults"}}},
                              {"annotations", {{"rbac.authorization.kubernetes.io/autoupdate", "true"}}}}},
                {"rules", std::move(rules)}};
  };
  auto binding = [](const std::string& name, const std::string& role_name, json subjects) {
    return json{{"apiVersion", "rbac.authorization.k8s.io/v1"},
                {"kind", "ClusterRoleBinding"},
                {"metadata", {{"name", name}, {"labels", {{"kubernetes.io/bootstrapping", "rbac-defaults"}}},
                              {"annotations", {{"rbac.authorization.kubernetes.io/autoupdate", "true"}}}}},
                {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "ClusterRole"}, {"name", role_name}}},
                {"subjects", std::move(subjects)}};
  };
  auto group = [](const std::string& name) {
    return json{{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Group"}, {"name", name}};
  };
  return {
      role("cluster-admin", json::array({{{"apiGroups", {"*"}}, {"resources", {"*"}}, {"verbs", {"*"}}},
                                         {{"nonResourceURLs", {"*"}}, {"verbs", {"*"}}}})),
      role("system:discovery",
           json::array({{{"nonResourceURLs", {"/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                                              "/openapi/*", "/readyz", "/version", "/version/"}},
                         {"verbs", {"get"}}}})),
      role("system:basic-user",
           json::array({{{"apiGroups", {"authorization.k8s.io"}},
                         {"resources", {"selfsubjectaccessreviews", "selfsubjectrulesreviews"}},
                         {"verbs", {"create"}}},
                        {{"apiGroups", {"authentication.k8s.io"}}, {"resources", {"selfsubjectreviews"}}, {"verbs", {"create"}}}})),
      role("system:public-info-viewer",
           json::array({{{"nonResourceURLs", {"/healthz", "/livez", "/readyz", "/version", "/version/"}}, {"verbs", {"get"}}}})),
      binding("cluster-admin", "cluster-admin", json::array({group("system:masters")})),
      binding("system:discovery", "system:discovery", json::array({group("system:authenticated")})),
      binding("system:basic-user", "system:basic-user", json::array({group("system:authenticated")})),
      binding("system:public-info-viewer", "system:public-info-viewer",
              json::array({group("system:authenticated"), group("system:unauthenticated")})),
  };
}

}  // namespace cw::lab
