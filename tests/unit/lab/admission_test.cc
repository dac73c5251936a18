#include "lab/apiserver/admission.h"

#include <gtest/gtest.h>

namespace cw::lab {
namespace {

using json = nlohmann::json;

// The shape of the chart's broker ownership policy (charts/clusterwire/templates/broker.yaml).
json ownership_policy() {
  return json::parse(R"J({
    "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
    "metadata": {"name": "owner"},
    "spec": {
      "failurePolicy": "Fail",
      "matchConstraints": {"resourceRules": [{"apiGroups": ["clusterwire.io"], "apiVersions": ["*"],
        "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["cidrclaims", "clusteradvertisements"]}]},
      "matchConditions": [{"name": "members-only",
        "expression": "request.userInfo.username.startsWith('system:serviceaccount:broker:member-')"}],
      "variables": [{"name": "clusterID",
        "expression": "request.operation == 'DELETE' ? oldObject.spec.clusterID : object.spec.clusterID"}],
      "validations": [{
        "expression": "request.userInfo.username == 'system:serviceaccount:broker:member-' + variables.clusterID",
        "messageExpression": "request.userInfo.username + ' may not write an object of cluster ' + variables.clusterID",
        "reason": "Forbidden"}]
    }})J");
}

json binding(const std::string& name, const std::string& policy, json actions = {"Deny"}) {
  return {{"apiVersion", "admissionregistration.k8s.io/v1"},
          {"kind", "ValidatingAdmissionPolicyBinding"},
          {"metadata", {{"name", name}}},
          {"spec", {{"policyName", policy}, {"validationActions", actions}}}};
}

json claim(const std::string& cluster) {
  return {{"apiVersion", "clusterwire.io/v1alpha1"},
          {"kind", "CIDRClaim"},
          {"metadata", {{"name", "10-1-0-0-16"}, {"namespace", "broker"}, {"labels", {{"tier", "a"}}}}},
          {"spec", {{"cidr", "10.1.0.0/16"}, {"clusterID", cluster}, {"purpose", "pods"}}}};
}

AdmissionRequest request(const std::string& operation, const std::string& user, const json& obj) {
  AdmissionRequest r;
  r.operation = operation;
  r.group = "clusterwire.io";
  r.version = "v1alpha1";
  r.resource = "cidrclaims";
  r.kind = "CIDRClaim";
  r.namespaced = true;
  r.ns = "broker";
  r.name = obj["metadata"]["name"];
  r.user.name = user;
  r.user.groups = {"system:serviceaccounts", "system:authenticated"};
  if (operation == "DELETE") {
    r.old_object = obj;
  } else {
    r.object = obj;
  }
  if (operation == "UPDATE") r.old_object = obj;
  r.namespace_object = {{"metadata", {{"name", "broker"}, {"labels", {{"role", "broker"}}}}}};
  return r;
}

const std::string kMemberC2 = "system:serviceaccount:broker:member-c2";

TEST(Admission, AMemberWritesItsOwnObjectsOnly) {
  const std::vector<json> policies = {ownership_policy()};
  const std::vector<json> bindings = {binding("owner-binding", "owner")};
  for (const char* op : {"CREATE", "UPDATE", "DELETE"}) {
    EXPECT_FALSE(admit(policies, bindings, request(op, kMemberC2, claim("c2")))) << op;
    auto denied = admit(policies, bindings, request(op, kMemberC2, claim("c3")));
    ASSERT_TRUE(denied) << op;
    EXPECT_EQ((*denied)["code"], 403);
    EXPECT_EQ((*denied)["reason"], "Forbidden");
    const std::string cause =
        "ValidatingAdmissionPolicy 'owner' with binding 'owner-binding' denied request: " + kMemberC2 +
        " may not write an object of cluster c3";
    EXPECT_EQ((*denied)["message"], "cidrclaims.clusterwire.io \"10-1-0-0-16\" is forbidden: " + cause);
    EXPECT_EQ((*denied)["details"]["group"], "clusterwire.io");
    EXPECT_EQ((*denied)["details"]["kind"], "cidrclaims");
    EXPECT_EQ((*denied)["details"]["causes"][0]["message"], cause);
  }
  // Not a member: the match condition leaves the request alone.
  EXPECT_FALSE(admit(policies, bindings, request("DELETE", "lab-admin", claim("c3"))));
}

TEST(Admission, APolicyWithoutABindingOrWithoutDenyRefusesNothing) {
  const auto r = request("CREATE", kMemberC2, claim("c3"));
  EXPECT_FALSE(admit({ownership_policy()}, {}, r));
  EXPECT_FALSE(admit({ownership_policy()}, {binding("b", "owner", {"Warn"})}, r));
  EXPECT_FALSE(admit({ownership_policy()}, {binding("b", "owner", {"Audit"})}, r));
  EXPECT_FALSE(admit({ownership_policy()}, {binding("b", "someone-else")}, r));
  EXPECT_TRUE(admit({ownership_policy()}, {binding("b", "owner", {"Audit", "Deny"})}, r));
}

TEST(Admission, ResourceRulesMatchAsDocumented) {
  struct Case {
    json rule;
    std::string subresource;
    bool applies;
  };
  const std::vector<Case> cases = {
      {{{"resources", {"*"}}}, "", true},
      {{{"resources", {"*"}}}, "status", false},
      {{{"resources", {"*/*"}}}, "status", true},
      {{{"resources", {"cidrclaims/*"}}}, "status", true},
      {{{"resources", {"*/status"}}}, "status", true},
      {{{"resources", {"*/status"}}}, "", false},
      {{{"resources", {"clusterpeerings"}}}, "", false},
      {{{"resources", {"cidrclaims"}}, {"scope", "Cluster"}}, "", false},
      {{{"resources", {"cidrclaims"}}, {"scope", "Namespaced"}}, "", true},
      {{{"resources", {"cidrclaims"}}, {"operations", {"UPDATE"}}}, "", false},
      {{{"resources", {"cidrclaims"}}, {"apiGroups", {""}}}, "", false},
      {{{"resources", {"cidrclaims"}}, {"apiVersions", {"v1"}}}, "", false},
  };
  for (const auto& c : cases) {
    json policy = ownership_policy();
    json rule = {{"apiGroups", {"*"}}, {"apiVersions", {"*"}}, {"operations", {"*"}}};
    rule.update(c.rule);
    policy["spec"]["matchConstraints"]["resourceRules"] = json::array({rule});
    auto r = request("CREATE", kMemberC2, claim("c3"));
    r.subresource = c.subresource;
    EXPECT_EQ(admit({policy}, {binding("b", "owner")}, r).has_value(), c.applies) << rule.dump() << " " << c.subresource;
  }
}

TEST(Admission, SelectorsAndExclusionsNarrowTheMatch) {
  const auto r = request("CREATE", kMemberC2, claim("c3"));
  auto with = [](const char* where, json value) {
    json p = ownership_policy();
    p["spec"]["matchConstraints"][where] = std::move(value);
    return p;
  };
  EXPECT_TRUE(admit({with("namespaceSelector", {{"matchLabels", {{"role", "broker"}}}})}, {binding("b", "owner")}, r));
  EXPECT_FALSE(admit({with("namespaceSelector", {{"matchLabels", {{"role", "other"}}}})}, {binding("b", "owner")}, r));
  EXPECT_TRUE(admit({with("objectSelector", {{"matchExpressions", {{{"key", "tier"}, {"operator", "In"}, {"values", {"a"}}}}}})},
                    {binding("b", "owner")}, r));
  EXPECT_FALSE(admit({with("objectSelector", {{"matchLabels", {{"tier", "b"}}}})}, {binding("b", "owner")}, r));
  EXPECT_FALSE(admit({with("excludeResourceRules", json::array({{{"apiGroups", {"*"}}, {"apiVersions", {"*"}},
                                                                 {"operations", {"*"}}, {"resources", {"cidrclaims"}}}}))},
                     {binding("b", "owner")}, r));
  // A binding's matchResources narrow further.
  json b = binding("b", "owner");
  b["spec"]["matchResources"] = {{"namespaceSelector", {{"matchLabels", {{"role", "other"}}}}}};
  EXPECT_FALSE(admit({ownership_policy()}, {b}, r));
}

TEST(Admission, MessagesReasonsAndFailurePolicy) {
  const auto r = request("CREATE", kMemberC2, claim("c3"));
  const std::vector<json> b = {binding("b", "owner")};
  json p = ownership_policy();
  p["spec"]["validations"] = json::array({{{"expression", "object.spec.clusterID == 'c2'"}}});
  auto d = admit({p}, b, r);
  ASSERT_TRUE(d);
  EXPECT_EQ((*d)["code"], 422);
  EXPECT_EQ((*d)["reason"], "Invalid");
  EXPECT_NE((*d)["message"].get<std::string>().find("denied request: failed expression: object.spec.clusterID == 'c2'"),
            std::string::npos);

  p["spec"]["validations"][0]["message"] = "only c2";
  d = admit({p}, b, r);
  ASSERT_TRUE(d);
  EXPECT_NE((*d)["message"].get<std::string>().find("denied request: only c2"), std::string::npos);

  // An expression that fails: denied under Fail, skipped under Ignore.
  p["spec"]["validations"] = json::array({{{"expression", "object.spec.nothing == 'x'"}}});
  d = admit({p}, b, r);
  ASSERT_TRUE(d);
  EXPECT_NE((*d)["message"].get<std::string>().find(
                "denied request: expression 'object.spec.nothing == 'x'' resulted in error: no such key: nothing"),
            std::string::npos);
  p["spec"]["failurePolicy"] = "Ignore";
  EXPECT_FALSE(admit({p}, b, r));

  // A match condition that fails under Fail denies; false skips the policy.
  p = ownership_policy();
  p["spec"]["matchConditions"][0]["expression"] = "object.nothing";
  d = admit({p}, b, r);
  ASSERT_TRUE(d);
  EXPECT_NE((*d)["message"].get<std::string>().find("failed to evaluate match condition 'members-only'"),
            std::string::npos);
  p["spec"]["matchConditions"][0]["expression"] = "false";
  EXPECT_FALSE(admit({p}, b, r));
}

TEST(Admission, PoliciesAndBindingsAreValidatedWhenWritten) {
  EXPECT_TRUE(validate_admission_object(ownership_policy()));
  EXPECT_TRUE(validate_admission_object(binding("b", "owner")));

  json p = ownership_policy();
  p["spec"]["validations"][0]["expression"] = "object.spec.clusterID == ";
  auto r = validate_admission_object(p);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message().rfind("ValidatingAdmissionPolicy.admissionregistration.k8s.io \"owner\" is invalid: "
                                      "spec.validations[0].expression: Invalid value: \"object.spec.clusterID == \": "
                                      "compilation failed: ERROR: <input>:1:",
                                      0),
            0u)
      << r.error().message();

  p = ownership_policy();
  p["spec"]["paramKind"] = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}};
  p["spec"]["failurePolicy"] = "Sometimes";
  p["spec"]["matchConstraints"].erase("resourceRules");
  r = validate_admission_object(p);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("spec.paramKind: Forbidden"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("spec.failurePolicy: Unsupported value: \"Sometimes\""), std::string::npos);
  EXPECT_NE(r.error().message().find("spec.matchConstraints.resourceRules: Required value"), std::string::npos);

  r = validate_admission_object(binding("b", "owner", {"Deny", "Warn"}));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("must not contain both Deny and Warn"), std::string::npos);
  r = validate_admission_object(binding("b", "", json::array()));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("spec.policyName: Required value"), std::string::npos);
  EXPECT_NE(r.error().message().find("spec.validationActions: Required value"), std::string::npos);
}

}  // namespace
}  // namespace cw::lab
