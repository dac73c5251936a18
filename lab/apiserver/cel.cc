#include "lab/apiserver/cel.h"

#include <re2/re2.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

namespace cw::lab::cel {

// ---- the syntax tree

struct Program::Node {
  enum class Kind {
    kLiteral,
    kIdent,
    kSelect,  // args[0].name
    kHas,     // has(args[0].name)
    kIndex,   // args[0][args[1]]
    kCall,    // name(args...), or args[0].name(args[1..]) when has_target
    kList,
    kMap,     // args: key, value, key, value, ...
    kNot,
    kNeg,
    kBinary,  // args[0] name args[1]: * / % + - < <= > >= == != in
    kAnd,
    kOr,
    kTernary,
    kComprehension,  // args[0].name(iter_var, args[1] [, args[2]])
  };
  Kind kind = Kind::kLiteral;
  json value;
  std::string name;
  std::string iter_var;
  bool has_target = false;
  std::vector<std::shared_ptr<const Node>> args;
};

namespace {

using Node = Program::Node;
using NodePtr = std::shared_ptr<const Node>;

Error runtime_error(std::string message) { return Error(ErrorCode::kInvalidArgument, std::move(message)); }

// ---- lexing

struct Token {
  enum class Kind { kEnd, kInt, kDouble, kString, kIdent, kPunct };
  Kind kind = Kind::kEnd;
  std::string text;  // identifier, punctuation, or a string literal's decoded value
  json value;        // a number literal's value
  std::size_t column = 0;
};

class Lexer {
 public:
  explicit Lexer(std::string_view src) : src_(src) {}

