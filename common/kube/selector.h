// Kubernetes label and field selectors as values: parsed once, matched against many objects.
//
// Both follow k8s.io/apimachinery (pkg/labels, pkg/fields and metav1.LabelSelectorAsSelector)
// closely, because clusterwire answers list requests for clients that build their selectors
// with client-go: text that the real API server accepts must mean the same thing here, and
// to_string() gives the same canonical text Kubernetes' String() gives. Parsing is linear and
// never recurses, so hostile input costs at most one pass; error messages quote the input
// with control bytes escaped and long text cut short.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/base/result.h"

namespace cw::kube {

class LabelSelector {
 public:
  // Kubernetes label selector text: "a=b", "a==b", "a!=b", "a in (x, y)", "a notin (x)", "a",
  // "!a", and the integer comparisons "a>1", "a<1"; requirements are comma-separated (AND).
  // Empty or all-white-space text selects everything. As in Kubernetes, a value list may hold
  // empty values: "a in ()" and "a in (x,)" list the empty value "". Errors are
  // kInvalidArgument: `invalid label selector "<text>": <what is wrong>`.
  static Result<LabelSelector> parse(std::string_view text);
  // From a metav1.LabelSelector JSON object {matchLabels: {...}, matchExpressions: [{key,
  // operator: In|NotIn|Exists|DoesNotExist, values: [...]}]}. null or {} selects everything.
  // Unknown fields are errors rather than ignored: a misspelt "matchLabel" would otherwise
  // silently widen the selector to everything.
  static Result<LabelSelector> from_json(const nlohmann::json& selector);
  static LabelSelector everything() { return LabelSelector(); }

  bool empty() const { return requirements_.empty(); }  // selects everything
  bool matches(const std::map<std::string, std::string>& labels) const;
  // `labels` is metadata.labels of an object: a JSON object of strings, or null (no labels).
  // Anything else is a malformed object, which only the empty selector matches: a negative
  // requirement ("a!=b", "!a") must not select an object whose labels cannot be read.
  bool matches_json(const nlohmann::json& labels) const;
  // Canonical text as Kubernetes' String(): requirements sorted by key (stably), values sorted
  // and de-duplicated, operators as written ("==" stays "=="), e.g. "a=b,c in (x,y),!d".
  // parse(to_string()) gives back an equal selector.
  std::string to_string() const;

 private:
  enum class Op {
    kExists,
    kDoesNotExist,
    kEquals,
    kDoubleEquals,
    kNotEquals,
    kIn,
    kNotIn,
    kGreaterThan,
    kLessThan,
  };
  struct Requirement {
    std::string key;
    Op op = Op::kExists;
    std::vector<std::string> values;  // sorted, unique
    std::int64_t bound = 0;           // the parsed value of kGreaterThan and kLessThan
    // `value` is the object's label value, or nullptr if it lacks the label.
    bool matches(const std::string* value) const;
    std::string to_string() const;
  };
  class Parser;

  LabelSelector() = default;
  explicit LabelSelector(std::vector<Requirement> requirements);
  static Result<Requirement> make_requirement(std::string key, Op op,
                                              std::vector<std::string> values);

  std::vector<Requirement> requirements_;
};

class FieldSelector {
 public:
  // "metadata.name=foo", "metadata.name==foo", "metadata.namespace!=bar", comma-separated
  // (AND). As in Kubernetes there is no white space trimming, empty terms ("a=b,,c=d") are
  // skipped, and "\,", "\=" and "\\" escape those characters in values. Only `supported`
  // field paths are accepted; any other is kInvalidArgument `field label not supported:
  // <field>`, what the real API server answers (as a 400).
  static Result<FieldSelector> parse(std::string_view text,
                                     const std::vector<std::string>& supported);
  static FieldSelector everything() { return FieldSelector(); }

  bool empty() const { return terms_.empty(); }
  // Looks up each dotted path (e.g. "metadata.name", "spec.nodeName") in the object. Strings
  // compare as they are, booleans as "true"/"false", numbers in JSON form; a missing field,
  // null, an object or an array compares as "".
  bool matches(const nlohmann::json& object) const;
  // Terms sorted by their text and joined with ",", "==" written as "=", values escaped.
  std::string to_string() const;

 private:
  struct Term {
    std::string field;
    std::vector<std::string> path;  // `field` split at '.'
    bool negated = false;           // "!="
    std::string value;              // unescaped
  };

  FieldSelector() = default;

  std::vector<Term> terms_;
};

}  // namespace cw::kube
