#include "lab/apiserver/schema.h"

#include <re2/re2.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>

namespace cw::lab {

using nlohmann::json;

namespace {

// An integer as Go's decoding sees it (gofmt.h).
bool is_int(const json& v) { return gofmt::is_int64(v); }

// Schemas come from CRDs and objects from clients; nothing here recurses deeper than this,
// so a hostile document cannot exhaust the stack. Real objects stay below 30 levels.
constexpr int kMaxDepth = 1000;

}  // namespace

// ---------------------------------------------------------------------------------------
// Field errors
// ---------------------------------------------------------------------------------------

std::string FieldError::cause_type() const {
  if (!reason.empty()) return reason;
  static const std::map<std::string, std::string, std::less<>> kCauses = {
      {"Not found", "FieldValueNotFound"},
      {"Required value", "FieldValueRequired"},
      {"Duplicate value", "FieldValueDuplicate"},
      {"Invalid value", "FieldValueInvalid"},
      {"Unsupported value", "FieldValueNotSupported"},
      {"Forbidden", "FieldValueForbidden"},
      {"Too long", "FieldValueTooLong"},
      {"Too many", "FieldValueTooMany"},
      {"Internal error", "InternalError"},
  };
  const auto it = kCauses.find(type);
  return it == kCauses.end() ? "FieldValueInvalid" : it->second;
}

std::string FieldError::body() const {
  std::string out = type;
  // These types never show the value (field.Error.ErrorBody).
  const bool shows_value = type != "Required value" && type != "Forbidden" && type != "Too long" &&
                           type != "Internal error";
  if (shows_value) {
    out += ": ";
    if (value.is_null()) {
      out += gofmt::quote("null");
    } else if (value.is_string()) {
      out += gofmt::quote(value.get<std::string>());
    } else if (value.is_structured()) {
      out += gofmt::sharp_v(value);
    } else {
      out += gofmt::sprint(value);
    }
  }
  if (!detail.empty()) out += ": " + detail;
  return out;
}

std::string FieldError::message() const { return field + ": " + body(); }

std::string invalid_message(const std::string& kind_group, const std::string& name,
                            const std::vector<FieldError>& errors) {
  // field.ErrorList.ToAggregate: messages shown once each, in order; several in brackets.
  std::vector<std::string> messages;
  std::set<std::string> seen;
  for (const auto& e : errors) {
    std::string m = e.message();
    if (seen.insert(m).second) messages.push_back(std::move(m));
  }
  std::string aggregate;
  if (messages.empty()) {
    aggregate = "<nil>";  // a nil Aggregate, printed with %v
  } else if (messages.size() == 1) {
    aggregate = messages[0];
  } else {
    aggregate = "[";
    for (std::size_t i = 0; i < messages.size(); ++i) {
      if (i > 0) aggregate += ", ";
      aggregate += messages[i];
    }
    aggregate += "]";
  }
  return kind_group + " " + gofmt::quote(name) + " is invalid: " + aggregate;
}

json status_causes(const std::vector<FieldError>& errors) {
  json causes = json::array();
  for (const auto& e : errors) {
    json cause{{"reason", e.cause_type()}, {"message", e.body()}};
    if (!e.field.empty()) cause["field"] = e.field;
    causes.push_back(std::move(cause));
  }
  return causes;
}

json invalid_details(const std::string& group, const std::string& kind, const std::string& name,
                     const std::vector<FieldError>& errors) {
  json details{{"name", name}, {"kind", kind}, {"causes", status_causes(errors)}};
  if (!group.empty()) details["group"] = group;
  return details;
}

namespace {

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

FieldError invalid(std::string field, json value, std::string detail) {
  return {std::move(field), "Invalid value", std::move(detail), std::move(value),
          "FieldValueInvalid"};
}
FieldError type_invalid(std::string field, json value, std::string detail) {
  return {std::move(field), "Invalid value", std::move(detail), std::move(value),
          "FieldValueTypeInvalid"};
}
FieldError required(std::string field, std::string detail) {
  return {std::move(field), "Required value", std::move(detail), "", "FieldValueRequired"};
}
FieldError forbidden(std::string field, std::string detail) {
  return {std::move(field), "Forbidden", std::move(detail), "", "FieldValueForbidden"};
}
FieldError duplicate(std::string field, json value) {
  return {std::move(field), "Duplicate value", "", std::move(value), "FieldValueDuplicate"};
}
FieldError not_supported(std::string field, json value, const std::vector<std::string>& valid) {
  std::string detail;
  for (std::size_t i = 0; i < valid.size(); ++i) {
    detail += (i == 0 ? "supported values: " : ", ") + gofmt::quote(valid[i]);
  }
  return {std::move(field), "Unsupported value", std::move(detail), std::move(value),
          "FieldValueNotSupported"};
}

const json* member(const json& s, const char* key) {
  if (!s.is_object()) return nullptr;
  const auto it = s.find(key);
  return it == s.end() ? nullptr : &*it;
}

bool flag(const json& s, const char* key) {
  const json* v = member(s, key);
  return v != nullptr && v->is_boolean() && v->get<bool>();
}

std::string text(const json& s, const char* key) {
  const json* v = member(s, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : "";
}

const json* schema_member(const json& s, const char* key) {
  const json* v = member(s, key);
  return v != nullptr && v->is_object() ? v : nullptr;
}

const json* property(const json& s, const std::string& name) {
  const json* props = schema_member(s, "properties");
  if (props == nullptr) return nullptr;
  const auto it = props->find(name);
  return it == props->end() ? nullptr : &*it;
}

// additionalProperties: absent, a boolean, or a schema. Present in any form, it keeps keys
// through pruning; only a schema describes their values.
struct Additional {
  bool present = false;
  bool allows = true;
  const json* schema = nullptr;
};

Additional additional(const json& s) {
  const json* v = member(s, "additionalProperties");
  if (v == nullptr || v->is_null()) return {};
  if (v->is_boolean()) return {true, v->get<bool>(), nullptr};
  if (v->is_object()) return {true, true, v};
  return {};
}

bool is_float(const json& v) { return v.is_number() && !is_int(v); }

// Go's int64(f): truncation, saturated here where Go's result is unspecified.
std::int64_t truncate(double f) {
  if (std::isnan(f)) return 0;
  if (f >= 9.2233720368547758e18) return std::numeric_limits<std::int64_t>::max();
  if (f <= -9.2233720368547758e18) return std::numeric_limits<std::int64_t>::min();
  return static_cast<std::int64_t>(f);
}

// A schema keyword that is a count or a length: maxLength, minItems, ...
std::optional<std::int64_t> int_member(const json& s, const char* key) {
  const json* v = member(s, key);
  if (v == nullptr || !v->is_number()) return std::nullopt;
  if (is_int(*v)) return v->get<std::int64_t>();
  return truncate(v->get<double>());
}

// The JSON type kube-openapi infers for a decoded value.
std::string value_type(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    default: return is_int(v) ? "integer" : "number";
  }
}

// reflect.DeepEqual of two decoded values: an int64 never equals a float64. Values nested
// deeper than kMaxDepth count as different, which only means more checking.
bool go_equal(const json& a, const json& b, int depth = 0) {
  if (depth > kMaxDepth) return false;
  if (a.is_number() && b.is_number()) {
    if (is_int(a) != is_int(b)) return false;
    return is_int(a) ? a.get<std::int64_t>() == b.get<std::int64_t>()
                     : a.get<double>() == b.get<double>();
  }
  if (a.type() != b.type()) return false;
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (!go_equal(a[i], b[i], depth + 1)) return false;
    }
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (const auto& [k, v] : a.items()) {
      const auto it = b.find(k);
      if (it == b.end() || !go_equal(v, *it, depth + 1)) return false;
    }
    return true;
  }
  return a == b;
}

