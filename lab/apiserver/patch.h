// The three PATCH body formats of the Kubernetes API, applied the way kube-apiserver applies
// them, so that kubectl and the client libraries see the same results against the lab server
// as against a real cluster:
//
//   application/merge-patch+json           apply_merge_patch (RFC 7386)
//   application/json-patch+json            apply_json_patch (RFC 6902 with RFC 6901 pointers)
//   application/strategic-merge-patch+json apply_strategic_merge_patch (Kubernetes' own)
//
// All three take the stored object and the decoded body, leave both untouched and return
// the patched object, or an Error saying what in the body is wrong. Bodies are untrusted:
// documents nested deeper than kMaxPatchDepth levels are refused, never recursed into.
// An exception from the JSON library, which should not happen, comes back as kInternal.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/base/result.h"

namespace cw::lab {

// The deepest nesting (objects and arrays inside each other) accepted in a stored object
// or a patch. Real Kubernetes objects stay well below 30; a body deeper than this is
// hostile or broken, and refusing it keeps every recursion here bounded.
inline constexpr std::size_t kMaxPatchDepth = 100;

// RFC 7386 JSON merge patch: objects merge recursively, null deletes a member, anything
// else (arrays included) replaces. Fails (kInvalidArgument) only when the target or the
// patch nests deeper than kMaxPatchDepth.
Result<nlohmann::json> apply_merge_patch(const nlohmann::json& target,
                                         const nlohmann::json& patch);

// RFC 6902 JSON patch: an array of add, remove, replace, move, copy and test operations
// whose paths are RFC 6901 pointers ("~1" for '/', "~0" for '~', "-" for "after the last
// element" in add). Operations apply in order to a copy, all or nothing.
// Errors: a malformed operation or a path that does not exist is kInvalidArgument, and the
// message names the operation's index and path; a "test" whose value differs is kConflict.
Result<nlohmann::json> apply_json_patch(const nlohmann::json& target,
                                        const nlohmann::json& patch);

// Kubernetes strategic merge patch for the built-in kinds the lab serves, as
// k8s.io/apimachinery/pkg/util/strategicpatch applies it on the server (the apply half of
// `kubectl apply` and `kubectl patch`). `kind` is the object's kind ("Service",
// "Deployment", ...).
//
// Maps merge like a merge patch. A list merges where Kubernetes declares
// patchStrategy "merge" for it (see find_list_merge_rule): lists of objects by their
// patchMergeKey, lists of strings as sets. Every other list, and every list of a kind not
// known here, is replaced whole; metadata.finalizers and metadata.ownerReferences merge
// for every kind. Directives: "$patch": "replace" | "delete" in maps and in merged-list
// elements, "$setElementOrder/<field>", "$deleteFromPrimitiveList/<field>", "$retainKeys".
// Errors (all kInvalidArgument, with the field path): a patch that is not an object, an
// unknown "$" key or "$patch" value, a merged-list element without its merge key, an
// order list that contradicts the patch list, and the other malformed shapes the real
// server rejects.
Result<nlohmann::json> apply_strategic_merge_patch(const nlohmann::json& original,
                                                   const nlohmann::json& patch,
                                                   std::string_view kind);

// How a strategic merge patch treats one list field: the answer comes from the Kubernetes
// struct tags, copied into a table in patch.cc. `path` names the field from the object's
// root with "." between fields and "[]" for "each element of a list", for example
// "spec.template.spec.containers[].ports".
struct ListMergeRule {
  // Empty when the list's elements are strings merged as a set (metadata.finalizers).
  std::string_view merge_key;
  // The k8s.io/api or apimachinery file the struct tag was read from.
  std::string_view source;
};
// The merge rule of a list field, or nullopt when the list is atomic (replaced whole).
std::optional<ListMergeRule> find_list_merge_rule(std::string_view kind, std::string_view path);

}  // namespace cw::lab
