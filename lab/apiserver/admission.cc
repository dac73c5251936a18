#include "lab/apiserver/admission.h"

#include <algorithm>
#include <set>

#include "common/kube/json_fields.h"
#include "common/kube/selector.h"
#include "lab/apiserver/cel.h"
#include "lab/apiserver/schema.h"
#include "lab/apiserver/store.h"

namespace cw::lab {
namespace {

using json = nlohmann::json;

// What a policy's expressions may name (kube-apiserver declares authorizer too; this server
// does not evaluate it, so an expression using it does not compile).
const std::set<std::string> kDeclared = {"object", "oldObject", "request", "params", "namespaceObject", "variables"};

using kube::field;
using kube::strings;

bool listed(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), "*") != list.end() ||
         std::find(list.begin(), list.end(), value) != list.end();
}

// A rule's resources: "*" every resource, "*/*" every resource and subresource, "pods/*"
// every subresource of pods, "*/status" the status of every resource.
bool resource_listed(const std::vector<std::string>& list, const std::string& resource, const std::string& sub) {
  for (const auto& r : list) {
    const auto slash = r.find('/');
    const std::string res = r.substr(0, slash);
    const std::string rsub = slash == std::string::npos ? "" : r.substr(slash + 1);
    if (res != "*" && res != resource) continue;
    if (rsub == sub || rsub == "*") return true;
  }
  return false;
}

bool rule_matches(const json& rule, const AdmissionRequest& r) {
  const std::string scope = field(rule, "scope").is_string() ? field(rule, "scope").get<std::string>() : "*";
  if (scope == "Cluster" && r.namespaced) return false;
  if (scope == "Namespaced" && !r.namespaced) return false;
  return listed(strings(field(rule, "apiGroups")), r.group) &&
         listed(strings(field(rule, "apiVersions")), r.version) &&
         listed(strings(field(rule, "operations")), r.operation) &&
         resource_listed(strings(field(rule, "resources")), r.resource, r.subresource);
}

bool selector_matches(const json& selector, const json& labels) {
  if (!selector.is_object() || selector.empty()) return true;
  auto s = kube::LabelSelector::from_json(selector);
  return s && s->matches_json(labels);
}

// matchConstraints or a binding's matchResources. `rules_required`: a policy's constraints
// match nothing without resourceRules; a binding's without them do not narrow.
bool resources_match(const json& m, const AdmissionRequest& r, bool rules_required) {
  if (!m.is_object()) return !rules_required;
  const json& rules = field(m, "resourceRules");
  if (rules.is_array() && !rules.empty()) {
    if (std::none_of(rules.begin(), rules.end(), [&](const json& rule) { return rule_matches(rule, r); })) return false;
  } else if (rules_required) {
    return false;
  }
  const json& excluded = field(m, "excludeResourceRules");
  if (excluded.is_array() &&
      std::any_of(excluded.begin(), excluded.end(), [&](const json& rule) { return rule_matches(rule, r); })) {
    return false;
  }
  if (r.namespaced &&
      !selector_matches(field(m, "namespaceSelector"), field(field(r.namespace_object, "metadata"), "labels"))) {
    return false;
  }
  const json& subject = r.object.is_null() ? r.old_object : r.object;
  return selector_matches(field(m, "objectSelector"), field(field(subject, "metadata"), "labels"));
}

json request_object(const AdmissionRequest& r) {
  json groups = json::array();
  for (const auto& g : r.user.groups) groups.push_back(g);
  return {{"kind", {{"group", r.group}, {"version", r.version}, {"kind", r.kind}}},
          {"resource", {{"group", r.group}, {"version", r.version}, {"resource", r.resource}}},
          {"requestKind", {{"group", r.group}, {"version", r.version}, {"kind", r.kind}}},
          {"requestResource", {{"group", r.group}, {"version", r.version}, {"resource", r.resource}}},
          {"subResource", r.subresource},
          {"name", r.name},
          {"namespace", r.ns},
          {"operation", r.operation},
          {"userInfo", {{"username", r.user.name}, {"uid", r.user.uid}, {"groups", groups}}},
          {"dryRun", r.dry_run}};
}

struct Denial {
  std::string message;
  std::string reason;
};

class PolicyRun {
 public:
  PolicyRun(const json& policy, const AdmissionRequest& r) : spec_(field(policy, "spec")) {
    activation_.values = {{"object", r.object},       {"oldObject", r.old_object},
                          {"request", request_object(r)}, {"params", nullptr},
                          {"namespaceObject", r.namespace_object}};
    activation_.variable = [this](const std::string& name) -> Result<json> {
      const json& vars = field(spec_, "variables");
      if (vars.is_array()) {
        for (const auto& v : vars) {
          if (field(v, "name") != name) continue;
          auto p = cel::Program::compile(field(v, "expression").get<std::string>(), kDeclared);
          if (!p) return p.error();
          return p->evaluate(activation_);
        }
      }
      return Error(ErrorCode::kInvalidArgument, "no such key: " + name);
    };
    fail_closed_ = field(spec_, "failurePolicy") != "Ignore";
  }