std::size_t rune_count(const std::string& s) {
  std::size_t n = 0;
  for (const char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0u) != 0x80u) ++n;
  }
  return n;
}

std::string child(const std::string& path, const std::string& name) {
  return path.empty() ? name : path + "." + name;
}
std::string subscript(const std::string& path, const std::string& key) {
  return path + "[" + key + "]";
}
std::string indexed(const std::string& path, std::size_t i) {
  return subscript(path, std::to_string(i));
}
// Go prints a nil *field.Path as "<nil>".
std::string shown(const std::string& path) { return path.empty() ? "<nil>" : path; }

// ---------------------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------------------

// Compiled patterns, shared across requests: a CRD's patterns are matched on every write.
class PatternCache {
 public:
  std::shared_ptr<const RE2> get(const std::string& pattern) {
    std::lock_guard lock(mu_);
    const auto it = cache_.find(pattern);
    if (it != cache_.end()) return it->second;
    RE2::Options options;
    options.set_log_errors(false);  // a bad pattern is reported to the client, not to stderr
    auto re = std::make_shared<const RE2>(pattern, options);
    if (cache_.size() >= kMaxEntries) cache_.clear();  // bounded; recompiling is cheap
    cache_.emplace(pattern, re);
    return re;
  }

 private:
  static constexpr std::size_t kMaxEntries = 4096;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const RE2>> cache_;
};

PatternCache& patterns() {
  static PatternCache* cache = new PatternCache();  // never destroyed: used until exit
  return *cache;
}

// Go's regexp.Compile error text for RE2's error, as kube-apiserver prints it.
std::string regexp_error(const RE2& re) {
  const char* what = "invalid regular expression";
  switch (re.error_code()) {
    case RE2::ErrorInternal: what = "regexp/syntax: internal error"; break;
    case RE2::ErrorBadEscape: what = "invalid escape sequence"; break;
    case RE2::ErrorBadCharClass: what = "invalid character class"; break;
    case RE2::ErrorBadCharRange: what = "invalid character class range"; break;
    case RE2::ErrorMissingBracket: what = "missing closing ]"; break;
    case RE2::ErrorMissingParen: what = "missing closing )"; break;
    case RE2::ErrorUnexpectedParen: what = "unexpected )"; break;
    case RE2::ErrorTrailingBackslash: what = "trailing backslash at end of expression"; break;
    case RE2::ErrorRepeatArgument: what = "missing argument to repetition operator"; break;
    case RE2::ErrorRepeatSize: what = "invalid repeat count"; break;
    case RE2::ErrorRepeatOp: what = "invalid nested repetition operator"; break;
    case RE2::ErrorBadPerlOp: what = "invalid or unsupported Perl syntax"; break;
    case RE2::ErrorBadUTF8: what = "invalid UTF-8"; break;
    case RE2::ErrorBadNamedCapture: what = "invalid named capture"; break;
    case RE2::ErrorPatternTooLarge: what = "expression too large"; break;
    default: break;
  }
  return std::string("error parsing regexp: ") + what + ": `" + re.error_arg() + "`";
}

// ---------------------------------------------------------------------------------------
// Formats
// ---------------------------------------------------------------------------------------

// The string formats kube-apiserver validates (apiextensions validation/formats.go, v1.0
// set), named without dashes as go-openapi normalizes them. Only date-time and date are
// checked here; the others pass, but they still count for the type check below.
bool known_string_format(std::string format) {
  format.erase(std::remove(format.begin(), format.end(), '-'), format.end());
  static const std::set<std::string, std::less<>> kFormats = {
      "bsonobjectid", "uri",        "email",    "hostname", "ipv4",     "ipv6", "cidr",
      "mac",          "uuid",       "uuid3",    "uuid4",    "uuid5",    "isbn", "isbn10",
      "isbn13",       "creditcard", "ssn",      "hexcolor", "rgbcolor", "byte", "password",
      "date",         "duration",   "datetime", "quantity"};
  return kFormats.count(format) > 0;
}

bool int_or_string(const json& s) { return flag(s, "x-kubernetes-int-or-string"); }

std::vector<std::string> schema_types(const json& s) {
  if (int_or_string(s)) return {"integer", "string"};
  const std::string t = text(s, "type");
  if (t.empty()) return {};
  return {t};
}

// The format left after StripUnsupportedFormatsPostProcess: unknown formats are dropped.
std::string effective_format(const json& s) {
  const std::string format = text(s, "format");
  if (format.empty()) return "";
  const auto types = schema_types(s);
  const std::string t = types.size() == 1 ? types[0] : "";
  if (t.empty() || t == "string") return known_string_format(format) ? format : "";
  if (t == "integer") return format == "int32" || format == "int64" ? format : "";
  if (t == "number") return format == "float" || format == "double" ? format : "";
  return "";
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

bool digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int number(std::string_view s) {
  int v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// Go's time.Parse("2006-01-02", s) succeeds.
bool is_date(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  if (!digits(s.substr(0, 4)) || !digits(s.substr(5, 2)) || !digits(s.substr(8, 2))) return false;
  const int y = number(s.substr(0, 4));
  const int m = number(s.substr(5, 2));
  const int d = number(s.substr(8, 2));
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1) return false;
  return d <= kDays[m - 1] + (m == 2 && leap(y) ? 1 : 0);
}

// go-openapi strfmt.IsDateTime: a date, 't' (either case), then hh:mm:ss, any character and
// digits as a fraction, and 'z' or an offset.
bool is_date_time(const std::string& s) {
  if (s.size() < 4) return false;
  std::string lower = s;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  });
  const std::size_t t1 = lower.find('t');
  if (t1 == std::string::npos || !is_date(std::string_view(lower).substr(0, t1))) return false;
  const std::size_t t2 = lower.find('t', t1 + 1);
  const std::string time =
      lower.substr(t1 + 1, t2 == std::string::npos ? std::string::npos : t2 - t1 - 1);
  static const RE2* kTime =
      new RE2("^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$");
  std::string hh, mm, ss;
  if (!RE2::PartialMatch(time, *kTime, &hh, &mm, &ss)) return false;
  return hh <= "23" && mm <= "59" && ss <= "59";
}

