#include "common/kube/selector.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>

namespace cw::kube {
namespace {

using nlohmann::json;

// Limits from k8s.io/apimachinery/pkg/util/validation.
constexpr std::size_t kMaxNameLength = 63;     // the name part of a key, and a value
constexpr std::size_t kMaxPrefixLength = 253;  // a DNS-1123 subdomain
// Bytes of user text a message shows; a megabyte of hostile input must not become a
// megabyte of log line.
constexpr std::size_t kMaxShown = 100;

// `text` with control and non-ASCII bytes as \xNN, so that a message stays one readable line
// whatever it quotes; with `quoted`, also '"' and '\' escaped and the whole in double quotes.
// Text past kMaxShown bytes is cut, and the length said.
std::string shown(std::string_view text, bool quoted) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = quoted ? "\"" : "";
  for (const char ch : text.substr(0, kMaxShown)) {
    const auto byte = static_cast<unsigned char>(ch);
    if (quoted && (ch == '"' || ch == '\\')) {
      out += '\\';
      out += ch;
    } else if (byte < 0x20 || byte >= 0x7f) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xfU];
    } else {
      out += ch;
    }
  }
  if (text.size() > kMaxShown) out += "...";
  if (quoted) out += '"';
  if (text.size() > kMaxShown) out += " (" + std::to_string(text.size()) + " bytes)";
  return out;
}

std::string quote(std::string_view text) { return shown(text, true); }

Error invalid(std::string message) {
  return Error(ErrorCode::kInvalidArgument, std::move(message));
}

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_name_char(char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; }

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]: the name part of a key, and a non-empty value.
bool is_qualified_name(std::string_view s) {
  return !s.empty() && is_alnum(s.front()) && is_alnum(s.back()) &&
         std::all_of(s.begin(), s.end(), is_name_char);
}

// Labels of [a-z0-9]([-a-z0-9]*[a-z0-9])? joined by '.'. Written out rather than as a regex
// so that a long hostile key costs one pass and no backtracking.
bool is_dns1123_subdomain(std::string_view s) {
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = s.find('.', start);
    const std::string_view label =
        s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || !is_lower_alnum(label.front()) || !is_lower_alnum(label.back())) {
      return false;
    }
    for (const char c : label) {
      if (!is_lower_alnum(c) && c != '-') return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += separator;
    out += parts[i];
  }
  return out;
}

// Why `key` is not a label key (validation.IsQualifiedName), or "" if it is one. Every
// problem is listed, as Kubernetes does, so one round of fixing is enough.
std::string label_key_problem(std::string_view key) {
  std::vector<std::string> problems;
  std::string_view name = key;
  if (const std::size_t slash = key.find('/'); slash != std::string_view::npos) {
    if (key.find('/', slash + 1) != std::string_view::npos) {
      return "a label key has at most one '/', between an optional DNS subdomain prefix and "
             "the name (e.g. 'example.com/MyName')";
    }
    const std::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (prefix.empty()) {
      problems.emplace_back("prefix part must be non-empty");
    } else {
      if (prefix.size() > kMaxPrefixLength) {
        problems.push_back("prefix part must be no more than " +
                           std::to_string(kMaxPrefixLength) + " characters");
      }
      if (!is_dns1123_subdomain(prefix)) {
        problems.emplace_back(
            "prefix part must be a lowercase RFC 1123 subdomain: lower case alphanumeric "
            "characters, '-' or '.', starting and ending with an alphanumeric character (e.g. "
            "'example.com')");
      }
    }
  }
  if (name.empty()) {
    problems.emplace_back("name part must be non-empty");
  } else {
    if (name.size() > kMaxNameLength) {
      problems.push_back("name part must be no more than " + std::to_string(kMaxNameLength) +
                         " characters");
    }
    if (!is_qualified_name(name)) {
      problems.emplace_back(
          "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
          "and end with an alphanumeric character (e.g. 'MyName', 'my.name' or '123-abc')");
    }
  }
  return join(problems, "; ");
}

