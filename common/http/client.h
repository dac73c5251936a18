// An HTTP/1.1 client with TLS, keep-alive connection reuse and a deadline on every request.
// Thread-safe: callers on several threads share the connection pool.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "common/base/result.h"
#include "common/http/message.h"

namespace cw::http {

struct TlsClientConfig {
  std::string ca_pem;  // empty: the system's trusted roots
  bool insecure_skip_verify = false;
  std::string server_name;  // verify the certificate for this name instead of the URL's host
  std::string client_cert_pem;
  std::string client_key_pem;  // wiped from the client's copy once loaded
};

struct ClientOptions {
  std::string url;  // "https://127.0.0.1:6443"
  TlsClientConfig tls;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  std::size_t max_idle_connections = 8;
};

// A response whose body arrives over time (a watch). Not thread-safe, except cancel().
class BodyStream {
 public:
  virtual ~BodyStream() = default;
  virtual int status() const = 0;
  virtual const Headers& headers() const = 0;
  // The next piece of the body; nullopt at its end. kUnavailable on a broken connection or
  // when `timeout` passes with nothing read (the stream is then unusable).
  virtual Result<std::optional<std::string>> read(std::chrono::milliseconds timeout) = 0;
  // From any thread: makes a pending or later read() fail promptly.
  virtual void cancel() = 0;
};

class Client {
 public:
  static Result<std::unique_ptr<Client>> create(ClientOptions options);
  virtual ~Client() = default;

  // `request.target` is relative to the URL's base path. Errors: kUnavailable for network
  // failures and time-outs (retryable), kInvalidArgument for TLS verification failures.
  virtual Result<Response> send(const Request& request, std::chrono::milliseconds timeout) = 0;
  // Returns once the status and headers are in. A non-chunked reply (an error Status, say)
  // is read whole and handed out by the first read().
  virtual Result<std::unique_ptr<BodyStream>> open_stream(const Request& request,
                                                          std::chrono::milliseconds timeout) = 0;
};

}  // namespace cw::http
