// The lab API server's authorizer: Kubernetes RBAC as documented
// (https://kubernetes.io/docs/reference/access-authn-authz/rbac/) and as
// k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac evaluates it:
//   - a request is allowed when a rule of a role bound to the user (by name, by one of its
//     groups, or as the ServiceAccount it is) covers it; there is no deny;
//   - ClusterRoleBindings grant their ClusterRole everywhere; RoleBindings grant their Role
//     or ClusterRole in the binding's namespace only;
//   - a rule covers a resource request when its verbs, apiGroups and resources ("*",
//     "resource", "resource/subresource", "*/subresource") match and its resourceNames are
//     empty or hold the object's name; a non-resource request (a path) when its verbs and
//     nonResourceURLs ("*", the path, or a prefix ending in "*") match;
//   - the group system:masters is allowed everything (kube-apiserver's privileged group).
// Pure: the roles and bindings come in as JSON, so tests need no server.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cw::lab {

struct UserInfo {
  std::string name;  // "system:serviceaccount:ns:sa", "lab-admin"
  std::vector<std::string> groups;
  std::string uid;
};

// What a request asks to do (k8s.io/apiserver/pkg/authorization/authorizer.Attributes).
struct RequestAttributes {
  UserInfo user;
  std::string verb;  // get list watch create update patch delete deletecollection; for a path: get post put ...
  bool resource_request = true;
  std::string api_group;  // "" for core
  std::string resource;   // "configmaps"
  std::string subresource;
  std::string ns;  // "" at the cluster scope
  std::string name;
  std::string path;  // a non-resource request's path
};

struct RbacObjects {
  std::vector<nlohmann::json> roles, cluster_roles, role_bindings, cluster_role_bindings;
};

struct Decision {
  bool allowed = false;
  // Why, as kube-apiserver's RBAC authorizer says it: `RBAC: allowed by ClusterRoleBinding
  // "x" of ClusterRole "y" to User "z"`; empty when nothing allows it.
  std::string reason;
};

Decision authorize(const RbacObjects& rbac, const RequestAttributes& request);

// The 403 message kube-apiserver writes: `configmaps "x" is forbidden: User "u" cannot get
// resource "configmaps" in API group "" in the namespace "default"`.
std::string forbidden_message(const RequestAttributes& request);

// The policy kube-apiserver bootstraps (k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac/
// bootstrappolicy), the parts the lab needs: cluster-admin bound to system:masters,
// system:discovery, system:basic-user (SelfSubjectAccessReview and -RulesReview) and
// system:public-info-viewer bound to every authenticated user. ClusterRoles first, then
// ClusterRoleBindings.
std::vector<nlohmann::json> bootstrap_policy();

}  // namespace cw::lab