// ---------------------------------------------------------------------------------------
// Correlating old and new values (ratcheting, transition rules)
// ---------------------------------------------------------------------------------------

const json* old_member(const json* old, const std::string& key) {
  if (old == nullptr || !old->is_object()) return nullptr;
  const auto it = old->find(key);
  return it == old->end() ? nullptr : &*it;
}

std::vector<std::string> list_map_keys(const json& s) {
  std::vector<std::string> keys;
  if (const json* k = member(s, "x-kubernetes-list-map-keys"); k != nullptr && k->is_array()) {
    for (const auto& key : *k) {
      if (key.is_string()) keys.push_back(key.get<std::string>());
    }
  }
  return keys;
}

// The item of a x-kubernetes-list-type map list in `old` with the same keys as `item`.
const json* old_map_item(const json& list_schema, const json& item, const json* old) {
  if (old == nullptr || !old->is_array() || !item.is_object()) return nullptr;
  const auto keys = list_map_keys(list_schema);
  if (keys.empty()) return nullptr;
  for (const auto& candidate : *old) {
    if (!candidate.is_object()) continue;
    bool same = true;
    for (const auto& k : keys) {
      const auto a = item.find(k);
      const auto b = candidate.find(k);
      if (a == item.end() || b == candidate.end() || !go_equal(*a, *b)) {
        same = false;
        break;
      }
    }
    if (same) return &candidate;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------
// The OpenAPI checks (kube-openapi's SchemaValidator)
// ---------------------------------------------------------------------------------------

// Paths here are kube-openapi's: "spec.ports[0].name", "" for the root; error fields are
// the path without a leading dot, "<nil>" for the root.
std::string openapi_field(const std::string& name) {
  if (name.empty() || name == ".") return "<nil>";
  return name[0] == '.' ? name.substr(1) : name;
}

std::string joined(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += sep;
    out += parts[i];
  }
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// swag.IsFloat64AJSONInteger, for multipleOf.
bool is_json_integer(double f) {
  if (!std::isfinite(f) || f < -9007199254740992.0 || f > 9007199254740992.0) return false;
  const double g = std::trunc(f);
  if (f == g) return true;
  const double diff = std::fabs(f - g);
  if (g == 0) return false;
  return diff / std::min(std::fabs(f) + std::fabs(g), std::numeric_limits<double>::max()) < 1e-9;
}

class OpenApiChecker {
 public:
  std::vector<FieldError> errors;

  void check(const json& s, const json& v, const std::string& path, const json* old, int depth) {
    if (!s.is_object() || depth > kMaxDepth) return;
    // Ratcheting: a value the update did not change is not failed again, so objects stored
    // under a looser schema stay updatable.
    if (old != nullptr && go_equal(*old, v)) return;
    const auto types = schema_types(s);
    const std::string format = effective_format(s);
    if (v.is_null()) {
      if (!types.empty() && !flag(s, "nullable")) type_error(path, joined(types, ","), "null");
      check_enum(s, v, path);
      return;
    }
    check_type(types, format, v, path);
    check_junctors(s, v, path, depth);
    if (v.is_string()) {
      check_string(s, v, path);
      check_format(format, v, path);
    }
    if (v.is_number()) check_number(s, v, path);
    if (v.is_array()) check_array(s, v, path, old, depth);
    check_enum(s, v, path);
    if (v.is_object()) check_object(s, v, path, old, depth);
  }

 private:
  void add(FieldError e) {
    // kube-openapi's Result keeps each message once.
    const std::string m = e.message();
    for (const auto& have : errors) {
      if (have.message() == m) return;
    }
    errors.push_back(std::move(e));
  }

  void type_error(const std::string& path, const std::string& wanted, const std::string& got) {
    add(type_invalid(openapi_field(path), got,
                     path + " in body must be of type " + wanted + ": " + gofmt::quote(got)));
  }

  void check_type(const std::vector<std::string>& types, const std::string& format, const json& v,
                  const std::string& path) {
    if (types.empty() && format.empty()) return;
    const std::string got = value_type(v);
    const std::string got_format = is_int(v) ? "int64" : is_float(v) ? "float64" : "";
    const bool numeric = contains(types, "number") || contains(types, "integer");
    // swag.IsFloat64AJSONInteger tolerates a relative error of 1e-9.
    const bool float_int =
        got == "number" && is_json_integer(v.get<double>()) && contains(types, "integer");
    const bool int_float = got == "integer" && contains(types, "number");
    if (!v.is_string() && !v.is_array() && !format.empty() &&
        !(contains(types, got) || got_format == format || float_int || int_float)) {
      type_error(path, format, got_format);
      return;
    }
    // kube-openapi skips the type check of strings and lists where a string format is set.
    if (!numeric && !format.empty() && (v.is_string() || v.is_array())) return;
    if (!(contains(types, got) || float_int || int_float))
      type_error(path, joined(types, ","), got);
  }

  // A failure of allOf/anyOf/oneOf/not is not a field error in kube-openapi; apiextensions
  // reports it on the nil path with an empty value.
  void composite(const std::string& message) { add(invalid("<nil>", "", message)); }

  std::vector<FieldError> alone(const json& s, const json& v, const std::string& path, int depth) {
    OpenApiChecker sub;
    sub.check(s, v, path, nullptr, depth + 1);
    return std::move(sub.errors);
  }

  void merge(const std::vector<FieldError>& more) {
    for (const auto& e : more) add(e);
  }

  void check_junctors(const json& s, const json& v, const std::string& path, int depth) {
    const std::string quoted = gofmt::quote(path);
    if (const json* any = member(s, "anyOf"); any != nullptr && any->is_array() && !any->empty()) {
      bool ok = false;
      std::optional<std::vector<FieldError>> best;
      for (const auto& sub : *any) {
        auto errs = alone(sub, v, path, depth);
        if (errs.empty()) {
          ok = true;
          break;
        }
        if (!best) best = std::move(errs);
      }
      if (!ok) {
        composite(quoted + " must validate at least one schema (anyOf)");
        merge(*best);
      }
    }
    if (const json* one = member(s, "oneOf"); one != nullptr && one->is_array() && !one->empty()) {
      int valid = 0;
      std::optional<std::vector<FieldError>> best;
      for (const auto& sub : *one) {
        auto errs = alone(sub, v, path, depth);
        if (errs.empty()) {
          ++valid;
          best.reset();
        } else if (valid == 0 && !best) {
          best = std::move(errs);
        }
      }
      if (valid != 1) {
        composite(quoted + " must validate one and only one schema (oneOf). " +
                  (valid == 0 ? std::string("Found none valid")
                              : "Found " + std::to_string(valid) + " valid alternatives"));
        if (best) merge(*best);
      }
    }
    if (const json* all = member(s, "allOf"); all != nullptr && all->is_array() && !all->empty()) {
      std::size_t valid = 0;
      for (const auto& sub : *all) {
        auto errs = alone(sub, v, path, depth);
        if (errs.empty()) ++valid;
        merge(errs);
      }
      if (valid != all->size()) {
        composite(quoted + " must validate all the schemas (allOf)" +
                  (valid == 0 ? ". None validated" : ""));
      }
    }
    if (const json* n = schema_member(s, "not"); n != nullptr) {
      if (alone(*n, v, path, depth).empty())
        composite(quoted + " must not validate the schema (not)");
    }
  }

  void check_string(const json& s, const json& v, const std::string& path) {
    const std::string str = v.get<std::string>();
    const std::string field = openapi_field(path);
    // The string checks stop at the first failure.
    if (const auto max = int_member(s, "maxLength");
        max && static_cast<std::int64_t>(rune_count(str)) > *max) {
      // apiextensions passes no limit to field.TooLong (kube-openapi does not carry it).
      add({field, "Too long", "value is too long", v, "FieldValueTooLong"});
      return;
    }
    if (const auto min = int_member(s, "minLength");
        min && static_cast<std::int64_t>(rune_count(str)) < *min) {
      add(invalid(field, v,
                  path + " in body should be at least " + std::to_string(*min) + " chars long"));
      return;
    }
    const std::string pattern = text(s, "pattern");
    if (pattern.empty()) return;
    const auto re = patterns().get(pattern);
    if (!re->ok()) {
      add(invalid(field, v,
                  path + " in body should match '" + pattern +
                      ", but pattern is invalid: " + regexp_error(*re) + "'"));
    } else if (!RE2::PartialMatch(str, *re)) {
      add(invalid(field, v, path + " in body should match '" + pattern + "'"));
    }
  }

  void check_format(const std::string& format, const json& v, const std::string& path) {
    if (format.empty()) return;
    std::string normalized = format;
    normalized.erase(std::remove(normalized.begin(), normalized.end(), '-'), normalized.end());
    const std::string str = v.get<std::string>();
    const bool ok = normalized == "datetime" ? is_date_time(str)
                    : normalized == "date"   ? is_date(str)
                                             : true;
    if (!ok) {
      add(type_invalid(openapi_field(path), v,
                       path + " in body must be of type " + format + ": " + gofmt::quote(str)));
    }
  }

  void check_number(const json& s, const json& v, const std::string& path) {
    const std::string field = openapi_field(path);
    const bool integer = is_int(v);
    const std::string prefix = path + " in body should be ";
    // kube-openapi compares an int64 value with the bound converted to int64 (truncated).
    if (const json* m = member(s, "multipleOf"); m != nullptr && m->is_number()) {
      const double factor = m->get<double>();
      if (integer) {
        const std::int64_t f = truncate(factor);
        if (f < 0) {
          add(invalid(field, f,
                      "factor MultipleOf declared for " + path +
                          " must be positive: " + std::to_string(f)));
        } else if (f > 0 && v.get<std::int64_t>() % f != 0) {
          add(invalid(field, v, prefix + "a multiple of " + std::to_string(f)));
        }
      } else if (factor < 0) {
        add(invalid(field, factor,
                    "factor MultipleOf declared for " + path +
                        " must be positive: " + gofmt::float_v(factor)));
      } else if (factor > 0) {
        const double d = v.get<double>();
        const double mult = factor < 1 ? 1 / factor * d : d / factor;
        if (!is_json_integer(mult))
          add(invalid(field, v, prefix + "a multiple of " + gofmt::float_v(factor)));
      }
    }
    const auto bound = [&](const char* key, const char* exclusive_key, bool lower) {
      const json* b = member(s, key);
      if (b == nullptr || !b->is_number()) return;
      const bool exclusive = flag(s, exclusive_key);
      const char* words = lower ? (exclusive ? "greater than " : "greater than or equal to ")
                                : (exclusive ? "less than " : "less than or equal to ");
      bool bad = false;
      std::string shown_bound;
      if (integer) {
        const std::int64_t limit = truncate(b->get<double>());
        const std::int64_t x = v.get<std::int64_t>();
        bad = lower ? (exclusive ? x <= limit : x < limit) : (exclusive ? x >= limit : x > limit);
        shown_bound = std::to_string(limit);
      } else {
        const double limit = b->get<double>();
        const double x = v.get<double>();
        bad = lower ? (exclusive ? x <= limit : x < limit) : (exclusive ? x >= limit : x > limit);
        shown_bound = gofmt::float_v(limit);
      }
      if (bad) add(invalid(field, v, prefix + words + shown_bound));
    };
    bound("minimum", "exclusiveMinimum", true);
    bound("maximum", "exclusiveMaximum", false);
  }

  void check_array(const json& s, const json& v, const std::string& path, const json* old,
                   int depth) {
    if (const json* items = schema_member(s, "items"); items != nullptr) {
      const std::string list_type = text(s, "x-kubernetes-list-type");
      for (std::size_t i = 0; i < v.size(); ++i) {
        // Ratcheting correlates map-list items by key and other untyped lists by index;
        // sets and atomic lists not at all.
        const json* old_item = nullptr;
        if (list_type == "map") {
          old_item = old_map_item(s, v[i], old);
        } else if (list_type.empty() && old != nullptr && old->is_array() && i < old->size()) {
          old_item = &(*old)[i];
        }
        check(*items, v[i], indexed(path, i), old_item, depth + 1);
      }
    }
    const auto size = static_cast<std::int64_t>(v.size());
    if (const auto min = int_member(s, "minItems"); min && size < *min) {
      add(invalid(openapi_field(path), size,
                  path + " in body should have at least " + std::to_string(*min) + " items"));
    }
    if (const auto max = int_member(s, "maxItems"); max && size > *max) {
      // As for maxLength, the limit does not reach the message.
      add({openapi_field(path), "Too many", "has too many items", size, "FieldValueTooMany"});
    }
  }

  // Go's reflect conversion of a decoded value to the enum value's type, then DeepEqual.
  static bool enum_match(const json& v, const json& e) {
    if (v.is_null() || e.is_null()) return false;
    if (e.is_number()) return v.is_number() && v.get<double>() == e.get<double>();
    if (e.is_string() && is_int(v)) {
      // An int64 converts to string as the code point it names, as Go's string(rune(n)) does.
      const std::int64_t n = v.get<std::int64_t>();
      std::string rune;
      const auto cp = static_cast<std::uint32_t>(
          n >= 0 && n <= 0x10FFFF && !(n >= 0xD800 && n <= 0xDFFF) ? n : 0xFFFD);
      if (cp < 0x80) {
        rune = std::string(1, static_cast<char>(cp));
      } else if (cp < 0x800) {
        rune = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
      } else if (cp < 0x10000) {
        rune = {static_cast<char>(0xE0 | (cp >> 12)), static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
                static_cast<char>(0x80 | (cp & 0x3F))};
      } else {
        rune = {static_cast<char>(0xF0 | (cp >> 18)), static_cast<char>(0x80 | ((cp >> 12) & 0x3F)),
                static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
                static_cast<char>(0x80 | (cp & 0x3F))};
      }
      return rune == e.get<std::string>();
    }
    if (e.is_structured()) {
      // Enum values decode with float64 numbers; a value's int64 members never equal them.
      const json as_floats = floats(e);
      return go_equal(v, as_floats);
    }
    return v == e;
  }

  static json floats(const json& e, int depth = 0) {
    if (e.is_number()) return e.get<double>();
    if (depth > kMaxDepth) return nullptr;
    if (e.is_array()) {
      json out = json::array();
      for (const auto& x : e) out.push_back(floats(x, depth + 1));
      return out;
    }
    if (e.is_object()) {
      json out = json::object();
      for (const auto& [k, x] : e.items()) out[k] = floats(x, depth + 1);
      return out;
    }
    return e;
  }

  void check_enum(const json& s, const json& v, const std::string& path) {
    const json* values = member(s, "enum");
    if (values == nullptr || !values->is_array() || values->empty()) return;
    for (const auto& e : *values) {
      if (enum_match(v, e)) return;
    }
    std::vector<std::string> valid;
    for (const auto& e : *values) {
      valid.push_back(e.is_string() ? e.get<std::string>() : gofmt::marshal(floats(e)));
    }
    add(not_supported(openapi_field(path), v, valid));
  }

  void check_object(const json& s, const json& v, const std::string& path, const json* old,
                    int depth) {
    const auto count = static_cast<std::int64_t>(v.size());
    if (const auto min = int_member(s, "minProperties"); min && count < *min) {
      add(invalid(openapi_field(path), count,
                  path + " in body should have at least " + std::to_string(*min) + " properties"));
      return;
    }
    if (const auto max = int_member(s, "maxProperties"); max && count > *max) {
      add({openapi_field(path), "Too many", "has too many items", count, "FieldValueTooMany"});
      return;
    }
    const Additional extra = additional(s);
    if (extra.present && !extra.allows) {
      for (const auto& [k, x] : v.items()) {
        if (property(s, k) == nullptr) {
          add(invalid(openapi_field(path), k, path + "." + k + " in body is a forbidden property"));
        }
      }
    } else if (extra.schema != nullptr) {
      for (const auto& [k, x] : v.items()) {
        if (property(s, k) == nullptr)
          check(*extra.schema, x, path + "." + k, old_member(old, k), depth + 1);
      }
    }
    if (const json* props = schema_member(s, "properties"); props != nullptr) {
      for (const auto& [k, ps] : props->items()) {
        const auto it = v.find(k);
        if (it != v.end()) check(ps, *it, child(path, k), old_member(old, k), depth + 1);
      }
    }
    if (const json* req = member(s, "required"); req != nullptr && req->is_array()) {
      for (const auto& k : *req) {
        if (k.is_string() && !v.contains(k.get<std::string>())) {
          add(required(openapi_field(path + "." + k.get<std::string>()), ""));
        }
      }
    }
  }
};

// ---------------------------------------------------------------------------------------
// x-kubernetes-list-type set and map (listtype/validation.go)
// ---------------------------------------------------------------------------------------

// Go's map[interface{}] identity for scalars (an int64 1 is not a float64 1), JSON text for
// lists and objects.
std::string set_key(const json& v) {
  if (v.is_structured()) return "c" + gofmt::marshal(v);
  if (v.is_number()) return (is_int(v) ? "i" : "f") + gofmt::marshal(v);
  return "s" + gofmt::marshal(v);
}

// The index of each element's second appearance (a third is not reported again).
std::vector<std::size_t> second_appearances(const std::vector<std::string>& keys) {
  std::map<std::string, int> seen;
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (++seen[keys[i]] == 2) out.push_back(i);
  }
  return out;
}

class ListTypeChecker {
 public:
  std::vector<FieldError> errors;

  void object(const json& s, const json& obj, const std::string& path, int depth) {
    if (!s.is_object() || !obj.is_object() || depth > kMaxDepth) return;
    if (const Additional extra = additional(s); extra.schema != nullptr) {
      for (const auto& [k, v] : obj.items()) value(*extra.schema, v, subscript(path, k), depth + 1);
    }
    if (schema_member(s, "properties") != nullptr) {
      for (const auto& [k, v] : obj.items()) {
        if (const json* p = property(s, k)) value(*p, v, child(path, k), depth + 1);
      }
    }
  }

 private:
  void value(const json& s, const json& v, const std::string& path, int depth) {
    if (depth > kMaxDepth) return;
    if (v.is_array()) {
      array(s, v, path, depth);
    } else if (v.is_object()) {
      object(s, v, path, depth);
    }
  }

  void array(const json& s, const json& list, const std::string& path, int depth) {
    const std::string list_type = text(s, "x-kubernetes-list-type");
    if (list_type == "set") {
      std::vector<std::string> keys;
      for (const auto& x : list) keys.push_back(set_key(x));
      for (const auto i : second_appearances(keys)) {
        errors.push_back(duplicate(indexed(path, i), list[i]));
      }
    } else if (list_type == "map") {
      map_list(s, list, path);
    }
    if (const json* items = schema_member(s, "items"); items != nullptr) {
      for (std::size_t i = 0; i < list.size(); ++i)
        value(*items, list[i], indexed(path, i), depth + 1);
    }
  }

  void map_list(const json& s, const json& list, const std::string& path) {
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (!list[i].is_null() && !list[i].is_object()) {
        errors.push_back(
            invalid(indexed(path, i), list[i], "must be an object for an array of list-type map"));
        return;
      }
    }
    if (list.size() <= 1) return;
    const auto key_fields = list_map_keys(s);
    std::vector<std::string> keys;
    std::vector<json> shown_keys;
    if (key_fields.size() == 1) {
      const std::string& k = key_fields[0];
      for (const auto& x : list) {
        const auto it = x.is_object() ? x.find(k) : x.end();
        if (!x.is_object() || it == x.end()) {
          keys.push_back("u");  // an unspecified key, distinct from every value
          shown_keys.push_back(json::object());
        } else {
          keys.push_back(set_key(*it));
          shown_keys.push_back(json{{k, *it}});
        }
      }
    } else {
      for (const auto& x : list) {
        json key = json::object();
        if (x.is_object()) {
          for (const auto& k : key_fields) {
            if (const auto it = x.find(k); it != x.end()) key[k] = *it;
          }
        }
        keys.push_back(set_key(key));
        shown_keys.push_back(std::move(key));
      }
    }
    for (const auto i : second_appearances(keys)) {
      errors.push_back(duplicate(indexed(path, i), shown_keys[i]));
    }
  }
};

