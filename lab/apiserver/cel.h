// A subset of the Common Expression Language (https://github.com/google/cel-spec), enough for
// the ValidatingAdmissionPolicies the lab API server evaluates (admission.h). kube-apiserver
// links cel-go; no CEL library is packaged for Debian, so this is the lab's own stand-in,
// and it says so when an expression leaves the subset: compile() refuses what it does not
// know rather than guessing.
//
// The subset, with CEL's meaning:
//   - literals: null, true/false, integers (decimal, 0x hex, a `u` suffix is read as int),
//     doubles, strings ('…', "…", '''…''', r'…', with CEL's escapes), lists [..], maps {k: v};
//   - operators: ! - * / % + - < <= > >= == != in && || ?:, with CEL's precedence; && and ||
//     are commutative over errors (`error || true` is true), as in cel-go;
//   - selection a.f and a[k] on maps and lists ("no such key: f" when missing), has(a.f);
//   - functions and methods: size, int, string, double, startsWith, endsWith, contains,
//     matches (RE2, as cel-go), and from Kubernetes' CEL string library lowerAscii,
//     upperAscii, join, split;
//   - macros on lists (elements) and maps (keys): all, exists, exists_one, map, filter.
// Values are JSON: an integer is CEL's int whatever its sign, a number with a fraction is a
// double; equality between int and double compares numbers (CEL's heterogeneous equality).
// Not in the subset: uint and bytes as their own types, timestamps, durations, protobuf
// messages, optional values, type(). Cost limits: an evaluation stops after kMaxSteps.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>

#include "common/base/result.h"

namespace cw::lab::cel {

using json = nlohmann::json;

// What an expression may name, and their values when it runs.
struct Activation {
  std::map<std::string, json> values;
  // `variables.<name>` (ValidatingAdmissionPolicy spec.variables), evaluated on first use.
  std::function<Result<json>(const std::string& name)> variable;
};

inline constexpr long kMaxSteps = 1'000'000;

class Program {
 public:
  // Parses `source`; every identifier must be one of `declared` (or a comprehension's own
  // variable). Errors read as cel-go's: "undeclared reference to 'x'", "Syntax error: …".
  static Result<Program> compile(std::string_view source, const std::set<std::string>& declared);

  // Runtime errors ("no such key: clusterID", "no such overload: string + int", "division by
  // zero") come back as kInvalidArgument errors.
  Result<json> evaluate(const Activation& activation) const;

  const std::string& source() const { return source_; }

  struct Node;

 private:
  std::shared_ptr<const Node> root_;
  std::string source_;
};

// CEL's == on JSON values.
bool equal(const json& a, const json& b);

}  // namespace cw::lab::cel
