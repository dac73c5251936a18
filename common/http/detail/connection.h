// Private to server.cc and client.cc: one connection with its own io_context, so that a
// thread can run one operation at a time with a deadline (Beast's tcp_stream expiry), and
// another thread can interrupt it by posting to that io_context. Not for other files: it
// pulls in Beast and Asio.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <chrono>
#include <optional>
#include <string>

#include "common/http/message.h"

namespace cw::http::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

class Connection {
 public:
  asio::io_context ioc;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;

  beast::tcp_stream& lowest() { return tls ? tls->next_layer() : *plain; }

  // Calls f with whichever stream is in use.
  template <typename F>
  decltype(auto) with_stream(F&& f) {
    if (tls) return f(*tls);
    return f(*plain);
  }

  // Starts an operation with start(handler) and runs it to completion or until `timeout`,
  // whereupon Beast closes the socket and the operation ends with beast::error::timeout.
  template <typename Start>
  beast::error_code run(std::chrono::milliseconds timeout, Start&& start) {
    beast::error_code result = asio::error::operation_aborted;
    lowest().expires_after(timeout);
    start([&result](beast::error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    ioc.run();
    if (lowest().socket().is_open()) lowest().expires_never();
    return result;
  }

  // From any thread: ends whatever runs now, or the next operation, with an error.
  void interrupt() {
    asio::post(ioc, [this] {
      beast::error_code ignored;
      lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
      lowest().socket().close(ignored);
    });
  }
};

inline Headers to_headers(const bhttp::fields& fields) {
  Headers out;
  for (const auto& f : fields) out.emplace_back(std::string(f.name_string()), std::string(f.value()));
  return out;
}

// Describes a network error for a person: "connection refused", "timed out", and for TLS
// the verification failure OpenSSL reported.
inline std::string describe(const beast::error_code& ec) {
  if (ec == beast::error::timeout) return "timed out";
  return ec.message();
}

}  // namespace cw::http::detail