// Why `value` is not a label value (validation.IsValidLabelValue), or "" if it is one.
std::string label_value_problem(std::string_view value) {
  std::vector<std::string> problems;
  if (value.size() > kMaxNameLength) {
    problems.push_back("must be no more than " + std::to_string(kMaxNameLength) +
                       " characters");
  }
  if (!value.empty() && !is_qualified_name(value)) {
    problems.emplace_back(
        "must be empty or consist of alphanumeric characters, '-', '_' or '.', and must start "
        "and end with an alphanumeric character (e.g. 'MyValue', 'my_value' or '12345')");
  }
  return join(problems, "; ");
}

// Go's strconv.ParseInt(s, 10, 64), which Kubernetes applies both to the bound of "a>1" and
// to the label value it is compared with: an optional sign, decimal digits, int64 range.
std::optional<std::int64_t> parse_int64(std::string_view s) {
  std::string_view digits = s;
  if (!digits.empty() && (digits.front() == '+' || digits.front() == '-')) {
    digits.remove_prefix(1);
  }
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  // from_chars takes a '-' but not a '+'.
  if (s.front() == '+') s.remove_prefix(1);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// LabelSelector

LabelSelector::LabelSelector(std::vector<Requirement> requirements)
    : requirements_(std::move(requirements)) {
  // Stable, where Go's sort.Sort is not: requirements on one key keep the order they were
  // written in, so to_string() is deterministic.
  std::stable_sort(requirements_.begin(), requirements_.end(),
                   [](const Requirement& a, const Requirement& b) { return a.key < b.key; });
}

// NewRequirement: checks the key, the number of values the operator takes and each value.
Result<LabelSelector::Requirement> LabelSelector::make_requirement(
    std::string key, Op op, std::vector<std::string> values) {
  if (const std::string problem = label_key_problem(key); !problem.empty()) {
    return invalid("invalid label key " + quote(key) + ": " + problem);
  }
  switch (op) {
    case Op::kIn:
    case Op::kNotIn:
      if (values.empty()) return invalid("'in' and 'notin' need at least one value");
      break;
    case Op::kExists:
    case Op::kDoesNotExist:
      if (!values.empty()) return invalid("an existence test takes no values");
      break;
    case Op::kEquals:
    case Op::kDoubleEquals:
    case Op::kNotEquals:
    case Op::kGreaterThan:
    case Op::kLessThan:
      if (values.size() != 1) return invalid("a comparison takes exactly one value");
      break;
  }
  for (const auto& value : values) {
    if (const std::string problem = label_value_problem(value); !problem.empty()) {
      return invalid("invalid value " + quote(value) + " for label " + quote(key) + ": " +
                     problem);
    }
  }
  Requirement r{std::move(key), op, std::move(values), 0};
  if (op == Op::kGreaterThan || op == Op::kLessThan) {
    const auto bound = parse_int64(r.values.front());
    if (!bound) {
      return invalid(std::string(op == Op::kGreaterThan ? "'>'" : "'<'") +
                     " needs an integer value, not " + quote(r.values.front()));
    }
    r.bound = *bound;
  }
  std::sort(r.values.begin(), r.values.end());
  r.values.erase(std::unique(r.values.begin(), r.values.end()), r.values.end());
  return r;
}

bool LabelSelector::Requirement::matches(const std::string* value) const {
  switch (op) {
    case Op::kIn:
    case Op::kEquals:
    case Op::kDoubleEquals:
      return value != nullptr && std::binary_search(values.begin(), values.end(), *value);
    case Op::kNotIn:
    case Op::kNotEquals:
      return value == nullptr || !std::binary_search(values.begin(), values.end(), *value);
    case Op::kExists:
      return value != nullptr;
    case Op::kDoesNotExist:
      return value == nullptr;
    case Op::kGreaterThan:
    case Op::kLessThan: {
      if (value == nullptr) return false;
      const auto number = parse_int64(*value);
      if (!number) return false;  // a label that is not a number is neither above nor below
      return op == Op::kGreaterThan ? *number > bound : *number < bound;
    }
  }
  return false;
}

std::string LabelSelector::Requirement::to_string() const {
  std::string out = op == Op::kDoesNotExist ? "!" + key : key;
  switch (op) {
    case Op::kExists:
    case Op::kDoesNotExist:
      return out;
    case Op::kEquals:
      return out + "=" + values.front();
    case Op::kDoubleEquals:
      return out + "==" + values.front();
    case Op::kNotEquals:
      return out + "!=" + values.front();
    case Op::kGreaterThan:
      return out + ">" + values.front();
    case Op::kLessThan:
      return out + "<" + values.front();
    case Op::kIn:
    case Op::kNotIn:
      // A single empty value prints as "()", which parses back to it.
      return out + (op == Op::kIn ? " in (" : " notin (") + join(values, ",") + ")";
  }
  return out;
}

// The grammar of labels.Parse, recursive descent without recursion (a requirement has a
// fixed shape), over tokens lexed on demand.
class LabelSelector::Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<std::vector<Requirement>> parse() {
    // Go's lexer reads a NUL byte as the end of the input, so "a=b \0,c=d" would mean "a=b"
    // there: refused rather than silently dropping requirements.
    if (text_.find('\0') != std::string_view::npos) return fail("contains a NUL byte");
    std::vector<Requirement> out;
    Token first = next();
    if (first.kind == Kind::kEnd) return out;  // empty or white space: everything
    while (true) {
      const std::size_t start = first.offset;
      auto requirement = parse_requirement(first, out.empty() ? "" : " after ','");
      if (!requirement) return requirement.error();
      out.push_back(std::move(requirement).value());
      const std::string_view written = text_.substr(start, consumed_ - start);
      const Token separator = next();
      if (separator.kind == Kind::kEnd) return out;
      if (separator.kind != Kind::kComma) {
        return fail("found " + describe(separator) + " after " + quote(written) +
                    ", expected ',' or end of selector");
      }
      first = next();
    }
  }

 private:
  enum class Kind {
    kEnd,
    kWord,  // a key or value
    kIn,
    kNotIn,
    kComma,
    kOpen,
    kClose,
    kBang,
    kEquals,
    kDoubleEquals,
    kNotEquals,
    kGreater,
    kLess,
  };
  struct Token {
    Kind kind = Kind::kEnd;
    std::string_view text;
    std::size_t offset = 0;
  };

  // White space and the characters that end a word, exactly as Kubernetes' lexer has them:
  // "a=b" and "a in(x)" need no spaces, and anything else is part of a word (and later
  // refused by key or value validation).
  static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
  static bool is_special(char c) {
    return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<';
  }
  // "in" and "notin" are operators only right after a key; elsewhere they are plain words,
  // so "in in (in, notin)" is a valid selector.
  static bool is_word(Kind kind) {
    return kind == Kind::kWord || kind == Kind::kIn || kind == Kind::kNotIn;
  }
  static bool is_comparison(Kind kind) {
    return kind == Kind::kEquals || kind == Kind::kDoubleEquals || kind == Kind::kNotEquals ||
           kind == Kind::kGreater || kind == Kind::kLess;
  }

  Token lex() {
    while (pos_ < text_.size() && is_space(text_[pos_])) ++pos_;
    const std::size_t start = pos_;
    if (pos_ == text_.size()) return {Kind::kEnd, {}, start};
    const char c = text_[pos_];
    if (is_special(c)) {
      // The longest operator wins: "!=" and "==" are single tokens, "!==" is "!=" then "=".
      if ((c == '=' || c == '!') && pos_ + 1 < text_.size() && text_[pos_ + 1] == '=') {
        pos_ += 2;
        return {c == '=' ? Kind::kDoubleEquals : Kind::kNotEquals, text_.substr(start, 2),
                start};
      }
      ++pos_;
      Kind kind = Kind::kLess;
      switch (c) {
        case '=': kind = Kind::kEquals; break;
        case '!': kind = Kind::kBang; break;
        case '(': kind = Kind::kOpen; break;
        case ')': kind = Kind::kClose; break;
        case ',': kind = Kind::kComma; break;
        case '>': kind = Kind::kGreater; break;
        default: break;
      }
      return {kind, text_.substr(start, 1), start};
    }
    while (pos_ < text_.size() && !is_space(text_[pos_]) && !is_special(text_[pos_])) ++pos_;
    const std::string_view word = text_.substr(start, pos_ - start);
    const Kind kind = word == "in" ? Kind::kIn : word == "notin" ? Kind::kNotIn : Kind::kWord;
    return {kind, word, start};
  }

  Token peek() {
    if (!peeked_) peeked_ = lex();
    return *peeked_;
  }
  Token next() {
    const Token token = peek();
    peeked_.reset();
    if (token.kind != Kind::kEnd) consumed_ = token.offset + token.text.size();
    return token;
  }

  static std::string describe(const Token& token) {
    if (token.kind == Kind::kEnd) return "end of selector";
    if (is_word(token.kind)) return quote(token.text);
    return "'" + std::string(token.text) + "'";
  }

  Error fail(const std::string& why) const {
    return invalid("invalid label selector " + quote(text_) + ": " + why);
  }
  Result<Requirement> make(std::string_view key, Op op, std::vector<std::string> values) const {
    auto r = make_requirement(std::string(key), op, std::move(values));
    if (!r) return fail(r.error().message());
    return r;
  }

  // One requirement, starting at `first` (already consumed). `where` places it in messages.
  Result<Requirement> parse_requirement(const Token& first, const std::string& where) {
    Token key = first;
    const bool negated = first.kind == Kind::kBang;
    if (negated) {
      key = next();
      if (!is_word(key.kind)) return fail("expected a label key after '!', found " + describe(key));
    } else if (!is_word(first.kind)) {
      if (is_comparison(first.kind)) return fail("missing label key before " + describe(first));
      return fail("expected a requirement" + where + ", found " + describe(first));
    }
    // The key is checked before what follows it, as Kubernetes does, so a bad key is what
    // the message names even if the rest is wrong too.
    if (const std::string problem = label_key_problem(key.text); !problem.empty()) {
      return fail("invalid label key " + quote(key.text) + ": " + problem);
    }

    const Token op = peek();
    if (op.kind == Kind::kEnd || op.kind == Kind::kComma) {
      return make(key.text, negated ? Op::kDoesNotExist : Op::kExists, {});
    }
    if (negated) {
      return fail("found " + describe(op) + " after " +
                  quote(text_.substr(first.offset, consumed_ - first.offset)) +
                  ", expected ',' or end of selector ('!key' takes no operator or value)");
    }
    next();
    if (is_comparison(op.kind)) {
      const Token value = peek();
      // "a=" compares with the empty value, as in Kubernetes.
      std::string_view text;
      if (is_word(value.kind)) {
        text = next().text;
      } else if (value.kind != Kind::kEnd && value.kind != Kind::kComma) {
        return fail("found " + describe(value) + " after " +
                    quote(text_.substr(first.offset, consumed_ - first.offset)) +
                    ", expected a value, ',' or end of selector");
      }
      Op which = Op::kLessThan;
      switch (op.kind) {
        case Kind::kEquals: which = Op::kEquals; break;
        case Kind::kDoubleEquals: which = Op::kDoubleEquals; break;
        case Kind::kNotEquals: which = Op::kNotEquals; break;
        case Kind::kGreater: which = Op::kGreaterThan; break;
        default: break;
      }
      return make(key.text, which, {std::string(text)});
    }
    if (op.kind == Kind::kIn || op.kind == Kind::kNotIn) {
      auto values = parse_value_list(op);
      if (!values) return values.error();
      return make(key.text, op.kind == Kind::kIn ? Op::kIn : Op::kNotIn,
                  std::move(values).value());
    }
    return fail("found " + describe(op) + " after label key " + quote(key.text) +
                ", expected an operator (=, ==, !=, in, notin, >, <), ',' or end of selector");
  }

  // "(v1, v2, ...)" after 'in' or 'notin'. As in Kubernetes, an element left empty is the
  // empty value: "()" and "(,)" are {""}, "(x,)" and "(,x)" are {"", x}. That is also how
  // Kubernetes prints `in [""]` ("a in ()"), which must parse back.
  Result<std::vector<std::string>> parse_value_list(const Token& op) {
    const Token open = next();
    if (open.kind != Kind::kOpen) {
      return fail("expected '(' after '" + std::string(op.text) + "', found " + describe(open));
    }
    std::vector<std::string> values;
    bool want_value = true;  // nothing since '(' or the last ','
    while (true) {
      const Token token = next();
      if (is_word(token.kind)) {
        if (!want_value) {
          return fail("found " + describe(token) + " in a value list, expected ',' or ')'");
        }
        values.emplace_back(token.text);
        want_value = false;
      } else if (token.kind == Kind::kComma || token.kind == Kind::kClose) {
        if (want_value) values.emplace_back();
        if (token.kind == Kind::kClose) return values;
        want_value = true;
      } else if (token.kind == Kind::kEnd) {
        return fail("missing ')'");
      } else {
        return fail("found " + describe(token) + " in a value list, expected a value, ',' or ')'");
      }
    }
  }

  std::string_view text_;
  std::size_t pos_ = 0;       // where lexing continues
  std::size_t consumed_ = 0;  // end of the last token next() returned
  std::optional<Token> peeked_;
};