// ---------------------------------------------------------------------------------------
// Transition rules (x-kubernetes-validations)
// ---------------------------------------------------------------------------------------

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n\v\f");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n\v\f");
  return s.substr(b, e - b + 1);
}

// The one CEL rule this server evaluates: `self == oldSelf`, either way round.
bool is_immutability_rule(const std::string& rule) {
  std::string compact;
  for (const char c : rule) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') compact.push_back(c);
  }
  return compact == "self==oldSelf" || compact == "oldSelf==self";
}

// CEL's == on values typed by the schema: numbers by value, lists of x-kubernetes-list-type
// set and map without regard to order.
bool cel_equal(const json* s, const json& a, const json& b, int depth) {
  if (depth > kMaxDepth) return false;
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  if (a.type() != b.type()) return false;
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    const json* items = s != nullptr ? schema_member(*s, "items") : nullptr;
    const std::string list_type = s != nullptr ? text(*s, "x-kubernetes-list-type") : "";
    if (list_type == "set" || list_type == "map") {
      std::vector<bool> used(b.size(), false);
      for (const auto& x : a) {
        bool found = false;
        for (std::size_t j = 0; j < b.size() && !found; ++j) {
          if (!used[j] && cel_equal(items, x, b[j], depth + 1)) used[j] = found = true;
        }
        if (!found) return false;
      }
      return true;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (!cel_equal(items, a[i], b[i], depth + 1)) return false;
    }
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (const auto& [k, x] : a.items()) {
      const auto it = b.find(k);
      if (it == b.end()) return false;
      const json* sub = nullptr;
      if (s != nullptr) {
        sub = property(*s, k);
        if (sub == nullptr) sub = additional(*s).schema;
      }
      if (!cel_equal(sub, x, *it, depth + 1)) return false;
    }
    return true;
  }
  return a == b;
}

