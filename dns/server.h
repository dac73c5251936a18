// The DNS server's transport: UDP and TCP on one address and port, answering from a Zone
// through handle() (handler.h). Asio stays inside server.cc.
//
// Threads: each of `threads` workers runs its own event loop with its own UDP socket and
// TCP listener; how datagrams reach the workers is `udp_sockets` (bench/dns_bench.sh compares
// the choices).
//
// TCP (RFC 7766): 2-byte length framing, any number of queries per connection, pipelined
// queries answered in order, an idle timeout, a connection limit (further connections are
// accepted and closed at once). Memory is bounded: a worker holds one UDP datagram at a time,
// and a connection at most max_request_bytes of input and 16 KiB plus one response of output
// (it stops reading until that is written).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "common/base/result.h"
#include "dns/handler.h"
#include "dns/records.h"

namespace cw::dns {

enum class Transport : std::uint8_t { kUdp, kTcp };

// One query's outcome, for the caller's metrics.
struct QueryEvent {
  Transport transport = Transport::kUdp;
  bool answered = false;                   // false: dropped (not a query, or unreadable)
  Rcode rcode = Rcode::kNoError;           // when answered
  bool truncated = false;                  // TC was set
  std::span<const std::uint8_t> request;   // valid during the call only: for query logs
  std::span<const std::uint8_t> response;  // empty when dropped
  std::chrono::nanoseconds latency{0};     // from the request read to the response handed over
};

// Called on the worker's thread, once per request: must be quick and thread-safe, and must
// not call Server::stop().
using QueryObserver = std::function<void(const QueryEvent&)>;

// How datagrams reach the workers. With SO_REUSEPORT (the first two), TCP also has one
// listener per worker; a fixed port that another process of the same user already holds with
// SO_REUSEPORT is then shared with it rather than refused (port 0 is always a fresh port).
enum class UdpSockets : std::uint8_t {
  // One SO_REUSEPORT socket per worker, and a small BPF program that sends each datagram to
  // one of them at random: even load however few clients there are (a forwarder may use just
  // one or two source ports). Falls back to kPerWorkerHash if the kernel refuses the program.
  kPerWorkerRandom,
  // One SO_REUSEPORT socket per worker, chosen by the kernel's hash of the client's address
  // and port: every datagram of a client goes to the same worker, so a few busy clients can
  // land on one worker and leave the others idle.
  kPerWorkerHash,
  // One socket (and one TCP listener) watched by every worker: even load, but each datagram
  // that arrives while workers sleep wakes all of them.
  kShared,
};

struct ServerOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  // 0: any free port (the same for UDP and TCP); see Server::port()
  unsigned threads = 0;    // 0: std::thread::hardware_concurrency()
  UdpSockets udp_sockets = UdpSockets::kPerWorkerRandom;
  HandlerOptions handler;
  std::chrono::milliseconds tcp_idle_timeout{std::chrono::seconds(10)};  // also bounds a write
  std::size_t max_tcp_connections = 1024;                                // over all workers
  std::size_t max_request_bytes = 4096;  // larger requests: UDP dropped, TCP closed
  QueryObserver observer;                // optional
};

class Server {
 public:
  // Binds both sockets and starts the workers; an error if the address or port is unusable.
  static Result<std::unique_ptr<Server>> start(ServerOptions options,
                                               std::shared_ptr<const Zone> zone);
  virtual ~Server() = default;
  virtual std::uint16_t port() const = 0;
  // Closes the sockets and every connection and joins the workers. Idempotent; the
  // destructor calls it.
  virtual void stop() = 0;
};

}  // namespace cw::dns