Result<LabelSelector> LabelSelector::parse(std::string_view text) {
  auto requirements = Parser(text).parse();
  if (!requirements) return requirements.error();
  return LabelSelector(std::move(requirements).value());
}

Result<LabelSelector> LabelSelector::from_json(const json& selector) {
  const auto fail = [](const std::string& why) {
    return invalid("invalid label selector: " + why);
  };
  const auto found = [](const json& j) { return std::string(", found ") + j.type_name(); };
  if (selector.is_null()) return everything();
  if (!selector.is_object()) return fail("expected a JSON object or null" + found(selector));
  for (const auto& item : selector.items()) {
    if (item.key() != "matchLabels" && item.key() != "matchExpressions") {
      return fail("unknown field " + quote(item.key()) +
                  " (a label selector has matchLabels and matchExpressions)");
    }
  }

  std::vector<Requirement> requirements;
  // null members are absent ones, as Go decodes them.
  if (const auto labels = selector.find("matchLabels");
      labels != selector.end() && !labels->is_null()) {
    if (!labels->is_object()) {
      return fail("matchLabels must be an object of strings" + found(*labels));
    }
    for (const auto& item : labels->items()) {
      if (!item.value().is_string()) {
        return fail("matchLabels[" + quote(item.key()) + "] must be a string" +
                    found(item.value()));
      }
      auto r = make_requirement(item.key(), Op::kEquals, {item.value().get<std::string>()});
      if (!r) return fail("matchLabels: " + r.error().message());
      requirements.push_back(std::move(r).value());
    }
  }

  const auto expressions = selector.find("matchExpressions");
  if (expressions != selector.end() && !expressions->is_null()) {
    if (!expressions->is_array()) {
      return fail("matchExpressions must be an array" + found(*expressions));
    }
    for (std::size_t i = 0; i < expressions->size(); ++i) {
      const json& expr = (*expressions)[i];
      const std::string where = "matchExpressions[" + std::to_string(i) + "]";
      if (!expr.is_object()) return fail(where + " must be an object" + found(expr));
      for (const auto& item : expr.items()) {
        if (item.key() != "key" && item.key() != "operator" && item.key() != "values") {
          return fail(where + ": unknown field " + quote(item.key()) +
                      " (an expression has key, operator and values)");
        }
      }
      const auto key = expr.find("key");
      if (key == expr.end() || key->is_null()) return fail(where + ".key is required");
      if (!key->is_string()) return fail(where + ".key must be a string" + found(*key));
      const auto op_name = expr.find("operator");
      if (op_name == expr.end() || op_name->is_null()) return fail(where + ".operator is required");
      if (!op_name->is_string()) {
        return fail(where + ".operator must be a string" + found(*op_name));
      }
      const std::string& name = op_name->get_ref<const std::string&>();
      // Case matters, as in Kubernetes: "in" is not "In".
      Op op = Op::kExists;
      if (name == "In") {
        op = Op::kIn;
      } else if (name == "NotIn") {
        op = Op::kNotIn;
      } else if (name == "Exists") {
        op = Op::kExists;
      } else if (name == "DoesNotExist") {
        op = Op::kDoesNotExist;
      } else {
        return fail(where + ".operator " + quote(name) +
                    " is not one of In, NotIn, Exists, DoesNotExist");
      }

      std::vector<std::string> values;
      if (const auto list = expr.find("values"); list != expr.end() && !list->is_null()) {
        if (!list->is_array()) {
          return fail(where + ".values must be an array of strings" + found(*list));
        }
        for (std::size_t j = 0; j < list->size(); ++j) {
          const json& value = (*list)[j];
          if (!value.is_string()) {
            return fail(where + ".values[" + std::to_string(j) + "] must be a string" +
                        found(value));
          }
          values.push_back(value.get<std::string>());
        }
      }
      const bool set_based = op == Op::kIn || op == Op::kNotIn;
      if (set_based && values.empty()) {
        return fail(where + ".values must be non-empty when operator is " + name);
      }
      if (!set_based && !values.empty()) {
        return fail(where + ".values must be empty when operator is " + name);
      }
      auto r = make_requirement(key->get<std::string>(), op, std::move(values));
      if (!r) return fail(where + ": " + r.error().message());
      requirements.push_back(std::move(r).value());
    }
  }
  return LabelSelector(std::move(requirements));
}

