#include "common/log/log.h"

#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <utility>

namespace cw::log {
namespace detail {

// What every Logger made from one LoggerOptions shares.
struct Core {
  std::shared_ptr<spdlog::logger> out;
  Format format;
  std::function<std::chrono::system_clock::time_point()> now;
};

// One Logger value's state; with() and with_component() make new ones, never change one.
struct Context {
  std::shared_ptr<const Core> core;
  std::string component;
  // The bound fields, rendered once in core->format, each with its leading separator.
  std::string bound;
};

}  // namespace detail

namespace {

constexpr std::array<std::string_view, 4> kLevelNames = {"debug", "info", "warn", "error"};
constexpr std::array<std::string_view, 4> kLevelLabels = {"DEBUG", "INFO", "WARN", "ERROR"};

std::size_t index_of(Level level) { return static_cast<std::size_t>(level); }

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
  }
  return spdlog::level::err;
}

// The length of the well-formed UTF-8 sequence at s[i], or 0 if there is none. Log lines may
// carry bytes from the network; a JSON line with invalid UTF-8 is dropped by most shippers.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const std::uint32_t b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  std::size_t n = 0;
  std::uint32_t min = 0;
  std::uint32_t cp = 0;
  if ((b0 & 0xE0U) == 0xC0U) {
    n = 2, min = 0x80, cp = b0 & 0x1FU;
  } else if ((b0 & 0xF0U) == 0xE0U) {
    n = 3, min = 0x800, cp = b0 & 0x0FU;
  } else if ((b0 & 0xF8U) == 0xF0U) {
    n = 4, min = 0x10000, cp = b0 & 0x07U;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    const std::uint32_t b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0U) != 0x80U) return 0;
    cp = (cp << 6) | (b & 0x3FU);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

void append_hex_byte(std::string& out, const char* prefix, unsigned char c) {
  std::array<char, 8> buf{};
  const int n = std::snprintf(buf.data(), buf.size(), "%s%02x", prefix, static_cast<unsigned>(c));
  out.append(buf.data(), static_cast<std::size_t>(n));
}

// Text output, Go-style escapes: control characters and bytes that are not UTF-8 as \n, \xNN;
// inside quotes also '"' and '\'. Keeps every event on one line.
void append_text_escaped(std::string& out, std::string_view s, bool quoted) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_length(s, i);
      if (n == 0) {
        append_hex_byte(out, "\\x", c);
        i += 1;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    ++i;
    if (quoted && (c == '"' || c == '\\')) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      append_hex_byte(out, "\\x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
}

bool needs_quotes(std::string_view s) {
  if (s.empty()) return true;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c <= ' ' || c == '=' || c == '"' || c == 0x7f) return true;
    if (c >= 0x80) {
      const std::size_t n = utf8_length(s, i);
      if (n == 0) return true;
      i += n - 1;
    }
  }
  return false;
}

void append_text_value(std::string& out, std::string_view s) {
  if (!needs_quotes(s)) {
    out += s;
    return;
  }
  out += '"';
  append_text_escaped(out, s, true);
  out += '"';
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_length(s, i);
      if (n == 0) {
        out += "\\ufffd";
        i += 1;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    ++i;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          append_hex_byte(out, "\\u00", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

template <typename T>
void append_number(std::string& out, T n) {
  std::array<char, 32> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), n);
  if (ec == std::errc()) out.append(buf.data(), end);
}

// The Prometheus spellings, so that text and JSON agree; JSON has no literal for them.
std::string_view non_finite_name(double x) {
  if (std::isnan(x)) return "NaN";
  return x > 0 ? "+Inf" : "-Inf";
}

// Lowercase, with '-' and '.' read as '_': "WireGuard.PrivateKey" is "wireguard_privatekey".
char normal_key_char(char c) {
  if (c >= 'A' && c <= 'Z') return static_cast<char>(c - 'A' + 'a');
  return c == '-' || c == '.' ? '_' : c;
}

// A key that ends in one of these holds a secret, whatever the caller passed as its value.
bool is_secret_key(std::string_view key) {
  static constexpr std::array<std::string_view, 14> kSecretSuffixes = {
      "password", "passwd", "secret", "token", "private_key", "privatekey", "preshared_key",
      "presharedkey", "key_pem", "api_key", "apikey", "authorization", "credential", "credentials"};
  return std::any_of(kSecretSuffixes.begin(), kSecretSuffixes.end(), [&](std::string_view suffix) {
    if (key.size() < suffix.size()) return false;
    const std::string_view tail = key.substr(key.size() - suffix.size());
    return std::equal(tail.begin(), tail.end(), suffix.begin(),
                      [](char k, char c) { return normal_key_char(k) == c; });
  });
}

Value::Variant effective_value(std::string_view key, const Value::Variant& value) {
  if (std::holds_alternative<Redacted>(value) || !is_secret_key(key)) return value;
  const auto* text = std::get_if<std::string_view>(&value);
  // Only emptiness survives; any non-text value counts as present.
  return Redacted(text != nullptr ? *text : std::string_view("present"));
}

void append_text_key(std::string& out, std::string_view key) {
  if (key.empty()) {
    out += '_';
    return;
  }
  // Keys come from code, but a space or '=' in one would make the line unparseable.
  for (char c : key) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '_' || c == '-' || c == '.' || c == '/';
    out += plain ? c : '_';
  }
}

