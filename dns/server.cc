#include "dns/server.h"

#include <linux/filter.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <optional>
#include <thread>
#include <unordered_set>
#include <vector>

namespace cw::dns {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using udp = asio::ip::udp;
using Clock = std::chrono::steady_clock;

// Datagrams a worker reads in a row before its TCP connections get a turn.
constexpr int kUdpDrainBatch = 32;
// A TCP connection stops answering buffered queries once this much output waits, and
// resumes when it is written: a client that pipelines but does not read cannot make us hold
// more than this (plus one response) per connection.
constexpr std::size_t kTcpOutputHighWater = 16 * 1024;
constexpr int kPortAttempts = 16;

// The shared state every worker and connection reads.
struct Shared {
  ServerOptions options;
  std::shared_ptr<const Zone> zone;
  std::atomic<std::size_t> tcp_connections{0};
};

std::vector<std::uint8_t> answer(const Shared& shared, std::span<const std::uint8_t> request,
                                 Transport transport) {
  const auto start = shared.options.observer ? Clock::now() : Clock::time_point{};
  std::vector<std::uint8_t> response;
  try {
    // One cache per worker thread (a thread serves one server): no locks on the hot path.
    thread_local AnswerCache cache;
    response = cache.answer(request, transport == Transport::kTcp, *shared.zone, shared.options.handler);
  } catch (const std::exception&) {
    // Out of memory and the like: this query is lost, the server goes on.
    response.clear();
  }
  if (shared.options.observer) {
    QueryEvent event;
    event.transport = transport;
    event.answered = !response.empty();
    if (auto rcode = response_rcode(response)) event.rcode = *rcode;
    event.truncated = response.size() > 2 && (response[2] & 0x02) != 0;
    event.request = request;
    event.response = response;
    event.latency = Clock::now() - start;
    try {
      shared.options.observer(event);
    } catch (...) {  // NOLINT: the caller's code; a metrics bug must not cost the answer
    }
  }
  return response;
}

class Worker;

// One TCP connection. Lives on its worker's thread only; handlers hold it by shared_ptr.
class TcpSession : public std::enable_shared_from_this<TcpSession> {
 public:
  TcpSession(Worker& worker, Shared& shared, tcp::socket socket)
      : worker_(worker),
        shared_(shared),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        in_(2 + shared.options.max_request_bytes) {}

  void start();
  void close();

 private:
  void touch() { deadline_ = Clock::now() + shared_.options.tcp_idle_timeout; }

  // Wakes at the deadline; the deadline moves with every read and write, so the timer is
  // re-armed only when it fires early rather than cancelled per query.
  void arm_timer() {
    timer_.expires_at(deadline_);
    timer_.async_wait([self = shared_from_this()](const error_code&) {
      if (self->closed_) return;
      if (Clock::now() >= self->deadline_) {
        self->close();
      } else {
        self->arm_timer();
      }
    });
  }

  void read() {
    touch();
    socket_.async_read_some(asio::buffer(in_.data() + in_len_, in_.size() - in_len_),
                            [self = shared_from_this()](const error_code& ec, std::size_t n) {
                              if (ec || self->closed_) return self->close();
                              self->in_len_ += n;
                              self->process();
                            });
  }

  // Answers every complete frame in the input (up to the output high-water mark), then
  // writes the answers, or reads more.
  void process() {
    std::size_t pos = 0;
    while (in_len_ - pos >= 2 && out_.size() < kTcpOutputHighWater) {
      const std::size_t len = std::size_t{in_[pos]} << 8 | in_[pos + 1];
      if (len == 0 || len > shared_.options.max_request_bytes) return close();
      if (in_len_ - pos < 2 + len) break;
      const auto response = answer(
          shared_, std::span<const std::uint8_t>(in_.data() + pos + 2, len), Transport::kTcp);
      pos += 2 + len;
      if (response.empty()) continue;
      out_.push_back(static_cast<std::uint8_t>(response.size() >> 8));
      out_.push_back(static_cast<std::uint8_t>(response.size() & 0xFF));
      out_.insert(out_.end(), response.begin(), response.end());
    }
    // A frame's length is checked before we wait for its body, and the buffer holds the
    // largest allowed frame: after compaction a partial frame always has room to complete.
    if (pos > 0) {
      std::memmove(in_.data(), in_.data() + pos, in_len_ - pos);
      in_len_ -= pos;
    }
    if (out_.empty()) return read();
    touch();
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](const error_code& ec, std::size_t) {
                        if (ec || self->closed_) return self->close();
                        self->out_.clear();
                        self->process();
                      });
  }

  Worker& worker_;
  Shared& shared_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  Clock::time_point deadline_;
  std::vector<std::uint8_t> in_;
  std::size_t in_len_ = 0;
  std::vector<std::uint8_t> out_;
  bool closed_ = false;
};

