// Structured logging: one line per event, with a level, the component that wrote it, a constant
// message and key/value fields. Either logfmt-style text for people or JSON lines for log
// shippers, chosen when the root Logger is made (--log-format, --log-level in binaries):
//
//   2026-11-21T09:00:00.123Z INFO node-agent peer added node=a endpoint=10.0.0.1:51820
//   {"ts":"2026-11-21T09:00:00.123Z","level":"info","component":"node-agent","msg":"peer added"...}
//
// Contracts for callers:
// - The message names the event and is a constant; anything variable goes in a field, so that
//   lines can be searched and parsed by key.
// - Secrets never reach a log. A private key, token, password or certificate key is passed as
//   log::Redacted(secret), which keeps only whether the secret was empty. As a backstop, a field
//   whose key ends in a secret-like word (password, secret, token, private_key, preshared_key,
//   api_key, key_pem, authorization, credentials and a few spellings of them; case, '-' and '.'
//   ignored) is redacted whatever its value: name other fields plainly ("token_path").
// - A Logger is an immutable value, cheap to copy, safe to use from any thread. main.cc makes
//   the root one; components get copies (usually with_component() or with() bound fields).
//
// spdlog does the writing (sinks, locking, flushing) and is kept out of this header.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "common/base/result.h"

namespace cw::log {

enum class Level { kDebug, kInfo, kWarn, kError };
enum class Format { kText, kJson };

// For --log-level and --log-format: "debug" | "info" | "warn" | "error", and "text" | "json".
Result<Level> parse_level(std::string_view text);
Result<Format> parse_format(std::string_view text);
std::string_view to_string(Level level);  // "debug", ...

// A secret's stand-in: written as <redacted>, or as "" when the secret is empty (which is worth
// knowing when a credential is missing). The secret itself is not kept.
class Redacted {
 public:
  explicit Redacted(std::string_view secret) : present_(!secret.empty()) {}
  bool present() const { return present_; }

 private:
  bool present_;
};

// A field's value: text, an integer, a floating-point number, a boolean or a Redacted.
// Text is referred to, not copied: a Value (and a Field) lives for the one call it is built
// in, as in `logger.info("peer added", {{"peer", peer.name()}})`. with() copies what it binds.
class Value {
 public:
  Value(std::string_view text) : value_(text) {}  // NOLINT: implicit by design, like the rest
  Value(const char* text) : value_(std::string_view(text != nullptr ? text : "")) {}  // NOLINT
  Value(const std::string& text) : value_(std::string_view(text)) {}  // NOLINT
  template <std::signed_integral T>
    requires(!std::same_as<T, char>)
  Value(T n) : value_(static_cast<std::int64_t>(n)) {}  // NOLINT
  template <std::unsigned_integral T>
    requires(!std::same_as<T, bool> && !std::same_as<T, char>)
  Value(T n) : value_(static_cast<std::uint64_t>(n)) {}  // NOLINT
  template <std::floating_point T>
  Value(T x) : value_(static_cast<double>(x)) {}  // NOLINT
  // A template so that pointers do not silently become booleans.
  template <std::same_as<bool> B>
  Value(B b) : value_(static_cast<bool>(b)) {}  // NOLINT
  Value(Redacted r) : value_(r) {}  // NOLINT

  using Variant =
      std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool, Redacted>;
  const Variant& variant() const { return value_; }

 private:
  Variant value_;
};

// Keys are identifiers chosen in code ("peer", "endpoint", "took_seconds"), in snake_case.
struct Field {
  std::string_view key;
  Value value;
};

struct LoggerOptions {
  std::string component;  // "node-agent"; may be empty
  Format format = Format::kText;
  Level level = Level::kInfo;  // events below it are dropped before any formatting
  // Where lines go; nullptr: stderr. Must outlive every copy of the Logger.
  std::ostream* output = nullptr;
  // The time stamped on each line; empty: the system clock. Tests fix it.
  std::function<std::chrono::system_clock::time_point()> now;
};

namespace detail {
struct Context;
}

class Logger {
 public:
  // A Logger that writes nothing, for options structs and tests that do not look at logs.
  Logger() = default;
  explicit Logger(LoggerOptions options);

  // A copy that writes these fields on every line, before the event's own fields.
  Logger with(std::string_view key, Value value) const;
  Logger with(std::initializer_list<Field> fields) const;
  // A copy writing to the same place under another component name (bound fields are kept).
  Logger with_component(std::string_view component) const;

  bool enabled(Level level) const { return context_ != nullptr && level >= level_; }

  void debug(std::string_view message, std::initializer_list<Field> fields = {}) const {
    if (enabled(Level::kDebug)) write(Level::kDebug, message, as_span(fields));
  }
  void info(std::string_view message, std::initializer_list<Field> fields = {}) const {
    if (enabled(Level::kInfo)) write(Level::kInfo, message, as_span(fields));
  }
  void warn(std::string_view message, std::initializer_list<Field> fields = {}) const {
    if (enabled(Level::kWarn)) write(Level::kWarn, message, as_span(fields));
  }
  void error(std::string_view message, std::initializer_list<Field> fields = {}) const {
    if (enabled(Level::kError)) write(Level::kError, message, as_span(fields));
  }
  // For a level or a list of fields decided at run time.
  void log(Level level, std::string_view message, std::span<const Field> fields) const {
    if (enabled(level)) write(level, message, fields);
  }

 private:
  static std::span<const Field> as_span(std::initializer_list<Field> fields) {
    return {fields.begin(), fields.size()};
  }
  void write(Level level, std::string_view message, std::span<const Field> fields) const;

  std::shared_ptr<const detail::Context> context_;
  Level level_ = Level::kError;
};

}  // namespace cw::log
