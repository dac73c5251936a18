// ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1), as kube-apiserver evaluates it
// (https://kubernetes.io/docs/reference/access-authn-authz/validating-admission-policy/):
//   - a policy applies to a write when its matchConstraints match (resourceRules with
//     apiGroups, apiVersions, operations, resources incl. "*", "*/*", "x/*", "*/status", and
//     scope; excludeResourceRules; namespaceSelector on the namespace's labels for namespaced
//     objects; objectSelector on the object's, or on DELETE the old object's, labels), a
//     binding names it (its matchResources narrow further), and every matchCondition is true;
//   - its variables are evaluated on first use, its validations in order; a false validation
//     denies with its messageExpression, its message, or "failed expression: <expression>",
//     and its reason (Invalid by default: 422; Forbidden: 403, ...);
//   - an expression that fails to evaluate denies under failurePolicy Fail (the default) and
//     is skipped under Ignore;
//   - a binding's validationActions decide what a failure does: Deny refuses the request;
//     Warn and Audit do not (this server sends no Warning header and keeps no audit log);
//   - the refusal is kube-apiserver's: `<resource>.<group> "<name>" is forbidden:
//     ValidatingAdmissionPolicy '<policy>' with binding '<binding>' denied request: <message>`.
// Expressions are CEL, in the subset cel.h evaluates; a policy that uses paramKind is refused
// when it is written, since this server has no params. Pure: the policies come in as JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/base/result.h"
#include "lab/apiserver/rbac.h"

namespace cw::lab {

// One write, as admission sees it (k8s.io/apiserver/pkg/admission.Attributes).
struct AdmissionRequest {
  std::string operation;  // CREATE, UPDATE, DELETE
  std::string group, version, resource, subresource, kind;
  bool namespaced = false;
  std::string ns, name;
  UserInfo user;
  nlohmann::json object = nullptr;            // null on DELETE
  nlohmann::json old_object = nullptr;        // null on CREATE
  nlohmann::json namespace_object = nullptr;  // the object's Namespace, when namespaced
  bool dry_run = false;
};

// Checks a ValidatingAdmissionPolicy or ValidatingAdmissionPolicyBinding as it is written:
// required fields, enumerations, and that every expression compiles. The error is the
// 422 message: `ValidatingAdmissionPolicy.admissionregistration.k8s.io "x" is invalid: ...`.
Result<void> validate_admission_object(const nlohmann::json& object);

// The Status refusing `request`, if a policy bound with Deny fails on it.
std::optional<nlohmann::json> admit(const std::vector<nlohmann::json>& policies,
                                    const std::vector<nlohmann::json>& bindings, const AdmissionRequest& request);

}  // namespace cw::lab
