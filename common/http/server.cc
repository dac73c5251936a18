#include "common/http/server.h"

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "common/http/detail/connection.h"

namespace cw::http {
namespace {

using namespace detail;  // NOLINT: the private Beast aliases

class ExchangeImpl final : public Exchange {
 public:
  ExchangeImpl(Connection& conn, const ServerOptions& options, bool keep_alive,
               const std::atomic<bool>& stopping)
      : conn_(conn), options_(options), keep_alive_(keep_alive), stopping_(stopping) {}

  void respond(Response response) override {
    if (done_) die_on_misuse("Exchange::respond", "a reply was already sent");
    done_ = true;
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(response.status), 11};
    for (const auto& [k, v] : response.headers) res.set(k, v);
    res.body() = std::move(response.body);
    res.keep_alive(keep_alive_);
    res.prepare_payload();
    const auto ec = conn_.run(options_.io_timeout, [&](auto handler) {
      conn_.with_stream([&](auto& s) { bhttp::async_write(s, res, std::move(handler)); });
    });
    ok_ = !ec;
  }

  bool start_stream(int status, const Headers& headers) override {
    if (done_) die_on_misuse("Exchange::start_stream", "a reply was already sent");
    done_ = streamed_ = true;
    bhttp::response<bhttp::empty_body> res{static_cast<bhttp::status>(status), 11};
    for (const auto& [k, v] : headers) res.set(k, v);
    res.chunked(true);
    res.keep_alive(false);
    bhttp::response_serializer<bhttp::empty_body> serializer{res};
    const auto ec = conn_.run(options_.io_timeout, [&](auto handler) {
      conn_.with_stream(
          [&](auto& s) { bhttp::async_write_header(s, serializer, std::move(handler)); });
    });
    ok_ = !ec;
    return ok_;
  }

  bool write_chunk(std::string_view data) override {
    if (!streamed_) die_on_misuse("Exchange::write_chunk", "start_stream() first");
    if (!ok_ || data.empty()) return ok_;
    const auto ec = conn_.run(options_.io_timeout, [&](auto handler) {
      conn_.with_stream([&](auto& s) {
        asio::async_write(s, bhttp::make_chunk(asio::const_buffer(data.data(), data.size())),
                          std::move(handler));
      });
    });
    ok_ = !ec;
    return ok_;
  }

  void finish_stream() {
    if (!streamed_ || !ok_) return;
    conn_.run(options_.io_timeout, [&](auto handler) {
      conn_.with_stream(
          [&](auto& s) { asio::async_write(s, bhttp::make_chunk_last(), std::move(handler)); });
    });
  }

  bool stopping() const override { return stopping_.load(); }
  bool done() const { return done_; }
  bool streamed() const { return streamed_; }
  bool ok() const { return ok_; }

 private:
  Connection& conn_;
  const ServerOptions& options_;
  bool keep_alive_;
  const std::atomic<bool>& stopping_;
  bool done_ = false;
  bool streamed_ = false;
  bool ok_ = true;
};

class ServerImpl final : public Server {
 public:
  ServerImpl(ServerOptions options, Handler handler)
      : options_(std::move(options)), handler_(std::move(handler)), acceptor_(accept_ioc_) {}

  ~ServerImpl() override { stop(); }

