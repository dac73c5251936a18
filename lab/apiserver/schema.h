// Structural schemas for custom resources, handled the way kube-apiserver's apiextensions
// handles them, so that clients see the same objects and the same 422 messages from the lab
// server as from a real cluster (v1.32):
//
//   prune           apiextensions-apiserver .../schema/pruning/algorithm.go
//   apply_defaults  .../schema/defaulting/prunenulls.go and algorithm.go
//   validate        kube-openapi pkg/validation/validate (the OpenAPI checks, with the CRD
//                   validation ratcheting of apiextensions .../validation/ratcheting.go),
//                   .../schema/listtype/validation.go, and of the CEL rules
//                   (x-kubernetes-validations) only the transition rule `self == oldSelf`
//   validate_crd_schema  .../schema/validation.go (structural schema rules) and the CEL
//                   compile-time checks, for the rules this module implements
//   invalid_message, status_causes  k8s.io/apimachinery api/errors NewInvalid and
//                   util/validation/field (ErrorBody, ToAggregate)
//
// A schema is a CRD version's `schema.openAPIV3Schema` as JSON. A null schema (a CRD that
// declares none, which the real v1 API refuses at creation) prunes, defaults and rejects
// nothing, so such objects are stored as sent.
//
// Patterns are RE2, like Go's regexp that Kubernetes compiles them with (not the ECMA-262
// the OpenAPI documentation names): lookaround and backreferences are refused at CRD
// creation by both. Where RE2 (C++) and Go's regexp differ: `(?<name>...)` is refused here
// (Go 1.22+ accepts it), `\C` is accepted here (Go refuses it), and the wording after
// "must be a valid regular expression, but isn't:" is translated from RE2's error codes.
#pragma once

#include <nlohmann/json.hpp>

#include "lab/apiserver/gofmt.h"
#include <string>
#include <vector>

namespace cw::lab {

// One field-level error, as k8s.io/apimachinery's field.Error.
struct FieldError {
  // The field path the way Go prints it: "spec.podCIDRs[1]", "spec.labels[app]"; "<nil>" for
  // the object itself (Go's nil *field.Path), which the aggregate errors of allOf, anyOf,
  // oneOf and not are reported on.
  std::string field;
  // The printed error type: "Invalid value", "Required value", "Unsupported value",
  // "Duplicate value", "Too long", "Too many", "Forbidden", "Internal error", ...
  std::string type;
  std::string detail;
  // The bad value, printed after the type for the types that show one (every type but
  // "Required value", "Forbidden", "Too long" and "Internal error") the way Go prints an
  // unstructured value: strings quoted, numbers bare, objects and lists as Go's %#v.
  nlohmann::json value = nullptr;
  // The cause type of a 422 Status ("FieldValueInvalid", "FieldValueTypeInvalid", ...).
  // Empty means the one `type` implies; set it where two share a printed type ("Invalid
  // value" is both FieldValueInvalid and FieldValueTypeInvalid).
  std::string reason;

  // field.Error.ErrorBody(): `Invalid value: "x": must be ...`.
  std::string body() const;
  // field.Error.Error(): `spec.x: Invalid value: "x": must be ...`.
  std::string message() const;
  // `reason`, or the cause type `type` implies.
  std::string cause_type() const;
};

// Removes every object field the schema does not declare (in `properties`, or any key where
// `additionalProperties` is set), recursively, except under
// `x-kubernetes-preserve-unknown-fields: true`. apiVersion, kind and metadata are kept, and
// not looked into, at the root and under `x-kubernetes-embedded-resource: true`.
// `pruned`, when given, gets the path of every field dropped ("spec.a[0].b").
void prune(const nlohmann::json& schema, nlohmann::json& object, std::vector<std::string>* pruned = nullptr);

// Applies the schema's `default`s as the real server does when it decodes an object (on
// create, update and read), after pruning and before validation: first every null whose
// schema is neither nullable nor defaulted is dropped, then every missing field with a
// default, and every non-nullable null that has one, gets a pruned copy of it; list items and
// additionalProperties values default only from null.
void apply_defaults(const nlohmann::json& schema, nlohmann::json& object);

// The errors of `object` against `schema`, in the order the real server reports them: the
// OpenAPI checks (type with nullable and x-kubernetes-int-or-string, allOf/anyOf/oneOf/not,
// maxLength/minLength/pattern, format date-time and date (other formats are not checked),
// multipleOf/minimum/maximum and their exclusive forms, items/minItems/maxItems, enum,
// min/maxProperties, additionalProperties, properties, required), then the uniqueness of
// x-kubernetes-list-type set and map lists, then the transition rules.
//
// `old_object` is the stored object on update, nullptr on create. On update a value that
// did not change is not checked again (validation ratcheting, on by default since v1.30:
// objects stored under an older, looser schema can still be updated), and a transition rule
// `self == oldSelf` is evaluated where both the old and the new object have the field:
// unequal values give the rule's message (or "failed rule: <rule>") as "Invalid value" (or
// the rule's `reason`) on the field, with the schema's type as the value, as in v1.32.
// Equality follows CEL: lists of x-kubernetes-list-type set or map compare unordered.
std::vector<FieldError> validate(const nlohmann::json& schema, const nlohmann::json& object,
                                 const nlohmann::json* old_object);

// The message of the 422 Status kube-apiserver answers with:
// `Widget.example.com "w1" is invalid: spec.size: Invalid value: 0: ...` for one error and
// `... is invalid: [spec.a: Required value, spec.b: ...]` for several; duplicates (same
// message) are shown once. `kind_group` is the GroupKind as Go prints it: "Kind.group", or
// "Kind" for the core group.
std::string invalid_message(const std::string& kind_group, const std::string& name,
                            const std::vector<FieldError>& errors);

// That Status's `details.causes`: one {reason, message, field} per error, duplicates kept,
// where message is the error's body() and reason its cause_type().
nlohmann::json status_causes(const std::vector<FieldError>& errors);

// That Status's whole `details`: {name, group (when not empty), kind, causes}.
nlohmann::json invalid_details(const std::string& group, const std::string& kind,
                               const std::string& name, const std::vector<FieldError>& errors);

// The errors in a schema itself, for CRD creation: what makes it non-structural or
// unusable here (no schema; no type where one is needed; type other than object at the
// root; an array without items; additionalProperties at the root or next to properties;
// x-kubernetes-list-type map without x-kubernetes-list-map-keys; uniqueItems: true; a pattern
// that does not compile), and every x-kubernetes-validations rule this server cannot enforce
// (anything but `self == oldSelf`; messageExpression; optionalOldSelf; a transition rule
// under a list that is not x-kubernetes-list-type map), so that nobody is silently
// unprotected. Fields are under `root_path`, which the caller sets to where the schema is in
// the CRD: "spec.versions[0].schema.openAPIV3Schema".
std::vector<FieldError> validate_crd_schema(const nlohmann::json& schema,
                                            const std::string& root_path = "");

}  // namespace cw::lab
