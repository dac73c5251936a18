// A gateway candidate at work (docs/gateway.md): runs the Election of election.h against the
// real world. One thread sends and receives heartbeats over the underlay (UDP, port 51822 by
// default) and asks the election what to do every few milliseconds; another writes the Lease,
// so that a slow API server never delays a heartbeat (a late heartbeat would look like death).
//
// The node agent owns it on a node labelled clusterwire.io/gateway=true in a gateway-mode
// cluster: it feeds in the Lease (from its informer), the other candidates' addresses and the
// score (from its datapath probes), and sends the beacons this asks for through the tunnel.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/clock.h"
#include "common/kube/client.h"
#include "common/log/log.h"
#include "common/net/ip_address.h"
#include "gateway/election.h"
#include "gateway/message.h"

namespace cw::gateway {

struct RunnerOptions {
  std::string cluster_id;
  std::string node_name;
  std::uint16_t port = kDefaultHeartbeatPort;
  // Where the heartbeat socket listens; unset: every address. (Tests run several candidates
  // on loopback, each on an address of its own and the same port.)
  std::optional<net::IpAddress> bind_address;
  std::string lease_namespace = "kube-system";
  std::string lease_name = "clusterwire-gateway";
  Settings settings;
  std::chrono::milliseconds beacon_interval{1000};
};

struct RunnerStats {
  std::uint64_t heartbeats_sent = 0, heartbeats_received = 0, refused = 0;
  std::uint64_t lease_writes = 0, lease_write_failures = 0;
  std::uint64_t takeovers = 0;  // health-triggered
};

// The Lease object as the API returns it → what the election needs.
std::optional<LeaseRecord> lease_record(const nlohmann::json& lease);

class Runner {
 public:
  // `on_change`: this node's claim (active, epoch) or the Lease's holder changed.
  // `on_beacon`: tell the remote peers this state (every beacon interval, and at once on a
  // change). Both are called on the runner's thread and must not block.
  static Result<std::unique_ptr<Runner>> start(RunnerOptions options, kube::Client& local, Clock& clock,
                                               log::Logger logger, std::function<void()> on_change,
                                               std::function<void(const Heartbeat&)> on_beacon);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  void set_candidate(bool candidate);
  void set_score(int score);
  // The other candidates' underlay addresses: heartbeats go there, and only theirs are heard.
  void set_peers(const std::vector<net::IpAddress>& peers);
  // The Lease as the agent's informer has it (nullopt: it does not exist).
  void observe_lease(const std::optional<nlohmann::json>& lease);

  Heartbeat state() const;     // this node's claim, as beacons carry it
  std::string holder() const;  // the Lease's holder as last seen (or written)
  std::uint16_t port() const { return port_; }
  RunnerStats stats() const;

 private:
  Runner(RunnerOptions options, kube::Client& local, Clock& clock, log::Logger logger)
      : options_(std::move(options)), local_(local), clock_(clock), log_(std::move(logger)),
        election_(options_.node_name, options_.settings) {}
  void loop();
  void writer();
  void receive();
  void send_heartbeats();
  void wake();
  Result<nlohmann::json> write(Action action, const std::optional<nlohmann::json>& observed);

  RunnerOptions options_;
  kube::Client& local_;
  Clock& clock_;
  log::Logger log_;
  std::function<void()> on_change_;
  std::function<void(const Heartbeat&)> on_beacon_;

  int fd_ = -1, wake_ = -1;
  bool v6_socket_ = false;
  std::uint16_t port_ = 0;

  mutable std::mutex mu_;  // guards everything below
  Election election_;
  std::optional<nlohmann::json> lease_object_;  // as last observed, for updates
  std::vector<net::IpAddress> peers_;
  RunnerStats stats_;
  std::optional<Action> pending_;               // for the writer
  bool writing_ = false;
  Clock::TimePoint write_backoff_until_{};
  Heartbeat last_beacon_;
  std::string last_holder_;
  std::condition_variable writer_cv_;

  std::atomic<bool> stopping_{false};
  std::thread loop_thread_, writer_thread_;
};

}  // namespace cw::gateway