  Result<std::vector<Token>> tokens() {
    std::vector<Token> out;
    while (true) {
      skip_space();
      Token t;
      t.column = pos_ + 1;
      if (pos_ >= src_.size()) {
        out.push_back(t);
        return out;
      }
      const char c = src_[pos_];
      if (std::isdigit(static_cast<unsigned char>(c)) ||
          (c == '.' && pos_ + 1 < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos_ + 1])))) {
        auto r = number(t);
        if (!r) return r.error();
      } else if (c == '\'' || c == '"' || ((c == 'r' || c == 'R') && pos_ + 1 < src_.size() &&
                                           (src_[pos_ + 1] == '\'' || src_[pos_ + 1] == '"'))) {
        auto r = string_literal(t);
        if (!r) return r.error();
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        std::size_t end = pos_;
        while (end < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[end])) || src_[end] == '_')) ++end;
        t.kind = Token::Kind::kIdent;
        t.text = std::string(src_.substr(pos_, end - pos_));
        pos_ = end;
      } else {
        static const char* kPuncts[] = {"==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/",
                                        "%",  "?",  ":",  ".",  ",",  "(",  ")", "[", "]", "{", "}"};
        bool found = false;
        for (const char* p : kPuncts) {
          const std::string_view pv(p);
          if (src_.substr(pos_, pv.size()) == pv) {
            t.kind = Token::Kind::kPunct;
            t.text = std::string(pv);
            pos_ += pv.size();
            found = true;
            break;
          }
        }
        if (!found) return syntax_error(t.column, "token recognition error at: '" + std::string(1, c) + "'");
      }
      out.push_back(std::move(t));
    }
  }

  static Error syntax_error(std::size_t column, const std::string& what) {
    return Error(ErrorCode::kInvalidArgument,
                 "ERROR: <input>:1:" + std::to_string(column) + ": Syntax error: " + what);
  }

 private:
  void skip_space() {
    while (pos_ < src_.size()) {
      const char c = src_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else if (c == '/' && pos_ + 1 < src_.size() && src_[pos_ + 1] == '/') {
        while (pos_ < src_.size() && src_[pos_] != '\n') ++pos_;
      } else {
        return;
      }
    }
  }

  Result<void> number(Token& t) {
    const std::size_t start = pos_;
    if (src_.substr(pos_, 2) == "0x" || src_.substr(pos_, 2) == "0X") {
      pos_ += 2;
      const std::size_t digits = pos_;
      while (pos_ < src_.size() && std::isxdigit(static_cast<unsigned char>(src_[pos_]))) ++pos_;
      if (pos_ == digits) return syntax_error(t.column, "malformed hexadecimal literal");
      t.kind = Token::Kind::kInt;
      try {
        t.value = static_cast<std::int64_t>(std::stoull(std::string(src_.substr(digits, pos_ - digits)), nullptr, 16));
      } catch (const std::exception&) {
        return syntax_error(t.column, "integer literal out of range");
      }
      if (pos_ < src_.size() && (src_[pos_] == 'u' || src_[pos_] == 'U')) ++pos_;
      return ok_result();
    }
    bool is_double = false;
    while (pos_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos_]))) ++pos_;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' && std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
      is_double = true;
      ++pos_;
      while (pos_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos_]))) ++pos_;
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      std::size_t e = pos_ + 1;
      if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
      if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
        is_double = true;
        pos_ = e;
        while (pos_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos_]))) ++pos_;
      }
    }
    const std::string text(src_.substr(start, pos_ - start));
    try {
      if (is_double) {
        t.kind = Token::Kind::kDouble;
        t.value = std::stod(text);
      } else {
        t.kind = Token::Kind::kInt;
        t.value = static_cast<std::int64_t>(std::stoll(text));
        if (pos_ < src_.size() && (src_[pos_] == 'u' || src_[pos_] == 'U')) ++pos_;
      }
    } catch (const std::exception&) {
      return syntax_error(t.column, "number literal out of range: " + text);
    }
    return ok_result();
  }

  static void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  Result<void> string_literal(Token& t) {
    bool raw = false;
    if (src_[pos_] == 'r' || src_[pos_] == 'R') {
      raw = true;
      ++pos_;
    }
    const char q = src_[pos_];
    const bool triple = src_.substr(pos_, 3) == std::string(3, q);
    const std::string closing = triple ? std::string(3, q) : std::string(1, q);
    pos_ += closing.size();
    std::string out;
    while (true) {
      if (pos_ >= src_.size() || (!triple && src_[pos_] == '\n')) {
        return syntax_error(t.column, "unterminated string literal");
      }
      if (src_.substr(pos_, closing.size()) == closing) {
        pos_ += closing.size();
        break;
      }
      const char c = src_[pos_++];
      if (c != '\\' || raw) {
        out.push_back(c);
        continue;
      }
      if (pos_ >= src_.size()) return syntax_error(t.column, "unterminated string literal");
      const char e = src_[pos_++];
      switch (e) {
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'v': out.push_back('\v'); break;
        case '\\': case '\'': case '"': case '`': case '?': out.push_back(e); break;
        case 'x': case 'u': case 'U': {
          const std::size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (pos_ + n > src_.size()) return syntax_error(t.column, "malformed escape in string literal");
          std::uint32_t cp = 0;
          for (std::size_t i = 0; i < n; ++i) {
            const char h = src_[pos_ + i];
            if (!std::isxdigit(static_cast<unsigned char>(h))) {
              return syntax_error(t.column, "malformed escape in string literal");
            }
            cp = cp * 16 + static_cast<std::uint32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
          }
          pos_ += n;
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return syntax_error(t.column, "invalid code point in string literal");
          }
          append_utf8(out, cp);
          break;
        }
        default:
          return syntax_error(t.column, std::string("invalid escape sequence \\") + e);
      }
    }
    t.kind = Token::Kind::kString;
    t.text = std::move(out);
    return ok_result();
  }

  std::string_view src_;
  std::size_t pos_ = 0;
};

// ---- parsing

