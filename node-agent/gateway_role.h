// The node agent's part in gateway mode (docs/gateway.md), apart from the agent's reconcile
// pass, which asks it what it needs:
//   - on a candidate, the election runner (started the first time the node is one; it releases
//     the Lease when the node stops being one), fed with the Lease, the other candidates and
//     the node's score;
//   - the beacons: sent through the prober to the remote nodes this node probes, and those
//     received from remote candidates, from which the active gateway of each remote gateway
//     cluster is known without the broker.
// Thread-safe: beacons arrive on the prober's thread, the runner calls back on its own.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/clock.h"
#include "common/kube/client.h"
#include "common/log/log.h"
#include "common/net/ip_address.h"
#include "gateway/active_view.h"
#include "gateway/message.h"
#include "gateway/runner.h"

namespace cw::agent {

class Prober;

struct GatewayRoleOptions {
  std::string cluster_id;  // names the messages; "" → "cluster"
  std::string node_name;
  std::uint16_t port = gateway::kDefaultHeartbeatPort;
  std::string lease_namespace;
  std::string lease_name;
  gateway::Settings settings;
};

class GatewayRole {
 public:
  // `changed`: something the topology depends on changed (run a reconcile pass); `lease`: the
  // gateway Lease as the agent's informer has it.
  GatewayRole(GatewayRoleOptions options, kube::Client& local, Clock& clock, log::Logger logger,
              std::function<void()> changed, std::function<std::optional<nlohmann::json>()> lease);
  ~GatewayRole();
  GatewayRole(const GatewayRole&) = delete;
  GatewayRole& operator=(const GatewayRole&) = delete;

  void set_prober(Prober* prober);  // beacons go out through it (null: none)
  void stop();                      // the runner first: its callbacks use the prober

  // From a reconcile pass: whether this node is a candidate, and the others' node addresses.
  void update(bool candidate, const std::vector<net::IpAddress>& other_candidates);
  void lease_changed();             // the informer saw the Lease change
  void set_score(int score);        // remote clusters this node can forward to

  // This cluster's active gateway: the runner's view on a candidate, else the Lease's holder.
  std::string local_active();
  // A remote gateway cluster's active gateway among its candidates (docs/gateway.md).
  std::string remote_active(const std::string& cluster, const std::vector<std::string>& candidates,
                            const std::string& hint);

  // Where beacons come from (a remote candidate's tunnel address → its cluster and name), and,
  // on a candidate, where this node's go; the remote clusters still peered.
  void set_beacon_paths(std::map<net::IpAddress, std::pair<std::string, std::string>> sources,
                        std::vector<net::IpAddress> targets, const std::vector<std::string>& clusters);
  // The runner's figures and claim, when this node is (or was) a candidate.
  std::optional<std::pair<gateway::Heartbeat, gateway::RunnerStats>> runner_figures();

  // A beacon the prober received through the tunnel.
  void heard_beacon(const gateway::Message& message, const net::IpAddress& from);

 private:
  void send_beacons(const gateway::Heartbeat& claim);
  std::string message_cluster() const { return options_.cluster_id.empty() ? "cluster" : options_.cluster_id; }

  GatewayRoleOptions options_;
  kube::Client& local_;
  Clock& clock_;
  log::Logger log_;
  std::function<void()> changed_;
  std::function<std::optional<nlohmann::json>()> lease_;

  std::mutex mu_;  // guards everything below
  std::unique_ptr<gateway::Runner> runner_;
  Prober* prober_ = nullptr;
  gateway::ActiveView active_view_;
  std::map<net::IpAddress, std::pair<std::string, std::string>> beacon_sources_;
  std::vector<net::IpAddress> beacon_targets_;
};

}  // namespace cw::agent