void append_field(std::string& out, Format format, const Field& field) {
  const Value::Variant value = effective_value(field.key, field.value.variant());
  if (format == Format::kText) {
    out += ' ';
    append_text_key(out, field.key);
    out += '=';
  } else {
    out += ',';
    // These keys are the line's own; a field with one of them would be a duplicate key.
    const bool reserved =
        field.key == "ts" || field.key == "level" || field.key == "component" || field.key == "msg";
    if (reserved) {
      append_json_string(out, "fields." + std::string(field.key));
    } else {
      append_json_string(out, field.key);
    }
    out += ':';
  }
  const bool text = format == Format::kText;
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string_view>) {
          text ? append_text_value(out, v) : append_json_string(out, v);
        } else if constexpr (std::is_same_v<T, Redacted>) {
          const std::string_view shown = v.present() ? "<redacted>" : "";
          text ? append_text_value(out, shown) : append_json_string(out, shown);
        } else if constexpr (std::is_same_v<T, bool>) {
          out += v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, double>) {
          if (std::isfinite(v)) {
            append_number(out, v);
          } else {
            text ? append_text_value(out, non_finite_name(v))
                 : append_json_string(out, non_finite_name(v));
          }
        } else {
          append_number(out, v);
        }
      },
      value);
}

// RFC 3339 in UTC with milliseconds: "2026-11-21T09:00:00.123Z".
void append_time(std::string& out, std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(t);
  const auto day = floor<days>(ms);
  const year_month_day ymd{day};
  const hh_mm_ss hms{ms - day};
  std::array<char, 48> buf{};
  const int n = std::snprintf(
      buf.data(), buf.size(), "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(ymd.year()),
      static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
      static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
      static_cast<int>(hms.seconds().count()), static_cast<int>(hms.subseconds().count()));
  out.append(buf.data(), static_cast<std::size_t>(n));
}

}  // namespace

Result<Level> parse_level(std::string_view text) {
  for (std::size_t i = 0; i < kLevelNames.size(); ++i) {
    if (text == kLevelNames[i]) return static_cast<Level>(i);
  }
  return Error(ErrorCode::kInvalidArgument,
               "unknown log level \"" + std::string(text) + "\" (want debug, info, warn or error)");
}

Result<Format> parse_format(std::string_view text) {
  if (text == "text") return Format::kText;
  if (text == "json") return Format::kJson;
  return Error(ErrorCode::kInvalidArgument,
               "unknown log format \"" + std::string(text) + "\" (want text or json)");
}

std::string_view to_string(Level level) { return kLevelNames.at(index_of(level)); }

Logger::Logger(LoggerOptions options) : level_(options.level) {
  spdlog::sink_ptr sink;
  if (options.output != nullptr) {
    // Flushed per line: a log file should hold everything written before a crash.
    sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*options.output, true);
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();  // flushes every line itself
  }
  // Lines arrive complete; spdlog adds only the newline.
  sink->set_formatter(
      std::make_unique<spdlog::pattern_formatter>("%v", spdlog::pattern_time_type::utc, "\n"));
  // Not registered with spdlog's global registry: each root Logger owns its spdlog logger.
  auto out = std::make_shared<spdlog::logger>(options.component, std::move(sink));
  out->set_level(spdlog::level::trace);  // filtering happens in enabled(), before formatting
  auto now = std::move(options.now);
  if (!now) now = [] { return std::chrono::system_clock::now(); };
  auto core = std::make_shared<const detail::Core>(
      detail::Core{std::move(out), options.format, std::move(now)});
  context_ = std::make_shared<const detail::Context>(
      detail::Context{std::move(core), std::move(options.component), ""});
}

Logger Logger::with(std::string_view key, Value value) const { return with({{key, value}}); }

Logger Logger::with(std::initializer_list<Field> fields) const {
  if (context_ == nullptr) return *this;
  auto context = std::make_shared<detail::Context>(*context_);
  for (const Field& field : fields) append_field(context->bound, context->core->format, field);
  Logger copy = *this;
  copy.context_ = std::move(context);
  return copy;
}

Logger Logger::with_component(std::string_view component) const {
  if (context_ == nullptr) return *this;
  auto context = std::make_shared<detail::Context>(*context_);
  context->component = component;
  Logger copy = *this;
  copy.context_ = std::move(context);
  return copy;
}

void Logger::write(Level level, std::string_view message, std::span<const Field> fields) const {
  const detail::Context& context = *context_;
  const detail::Core& core = *context.core;
  std::string line;
  line.reserve(96 + message.size() + context.bound.size() + 24 * fields.size());
  if (core.format == Format::kText) {
    append_time(line, core.now());
    line += ' ';
    line += kLevelLabels.at(index_of(level));
    line += ' ';
    if (!context.component.empty()) {
      append_text_escaped(line, context.component, false);
      line += ' ';
    }
    append_text_escaped(line, message, false);
  } else {
    line += "{\"ts\":\"";
    append_time(line, core.now());
    line += "\",\"level\":\"";
    line += kLevelNames.at(index_of(level));
    line += '"';
    if (!context.component.empty()) {
      line += ",\"component\":";
      append_json_string(line, context.component);
    }
    line += ",\"msg\":";
    append_json_string(line, message);
  }
  line += context.bound;
  for (const Field& field : fields) append_field(line, core.format, field);
  if (core.format == Format::kJson) line += '}';
  core.out->log(to_spdlog(level), spdlog::string_view_t(line.data(), line.size()));
}

}  // namespace cw::log
