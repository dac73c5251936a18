// Go's renderings of decoded JSON values (lab/apiserver/gofmt.h): strconv, fmt and
// encoding/json as kube-apiserver's messages and table cells use them.
#include "lab/apiserver/gofmt.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string_view>

namespace cw::lab {

using nlohmann::json;

namespace gofmt {

bool is_int64(const json& v) {
  if (!v.is_number_integer()) return false;
  return !v.is_number_unsigned() ||
         v.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
}

}  // namespace gofmt

namespace {

bool is_int(const json& v) { return gofmt::is_int64(v); }

// Nothing here recurses deeper than this: a hostile document cannot exhaust the stack.
constexpr int kMaxDepth = 1000;

}  // namespace

namespace gofmt {
namespace {

// A finite non-zero double as Go's strconv sees it: value = 0.<digits> * 10^point, with the
// fewest digits that read back to the same double.
struct ShortestDigits {
  bool negative = false;
  std::string digits;
  int point = 0;
};

ShortestDigits shortest(double value) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  const std::string_view text(buf, static_cast<std::size_t>(r.ptr - buf));  // "-1.25e+06"
  ShortestDigits out;
  std::size_t i = 0;
  if (text[i] == '-') {
    out.negative = true;
    ++i;
  }
  const std::size_t e = text.find('e');
  for (; i < e; ++i) {
    if (text[i] != '.') out.digits.push_back(text[i]);
  }
  int exponent = 0;
  std::from_chars(text.data() + e + 1 + (text[e + 1] == '+' ? 1 : 0), text.data() + text.size(),
                  exponent);
  out.point = exponent + 1;
  return out;
}

// strconv's 'e' format with the shortest digits: "1.25e+06", "5e-07".
std::string format_e(const ShortestDigits& d) {
  std::string out = d.negative ? "-" : "";
  out += d.digits[0];
  if (d.digits.size() > 1) out += "." + d.digits.substr(1);
  const int exponent = d.point - 1;
  out += exponent < 0 ? "e-" : "e+";
  const int magnitude = exponent < 0 ? -exponent : exponent;
  if (magnitude < 10) out += "0";
  out += std::to_string(magnitude);
  return out;
}

// strconv's 'f' format with the shortest digits: "1250000", "0.000001".
std::string format_f(const ShortestDigits& d) {
  std::string out = d.negative ? "-" : "";
  const int n = static_cast<int>(d.digits.size());
  if (d.point <= 0) {
    out += "0." + std::string(static_cast<std::size_t>(-d.point), '0') + d.digits;
  } else if (d.point >= n) {
    out += d.digits + std::string(static_cast<std::size_t>(d.point - n), '0');
  } else {
    const auto p = static_cast<std::size_t>(d.point);
    out += d.digits.substr(0, p) + "." + d.digits.substr(p);
  }
  return out;
}

std::string zero(double value) { return std::signbit(value) ? "-0" : "0"; }

std::string int_text(const json& v) { return std::to_string(v.get<std::int64_t>()); }

bool printable(char32_t r) {
  if (r < 0xA1) return r >= 0x20 && r < 0x7F;
  if (r == 0xAD || r == 0x1680 || r == 0x3000 || r == 0xFEFF) return false;
  if ((r >= 0x2000 && r <= 0x200F) || (r >= 0x2028 && r <= 0x202F) ||
      (r >= 0x205F && r <= 0x206F)) {
    return false;  // spaces, separators and format characters
  }
  if ((r >= 0xD800 && r <= 0xF8FF) || (r >= 0xFFF9 && r <= 0xFFFB) || r == 0xFFFE || r == 0xFFFF ||
      r >= 0xF0000) {
    return false;  // surrogates, private use, noncharacters
  }
  return true;
}

// The code point starting at s[i] and its length, or nullopt for invalid UTF-8.
std::optional<std::pair<char32_t, std::size_t>> decode_utf8(const std::string& s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t n = 0;
  char32_t r = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    r = c & 0x1Fu;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    r = c & 0x0Fu;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    r = c & 0x07u;
  } else {
    return std::nullopt;
  }
  if (i + n > s.size()) return std::nullopt;
  for (std::size_t k = 1; k < n; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0u) != 0x80u) return std::nullopt;
    r = (r << 6) | (cc & 0x3Fu);
  }
  const bool overlong = (n == 3 && r < 0x800) || (n == 4 && r < 0x10000);
  if (overlong || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF)) return std::nullopt;
  return std::make_pair(r, n);
}

std::string hex(unsigned value, int width) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%0*x", width, value);
  return buf;
}

}  // namespace

std::string quote(const std::string& s) {
  std::string out = "\"";
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\a': out += "\\a"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\v': out += "\\v"; break;
        default:
          if (c < 0x20 || c == 0x7F) {
            out += "\\x" + hex(c, 2);
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    const auto rune = decode_utf8(s, i);
    if (!rune) {
      out += "\\x" + hex(c, 2);
      ++i;
      continue;
    }
    const auto [r, n] = *rune;
    if (printable(r)) {
      out.append(s, i, n);
    } else if (r < 0x10000) {
      out += "\\u" + hex(static_cast<unsigned>(r), 4);
    } else {
      out += "\\U" + hex(static_cast<unsigned>(r), 8);
    }
    i += n;
  }
  return out + "\"";
}