bool LabelSelector::matches(const std::map<std::string, std::string>& labels) const {
  for (const auto& r : requirements_) {
    const auto it = labels.find(r.key);
    if (!r.matches(it == labels.end() ? nullptr : &it->second)) return false;
  }
  return true;
}

bool LabelSelector::matches_json(const json& labels) const {
  if (requirements_.empty()) return true;
  if (labels.is_null()) {
    return std::all_of(requirements_.begin(), requirements_.end(),
                       [](const Requirement& r) { return r.matches(nullptr); });
  }
  if (!labels.is_object()) return false;
  for (const auto& item : labels.items()) {
    if (!item.value().is_string()) return false;
  }
  for (const auto& r : requirements_) {
    const auto it = labels.find(r.key);
    if (!r.matches(it == labels.end() ? nullptr : &it->get_ref<const std::string&>())) {
      return false;
    }
  }
  return true;
}

std::string LabelSelector::to_string() const {
  std::string out;
  for (const auto& r : requirements_) {
    if (!out.empty()) out += ',';
    out += r.to_string();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// FieldSelector

namespace {

// fields.UnescapeValue: "\\", "\," and "\=" stand for the character; any other escape, a
// trailing '\' or a bare '=' is an error.
Result<std::string> unescape_value(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c == '\\') {
      if (i + 1 == raw.size()) {
        return invalid("value " + quote(raw) + " ends in a lone '\\'");
      }
      const char escaped = raw[++i];
      if (escaped != '\\' && escaped != ',' && escaped != '=') {
        return invalid("invalid escape sequence " + quote(raw.substr(i - 1, 2)) + " in value " +
                       quote(raw) + " (a '\\' may only precede '\\', ',' or '=')");
      }
      out += escaped;
    } else if (c == ',' || c == '=') {
      return invalid("unescaped '" + std::string(1, c) + "' in value " + quote(raw) +
                     " (write \\" + std::string(1, c) + " for a literal '" +
                     std::string(1, c) + "')");
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '\\' || c == ',' || c == '=') out += '\\';
    out += c;
  }
  return out;
}

std::vector<std::string> split_path(std::string_view field) {
  std::vector<std::string> path;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = field.find('.', start);
    if (dot == std::string_view::npos) {
      path.emplace_back(field.substr(start));
      return path;
    }
    path.emplace_back(field.substr(start, dot - start));
    start = dot + 1;
  }
}