class TransitionChecker {
 public:
  std::vector<FieldError> errors;

  // `path` is a field.Path ("spec.ports[0]", "spec.labels[app]"), "" for the root.
  void check(const json& s, const json& v, const json* old, const std::string& path, int depth) {
    if (!s.is_object() || v.is_null() || depth > kMaxDepth) return;
    if (old != nullptr && !old->is_null()) rules(s, v, *old, path, depth);
    if (v.is_array()) {
      if (const json* items = schema_member(s, "items"); items != nullptr) {
        const bool map_list = text(s, "x-kubernetes-list-type") == "map";
        for (std::size_t i = 0; i < v.size(); ++i) {
          const json* old_item = map_list ? old_map_item(s, v[i], old) : nullptr;
          check(*items, v[i], old_item, indexed(path, i), depth + 1);
        }
      }
    } else if (v.is_object()) {
      if (const Additional extra = additional(s); extra.schema != nullptr) {
        for (const auto& [k, x] : v.items()) {
          check(*extra.schema, x, old_member(old, k), subscript(path, k), depth + 1);
        }
      }
      if (schema_member(s, "properties") != nullptr) {
        for (const auto& [k, x] : v.items()) {
          if (const json* p = property(s, k))
            check(*p, x, old_member(old, k), child(path, k), depth + 1);
        }
      }
    }
  }