std::string float_v(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == 0) return zero(value);
  const ShortestDigits d = shortest(value);
  // %v is %g with the shortest digits, which switches to an exponent below 1e-4 and from
  // 1e+06 on (strconv uses precision 6 for that decision when the digits are shortest).
  const int exponent = d.point - 1;
  return exponent < -4 || exponent >= 6 ? format_e(d) : format_f(d);
}

namespace {

// encoding/json's float64 encoding: 'f' between 1e-6 and 1e21, else 'e' with "e-07" shortened
// to "e-7".
std::string float_json(double value) {
  if (value == 0) return zero(value);
  const double magnitude = std::fabs(value);
  const ShortestDigits d = shortest(value);
  if (magnitude >= 1e-6 && magnitude < 1e21) return format_f(d);
  std::string out = format_e(d);
  const std::size_t n = out.size();
  if (n >= 4 && out[n - 4] == 'e' && out[n - 3] == '-' && out[n - 2] == '0') {
    out.erase(n - 2, 1);
  }
  return out;
}

std::string number_v(const json& v) {
  if (is_int(v)) return int_text(v);
  return float_v(v.get<double>());
}

// encoding/json's string escaping (Go 1.22+): HTML-sensitive characters and the JavaScript
// line separators are escaped too, invalid UTF-8 becomes U+FFFD.
std::string json_string(const std::string& s) {
  std::string out = "\"";
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '<':
        case '>':
        case '&': out += "\\u00" + hex(c, 2); break;
        default:
          if (c < 0x20) {
            out += "\\u00" + hex(c, 2);
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    const auto rune = decode_utf8(s, i);
    if (!rune) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    const auto [r, n] = *rune;
    if (r == 0x2028 || r == 0x2029) {
      out += "\\u" + hex(static_cast<unsigned>(r), 4);
    } else {
      out.append(s, i, n);
    }
    i += n;
  }
  return out + "\"";
}

std::string sprint_at(const json& value, int depth) {
  if (depth > kMaxDepth) return "...";
  switch (value.type()) {
    case json::value_t::null: return "<nil>";
    case json::value_t::boolean: return value.get<bool>() ? "true" : "false";
    case json::value_t::string: return value.get<std::string>();
    case json::value_t::array: {
      std::string out = "[";
      for (std::size_t i = 0; i < value.size(); ++i) {
        if (i > 0) out += " ";
        out += sprint_at(value[i], depth + 1);
      }
      return out + "]";
    }
    case json::value_t::object: {
      std::string out = "map[";
      bool first = true;
      for (const auto& [k, v] : value.items()) {
        if (!first) out += " ";
        first = false;
        out += k + ":" + sprint_at(v, depth + 1);
      }
      return out + "]";
    }
    default: return value.is_number() ? number_v(value) : value.dump();
  }
}

std::string sharp_v_at(const json& value, int depth) {
  if (depth > kMaxDepth) return "...";
  switch (value.type()) {
    case json::value_t::null: return "interface {}(nil)";
    case json::value_t::string: return quote(value.get<std::string>());
    case json::value_t::array: {
      std::string out = "[]interface {}{";
      for (std::size_t i = 0; i < value.size(); ++i) {
        if (i > 0) out += ", ";
        out += sharp_v_at(value[i], depth + 1);
      }
      return out + "}";
    }
    case json::value_t::object: {
      std::string out = "map[string]interface {}{";
      bool first = true;
      for (const auto& [k, v] : value.items()) {
        if (!first) out += ", ";
        first = false;
        out += quote(k) + ":" + sharp_v_at(v, depth + 1);
      }
      return out + "}";
    }
    default: return sprint_at(value, depth);
  }
}

std::string marshal_at(const json& value, int depth) {
  if (depth > kMaxDepth) return "...";
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return value.get<bool>() ? "true" : "false";
    case json::value_t::string: return json_string(value.get<std::string>());
    case json::value_t::array: {
      std::string out = "[";
      for (std::size_t i = 0; i < value.size(); ++i) {
        if (i > 0) out += ",";
        out += marshal_at(value[i], depth + 1);
      }
      return out + "]";
    }
    case json::value_t::object: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, v] : value.items()) {
        if (!first) out += ",";
        first = false;
        out += json_string(k) + ":" + marshal_at(v, depth + 1);
      }
      return out + "}";
    }
    default:
      if (is_int(value)) return int_text(value);
      return float_json(value.get<double>());
  }
}

}  // namespace

std::string sprint(const json& value) { return sprint_at(value, 0); }
std::string sharp_v(const json& value) { return sharp_v_at(value, 0); }
std::string marshal(const json& value) { return marshal_at(value, 0); }

}  // namespace gofmt

}  // namespace cw::lab
