// The lab API server's RBAC authorizer against the documented semantics
// (https://kubernetes.io/docs/reference/access-authn-authz/rbac/), message by message as
// kube-apiserver writes them.
#include "lab/apiserver/rbac.h"

#include <gtest/gtest.h>

namespace cw::lab {
namespace {

using nlohmann::json;

json role(const std::string& kind, const std::string& name, const std::string& ns, json rules) {
  json m{{"name", name}};
  if (!ns.empty()) m["namespace"] = ns;
  return {{"kind", kind}, {"metadata", m}, {"rules", std::move(rules)}};
}

json binding(const std::string& kind, const std::string& name, const std::string& ns, const std::string& role_kind,
             const std::string& role_name, json subjects) {
  json m{{"name", name}};
  if (!ns.empty()) m["namespace"] = ns;
  return {{"kind", kind}, {"metadata", m}, {"roleRef", {{"kind", role_kind}, {"name", role_name}}}, {"subjects", std::move(subjects)}};
}

const UserInfo kAgent{"system:serviceaccount:cw:node-agent", {"system:serviceaccounts", "system:serviceaccounts:cw", "system:authenticated"}, ""};
const UserInfo kDns{"system:serviceaccount:cw:dns", {"system:serviceaccounts", "system:authenticated"}, ""};

RbacObjects policy() {
  RbacObjects p;
  p.cluster_roles.push_back(role("ClusterRole", "agent", "",
                                 {{{"apiGroups", {""}}, {"resources", {"nodes"}}, {"verbs", {"list", "watch", "patch"}}},
                                  {{"apiGroups", {"clusterwire.io"}}, {"resources", {"clusterpeerings"}}, {"verbs", {"list", "watch"}}}}));
  p.cluster_role_bindings.push_back(binding("ClusterRoleBinding", "agent", "", "ClusterRole", "agent",
                                            {{{"kind", "ServiceAccount"}, {"name", "node-agent"}, {"namespace", "cw"}}}));
  p.roles.push_back(role("Role", "gateway-lease", "cw",
                         {{{"apiGroups", {"coordination.k8s.io"}}, {"resources", {"leases"}}, {"resourceNames", {"clusterwire-gateway"}},
                           {"verbs", {"get", "update"}}},
                          {{"apiGroups", {"clusterwire.io"}}, {"resources", {"*/status"}}, {"verbs", {"update"}}}}));
  p.role_bindings.push_back(binding("RoleBinding", "gateway-lease", "cw", "Role", "gateway-lease",
                                    {{{"kind", "ServiceAccount"}, {"name", "node-agent"}}}));  // namespace: the binding's
  p.role_bindings.push_back(binding("RoleBinding", "broken", "cw", "ClusterRole", "missing", {{{"kind", "Group"}, {"name", "system:serviceaccounts"}}}));
  p.cluster_role_bindings.push_back(binding("ClusterRoleBinding", "metrics", "", "ClusterRole", "metrics", {{{"kind", "User"}, {"name", "prom"}}}));
  p.cluster_roles.push_back(role("ClusterRole", "metrics", "", {{{"nonResourceURLs", {"/metrics", "/debug/*"}}, {"verbs", {"get"}}}}));
  return p;
}

struct Case {
  const char* what;
  RequestAttributes request;
  bool allowed;
  std::string reason_or_message;  // the allow reason, or the 403 message
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.what; }

class RbacTest : public testing::TestWithParam<Case> {};

TEST_P(RbacTest, DecidesAsDocumented) {
  const auto& c = GetParam();
  const auto d = authorize(policy(), c.request);
  EXPECT_EQ(d.allowed, c.allowed) << c.what << ": " << d.reason;
  if (c.allowed) {
    EXPECT_EQ(d.reason, c.reason_or_message) << c.what;
  } else {
    EXPECT_EQ(forbidden_message(c.request), c.reason_or_message) << c.what;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Rules, RbacTest,
    testing::Values(
        Case{"a ClusterRoleBinding to a ServiceAccount", {kAgent, "list", true, "", "nodes", "", "", "", ""}, true,
             "RBAC: allowed by ClusterRoleBinding \"agent\" of ClusterRole \"agent\" to ServiceAccount \"node-agent/cw\""},
        Case{"a verb the rule does not have", {kAgent, "delete", true, "", "nodes", "", "", "n1", ""}, false,
             "nodes \"n1\" is forbidden: User \"system:serviceaccount:cw:node-agent\" cannot delete resource \"nodes\" in API group \"\" at the cluster scope"},
        Case{"another API group", {kAgent, "list", true, "apps", "nodes", "", "", "", ""}, false,
             "nodes.apps is forbidden: User \"system:serviceaccount:cw:node-agent\" cannot list resource \"nodes\" in API group \"apps\" at the cluster scope"},
        Case{"a subresource is not its resource", {kAgent, "update", true, "clusterwire.io", "clusterpeerings", "status", "", "c2", ""}, false,
             "clusterpeerings.clusterwire.io \"c2\" is forbidden: User \"system:serviceaccount:cw:node-agent\" cannot update resource \"clusterpeerings/status\" in API group \"clusterwire.io\" at the cluster scope"},
        Case{"*/status in a Role, in its namespace", {kAgent, "update", true, "clusterwire.io", "things", "status", "cw", "t", ""}, true,
             "RBAC: allowed by RoleBinding \"gateway-lease/cw\" of Role \"gateway-lease\" to ServiceAccount \"node-agent/cw\""},
        Case{"resourceNames: the named Lease", {kAgent, "update", true, "coordination.k8s.io", "leases", "", "cw", "clusterwire-gateway", ""}, true,
             "RBAC: allowed by RoleBinding \"gateway-lease/cw\" of Role \"gateway-lease\" to ServiceAccount \"node-agent/cw\""},
        Case{"resourceNames: another Lease", {kAgent, "update", true, "coordination.k8s.io", "leases", "", "cw", "clusterwire-operator", ""}, false,
             "leases.coordination.k8s.io \"clusterwire-operator\" is forbidden: User \"system:serviceaccount:cw:node-agent\" cannot update resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"cw\""},
        Case{"a Role grants nothing in another namespace", {kAgent, "get", true, "coordination.k8s.io", "leases", "", "kube-system", "clusterwire-gateway", ""}, false,
             "leases.coordination.k8s.io \"clusterwire-gateway\" is forbidden: User \"system:serviceaccount:cw:node-agent\" cannot get resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-system\""},
        Case{"another ServiceAccount gets nothing", {kDns, "list", true, "", "nodes", "", "", "", ""}, false,
             "nodes is forbidden: User \"system:serviceaccount:cw:dns\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"},
        Case{"the DNS server reading Secrets", {kDns, "get", true, "", "secrets", "", "cw", "member-c2-token", ""}, false,
             "secrets \"member-c2-token\" is forbidden: User \"system:serviceaccount:cw:dns\" cannot get resource \"secrets\" in API group \"\" in the namespace \"cw\""},
        Case{"a path by prefix", {{"prom", {"system:authenticated"}, ""}, "get", false, "", "", "", "", "", "/debug/pprof"}, true,
             "RBAC: allowed by ClusterRoleBinding \"metrics\" of ClusterRole \"metrics\" to User \"prom\""},
        Case{"a path not listed", {{"prom", {"system:authenticated"}, ""}, "get", false, "", "", "", "", "", "/logs"}, false,
             "forbidden: User \"prom\" cannot get path \"/logs\""},
        Case{"system:masters is allowed everything", {{"lab-admin", {"system:masters"}, ""}, "delete", true, "", "nodes", "", "", "n1", ""}, true,
             ""}),
    [](const testing::TestParamInfo<Case>& p) { return "Case" + std::to_string(p.index); });

TEST(RbacTest2, ABindingToAMissingRoleIsTheReason) {
  const auto d = authorize(policy(), {kAgent, "get", true, "", "configmaps", "", "cw", "x", ""});
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "RBAC: clusterrole.rbac.authorization.k8s.io \"missing\" not found");
}

TEST(RbacTest2, TheBootstrapPolicyLetsEveryUserDiscoverAndAskWhatItMayDo) {
  RbacObjects p;
  for (const auto& o : bootstrap_policy()) (o["kind"] == "ClusterRole" ? p.cluster_roles : p.cluster_role_bindings).push_back(o);
  const UserInfo someone{"system:serviceaccount:x:y", {"system:serviceaccounts", "system:authenticated"}, ""};
  EXPECT_TRUE(authorize(p, {someone, "get", false, "", "", "", "", "", "/apis/clusterwire.io/v1alpha1"}).allowed);
  EXPECT_TRUE(authorize(p, {someone, "create", true, "authorization.k8s.io", "selfsubjectaccessreviews", "", "", "", ""}).allowed);
  EXPECT_FALSE(authorize(p, {someone, "create", true, "authorization.k8s.io", "subjectaccessreviews", "", "", "", ""}).allowed);
  EXPECT_FALSE(authorize(p, {someone, "list", true, "", "secrets", "", "x", "", ""}).allowed);
  EXPECT_TRUE(authorize(p, {{"anonymous", {"system:unauthenticated"}, ""}, "get", false, "", "", "", "", "", "/version"}).allowed);
}

}  // namespace
}  // namespace cw::lab
