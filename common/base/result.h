// Errors as values. Every fallible operation in clusterwire returns Result<T>: either the
// value or an Error that says what failed (a message a user can act on) and, through its
// code, whether retrying can help. Exceptions never cross a library boundary.
//
// Using value() on an error, or error() on a value, is a programming mistake and aborts
// loudly with the message: it "can't happen", so it must not be quiet when it does.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace cw {

enum class ErrorCode {
  kInvalidArgument,  // the input is wrong; retrying the same input cannot help
  kNotFound,
  kAlreadyExists,
  kConflict,         // the request contradicts state someone else holds
  kExhausted,        // no room left (a pool, a quota)
  kUnavailable,      // a dependency did not answer; retrying may help
  kGone,             // what was asked for is no longer kept (an expired resourceVersion): start over
  kPermissionDenied, // the credentials are missing, wrong, or not allowed this
  kInternal,
};

const char* to_string(ErrorCode code);

class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  // An error a server answered: its HTTP status and machine-readable reason (for the
  // Kubernetes API, the Status object's `code` and `reason`, e.g. 409 "AlreadyExists").
  Error(ErrorCode code, std::string message, int http_status, std::string reason)
      : code_(code), message_(std::move(message)), http_status_(http_status), reason_(std::move(reason)) {}

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // Whether the same request may succeed later without anything else changing.
  bool retryable() const { return code_ == ErrorCode::kUnavailable; }

  int http_status() const { return http_status_; }  // 0 when no server answered
  const std::string& reason() const { return reason_; }

  // A copy whose message is prefixed with context: "reading plan.yaml: <message>".
  Error with_context(const std::string& context) const {
    return Error(code_, context + ": " + message_, http_status_, reason_);
  }

 private:
  ErrorCode code_;
  std::string message_;
  int http_status_ = 0;
  std::string reason_;
};

[[noreturn]] inline void die_on_misuse(const char* what, const std::string& detail) {
  std::fprintf(stderr, "clusterwire: fatal: %s: %s\n", what, detail.c_str());
  std::abort();
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : state_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    if (!ok()) die_on_misuse("value() on an error", error().message());
    return std::get<0>(state_);
  }
  const T& value() const& {
    if (!ok()) die_on_misuse("value() on an error", error().message());
    return std::get<0>(state_);
  }
  // By value, not T&&: `for (auto& x : make().value())` must not bind to a temporary
  // that dies before the loop runs.
  T value() && {
    if (!ok()) die_on_misuse("value() on an error", error().message());
    return std::get<0>(std::move(state_));
  }
  const Error& error() const {
    if (ok()) die_on_misuse("error() on a value", "");
    return std::get<1>(state_);
  }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), has_error_(true) {}  // NOLINT

  bool ok() const { return !has_error_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const {
    if (ok()) die_on_misuse("error() on a value", "");
    return error_;
  }

 private:
  Error error_{ErrorCode::kInternal, ""};
  bool has_error_ = false;
};

inline Result<void> ok_result() { return {}; }

}  // namespace cw
