#include "common/http/client.h"

#include <poll.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <functional>
#include <limits>
#include <mutex>
#include <vector>

#include "common/http/detail/connection.h"

namespace cw::http {
namespace {

using namespace detail;  // NOLINT: the private Beast aliases
using Clock = std::chrono::steady_clock;

// Not boost::none: Boost 1.74's parser compares `length > none`, which is always true, and
// refuses every body with a Content-Length.
constexpr std::uint64_t kNoBodyLimit = std::numeric_limits<std::uint64_t>::max();
using std::chrono::milliseconds;

milliseconds left_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  return std::max(left, milliseconds(1));
}

bool is_ip_address(const std::string& host) {
  beast::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// A connection-level failure that may mean the server closed an idle keep-alive connection
// just as we reused it: then the request never reached it and is safe to send again.
bool is_stale_connection(const beast::error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == ssl::error::stream_truncated;
}

class ClientImpl;

class BodyStreamImpl final : public BodyStream {
 public:
  BodyStreamImpl(std::unique_ptr<Connection> conn, int status, Headers headers)
      : conn_(std::move(conn)), status_(status), headers_(std::move(headers)) {}

  void init_chunked() {
    // Beast keeps a reference to the callback: it lives as long as this stream.
    on_chunk_ = [this](std::uint64_t, beast::string_view body, beast::error_code&) {
      pending_.append(body.data(), body.size());
      return static_cast<std::uint64_t>(body.size());
    };
    parser_->on_chunk_body(on_chunk_);
  }

  std::function<std::uint64_t(std::uint64_t, beast::string_view, beast::error_code&)> on_chunk_;

  std::unique_ptr<bhttp::response_parser<bhttp::string_body>> parser_;
  std::string pending_;
  bool chunked_ = false;
  bool whole_delivered_ = false;

  int status() const override { return status_; }
  const Headers& headers() const override { return headers_; }

  Result<std::optional<std::string>> read(milliseconds timeout) override {
    if (cancelled_) return Error(ErrorCode::kUnavailable, "stream cancelled");
    if (!chunked_) {
      if (whole_delivered_) return std::optional<std::string>();
      whole_delivered_ = true;
      return std::optional<std::string>(std::move(parser_->get().body()));
    }
    while (pending_.empty()) {
      if (parser_->is_done()) return std::optional<std::string>();
      const auto ec = conn_->run(timeout, [&](auto handler) {
        conn_->with_stream([&](auto& s) {
          bhttp::async_read_some(s, conn_->buffer, *parser_, std::move(handler));
        });
      });
      if (cancelled_) return Error(ErrorCode::kUnavailable, "stream cancelled");
      if (ec && pending_.empty()) {
        return Error(ErrorCode::kUnavailable, "reading stream: " + describe(ec));
      }
    }
    std::string out;
    out.swap(pending_);
    return std::optional<std::string>(std::move(out));
  }

  void cancel() override {
    cancelled_ = true;
    conn_->interrupt();
  }

 private:
  std::unique_ptr<Connection> conn_;
  int status_;
  Headers headers_;
  std::atomic<bool> cancelled_{false};
};

class ClientImpl final : public Client {
 public:
  ClientImpl(ClientOptions options, Url url) : options_(std::move(options)), url_(std::move(url)) {}

  Result<void> init() {
    if (url_.scheme != "https") return ok_result();
    tls_.emplace(ssl::context::tls_client);
    tls_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    auto& cfg = options_.tls;
    beast::error_code ec;
    if (cfg.insecure_skip_verify) {
      tls_->set_verify_mode(ssl::verify_none);
    } else {
      tls_->set_verify_mode(ssl::verify_peer);
      if (cfg.ca_pem.empty()) {
        tls_->set_default_verify_paths(ec);
      } else {
        tls_->add_certificate_authority(asio::buffer(cfg.ca_pem), ec);
      }
      if (ec) return Error(ErrorCode::kInvalidArgument, "certificate authority: " + ec.message());
    }
    if (!cfg.client_cert_pem.empty()) {
      tls_->use_certificate_chain(asio::buffer(cfg.client_cert_pem), ec);
      if (!ec) tls_->use_private_key(asio::buffer(cfg.client_key_pem), ssl::context::pem, ec);
      OPENSSL_cleanse(cfg.client_key_pem.data(), cfg.client_key_pem.size());
      cfg.client_key_pem.clear();
      if (ec) return Error(ErrorCode::kInvalidArgument, "client certificate or key: " + ec.message());
    }
    return ok_result();
  }

  Result<Response> send(const Request& request, milliseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    for (int attempt = 0;; ++attempt) {
      bool reused = false;
      auto conn = take_idle(reused);
      if (!conn) {
        auto fresh = connect(deadline);
        if (!fresh) return fresh.error();
        conn = std::move(*fresh);
      }
      auto msg = to_beast(request);
      auto ec = conn->run(left_until(deadline), [&](auto handler) {
        conn->with_stream([&](auto& s) { bhttp::async_write(s, msg, std::move(handler)); });
      });
      bhttp::response_parser<bhttp::string_body> parser;
      parser.body_limit(kNoBodyLimit);
      if (!ec) {
        ec = conn->run(left_until(deadline), [&](auto handler) {
          conn->with_stream([&](auto& s) {
            bhttp::async_read(s, conn->buffer, parser, std::move(handler));
          });
        });
      }
      if (ec) {
        // The server closed a kept-alive connection just as it was reused (its idle timeout,
        // a restart): once more on a new connection, if sending twice is safe. Other idle
        // connections are likely closed too, so the retry makes its own.
        if (reused && attempt == 0 && is_stale_connection(ec) && replayable(request)) {
          drop_idle();
          continue;
        }
        return Error(ErrorCode::kUnavailable, request.method + " " + where() + request.target +
                                                  ": " + describe(ec));
      }
      auto& res = parser.get();
      Response out{static_cast<int>(res.result_int()), to_headers(res.base()), std::move(res.body())};
      if (res.keep_alive()) give_back(std::move(conn));
      return out;
    }
  }

  Result<std::unique_ptr<BodyStream>> open_stream(const Request& request,
                                                  milliseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    auto fresh = connect(deadline);
    if (!fresh) return fresh.error();
    auto conn = std::move(*fresh);
    auto msg = to_beast(request);
    auto ec = conn->run(left_until(deadline), [&](auto handler) {
      conn->with_stream([&](auto& s) { bhttp::async_write(s, msg, std::move(handler)); });
    });
    auto parser = std::make_unique<bhttp::response_parser<bhttp::string_body>>();
    parser->body_limit(kNoBodyLimit);
    if (!ec) {
      ec = conn->run(left_until(deadline), [&](auto handler) {
        conn->with_stream([&](auto& s) {
          bhttp::async_read_header(s, conn->buffer, *parser, std::move(handler));
        });
      });
    }
    if (ec) {
      return Error(ErrorCode::kUnavailable,
                   request.method + " " + where() + request.target + ": " + describe(ec));
    }
    const int status = static_cast<int>(parser->get().result_int());
    Headers headers = to_headers(parser->get().base());
    const bool chunked = parser->chunked();
    if (!chunked && !parser->is_done()) {
      ec = conn->run(left_until(deadline), [&](auto handler) {
        conn->with_stream([&](auto& s) {
          bhttp::async_read(s, conn->buffer, *parser, std::move(handler));
        });
      });
      if (ec) return Error(ErrorCode::kUnavailable, "reading reply body: " + describe(ec));
    }
    auto stream = std::make_unique<BodyStreamImpl>(std::move(conn), status, std::move(headers));
    stream->parser_ = std::move(parser);
    stream->chunked_ = chunked;
    if (chunked) stream->init_chunked();
    return std::unique_ptr<BodyStream>(std::move(stream));
  }

 private:
  std::string where() const {
    const bool v6 = url_.host.find(':') != std::string::npos;
    return url_.scheme + "://" + (v6 ? "[" + url_.host + "]" : url_.host) + ":" + url_.port;
  }

  bhttp::request<bhttp::string_body> to_beast(const Request& request) const {
    bhttp::request<bhttp::string_body> msg;
    msg.method_string(request.method);
    msg.target(url_.base_path + request.target);
    msg.version(11);
    const bool v6 = url_.host.find(':') != std::string::npos;
    msg.set(bhttp::field::host, (v6 ? "[" + url_.host + "]" : url_.host) + ":" + url_.port);
    msg.set(bhttp::field::user_agent, "clusterwire/0.1");
    for (const auto& [k, v] : request.headers) msg.set(k, v);
    msg.body() = request.body;
    msg.keep_alive(true);
    msg.prepare_payload();
    return msg;
  }

  static bool replayable(const Request& request) {
    return request.replayable || request.method == "GET" || request.method == "HEAD";
  }

  // An idle HTTP/1.1 connection has nothing to read: if it is readable, the server closed it
  // (end of stream, TLS close_notify) or broke it, and it must not carry a request. This is
  // what Go's transport learns from its per-connection read loop.
  static bool peer_closed(Connection& conn) {
    pollfd p{conn.lowest().socket().native_handle(), POLLIN | POLLRDHUP, 0};
    return ::poll(&p, 1, 0) != 0;
  }

  std::unique_ptr<Connection> take_idle(bool& reused) {
    std::lock_guard lock(mu_);
    while (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      if (peer_closed(*conn)) continue;
      reused = true;
      return conn;
    }
    return nullptr;
  }

  void drop_idle() {
    std::lock_guard lock(mu_);
    idle_.clear();
  }

  void give_back(std::unique_ptr<Connection> conn) {
    std::lock_guard lock(mu_);
    if (idle_.size() < options_.max_idle_connections) idle_.push_back(std::move(conn));
  }

  Result<std::unique_ptr<Connection>> connect(Clock::time_point deadline) {
    auto conn = std::make_unique<Connection>();
    conn->plain.emplace(conn->ioc);
    tcp::resolver resolver(conn->ioc);
    tcp::resolver::results_type endpoints;
    beast::error_code ec;
    const auto budget = std::min(left_until(deadline), options_.connect_timeout);
    resolver.async_resolve(url_.host, url_.port,
                           [&](beast::error_code e, tcp::resolver::results_type r) {
                             ec = e;
                             endpoints = std::move(r);
                           });
    conn->ioc.run_for(budget);
    if (!ec && endpoints.empty()) ec = asio::error::host_not_found;
    if (ec) return Error(ErrorCode::kUnavailable, "resolving " + url_.host + ": " + describe(ec));
    ec = conn->run(budget, [&](auto handler) {
      conn->plain->async_connect(endpoints, std::move(handler));
    });
    if (ec) return Error(ErrorCode::kUnavailable, "connecting to " + where() + ": " + describe(ec));
    if (!tls_) return conn;

    conn->tls.emplace(std::move(*conn->plain), *tls_);
    conn->plain.reset();
    SSL* ssl_handle = conn->tls->native_handle();
    const std::string& name =
        options_.tls.server_name.empty() ? url_.host : options_.tls.server_name;
    if (!options_.tls.insecure_skip_verify) {
      // Check the certificate names the host we meant: an IP SAN for an address, a DNS SAN
      // otherwise (OpenSSL does the matching).
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl_handle);
      if (is_ip_address(name)) {
        X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
      } else {
        X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
      }
    }
    if (!is_ip_address(name)) {
      // SSL_set_tlsext_host_name, without the macro's C cast.
      SSL_ctrl(ssl_handle, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(name.c_str()));
    }
    ec = conn->run(left_until(deadline), [&](auto handler) {
      conn->tls->async_handshake(ssl::stream_base::client, std::move(handler));
    });
    if (ec) {
      const long verify = SSL_get_verify_result(ssl_handle);
      if (verify != X509_V_OK) {
        return Error(ErrorCode::kInvalidArgument,
                     "TLS with " + where() + ": the server's certificate is not trusted (" +
                         X509_verify_cert_error_string(verify) +
                         "); check the certificate authority configured for it");
      }
      return Error(ErrorCode::kUnavailable, "TLS with " + where() + ": " + describe(ec));
    }
    return conn;
  }

  ClientOptions options_;
  Url url_;
  std::optional<ssl::context> tls_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

}  // namespace

Result<std::unique_ptr<Client>> Client::create(ClientOptions options) {
  auto url = parse_url(options.url);
  if (!url) return url.error();
  auto client = std::make_unique<ClientImpl>(std::move(options), std::move(*url));
  if (auto r = client->init(); !r) return r.error();
  return std::unique_ptr<Client>(std::move(client));
}

}  // namespace cw::http
