// A small HTTP/1.1 server, with optional TLS, for the lab API server and every binary's
// /healthz, /readyz and /metrics. A thread per connection: handlers may block, which keeps
// long-running watch streams straight-line code. Every network operation has a deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/base/result.h"
#include "common/http/message.h"

namespace cw::http {

struct TlsServerConfig {
  std::string cert_chain_pem;
  std::string key_pem;  // wiped from the server's copy once loaded
  // When set, clients may present a certificate signed by this CA; its common name is
  // passed to handlers as Request::peer_common_name. Clients without one are still served.
  std::string client_ca_pem;
};

struct ServerOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  // 0: any free port; see Server::port()
  std::optional<TlsServerConfig> tls;
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(90)};  // between requests
  std::chrono::milliseconds io_timeout{std::chrono::seconds(30)};    // one read or write
  std::size_t max_body_bytes = 8 * 1024 * 1024;
  std::size_t max_connections = 512;
};

// One request's reply: either respond() once, or start_stream() and write chunks.
class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual void respond(Response response) = 0;
  // Sends the status and headers with chunked encoding. false: the client is gone.
  virtual bool start_stream(int status, const Headers& headers) = 0;
  virtual bool write_chunk(std::string_view data) = 0;
  // True once the server is stopping: a streaming handler should return soon.
  virtual bool stopping() const = 0;
};

using Handler = std::function<void(const Request&, Exchange&)>;

class Server {
 public:
  static Result<std::unique_ptr<Server>> start(ServerOptions options, Handler handler);
  virtual ~Server() = default;
  virtual std::uint16_t port() const = 0;
  // Closes the listener and every connection, and waits for handlers to return.
  virtual void stop() = 0;
};

}  // namespace cw::http