  // Whether every matchCondition holds; an error under Fail is a denial.
  bool conditions_hold(std::optional<Denial>& denial) {
    const json& conditions = field(spec_, "matchConditions");
    if (!conditions.is_array()) return true;
    for (const auto& c : conditions) {
      const std::string expression = field(c, "expression").get<std::string>();
      auto v = run(expression);
      if (!v) {
        if (fail_closed_) {
          denial = Denial{"failed to evaluate match condition '" + field(c, "name").get<std::string>() +
                              "': expression '" + expression + "' resulted in error: " + v.error().message(),
                          "Invalid"};
        }
        return false;
      }
      if (!v->is_boolean() || !v->get<bool>()) return false;
    }
    return true;
  }

  std::optional<Denial> first_failure() {
    const json& validations = field(spec_, "validations");
    if (!validations.is_array()) return std::nullopt;
    for (const auto& v : validations) {
      const std::string expression = field(v, "expression").get<std::string>();
      const std::string reason = field(v, "reason").is_string() ? field(v, "reason").get<std::string>() : "Invalid";
      auto result = run(expression);
      if (!result) {
        if (!fail_closed_) continue;
        return Denial{"expression '" + expression + "' resulted in error: " + result.error().message(), reason};
      }
      if (!result->is_boolean()) {
        if (!fail_closed_) continue;
        return Denial{"expression '" + expression + "' resulted in error: no such overload: a validation must be bool",
                      reason};
      }
      if (result->get<bool>()) continue;
      std::string message = "failed expression: " + expression;
      if (field(v, "message").is_string()) message = field(v, "message").get<std::string>();
      if (field(v, "messageExpression").is_string()) {
        auto m = run(field(v, "messageExpression").get<std::string>());
        // An empty or failing messageExpression falls back to the message, as in kube-apiserver.
        if (m && m->is_string() && !m->get<std::string>().empty()) message = m->get<std::string>();
      }
      return Denial{message, reason};
    }
    return std::nullopt;
  }

 private:
  Result<json> run(const std::string& expression) {
    auto p = cel::Program::compile(expression, kDeclared);
    if (!p) return p.error();
    return p->evaluate(activation_);
  }

  const json& spec_;
  cel::Activation activation_;
  bool fail_closed_ = true;
};

int code_of(const std::string& reason) {
  if (reason == "Unauthorized") return 401;
  if (reason == "Forbidden") return 403;
  if (reason == "RequestEntityTooLarge") return 413;
  return 422;
}

FieldError invalid(const std::string& path, const json& value, const std::string& detail) {
  return FieldError{.field = path, .type = "Invalid value", .detail = detail, .value = value};
}
FieldError required(const std::string& path) { return FieldError{.field = path, .type = "Required value"}; }
FieldError unsupported(const std::string& path, const json& value, const std::string& detail) {
  return FieldError{.field = path, .type = "Unsupported value", .detail = detail, .value = value};
}

void check_expression(const json& holder, const char* key, const std::string& path, std::vector<FieldError>& errors,
                      bool required_here = true) {
  const json& e = field(holder, key);
  if (!e.is_string() || e.get<std::string>().empty()) {
    if (required_here) errors.push_back(required(path + "." + key));
    return;
  }
  if (auto p = cel::Program::compile(e.get<std::string>(), kDeclared); !p) {
    errors.push_back(invalid(path + "." + key, e, "compilation failed: " + p.error().message()));
  }
}

std::string indexed(const std::string& path, std::size_t i) { return path + "[" + std::to_string(i) + "]"; }

std::vector<FieldError> policy_errors(const json& spec) {
  std::vector<FieldError> errors;
  if (!field(spec, "paramKind").is_null()) {
    errors.push_back(FieldError{.field = "spec.paramKind", .type = "Forbidden",
                                .detail = "the lab API server evaluates policies without params"});
  }
  const json& fp = field(spec, "failurePolicy");
  if (!fp.is_null() && fp != "Fail" && fp != "Ignore") {
    errors.push_back(unsupported("spec.failurePolicy", fp, "supported values: \"Fail\", \"Ignore\""));
  }
  const json& rules = field(field(spec, "matchConstraints"), "resourceRules");
  if (!rules.is_array() || rules.empty()) errors.push_back(required("spec.matchConstraints.resourceRules"));
  for (const char* list : {"matchConditions", "variables", "validations"}) {
    const json& items = field(spec, list);
    if (items.is_null()) continue;
    if (!items.is_array()) {
      errors.push_back(invalid(std::string("spec.") + list, items, "must be a list"));
      continue;
    }
    for (std::size_t i = 0; i < items.size(); ++i) {
      const std::string path = indexed(std::string("spec.") + list, i);
      if (std::string(list) != "validations" && !field(items[i], "name").is_string()) {
        errors.push_back(required(path + ".name"));
      }
      check_expression(items[i], "expression", path, errors);
      if (std::string(list) == "validations") check_expression(items[i], "messageExpression", path, errors, false);
    }
  }
  if (!field(spec, "validations").is_array() || field(spec, "validations").empty()) {
    if (!field(spec, "auditAnnotations").is_array()) {
      errors.push_back(FieldError{.field = "spec.validations", .type = "Required value",
                                  .detail = "validations or auditAnnotations must contain at least one item"});
    }
  }
  return errors;
}

