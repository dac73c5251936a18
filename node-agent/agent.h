// The node agent: one per node (a DaemonSet with hostNetwork). It owns the node's WireGuard
// key and device, publishes the public key and endpoint as Node annotations, and keeps the
// device's peers and the node's routes equal to compute_topology() of what it sees in the
// local API (Nodes and ClusterPeerings; never the broker).
//
// One reconcile pass: observe → compute_topology → diff_device against the device as read
// back → set only the difference → set_routes (protocol 119) → annotate the Node. Equal
// state writes nothing: no peer reset, no route flap, no dropped handshake.
//
// On stop the device is left as it is, so traffic keeps flowing across an agent restart;
// `cw-node-agent cleanup` removes what clusterwire made.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/clock.h"
#include "common/kube/client.h"
#include "common/log/log.h"
#include "common/net/prefix.h"
#include "common/wireguard/device.h"
#include "gateway/election.h"
#include "gateway/message.h"
#include "node-agent/probe.h"
#include "node-agent/topology.h"

namespace cw::metrics {
class Metrics;
}
namespace cw::netfilter {
class Nftables;
}

namespace cw::agent {

struct AgentConfig {
  std::string node_name;
  std::string key_path = "/var/lib/clusterwire/private.key";
  std::string interface = "cw0";
  std::uint16_t listen_port = 51820;
  std::string endpoint;          // host:port to advertise; default: the Node's InternalIP
  std::uint32_t mtu = 0;         // 0: the underlay's MTU less WireGuard's overhead (80)
  std::uint32_t underlay_mtu = 0;  // 0: that of the link holding the Node's InternalIP (else 1500)
  std::uint16_t persistent_keepalive = 0;  // for peerings that do not set their own
  // ClusterSet ingress policy (docs/policy.md): keep table inet clusterwire_ingress for the
  // traffic from peered clusters to this node's pods.
  bool ingress_policy = true;
  std::vector<net::Prefix> service_cidrs;  // the local cluster's, never routed to a remote
  // Userspace WireGuard: started as `<wireguard_go> <interface>` when the device is missing
  // (it daemonises, and outlives the agent). Empty: never start one.
  std::string wireguard_go = "wireguard-go";
  std::chrono::milliseconds resync_period{std::chrono::seconds(30)};
  // Who routes the other local nodes' pod blocks (docs/node-agent.md, "Beside the CNI").
  InClusterRoutes in_cluster_routes = InClusterRoutes::kAuto;
  bool clamp_mss = true;  // lower the MSS of SYNs leaving through the tunnel to what its MTU allows
  // Datapath probes (docs/node-agent.md): UDP port, 0 for none; and their timing.
  std::uint16_t probe_port = probe::kDefaultPort;
  probe::Settings probe;
  // Gateway mode (docs/gateway.md): this cluster's ID (it names the candidates' messages),
  // the candidates' heartbeat port, their Lease, and the election's timing.
  std::string cluster_id;
  std::uint16_t gateway_port = gateway::kDefaultHeartbeatPort;
  std::string gateway_lease_namespace = "kube-system";
  std::string gateway_lease_name = "clusterwire-gateway";
  std::string gateway_label = "clusterwire.io/gateway";  // =true: a gateway candidate
  gateway::Settings gateway;
};

// "auto", "on", "off".
Result<InClusterRoutes> parse_in_cluster_routes(const std::string& text);

Result<void> validate(const AgentConfig& config);

// What the agent last did, for /readyz, `cwctl status` and tests.
struct AgentState {
  bool applied = false;            // a pass completed
  std::string public_key;
  std::size_t peers = 0;
  std::size_t routes = 0;
  std::vector<std::string> refused;  // from compute_topology
  std::vector<net::Prefix> left_to_cni;  // local blocks the CNI routes (--in-cluster-routes auto)
  std::string last_error;
  std::uint64_t device_writes = 0;   // passes that changed the device
  std::uint64_t route_writes = 0;    // passes that changed routes
  std::uint64_t rule_writes = 0;     // passes that changed clusterwire's nftables table
  std::uint64_t report_writes = 0;   // datapath reports written to the Node
  std::vector<net::IpAddress> probe_addresses;  // this node's, on the tunnel device
  std::string role = "mesh";        // mesh, active-gateway, standby-gateway, member
  std::string active_gateway;       // gateway mode: this cluster's, as this node follows it
  std::map<std::string, std::string> remote_active;  // remote gateway cluster → its active gateway
};

class Agent {
 public:
  // `wireguard` is the backend (kernel or UAPI) and `nftables` keeps clusterwire's netfilter
  // table; they must outlive the agent, as must `local` and `metrics` (which may be null).
  Agent(AgentConfig config, kube::Client& local, wg::DeviceControl& wireguard, netfilter::Nftables& nftables,
        Clock& clock, log::Logger logger, metrics::Metrics* metrics);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Loads or creates the key, makes sure the device exists, and starts reconciling.
  Result<void> start();
  void stop();  // leaves the device and routes as they are
  AgentState state() const;

  // Removes clusterwire's routes, its nftables table and the WireGuard device.
  static Result<void> cleanup(const AgentConfig& config, netfilter::Nftables& nftables, log::Logger logger);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cw::agent