  Result<void> listen() {
    beast::error_code ec;
    const auto address = asio::ip::make_address(options_.address, ec);
    if (ec) return Error(ErrorCode::kInvalidArgument, "bad listen address \"" + options_.address + "\"");
    const tcp::endpoint endpoint(address, options_.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Error(ErrorCode::kUnavailable, "cannot listen on " + options_.address + ":" +
                                                std::to_string(options_.port) + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    if (options_.tls) {
      if (auto r = setup_tls(); !r) return r;
    }
    accept_thread_ = std::thread([this] { accept_loop(); });
    return ok_result();
  }

  std::uint16_t port() const override { return port_; }

  void stop() override {
    if (stopping_.exchange(true)) {
      if (accept_thread_.joinable()) accept_thread_.join();
      return;
    }
    asio::post(accept_ioc_, [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
    });
    if (accept_thread_.joinable()) accept_thread_.join();
    // The posted close never runs if the accept loop had not started yet: close it here too,
    // now that no other thread touches the acceptor.
    beast::error_code ignored;
    acceptor_.close(ignored);
    std::map<std::uint64_t, Entry> conns;
    {
      std::lock_guard lock(mu_);
      for (auto& [id, e] : conns_) e.conn->interrupt();
      conns.swap(conns_);
    }
    for (auto& [id, e] : conns) {
      if (e.thread.joinable()) e.thread.join();
    }
  }

 private:
  struct Entry {
    std::shared_ptr<Connection> conn;
    std::thread thread;
    bool finished = false;
  };

  Result<void> setup_tls() {
    tls_.emplace(ssl::context::tls_server);
    tls_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    auto& cfg = *options_.tls;
    beast::error_code ec;
    tls_->use_certificate_chain(asio::buffer(cfg.cert_chain_pem), ec);
    if (!ec) tls_->use_private_key(asio::buffer(cfg.key_pem), ssl::context::pem, ec);
    OPENSSL_cleanse(cfg.key_pem.data(), cfg.key_pem.size());
    cfg.key_pem.clear();
    if (ec) return Error(ErrorCode::kInvalidArgument, "server certificate or key: " + ec.message());
    if (!cfg.client_ca_pem.empty()) {
      tls_->add_certificate_authority(asio::buffer(cfg.client_ca_pem), ec);
      if (ec) return Error(ErrorCode::kInvalidArgument, "client CA: " + ec.message());
      tls_->set_verify_mode(ssl::verify_peer);  // optional: no certificate is also fine
    }
    return ok_result();
  }

  void accept_loop() {
    std::uint64_t next_id = 0;
    while (!stopping_) {
      auto conn = std::make_shared<Connection>();
      tcp::socket socket(conn->ioc);
      beast::error_code ec;
      acceptor_.async_accept(socket, [&ec](beast::error_code e) { ec = e; });
      accept_ioc_.restart();
      accept_ioc_.run();
      if (stopping_ || !acceptor_.is_open()) break;
      if (ec) {
        // Out of descriptors and the like: back off rather than spin.
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      std::lock_guard lock(mu_);
      reap_finished_locked();
      if (conns_.size() >= options_.max_connections) continue;  // closes the socket
      conn->plain.emplace(std::move(socket));
      const std::uint64_t id = next_id++;
      auto& entry = conns_[id];
      entry.conn = conn;
      entry.thread = std::thread([this, id, conn] {
        serve(*conn, id);
        std::lock_guard inner(mu_);
        if (auto it = conns_.find(id); it != conns_.end()) it->second.finished = true;
      });
    }
  }

  void reap_finished_locked() {
    for (auto it = conns_.begin(); it != conns_.end();) {
      if (it->second.finished) {
        it->second.thread.join();
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void serve(Connection& conn, std::uint64_t id) {
    std::string peer_cn;
    std::vector<std::string> peer_orgs;
    if (tls_) {
      conn.tls.emplace(std::move(*conn.plain), *tls_);
      conn.plain.reset();
      const auto ec = conn.run(options_.io_timeout, [&](auto handler) {
        conn.tls->async_handshake(ssl::stream_base::server, std::move(handler));
      });
      if (ec) return close(conn);
      peer_subject(conn, peer_cn, peer_orgs);
    }
    while (!stopping_) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.body_limit(options_.max_body_bytes);
      auto ec = conn.run(options_.idle_timeout, [&](auto handler) {
        conn.with_stream(
            [&](auto& s) { bhttp::async_read(s, conn.buffer, parser, std::move(handler)); });
      });
      if (ec == bhttp::error::body_limit) {
        ExchangeImpl ex(conn, options_, false, stopping_);
        ex.respond(Response{413, {{"Content-Type", "text/plain"}}, "request body too large\n"});
        break;
      }
      if (ec) break;
      auto& msg = parser.get();
      Request req{std::string(msg.method_string()), std::string(msg.target()),
                  to_headers(msg.base()), std::move(msg.body()), peer_cn, peer_orgs, id};
      ExchangeImpl ex(conn, options_, msg.keep_alive(), stopping_);
      try {
        handler_(req, ex);
      } catch (const std::exception& e) {
        // A handler bug must not take the server down; the client learns something broke.
        if (!ex.done()) ex.respond(Response{500, {}, std::string("internal error: ") + e.what() + "\n"});
      }
      if (!ex.done()) ex.respond(Response{500, {}, "handler sent no reply\n"});
      if (ex.streamed()) {
        ex.finish_stream();
        break;
      }
      if (!ex.ok() || !msg.keep_alive()) break;
    }
    close(conn);
  }

  // The verified client certificate's subject: common name, and organizations (Kubernetes
  // reads a user's groups from O).
  static void peer_subject(Connection& conn, std::string& cn, std::vector<std::string>& organizations) {
    X509* cert = SSL_get_peer_certificate(conn.tls->native_handle());
    if (cert == nullptr) return;
    if (SSL_get_verify_result(conn.tls->native_handle()) == X509_V_OK) {
      X509_NAME* subject = X509_get_subject_name(cert);
      char buf[256] = {};
      if (X509_NAME_get_text_by_NID(subject, NID_commonName, buf, sizeof buf) > 0) cn = buf;
      for (int i = X509_NAME_get_index_by_NID(subject, NID_organizationName, -1); i >= 0;
           i = X509_NAME_get_index_by_NID(subject, NID_organizationName, i)) {
        const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
        organizations.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                                   static_cast<std::size_t>(ASN1_STRING_length(data)));
      }
    }
    X509_free(cert);
  }

  void close(Connection& conn) {
    if (conn.tls && !stopping_) {
      conn.run(std::chrono::milliseconds(500), [&](auto handler) {
        conn.tls->async_shutdown(std::move(handler));
      });
    }
    beast::error_code ignored;
    conn.lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    conn.lowest().socket().close(ignored);
  }

  ServerOptions options_;
  Handler handler_;
  asio::io_context accept_ioc_;
  tcp::acceptor acceptor_;
  std::optional<ssl::context> tls_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::map<std::uint64_t, Entry> conns_;
};

}  // namespace

Result<std::unique_ptr<Server>> Server::start(ServerOptions options, Handler handler) {
  auto server = std::make_unique<ServerImpl>(std::move(options), std::move(handler));
  if (auto r = server->listen(); !r) return r.error();
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace cw::http