std::vector<FieldError> binding_errors(const json& spec) {
  std::vector<FieldError> errors;
  if (!field(spec, "policyName").is_string() || field(spec, "policyName").get<std::string>().empty()) {
    errors.push_back(required("spec.policyName"));
  }
  if (!field(spec, "paramRef").is_null()) {
    errors.push_back(FieldError{.field = "spec.paramRef", .type = "Forbidden",
                                .detail = "the lab API server evaluates policies without params"});
  }
  const auto actions = strings(field(spec, "validationActions"));
  if (actions.empty()) errors.push_back(required("spec.validationActions"));
  std::set<std::string> seen;
  for (std::size_t i = 0; i < actions.size(); ++i) {
    const auto& a = actions[i];
    if (a != "Deny" && a != "Warn" && a != "Audit") {
      errors.push_back(unsupported(indexed("spec.validationActions", i), a,
                                   "supported values: \"Audit\", \"Deny\", \"Warn\""));
    } else if (!seen.insert(a).second) {
      errors.push_back(FieldError{.field = indexed("spec.validationActions", i), .type = "Duplicate value", .value = a});
    }
  }
  if (seen.count("Deny") && seen.count("Warn")) {
    errors.push_back(invalid("spec.validationActions", field(spec, "validationActions"),
                             "must not contain both Deny and Warn (repeating the same validation failure "
                             "information in the API response and headers serves no purpose)"));
  }
  return errors;
}

}  // namespace

Result<void> validate_admission_object(const json& object) {
  const std::string kind = field(object, "kind").is_string() ? field(object, "kind").get<std::string>() : "";
  const json& spec = field(object, "spec");
  const auto errors = kind == "ValidatingAdmissionPolicyBinding" ? binding_errors(spec) : policy_errors(spec);
  if (errors.empty()) return ok_result();
  const std::string name = field(field(object, "metadata"), "name").is_string()
                               ? field(field(object, "metadata"), "name").get<std::string>()
                               : "";
  return Error(ErrorCode::kInvalidArgument, invalid_message(kind + ".admissionregistration.k8s.io", name, errors));
}

std::optional<json> admit(const std::vector<json>& policies, const std::vector<json>& bindings,
                          const AdmissionRequest& request) {
  for (const auto& binding : bindings) {
    const json& bspec = field(binding, "spec");
    const auto actions = strings(field(bspec, "validationActions"));
    if (std::find(actions.begin(), actions.end(), "Deny") == actions.end()) continue;
    const json* policy = nullptr;
    for (const auto& p : policies) {
      if (field(field(p, "metadata"), "name") == field(bspec, "policyName")) policy = &p;
    }
    if (!policy) continue;  // a binding to no policy is ignored, as documented
    if (!resources_match(field(field(*policy, "spec"), "matchConstraints"), request, true)) continue;
    if (!resources_match(field(bspec, "matchResources"), request, false)) continue;
    PolicyRun run(*policy, request);
    std::optional<Denial> denial;
    if (run.conditions_hold(denial)) denial = run.first_failure();
    if (!denial) continue;

    const std::string cause = "ValidatingAdmissionPolicy '" + field(field(*policy, "metadata"), "name").get<std::string>() +
                              "' with binding '" + field(field(binding, "metadata"), "name").get<std::string>() +
                              "' denied request: " + denial->message;
    const std::string resource = request.group.empty() ? request.resource : request.resource + "." + request.group;
    const std::string message = request.name.empty() ? resource + " is forbidden: " + cause
                                                     : resource + " \"" + request.name + "\" is forbidden: " + cause;
    const int code = code_of(denial->reason);
    json status = status_object(code, denial->reason, message);
    json details{{"name", request.name}, {"kind", request.resource}, {"causes", json::array({{{"message", cause}}})}};
    if (!request.group.empty()) details["group"] = request.group;
    status["details"] = details;
    return status;
  }
  return std::nullopt;
}

}  // namespace cw::lab