 private:
  void rules(const json& s, const json& v, const json& old, const std::string& path, int depth) {
    const json* list = member(s, "x-kubernetes-validations");
    if (list == nullptr || !list->is_array()) return;
    for (const auto& rule : *list) {
      if (!rule.is_object() || !is_immutability_rule(text(rule, "rule"))) continue;
      if (cel_equal(&s, v, old, depth)) continue;
      const std::string message = trim(text(rule, "message"));
      const std::string detail =
          message.empty() ? "failed rule: " + trim(text(rule, "rule")) : message;
      std::string where = path;
      if (std::string fp = text(rule, "fieldPath"); !fp.empty()) {
        if (fp[0] == '.') fp.erase(0, 1);
        where = child(where, fp);
      }
      where = shown(where);
      // v1.32 shows the schema's type where the value would be.
      const json shown_value = text(s, "type");
      const std::string reason = text(rule, "reason");
      if (reason == "FieldValueForbidden") {
        errors.push_back(forbidden(where, detail));
      } else if (reason == "FieldValueRequired") {
        errors.push_back(required(where, detail));
      } else if (reason == "FieldValueDuplicate") {
        errors.push_back(duplicate(where, shown_value));
      } else {
        errors.push_back(invalid(where, shown_value, detail));
      }
    }
  }
};

// ---------------------------------------------------------------------------------------
// Pruning and defaulting
// ---------------------------------------------------------------------------------------

bool meta_field(const std::string& k) {
  return k == "apiVersion" || k == "kind" || k == "metadata";
}

// What pruning drops, named as strict decoding names unknown fields ("spec.a[0].b"); null
// when nobody asked.
struct PruneLog {
  std::vector<std::string>* pruned = nullptr;
  std::string child(const std::string& path, const std::string& key) const {
    return pruned == nullptr ? "" : path.empty() ? key : path + "." + key;
  }
  std::string item(const std::string& path, std::size_t i) const {
    return pruned == nullptr ? "" : path + "[" + std::to_string(i) + "]";
  }
  void dropped(const std::string& path) const {
    if (pruned != nullptr) pruned->push_back(path);
  }
};

void prune_node(json& x, const json* s, bool root, int depth, const PruneLog& log = {}, const std::string& path = "");