// One event loop on one thread, with its UDP socket and TCP listener.
class Worker {
 public:
  explicit Worker(Shared& shared)
      // One thread per io_context: tell Asio, which then skips some locking.
      : shared_(shared),
        ioc_(1),
        udp_(ioc_),
        acceptor_(ioc_),
        backoff_(ioc_),
        udp_buffer_(shared.options.max_request_bytes + 1) {}

  udp::socket& udp_socket() { return udp_; }
  tcp::acceptor& acceptor() { return acceptor_; }

  void run() {
    error_code ignored;
    // Non-blocking, so that direct reads and every send return at once; a UDP send that
    // would block is a datagram lost, as the network may lose it anyway.
    udp_.non_blocking(true, ignored);
    wait_readable();
    accept();
    thread_ = std::thread([this] {
      for (;;) {
        try {
          ioc_.run();
          return;
        } catch (const std::exception&) {
          // Handlers catch what they can; anything else must not end the worker.
        }
      }
    });
  }

  // From any thread: closes everything on the worker's own thread, then joins it.
  void stop() {
    asio::post(ioc_, [this] {
      error_code ignored;
      udp_.close(ignored);
      acceptor_.close(ignored);
      backoff_.cancel();
      const std::vector<TcpSession*> sessions(sessions_.begin(), sessions_.end());
      for (auto* s : sessions) s->close();
    });
    if (thread_.joinable()) thread_.join();
  }

  void add(TcpSession* s) { sessions_.insert(s); }
  void remove(TcpSession* s) { sessions_.erase(s); }

 private:
  // Datagrams are read directly (the socket is non-blocking) until the socket is empty, and
  // only then does the worker wait for it through the event loop: no read is attempted that
  // the loop already knows would fail, and a busy socket never goes through the loop at all.
  void wait_readable() {
    udp_.async_wait(udp::socket::wait_read, [this](const error_code& ec) {
      if (ec == asio::error::operation_aborted || !udp_.is_open()) return;
      drain();
    });
  }

  void drain() {
    for (int i = 0; i < kUdpDrainBatch; ++i) {
      error_code ec;
      const std::size_t n = udp_.receive_from(asio::buffer(udp_buffer_), sender_, 0, ec);
      if (ec) {
        // Empty (would_block), or an error that waiting for readiness will show again.
        if (udp_.is_open()) wait_readable();
        return;
      }
      serve_datagram(n);
    }
    // Still busy: let the worker's TCP connections have a turn, then read on.
    asio::post(ioc_, [this] {
      if (udp_.is_open()) drain();
    });
  }

  void serve_datagram(std::size_t n) {
    // A datagram that filled the buffer was cut short: it is over the limit, drop it.
    if (n > shared_.options.max_request_bytes) return;
    const auto response =
        answer(shared_, std::span<const std::uint8_t>(udp_buffer_.data(), n), Transport::kUdp);
    if (response.empty()) return;
    error_code ignored;
    udp_.send_to(asio::buffer(response), sender_, 0, ignored);
  }

  void accept() {
    acceptor_.async_accept([this](const error_code& ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      if (ec) {
        // Out of descriptors and the like: back off rather than spin.
        backoff_.expires_after(std::chrono::milliseconds(50));
        backoff_.async_wait([this](const error_code& e) {
          if (!e) accept();
        });
        return;
      }
      if (shared_.tcp_connections.fetch_add(1) >= shared_.options.max_tcp_connections) {
        shared_.tcp_connections.fetch_sub(1);
        error_code ignored;
        socket.close(ignored);
      } else {
        std::make_shared<TcpSession>(*this, shared_, std::move(socket))->start();
      }
      accept();
    });
  }