const std::set<std::string> kGlobalFunctions = {"size", "int", "string", "double"};
const std::map<std::string, std::pair<int, int>> kMethods = {
    {"size", {0, 0}},      {"startsWith", {1, 1}}, {"endsWith", {1, 1}}, {"contains", {1, 1}},
    {"matches", {1, 1}},   {"lowerAscii", {0, 0}}, {"upperAscii", {0, 0}}, {"join", {0, 1}},
    {"split", {1, 1}},
};
const std::set<std::string> kMacros = {"all", "exists", "exists_one", "map", "filter"};
constexpr int kMaxDepth = 100;

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::set<std::string>& declared)
      : tokens_(std::move(tokens)), declared_(declared) {}

  Result<NodePtr> parse() {
    auto e = expr();
    if (!e) return e.error();
    if (peek().kind != Token::Kind::kEnd) return unexpected();
    return e;
  }

 private:
  const Token& peek() const { return tokens_[pos_]; }
  bool at(const char* punct) const {
    return peek().kind == Token::Kind::kPunct && peek().text == punct;
  }
  bool accept(const char* punct) {
    if (!at(punct)) return false;
    ++pos_;
    return true;
  }
  Error unexpected() const {
    const Token& t = peek();
    if (t.kind == Token::Kind::kEnd) return Lexer::syntax_error(t.column, "unexpected end of input");
    const std::string shown = t.kind == Token::Kind::kString ? "'" + t.text + "'"
                              : t.kind == Token::Kind::kInt || t.kind == Token::Kind::kDouble ? t.value.dump()
                                                                                               : t.text;
    return Lexer::syntax_error(t.column, "mismatched input '" + shown + "'");
  }
  Result<void> expect(const char* punct) {
    if (accept(punct)) return ok_result();
    return unexpected();
  }

  static NodePtr make(Node n) { return std::make_shared<const Node>(std::move(n)); }

  Result<NodePtr> expr() {
    if (++depth_ > kMaxDepth) return Lexer::syntax_error(peek().column, "expression nested too deeply");
    auto cond = binary_level(0);
    if (!cond) return cond;
    if (accept("?")) {
      auto then = binary_level(0);
      if (!then) return then;
      if (auto r = expect(":"); !r) return r.error();
      auto otherwise = expr();
      if (!otherwise) return otherwise;
      Node n;
      n.kind = Node::Kind::kTernary;
      n.args = {*cond, *then, *otherwise};
      --depth_;
      return make(std::move(n));
    }
    --depth_;
    return cond;
  }

  // Levels: 0 ||, 1 &&, 2 relations, 3 + -, 4 * / %.
  Result<NodePtr> binary_level(int level) {
    if (level == 5) return unary();
    auto left = binary_level(level + 1);
    if (!left) return left;
    static const std::vector<std::vector<std::string>> kOps = {
        {"||"}, {"&&"}, {"==", "!=", "<", "<=", ">", ">=", "in"}, {"+", "-"}, {"*", "/", "%"}};
    while (true) {
      std::string op;
      for (const auto& candidate : kOps[static_cast<std::size_t>(level)]) {
        const bool match = candidate == "in" ? (peek().kind == Token::Kind::kIdent && peek().text == "in")
                                             : at(candidate.c_str());
        if (match) {
          op = candidate;
          break;
        }
      }
      if (op.empty()) return left;
      ++pos_;
      auto right = binary_level(level + 1);
      if (!right) return right;
      Node n;
      n.kind = op == "||" ? Node::Kind::kOr : op == "&&" ? Node::Kind::kAnd : Node::Kind::kBinary;
      n.name = op;
      n.args = {*left, *right};
      left = make(std::move(n));
    }
  }

  Result<NodePtr> unary() {
    if (at("!") || at("-")) {
      const bool negate = at("-");
      ++pos_;
      // A negative number literal is one literal, so that -9223372036854775808 fits.
      if (negate && (peek().kind == Token::Kind::kInt || peek().kind == Token::Kind::kDouble) &&
          !(tokens_[pos_ + 1].kind == Token::Kind::kPunct &&
            (tokens_[pos_ + 1].text == "." || tokens_[pos_ + 1].text == "["))) {
        Node n;
        n.kind = Node::Kind::kLiteral;
        n.value = peek().kind == Token::Kind::kInt ? json(-peek().value.get<std::int64_t>())
                                                   : json(-peek().value.get<double>());
        ++pos_;
        return make(std::move(n));
      }
      auto operand = unary();
      if (!operand) return operand;
      Node n;
      n.kind = negate ? Node::Kind::kNeg : Node::Kind::kNot;
      n.args = {*operand};
      return make(std::move(n));
    }
    return member();
  }

  Result<std::vector<NodePtr>> arguments(const char* closing) {
    std::vector<NodePtr> args;
    if (accept(closing)) return args;
    while (true) {
      auto a = expr();
      if (!a) return a.error();
      args.push_back(*a);
      if (accept(closing)) return args;
      if (auto r = expect(","); !r) return r.error();
      if (accept(closing)) return args;  // a trailing comma
    }
  }

  Result<NodePtr> member() {
    auto target = primary();
    if (!target) return target;
    while (true) {
      if (accept(".")) {
        if (peek().kind != Token::Kind::kIdent) return unexpected();
        const Token field = peek();
        ++pos_;
        if (!accept("(")) {
          Node n;
          n.kind = Node::Kind::kSelect;
          n.name = field.text;
          n.args = {*target};
          target = make(std::move(n));
          continue;
        }
        if (kMacros.count(field.text)) {
          auto m = macro(field, *target);
          if (!m) return m;
          target = *m;
          continue;
        }
        auto args = arguments(")");
        if (!args) return args.error();
        auto known = kMethods.find(field.text);
        if (known == kMethods.end()) {
          return Error(ErrorCode::kInvalidArgument,
                       "ERROR: <input>:1:" + std::to_string(field.column) + ": undeclared reference to '" +
                           field.text + "' (in container '')");
        }
        const int n_args = static_cast<int>(args->size());
        if (n_args < known->second.first || n_args > known->second.second) {
          return Error(ErrorCode::kInvalidArgument, "ERROR: <input>:1:" + std::to_string(field.column) +
                                                        ": found no matching overload for '" + field.text +
                                                        "' with " + std::to_string(n_args) + " arguments");
        }
        Node n;
        n.kind = Node::Kind::kCall;
        n.name = field.text;
        n.has_target = true;
        n.args.push_back(*target);
        n.args.insert(n.args.end(), args->begin(), args->end());
        target = make(std::move(n));
      } else if (accept("[")) {
        auto index = expr();
        if (!index) return index;
        if (auto r = expect("]"); !r) return r.error();
        Node n;
        n.kind = Node::Kind::kIndex;
        n.args = {*target, *index};
        target = make(std::move(n));
      } else {
        return target;
      }
    }
  }

  Result<NodePtr> macro(const Token& name, NodePtr target) {
    if (peek().kind != Token::Kind::kIdent) {
      return Lexer::syntax_error(peek().column, "argument must be a simple name");
    }
    const std::string var = peek().text;
    ++pos_;
    if (auto r = expect(","); !r) return r.error();
    scopes_.push_back(var);
    auto args = arguments(")");
    scopes_.pop_back();
    if (!args) return args.error();
    const std::size_t want_max = name.text == "map" ? 2 : 1;
    if (args->empty() || args->size() > want_max) {
      return Error(ErrorCode::kInvalidArgument, "ERROR: <input>:1:" + std::to_string(name.column) +
                                                    ": found no matching overload for '" + name.text + "'");
    }
    Node n;
    n.kind = Node::Kind::kComprehension;
    n.name = name.text;
    n.iter_var = var;
    n.args.push_back(std::move(target));
    n.args.insert(n.args.end(), args->begin(), args->end());
    return make(std::move(n));
  }

  Result<NodePtr> primary() {
    const Token t = peek();
    Node n;
    switch (t.kind) {
      case Token::Kind::kInt:
      case Token::Kind::kDouble:
        ++pos_;
        n.value = t.value;
        return make(std::move(n));
      case Token::Kind::kString:
        ++pos_;
        n.value = t.text;
        return make(std::move(n));
      case Token::Kind::kEnd:
        return unexpected();
      case Token::Kind::kIdent:
        break;
      case Token::Kind::kPunct:
        if (accept("(")) {
          auto e = expr();
          if (!e) return e;
          if (auto r = expect(")"); !r) return r.error();
          return e;
        }
        if (accept("[")) {
          auto items = arguments("]");
          if (!items) return items.error();
          n.kind = Node::Kind::kList;
          n.args = std::move(*items);
          return make(std::move(n));
        }
        if (accept("{")) return map_literal();
        if (at(".") && tokens_[pos_ + 1].kind == Token::Kind::kIdent) {
          ++pos_;  // a leading dot names the root scope: the same names here
          return primary();
        }
        return unexpected();
    }
    ++pos_;
    if (t.text == "true" || t.text == "false") {
      n.value = t.text == "true";
      return make(std::move(n));
    }
    if (t.text == "null") {
      n.value = nullptr;
      return make(std::move(n));
    }
    if (accept("(")) {
      if (t.text == "has") {
        auto arg = expr();
        if (!arg) return arg;
        if (auto r = expect(")"); !r) return r.error();
        if ((*arg)->kind != Node::Kind::kSelect) {
          return Lexer::syntax_error(t.column, "invalid argument to has() macro");
        }
        n.kind = Node::Kind::kHas;
        n.name = (*arg)->name;
        n.args = {(*arg)->args[0]};
        return make(std::move(n));
      }
      auto args = arguments(")");
      if (!args) return args.error();
      if (!kGlobalFunctions.count(t.text)) {
        return Error(ErrorCode::kInvalidArgument, "ERROR: <input>:1:" + std::to_string(t.column) +
                                                      ": undeclared reference to '" + t.text + "' (in container '')");
      }
      if (args->size() != 1) {
        return Error(ErrorCode::kInvalidArgument, "ERROR: <input>:1:" + std::to_string(t.column) +
                                                      ": found no matching overload for '" + t.text + "'");
      }
      n.kind = Node::Kind::kCall;
      n.name = t.text;
      n.args = std::move(*args);
      return make(std::move(n));
    }
    if (!declared_.count(t.text) && std::find(scopes_.begin(), scopes_.end(), t.text) == scopes_.end()) {
      return Error(ErrorCode::kInvalidArgument, "ERROR: <input>:1:" + std::to_string(t.column) +
                                                    ": undeclared reference to '" + t.text + "' (in container '')");
    }
    n.kind = Node::Kind::kIdent;
    n.name = t.text;
    return make(std::move(n));
  }

  Result<NodePtr> map_literal() {
    Node n;
    n.kind = Node::Kind::kMap;
    while (!accept("}")) {
      auto key = expr();
      if (!key) return key;
      if (auto r = expect(":"); !r) return r.error();
      auto value = expr();
      if (!value) return value;
      n.args.push_back(*key);
      n.args.push_back(*value);
      if (accept("}")) break;
      if (auto r = expect(","); !r) return r.error();
    }
    return make(std::move(n));
  }

  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
  const std::set<std::string>& declared_;
  std::vector<std::string> scopes_;
  int depth_ = 0;
};