// Under x-kubernetes-preserve-unknown-fields: unknown fields stay, known ones are pruned.
void skip_prune(json& x, const json* s, bool root, int depth, const PruneLog& log, const std::string& path) {
  if (s == nullptr || depth > kMaxDepth) return;
  const bool embedded = root || flag(*s, "x-kubernetes-embedded-resource");
  if (x.is_object()) {
    const Additional extra = additional(*s);
    for (auto& [k, v] : x.items()) {
      if (embedded && meta_field(k)) continue;
      if (const json* p = property(*s, k)) {
        prune_node(v, p, false, depth + 1, log, log.child(path, k));
      } else if (extra.present) {
        prune_node(v, extra.schema, false, depth + 1, log, log.child(path, k));
      }
    }
  } else if (x.is_array()) {
    const json* items = schema_member(*s, "items");
    std::size_t i = 0;
    for (auto& v : x) skip_prune(v, items, false, depth + 1, log, log.item(path, i++));
  }
}

// `root`: the object's root, where apiVersion, kind and metadata are kept as under
// x-kubernetes-embedded-resource.
void prune_node(json& x, const json* s, bool root, int depth, const PruneLog& log, const std::string& path) {
  if (depth > kMaxDepth) return;
  if (s != nullptr && flag(*s, "x-kubernetes-preserve-unknown-fields")) {
    skip_prune(x, s, root, depth, log, path);
    return;
  }
  const bool embedded = root || (s != nullptr && flag(*s, "x-kubernetes-embedded-resource"));
  if (x.is_object()) {
    if (s == nullptr) {
      for (const auto& [k, v] : x.items()) log.dropped(log.child(path, k));
      x = json::object();
      return;
    }
    const Additional extra = additional(*s);
    for (auto it = x.begin(); it != x.end();) {
      if (embedded && meta_field(it.key())) {
        ++it;
      } else if (const json* p = property(*s, it.key())) {
        prune_node(it.value(), p, false, depth + 1, log, log.child(path, it.key()));
        ++it;
      } else if (extra.present) {
        prune_node(it.value(), extra.schema, false, depth + 1, log, log.child(path, it.key()));
        ++it;
      } else {
        log.dropped(log.child(path, it.key()));
        it = x.erase(it);
      }
    }
  } else if (x.is_array()) {
    const json* items = s != nullptr ? schema_member(*s, "items") : nullptr;
    std::size_t i = 0;
    for (auto& v : x) prune_node(v, items, false, depth + 1, log, log.item(path, i++));
  }
}

bool nullable(const json* s) { return s != nullptr && flag(*s, "nullable"); }
const json* default_of(const json* s) {
  const json* d = s != nullptr ? member(*s, "default") : nullptr;
  return d != nullptr && !d->is_null() ? d : nullptr;
}

// The default to insert: a copy, pruned by its own schema as the real server prunes
// defaults when the CRD is created.
json pruned_default(const json& s) {
  json d = *default_of(&s);
  prune_node(d, &s, false, 0);
  return d;
}

const json* field_schema(const json* s, const std::string& k) {
  if (s == nullptr) return nullptr;
  if (const json* p = property(*s, k)) return p;
  return additional(*s).schema;
}

void prune_nulls(json& x, const json* s, int depth) {
  if (depth > kMaxDepth) return;
  if (x.is_object()) {
    for (auto it = x.begin(); it != x.end();) {
      const json* sub = field_schema(s, it.key());
      if (it.value().is_null() && sub != nullptr && !nullable(sub) && default_of(sub) == nullptr) {
        it = x.erase(it);
      } else {
        prune_nulls(it.value(), sub, depth + 1);
        ++it;
      }
    }
  } else if (x.is_array()) {
    const json* items = s != nullptr ? schema_member(*s, "items") : nullptr;
    for (auto& v : x) prune_nulls(v, items, depth + 1);
  }
}

void default_node(json& x, const json* s, int depth) {
  if (s == nullptr || depth > kMaxDepth) return;
  if (x.is_object()) {
    if (const json* props = schema_member(*s, "properties"); props != nullptr) {
      for (const auto& [k, p] : props->items()) {
        if (default_of(&p) == nullptr) continue;
        const auto it = x.find(k);
        if (it == x.end() || (it->is_null() && !nullable(&p))) x[k] = pruned_default(p);
      }
    }
    const Additional extra = additional(*s);
    for (auto& [k, v] : x.items()) {
      if (const json* p = property(*s, k)) {
        default_node(v, p, depth + 1);
      } else if (extra.schema != nullptr) {
        if (v.is_null() && !nullable(extra.schema) && default_of(extra.schema) != nullptr) {
          v = pruned_default(*extra.schema);
        }
        default_node(v, extra.schema, depth + 1);
      }
    }
  } else if (x.is_array()) {
    const json* items = schema_member(*s, "items");
    for (auto& v : x) {
      if (v.is_null() && items != nullptr && !nullable(items) && default_of(items) != nullptr) {
        v = pruned_default(*items);
      }
      default_node(v, items, depth + 1);
    }
  }
}

// ---------------------------------------------------------------------------------------
// The schema itself (CRD creation)
// ---------------------------------------------------------------------------------------

constexpr const char* kUnsupportedRule =
    "the lab API server evaluates only the transition rule `self == oldSelf`; this rule would "
    "not be enforced";

class CrdSchemaChecker {
 public:
  std::vector<FieldError> api;         // apiextensions' own checks, in walk order
  std::vector<FieldError> structural;  // ValidateStructural's, sorted by message at the end
  std::vector<FieldError> cel;         // the rules, in walk order

  enum class Level { kRoot, kItem, kField };