// The text a field compares as, the way Kubernetes' field sets render their values.
std::string field_text(const json& object, const std::vector<std::string>& path) {
  const json* node = &object;
  for (const auto& segment : path) {
    if (!node->is_object()) return "";
    const auto it = node->find(segment);
    if (it == node->end()) return "";
    node = &*it;
  }
  switch (node->type()) {
    case json::value_t::string:
      return node->get<std::string>();
    case json::value_t::boolean:
      return node->get<bool>() ? "true" : "false";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return node->dump();
    default:
      return "";
  }
}

}  // namespace

Result<FieldSelector> FieldSelector::parse(std::string_view text,
                                           const std::vector<std::string>& supported) {
  const auto fail = [&](const std::string& why) {
    return invalid("invalid field selector " + quote(text) + ": " + why);
  };
  // Terms end at commas that no backslash escapes.
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == ',') {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(text.substr(start));
  // Kubernetes sorts the terms' text before anything else; that order is its String().
  std::sort(parts.begin(), parts.end());

  FieldSelector selector;
  for (const std::string_view part : parts) {
    if (part.empty()) continue;
    // The first operator from the left splits the term ("!=" and "==" before "="): a field
    // name has no escapes.
    std::size_t at = std::string_view::npos;
    std::size_t op_length = 0;
    bool negated = false;
    for (std::size_t i = 0; i < part.size() && at == std::string_view::npos; ++i) {
      const std::string_view rest = part.substr(i);
      if (rest.starts_with("!=") || rest.starts_with("==")) {
        at = i;
        op_length = 2;
        negated = rest.front() == '!';
      } else if (rest.front() == '=') {
        at = i;
        op_length = 1;
      }
    }
    if (at == std::string_view::npos) {
      return fail("term " + quote(part) + " is not <field>=<value>, <field>==<value> or " +
                  "<field>!=<value>");
    }
    if (at == 0) return fail("term " + quote(part) + " has no field name");
    auto value = unescape_value(part.substr(at + op_length));
    if (!value) return fail(value.error().message());
    const std::string_view field = part.substr(0, at);
    selector.terms_.push_back(
        Term{std::string(field), split_path(field), negated, std::move(value).value()});
  }
  // Only once all terms parse, as the API server converts field labels after parsing.
  for (const auto& term : selector.terms_) {
    if (std::find(supported.begin(), supported.end(), term.field) == supported.end()) {
      return invalid("field label not supported: " + shown(term.field, false));
    }
  }
  return selector;
}

bool FieldSelector::matches(const json& object) const {
  for (const auto& term : terms_) {
    const bool equal = field_text(object, term.path) == term.value;
    if (equal == term.negated) return false;
  }
  return true;
}

std::string FieldSelector::to_string() const {
  std::string out;
  for (const auto& term : terms_) {
    if (!out.empty()) out += ',';
    out += term.field + (term.negated ? "!=" : "=") + escape_value(term.value);
  }
  return out;
}

}  // namespace cw::kube