// ---- values

bool is_int(const json& v) { return v.is_number_integer(); }
bool is_double(const json& v) { return v.is_number_float(); }

std::int64_t as_int(const json& v) {
  if (v.is_number_unsigned()) return static_cast<std::int64_t>(v.get<std::uint64_t>());
  return v.get<std::int64_t>();
}

std::string type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null_type";
    case json::value_t::boolean: return "bool";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "int";
    case json::value_t::number_float: return "double";
    case json::value_t::string: return "string";
    case json::value_t::array: return "list";
    case json::value_t::object: return "map";
    default: return "unknown";
  }
}

Error no_overload(const std::string& op, const json& a) {
  return runtime_error("no such overload: " + op + "(" + type_name(a) + ")");
}
Error no_overload(const std::string& op, const json& a, const json& b) {
  return runtime_error("no such overload: " + type_name(a) + " " + op + " " + type_name(b));
}

std::size_t code_points(const std::string& s) {
  std::size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

Result<int> compare(const json& a, const json& b, const std::string& op) {
  if (a.is_number() && b.is_number()) {
    if (is_int(a) && is_int(b)) {
      const auto x = as_int(a), y = as_int(b);
      return x < y ? -1 : x > y ? 1 : 0;
    }
    const double x = a.get<double>(), y = b.get<double>();
    if (std::isnan(x) || std::isnan(y)) return runtime_error("NaN values cannot be ordered");
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_boolean() && b.is_boolean()) return static_cast<int>(a.get<bool>()) - static_cast<int>(b.get<bool>());
  return no_overload(op, a, b);
}

Result<json> arithmetic(const std::string& op, const json& a, const json& b) {
  if (is_int(a) && is_int(b)) {
    const std::int64_t x = as_int(a), y = as_int(b);
    std::int64_t out = 0;
    if (op == "+" && !__builtin_add_overflow(x, y, &out)) return json(out);
    if (op == "-" && !__builtin_sub_overflow(x, y, &out)) return json(out);
    if (op == "*" && !__builtin_mul_overflow(x, y, &out)) return json(out);
    if (op == "/" || op == "%") {
      if (y == 0) return runtime_error(op == "/" ? "division by zero" : "modulus by zero");
      if (x == std::numeric_limits<std::int64_t>::min() && y == -1) return runtime_error("integer overflow");
      return json(op == "/" ? x / y : x % y);
    }
    return runtime_error("integer overflow");
  }
  if (is_double(a) && is_double(b) && op != "%") {
    const double x = a.get<double>(), y = b.get<double>();
    return json(op == "+" ? x + y : op == "-" ? x - y : op == "*" ? x * y : x / y);
  }
  if (op == "+" && a.is_string() && b.is_string()) return json(a.get<std::string>() + b.get<std::string>());
  if (op == "+" && a.is_array() && b.is_array()) {
    json out = a;
    for (const auto& v : b) out.push_back(v);
    return out;
  }
  return no_overload(op, a, b);
}

Result<json> convert(const std::string& fn, const json& v) {
  if (fn == "size") {
    if (v.is_string()) return json(static_cast<std::int64_t>(code_points(v.get<std::string>())));
    if (v.is_array() || v.is_object()) return json(static_cast<std::int64_t>(v.size()));
    return no_overload(fn, v);
  }
  if (fn == "string") {
    if (v.is_string()) return v;
    if (is_int(v)) return json(std::to_string(as_int(v)));
    if (v.is_boolean()) return json(v.get<bool>() ? "true" : "false");
    if (is_double(v)) return json(v.dump());
    return no_overload(fn, v);
  }
  if (fn == "int") {
    if (is_int(v)) return json(as_int(v));
    if (is_double(v)) {
      const double d = v.get<double>();
      if (!(d > -9.3e18 && d < 9.3e18)) return runtime_error("double is out of range of int");
      return json(static_cast<std::int64_t>(d));
    }
    if (v.is_string()) {
      try {
        std::size_t used = 0;
        const auto n = std::stoll(v.get<std::string>(), &used);
        if (used == v.get<std::string>().size()) return json(static_cast<std::int64_t>(n));
      } catch (const std::exception&) {
      }
      return runtime_error("cannot convert string '" + v.get<std::string>() + "' to int");
    }
    return no_overload(fn, v);
  }
  if (fn == "double") {
    if (v.is_number()) return json(v.get<double>());
    if (v.is_string()) {
      try {
        std::size_t used = 0;
        const double d = std::stod(v.get<std::string>(), &used);
        if (used == v.get<std::string>().size()) return json(d);
      } catch (const std::exception&) {
      }
      return runtime_error("cannot convert string '" + v.get<std::string>() + "' to double");
    }
    return no_overload(fn, v);
  }
  return no_overload(fn, v);
}

Result<json> method(const std::string& fn, const json& self, const std::vector<json>& args) {
  if (fn == "size") return convert("size", self);
  if (fn == "join") {
    if (!self.is_array() || (!args.empty() && !args[0].is_string())) return no_overload(fn, self);
    std::string out;
    const std::string sep = args.empty() ? "" : args[0].get<std::string>();
    for (std::size_t i = 0; i < self.size(); ++i) {
      if (!self[i].is_string()) return no_overload(fn, self[i]);
      if (i) out += sep;
      out += self[i].get<std::string>();
    }
    return json(out);
  }
  if (!self.is_string()) return no_overload(fn, self);
  const std::string& s = self.get_ref<const std::string&>();
  if (fn == "lowerAscii" || fn == "upperAscii") {
    std::string out = s;
    for (char& c : out) {
      if (c >= 'A' && c <= 'Z' && fn == "lowerAscii") c = static_cast<char>(c - 'A' + 'a');
      if (c >= 'a' && c <= 'z' && fn == "upperAscii") c = static_cast<char>(c - 'a' + 'A');
    }
    return json(out);
  }
  if (args.empty() || !args[0].is_string()) return no_overload(fn, self, args.empty() ? json() : args[0]);
  const std::string& arg = args[0].get_ref<const std::string&>();
  if (fn == "startsWith") return json(s.rfind(arg, 0) == 0);
  if (fn == "endsWith") return json(s.size() >= arg.size() && s.compare(s.size() - arg.size(), arg.size(), arg) == 0);
  if (fn == "contains") return json(s.find(arg) != std::string::npos);
  if (fn == "matches") {
    RE2 re(arg, RE2::Quiet);
    if (!re.ok()) return runtime_error("invalid regular expression '" + arg + "': " + re.error());
    return json(RE2::PartialMatch(s, re));
  }
  if (fn == "split") {
    json out = json::array();
    if (arg.empty()) {
      for (std::size_t i = 0; i < s.size();) {
        std::size_t n = 1;
        while (i + n < s.size() && (static_cast<unsigned char>(s[i + n]) & 0xC0) == 0x80) ++n;
        out.push_back(s.substr(i, n));
        i += n;
      }
      return out;
    }
    std::size_t start = 0;
    while (true) {
      const auto at = s.find(arg, start);
      out.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
      if (at == std::string::npos) return out;
      start = at + arg.size();
    }
  }
  return no_overload(fn, self);
}

// ---- evaluation

class Evaluator {
 public:
  explicit Evaluator(const Activation& activation) : activation_(activation) {}

  Result<json> eval(const Node& n) {
    if (++steps_ > kMaxSteps) return runtime_error("operation cancelled: actual cost limit exceeded");
    switch (n.kind) {
      case Node::Kind::kLiteral:
        return n.value;
      case Node::Kind::kIdent:
        return ident(n.name);
      case Node::Kind::kSelect: {
        if (n.args[0]->kind == Node::Kind::kIdent && n.args[0]->name == "variables" && activation_.variable &&
            !in_scope("variables")) {
          return variable(n.name);
        }
        auto target = eval(*n.args[0]);
        if (!target) return target;
        if (!target->is_object()) {
          return runtime_error("type '" + type_name(*target) + "' does not support field selection");
        }
        auto it = target->find(n.name);
        if (it == target->end()) return runtime_error("no such key: " + n.name);
        return *it;
      }
      case Node::Kind::kHas: {
        auto target = eval(*n.args[0]);
        if (!target) return target;
        if (!target->is_object()) {
          return runtime_error("type '" + type_name(*target) + "' does not support field selection");
        }
        return json(target->contains(n.name));
      }
      case Node::Kind::kIndex: {
        auto target = eval(*n.args[0]);
        if (!target) return target;
        auto index = eval(*n.args[1]);
        if (!index) return index;
        if (target->is_array()) {
          if (!is_int(*index)) return no_overload("_[_]", *target, *index);
          const auto i = as_int(*index);
          if (i < 0 || i >= static_cast<std::int64_t>(target->size())) {
            return runtime_error("index out of bounds: " + std::to_string(i));
          }
          return (*target)[static_cast<std::size_t>(i)];
        }
        if (target->is_object()) {
          if (!index->is_string()) return runtime_error("no such key: " + index->dump());
          auto it = target->find(index->get<std::string>());
          if (it == target->end()) return runtime_error("no such key: " + index->get<std::string>());
          return *it;
        }
        return no_overload("_[_]", *target, *index);
      }
      case Node::Kind::kCall: {
        std::vector<json> args;
        for (const auto& a : n.args) {
          auto v = eval(*a);
          if (!v) return v;
          args.push_back(std::move(*v));
        }
        if (!n.has_target) return convert(n.name, args[0]);
        json self = std::move(args[0]);
        args.erase(args.begin());
        return method(n.name, self, args);
      }
      case Node::Kind::kList: {
        json out = json::array();
        for (const auto& a : n.args) {
          auto v = eval(*a);
          if (!v) return v;
          out.push_back(std::move(*v));
        }
        return out;
      }
      case Node::Kind::kMap: {
        json out = json::object();
        for (std::size_t i = 0; i + 1 < n.args.size(); i += 2) {
          auto k = eval(*n.args[i]);
          if (!k) return k;
          if (!k->is_string()) return runtime_error("unsupported key type: " + type_name(*k));
          if (out.contains(k->get<std::string>())) return runtime_error("repeated key: " + k->get<std::string>());
          auto v = eval(*n.args[i + 1]);
          if (!v) return v;
          out[k->get<std::string>()] = std::move(*v);
        }
        return out;
      }
      case Node::Kind::kNot: {
        auto v = eval(*n.args[0]);
        if (!v) return v;
        if (!v->is_boolean()) return no_overload("!_", *v);
        return json(!v->get<bool>());
      }
      case Node::Kind::kNeg: {
        auto v = eval(*n.args[0]);
        if (!v) return v;
        if (is_int(*v)) {
          if (as_int(*v) == std::numeric_limits<std::int64_t>::min()) return runtime_error("integer overflow");
          return json(-as_int(*v));
        }
        if (is_double(*v)) return json(-v->get<double>());
        return no_overload("-_", *v);
      }
      case Node::Kind::kAnd:
      case Node::Kind::kOr:
        return logical(n);
      case Node::Kind::kTernary: {
        auto cond = eval(*n.args[0]);
        if (!cond) return cond;
        if (!cond->is_boolean()) return no_overload("_?_:_", *cond);
        return eval(*n.args[cond->get<bool>() ? 1 : 2]);
      }
      case Node::Kind::kBinary:
        return binary(n);
      case Node::Kind::kComprehension:
        return comprehension(n);
    }
    return runtime_error("unknown expression");
  }

 private:
  bool in_scope(const std::string& name) const {
    for (const auto& [var, value] : scopes_) {
      if (var == name) return true;
    }
    return false;
  }

  Result<json> ident(const std::string& name) {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      if (it->first == name) return it->second;
    }
    auto it = activation_.values.find(name);
    if (it == activation_.values.end()) return runtime_error("no such attribute: " + name);
    return it->second;
  }

  Result<json> variable(const std::string& name) {
    if (auto it = variables_.find(name); it != variables_.end()) return it->second;
    auto v = activation_.variable(name);
    variables_.emplace(name, v);
    return v;
  }

  // CEL's && and ||: the result is decided by either side, an error only when neither does.
  Result<json> logical(const Node& n) {
    const bool is_and = n.kind == Node::Kind::kAnd;
    std::optional<Error> failed;
    for (const auto& side : n.args) {
      auto v = eval(*side);
      if (!v) {
        if (!failed) failed = v.error();
        continue;
      }
      if (!v->is_boolean()) {
        if (!failed) failed = no_overload(is_and ? "_&&_" : "_||_", *v);
        continue;
      }
      if (v->get<bool>() != is_and) return json(!is_and);
    }
    if (failed) return *failed;
    return json(is_and);
  }

  Result<json> binary(const Node& n) {
    auto a = eval(*n.args[0]);
    if (!a) return a;
    auto b = eval(*n.args[1]);
    if (!b) return b;
    const std::string& op = n.name;
    if (op == "==") return json(equal(*a, *b));
    if (op == "!=") return json(!equal(*a, *b));
    if (op == "in") {
      if (b->is_array()) {
        for (const auto& v : *b) {
          if (equal(*a, v)) return json(true);
        }
        return json(false);
      }
      if (b->is_object()) return json(a->is_string() && b->contains(a->get<std::string>()));
      return no_overload(op, *a, *b);
    }
    if (op == "<" || op == "<=" || op == ">" || op == ">=") {
      auto c = compare(*a, *b, op);
      if (!c) return c.error();
      return json(op == "<" ? *c < 0 : op == "<=" ? *c <= 0 : op == ">" ? *c > 0 : *c >= 0);
    }
    return arithmetic(op, *a, *b);
  }

  Result<json> comprehension(const Node& n) {
    auto range = eval(*n.args[0]);
    if (!range) return range;
    std::vector<json> items;
    if (range->is_array()) {
      items.assign(range->begin(), range->end());
    } else if (range->is_object()) {
      for (auto it = range->begin(); it != range->end(); ++it) items.emplace_back(it.key());
    } else {
      return no_overload(n.name, *range);
    }
    const std::string& m = n.name;
    json out = json::array();
    std::int64_t count = 0;
    std::optional<Error> failed;
    for (const auto& item : items) {
      scopes_.emplace_back(n.iter_var, item);
      auto v = eval(*n.args[1]);
      Result<json> transformed = json();
      if (m == "map" && v && n.args.size() == 3 && v->is_boolean() && v->get<bool>()) transformed = eval(*n.args[2]);
      scopes_.pop_back();
      if (m == "map" && n.args.size() == 2) {
        if (!v) return v;
        out.push_back(std::move(*v));
        continue;
      }
      if (!v) {
        if (m == "all" || m == "exists") {
          if (!failed) failed = v.error();
          continue;
        }
        return v;
      }
      if (!v->is_boolean()) return no_overload(m, *v);
      const bool b = v->get<bool>();
      if (m == "all" && !b) return json(false);
      if (m == "exists" && b) return json(true);
      if (m == "exists_one" && b) ++count;
      if (m == "filter" && b) out.push_back(item);
      if (m == "map" && b) {
        if (!transformed) return transformed;
        out.push_back(std::move(*transformed));
      }
    }
    if (m == "all" || m == "exists") {
      if (failed) return *failed;
      return json(m == "all");
    }
    if (m == "exists_one") return json(count == 1);
    return out;
  }

  const Activation& activation_;
  std::vector<std::pair<std::string, json>> scopes_;
  std::map<std::string, Result<json>> variables_;
  long steps_ = 0;
};

}  // namespace

bool equal(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) {
    if (is_int(a) && is_int(b)) return as_int(a) == as_int(b);
    return a.get<double>() == b.get<double>();
  }
  if (a.type() != b.type()) return false;
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (!equal(a[i], b[i])) return false;
    }
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto it = a.begin(); it != a.end(); ++it) {
      auto other = b.find(it.key());
      if (other == b.end() || !equal(*it, *other)) return false;
    }
    return true;
  }
  return a == b;
}

Result<Program> Program::compile(std::string_view source, const std::set<std::string>& declared) {
  auto tokens = Lexer(source).tokens();
  if (!tokens) return tokens.error();
  auto root = Parser(std::move(*tokens), declared).parse();
  if (!root) return root.error();
  Program p;
  p.root_ = std::move(*root);
  p.source_ = std::string(source);
  return p;
}

Result<json> Program::evaluate(const Activation& activation) const {
  Evaluator e(activation);
  return e.eval(*root_);
}

}  // namespace cw::lab::cel