  // `uncorrelatable`: the path of the outermost list above whose items cannot be matched
  // between old and new objects (any list but x-kubernetes-list-type map).
  void walk(const json& s, const std::string& path, Level level,
            const std::optional<std::string>& uncorrelatable, int depth) {
    if (!s.is_object() || depth > kMaxDepth) return;
    const std::string type = text(s, "type");
    const json* items = schema_member(s, "items");
    if (type == "array" && items == nullptr)
      structural.push_back(required(child(path, "items"), "must be specified"));
    if (items != nullptr) {
      const std::string items_path = child(path, "items");
      std::optional<std::string> next = uncorrelatable;
      if (!next && text(s, "x-kubernetes-list-type") != "map") next = items_path;
      walk(*items, items_path, Level::kItem, next, depth + 1);
    }
    const json* props = schema_member(s, "properties");
    if (props != nullptr) {
      for (const auto& [k, p] : props->items()) {
        walk(p, subscript(child(path, "properties"), k), Level::kField, uncorrelatable, depth + 1);
      }
    }
    const Additional extra = additional(s);
    if (extra.present) {
      if (props != nullptr && !props->empty() && (!extra.allows || extra.schema != nullptr)) {
        api.push_back(forbidden(child(path, "additionalProperties"),
                                "additionalProperties and properties are mutual exclusive"));
      }
      if (level == Level::kRoot) {
        structural.push_back(
            forbidden(child(path, "additionalProperties"), "must not be used at the root"));
      }
      if (extra.schema != nullptr) {
        walk(*extra.schema, child(path, "additionalProperties"), Level::kField, uncorrelatable,
             depth + 1);
      }
    }
    if (text(s, "x-kubernetes-list-type") == "map" && list_map_keys(s).empty()) {
      api.push_back(required(child(path, "x-kubernetes-list-map-keys"),
                             "must not be empty if x-kubernetes-list-type is map"));
    }
    if (flag(s, "uniqueItems")) {
      api.push_back(
          forbidden(child(path, "uniqueItems"),
                    "uniqueItems cannot be set to true since the runtime complexity becomes "
                    "quadratic"));
    }
    value_validation(s, path, depth);
    const bool embedded = flag(s, "x-kubernetes-embedded-resource");
    if (embedded && type != "object") {
      if (type.empty()) {
        structural.push_back(required(child(path, "type"),
                                      "must be object if x-kubernetes-embedded-resource is true"));
      } else {
        structural.push_back(invalid(child(path, "type"), type,
                                     "must be object if x-kubernetes-embedded-resource is true"));
      }
    } else if (type.empty() && !int_or_string(s) &&
               !flag(s, "x-kubernetes-preserve-unknown-fields")) {
      const char* why = level == Level::kRoot   ? "must not be empty at the root"
                        : level == Level::kItem ? "must not be empty for specified array items"
                                                : "must not be empty for specified object fields";
      structural.push_back(required(child(path, "type"), why));
    }
    if (level == Level::kRoot && !type.empty() && type != "object") {
      structural.push_back(invalid(child(path, "type"), type, "must be object at the root"));
    }
    rules(s, path, uncorrelatable);
  }

 private:
  // pattern, here and in allOf/anyOf/oneOf/not at any depth.
  void value_validation(const json& s, const std::string& path, int depth) {
    if (!s.is_object() || depth > kMaxDepth) return;
    if (const std::string pattern = text(s, "pattern"); !pattern.empty()) {
      const auto re = patterns().get(pattern);
      if (!re->ok()) {
        structural.push_back(
            invalid(child(path, "pattern"), pattern,
                    "must be a valid regular expression, but isn't: " + regexp_error(*re)));
      }
    }
    for (const char* junctor : {"allOf", "anyOf", "oneOf"}) {
      const json* list = member(s, junctor);
      if (list == nullptr || !list->is_array()) continue;
      for (std::size_t i = 0; i < list->size(); ++i) {
        nested(list->at(i), indexed(child(path, junctor), i), depth + 1);
      }
    }
    if (const json* n = schema_member(s, "not")) nested(*n, child(path, "not"), depth + 1);
  }

  void nested(const json& s, const std::string& path, int depth) {
    if (!s.is_object() || depth > kMaxDepth) return;
    value_validation(s, path, depth);
    if (const json* items = schema_member(s, "items"))
      nested(*items, child(path, "items"), depth + 1);
    if (const json* props = schema_member(s, "properties")) {
      for (const auto& [k, p] : props->items()) {
        nested(p, subscript(child(path, "properties"), k), depth + 1);
      }
    }
  }

  void rules(const json& s, const std::string& path,
             const std::optional<std::string>& uncorrelatable) {
    const json* list = member(s, "x-kubernetes-validations");
    if (list == nullptr || !list->is_array()) return;
    for (std::size_t i = 0; i < list->size(); ++i) {
      const json& rule = list->at(i);
      const std::string where = indexed(child(path, "x-kubernetes-validations"), i);
      const std::string text_rule = text(rule, "rule");
      if (!is_immutability_rule(text_rule)) {
        cel.push_back(invalid(child(where, "rule"), text_rule, kUnsupportedRule));
      } else if (uncorrelatable) {
        cel.push_back(
            invalid(child(where, "rule"), text_rule,
                    "oldSelf cannot be used on the uncorrelatable portion of the schema within " +
                        *uncorrelatable));
      }
      if (const std::string expr = text(rule, "messageExpression"); !expr.empty()) {
        cel.push_back(
            invalid(child(where, "messageExpression"), expr,
                    "the lab API server does not evaluate messageExpression; use message"));
      }
      if (flag(rule, "optionalOldSelf")) {
        cel.push_back(invalid(child(where, "optionalOldSelf"), true,
                              "the lab API server does not support optionalOldSelf"));
      }
      if (const json* reason = member(rule, "reason"); reason != nullptr && !reason->is_null()) {
        static const std::vector<std::string> kReasons = {
            "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid",
            "FieldValueRequired"};
        if (!reason->is_string() || !contains(kReasons, reason->get<std::string>())) {
          cel.push_back(not_supported(child(where, "reason"), *reason, kReasons));
        }
      }
    }
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------
// The public functions
// ---------------------------------------------------------------------------------------

void prune(const json& schema, json& object, std::vector<std::string>* pruned) {
  if (!schema.is_object()) return;
  // At the root, apiVersion, kind and metadata are kept as if the root were an embedded
  // resource (pruning.Prune with root=true).
  prune_node(object, &schema, true, 0, PruneLog{pruned});
}

void apply_defaults(const json& schema, json& object) {
  if (!schema.is_object()) return;
  prune_nulls(object, &schema, 0);
  default_node(object, &schema, 0);
}

std::vector<FieldError> validate(const json& schema, const json& object, const json* old_object) {
  if (!schema.is_object()) return {};
  OpenApiChecker openapi;
  openapi.check(schema, object, "", old_object, 0);
  std::vector<FieldError> out = std::move(openapi.errors);

  ListTypeChecker lists;
  lists.object(schema, object, "", 0);
  out.insert(out.end(), lists.errors.begin(), lists.errors.end());

  if (old_object != nullptr) {
    TransitionChecker transitions;
    transitions.check(schema, object, old_object, "", 0);
    out.insert(out.end(), transitions.errors.begin(), transitions.errors.end());
  }
  return out;
}

std::vector<FieldError> validate_crd_schema(const json& schema, const std::string& root_path) {
  if (!schema.is_object()) return {required(shown(root_path), "schemas are required")};
  CrdSchemaChecker checker;
  checker.walk(schema, root_path, CrdSchemaChecker::Level::kRoot, std::nullopt, 0);
  // ValidateStructural sorts its errors by message, since it walks Go maps.
  std::stable_sort(
      checker.structural.begin(), checker.structural.end(),
      [](const FieldError& a, const FieldError& b) { return a.message() < b.message(); });
  std::vector<FieldError> out = std::move(checker.api);
  out.insert(out.end(), checker.structural.begin(), checker.structural.end());
  out.insert(out.end(), checker.cel.begin(), checker.cel.end());
  return out;
}

}  // namespace cw::lab
