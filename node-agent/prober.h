// The datapath prober's sockets: one UDP socket per family on the probe port, answering the
// probes of remote agents and sending this node's, on a thread of its own. probe::Schedule
// decides what to send and what the answers mean; this only moves packets.
//
// Probes leave from an ephemeral port, from a socket replaced every 10 s (the previous one
// kept for its late answers): a NAT decision lasts as long as its conntrack entry, so a fixed
// port pair would keep the first decision forever and never see a masquerade added later.
//
// Both directions accept a packet only when it arrived on the tunnel device (IP_PKTINFO):
// a probe that came from the underlay, or from a local pod, is never answered, so the
// responder is no reflector, and an answer proves the WireGuard path.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/base/clock.h"
#include "common/base/result.h"
#include "common/log/log.h"
#include "gateway/message.h"
#include "node-agent/probe.h"

namespace cw::agent {

struct ProberOptions {
  std::string interface = "cw0";  // the tunnel: probes go out and are accepted only there
  std::uint16_t port = probe::kDefaultPort;
  probe::Settings settings;
  // A gateway beacon (docs/gateway.md) that arrived through the tunnel on the probe port,
  // with its source address; called on the prober's thread, must not block.
  std::function<void(const gateway::Message&, const net::IpAddress& from)> on_beacon;
};

struct ProberStats {
  std::uint64_t sent = 0, sent_bytes = 0;          // this node's probes
  std::uint64_t answers = 0;                       // answers to them that matched
  std::uint64_t requests = 0, request_bytes = 0;   // remote probes answered
  std::uint64_t refused = 0;                       // packets dropped: wrong device, malformed
  std::uint64_t beacons_sent = 0, beacons_received = 0;
  std::uint64_t send_errors = 0;
};

class Prober {
 public:
  // Binds the sockets (kUnavailable naming the port if it is taken) and starts the thread.
  // `on_change` is called on the prober's thread when some verdict changed; it must not block.
  static Result<std::unique_ptr<Prober>> start(ProberOptions options, Clock& clock, log::Logger logger,
                                               std::function<void()> on_change);
  ~Prober();
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  // What to probe, from where (this node's probe address per family; a target of a family
  // without one is skipped), and the tunnel's MTU (the large probe's size).
  void set_targets(const std::vector<probe::Target>& targets, std::optional<net::IpAddress> source_v4,
                   std::optional<net::IpAddress> source_v6, std::uint32_t mtu);
  std::vector<probe::PeerReport> reports() const;
  // Sends a gateway beacon through the tunnel to each address (their probe ports), from this
  // node's probe address of that family.
  void send_beacon(const gateway::Message& beacon, const std::vector<net::IpAddress>& to);
  ProberStats stats() const;
  std::uint16_t port() const { return port_; }

 private:
  Prober() = default;
  void run();
  void receive(int fd);
  void send(const probe::Attempt& attempt);

  ProberOptions options_;
  Clock* clock_ = nullptr;
  log::Logger log_;
  std::function<void()> on_change_;
  std::uint16_t port_ = 0;
  void rotate_request_sockets(Clock::TimePoint now);

  int fd4_ = -1, fd6_ = -1, wake_ = -1;  // the responders, on the probe port
  // The requesters per family: [0] current, [1] previous.
  int req4_[2] = {-1, -1}, req6_[2] = {-1, -1};
  Clock::TimePoint rotated_{};
  mutable std::mutex mu_;  // guards everything below
  std::unique_ptr<probe::Schedule> schedule_;
  std::optional<net::IpAddress> source_v4_, source_v6_;
  std::uint32_t mtu_ = 1420;
  ProberStats stats_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace cw::agent