  Shared& shared_;
  asio::io_context ioc_;
  udp::socket udp_;
  tcp::acceptor acceptor_;
  asio::steady_timer backoff_;
  std::vector<std::uint8_t> udp_buffer_;
  udp::endpoint sender_;
  std::unordered_set<TcpSession*> sessions_;
  std::thread thread_;
};

void TcpSession::start() {
  worker_.add(this);
  error_code ignored;
  // Answers go out as soon as they are made: pipelined answers must not wait for an ACK.
  socket_.set_option(tcp::no_delay(true), ignored);
  touch();
  arm_timer();
  read();
}

void TcpSession::close() {
  if (closed_) return;
  closed_ = true;
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  timer_.cancel();
  worker_.remove(this);
  shared_.tcp_connections.fetch_sub(1);
}

error_code set_reuse_port(int fd) {
  const int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    return error_code(errno, boost::system::system_category());
  }
  return {};
}

// Makes the kernel deliver each datagram to a random socket of the SO_REUSEPORT group that
// `fd` belongs to, instead of by the client's address hash. A classic BPF program returns the
// socket's index in the group: random % n. If it cannot be attached the hash stays in use,
// which still works, only less evenly.
bool spread_at_random(int fd, std::size_t n) {
  sock_filter code[] = {
      {BPF_LD | BPF_W | BPF_ABS, 0, 0, static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_RANDOM)},
      {BPF_ALU | BPF_MOD | BPF_K, 0, 0, static_cast<std::uint32_t>(n)},
      {BPF_RET | BPF_A, 0, 0, 0},
  };
  const sock_fprog program{static_cast<unsigned short>(std::size(code)), code};
  return ::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program) == 0;
}

error_code open_udp(udp::socket& s, const udp::endpoint& at, bool reuse_port) {
  error_code ec;
  s.open(at.protocol(), ec);
  if (!ec && reuse_port) ec = set_reuse_port(s.native_handle());
  // A deeper receive queue absorbs bursts; the kernel caps it at net.core.rmem_max.
  if (!ec) s.set_option(asio::socket_base::receive_buffer_size(1 << 20), ec);
  if (!ec) s.bind(at, ec);
  error_code ignored;
  if (ec) s.close(ignored);
  return ec;
}

error_code open_tcp(tcp::acceptor& a, const tcp::endpoint& at, bool reuse_port) {
  error_code ec;
  a.open(at.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && reuse_port) ec = set_reuse_port(a.native_handle());
  if (!ec) a.bind(at, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  error_code ignored;
  if (ec) a.close(ignored);
  return ec;
}

// Makes `to` a second descriptor of the kernel socket behind `from`.
template <typename Socket>
error_code adopt_dup(Socket& to, Socket& from) {
  const int fd = ::dup(from.native_handle());
  if (fd < 0) return error_code(errno, boost::system::system_category());
  error_code ec;
  to.assign(from.local_endpoint().protocol(), fd, ec);
  if (ec) ::close(fd);
  return ec;
}

class ServerImpl final : public Server {
 public:
  ServerImpl(ServerOptions options, std::shared_ptr<const Zone> zone) {
    shared_.options = std::move(options);
    shared_.zone = std::move(zone);
    if (shared_.options.threads == 0) {
      shared_.options.threads = std::max(1u, std::thread::hardware_concurrency());
    }
  }
  ~ServerImpl() override { stop(); }

  Result<void> listen() {
    error_code ec;
    const auto address = asio::ip::make_address(shared_.options.address, ec);
    if (ec) {
      return Error(ErrorCode::kInvalidArgument,
                   "bad listen address \"" + shared_.options.address + "\"");
    }
    for (unsigned i = 0; i < shared_.options.threads; ++i) {
      workers_.push_back(std::make_unique<Worker>(shared_));
    }
    // One worker needs no port sharing (and without SO_REUSEPORT no other process of ours
    // can bind the port beside us).
    const bool reuse = shared_.options.threads > 1 && mode() != UdpSockets::kShared;
    for (int attempt = 0; attempt < kPortAttempts; ++attempt) {
      ec.clear();
      std::uint16_t port = shared_.options.port;
      if (port == 0) port = pick_port(address, ec);
      if (!ec) ec = bind_all(address, port, reuse);
      if (!ec) {
        port_ = port;
        break;
      }
      close_all();
      // With a port of our choosing, another process may have taken it meanwhile: pick again.
      if (shared_.options.port != 0 || ec != asio::error::address_in_use) break;
    }
    if (ec) {
      return Error(ErrorCode::kUnavailable, "cannot listen on " + shared_.options.address + ":" +
                                                std::to_string(shared_.options.port) + ": " +
                                                ec.message());
    }
    if (reuse && mode() == UdpSockets::kPerWorkerRandom) {
      spread_at_random(workers_.front()->udp_socket().native_handle(), workers_.size());
    }
    for (auto& w : workers_) w->run();
    return ok_result();
  }

  std::uint16_t port() const override { return port_; }

  void stop() override {
    if (stopped_.exchange(true)) return;
    for (auto& w : workers_) w->stop();
    workers_.clear();
  }

 private:
  // A port free for both UDP and TCP, found with plain sockets. Binding port 0 straight
  // away with SO_REUSEPORT is not safe: for UDP, Linux may then hand out a port that another
  // SO_REUSEPORT socket of the same user holds, and we would share (steal) its traffic.
  static std::uint16_t pick_port(const asio::ip::address& address, error_code& ec) {
    asio::io_context ioc;
    udp::socket u(ioc);
    tcp::acceptor t(ioc);
    u.open(udp::endpoint(address, 0).protocol(), ec);
    if (!ec) u.bind(udp::endpoint(address, 0), ec);
    if (ec) return 0;
    const std::uint16_t port = u.local_endpoint().port();
    t.open(tcp::endpoint(address, port).protocol(), ec);
    if (!ec) t.bind(tcp::endpoint(address, port), ec);
    return ec ? 0 : port;
  }

  error_code bind_all(const asio::ip::address& address, std::uint16_t port, bool reuse) {
    auto& first = *workers_.front();
    error_code ec = open_udp(first.udp_socket(), udp::endpoint(address, port), reuse);
    if (!ec) ec = open_tcp(first.acceptor(), tcp::endpoint(address, port), reuse);
    for (std::size_t i = 1; i < workers_.size() && !ec; ++i) {
      auto& w = *workers_[i];
      if (reuse) {
        // Its own sockets, in the same SO_REUSEPORT groups.
        ec = open_udp(w.udp_socket(), udp::endpoint(address, port), true);
        if (!ec) ec = open_tcp(w.acceptor(), tcp::endpoint(address, port), true);
      } else {
        // The first worker's sockets again: one kernel socket, in every worker's loop.
        ec = adopt_dup(w.udp_socket(), first.udp_socket());
        if (!ec) ec = adopt_dup(w.acceptor(), first.acceptor());
      }
    }
    return ec;
  }

  void close_all() {
    error_code ignored;
    for (auto& w : workers_) {
      w->udp_socket().close(ignored);
      w->acceptor().close(ignored);
    }
  }

  UdpSockets mode() const { return shared_.options.udp_sockets; }

  Shared shared_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
};

}  // namespace

Result<std::unique_ptr<Server>> Server::start(ServerOptions options,
                                              std::shared_ptr<const Zone> zone) {
  if (!zone) return Error(ErrorCode::kInvalidArgument, "dns server: no zone");
  if (options.max_request_bytes < 12 || options.max_request_bytes > kMaxTcpMessage) {
    return Error(ErrorCode::kInvalidArgument, "dns server: max_request_bytes must be 12-65535");
  }
  auto server = std::make_unique<ServerImpl>(std::move(options), std::move(zone));
  if (auto r = server->listen(); !r) return r.error();
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace cw::dns
