// What one node's WireGuard device and routes should be, as a pure function of what the
// node agent sees (the local cluster's blocks, its Nodes, and the ClusterPeerings' status),
// in the spirit of Kilo's NewTopology: computed, sorted so it is stable, then applied by a
// separate step that writes only the difference.
//
// Rules (docs/node-agent.md, docs/gateway.md):
// - a node of a mesh cluster, and a gateway candidate of a gateway cluster, peers with every
//   ready node of each Connected or Degraded remote mesh cluster; a peer's allowed IPs are
//   that remote node's pod blocks, and the remote cluster's service ranges go to one of its
//   nodes (the first ready one by name), so that Services are reached through it;
// - with a remote gateway cluster, they peer with each of its gateway candidates: each
//   candidate's own blocks (its probes and pods), and the whole cluster's pod and service
//   ranges on the active one (longer prefixes win in WireGuard, so both hold at once);
//   moving the active gateway moves only those ranges, and the sessions already exist;
// - a member node of a gateway cluster (not a candidate) peers only with its cluster's
//   candidates over the in-cluster network, and every remote range goes to the active one;
// - a candidate also peers with every other local node, with that node's blocks: traffic
//   that came out of the tunnel for another node's pods goes back into it (a route table of
//   its own, kGatewayTable, used for packets arriving on the tunnel device), so it crosses
//   the in-cluster network encrypted and with the gateway's address outside: an L3 underlay
//   with source/destination checks lets it through;
// - routes: each remote pod and service range via the WireGuard device;
// - other local nodes' pod blocks via their node address on the underlay (flat in-cluster
//   routing, never through the tunnel), unless the cluster's CNI routes them: with
//   InClusterRoutes::kAuto, a block that any route of someone else's covers or splits (BIRD's
//   `proto bird`, flannel's onlink route through flannel.1, ...) is left to it;
// - a remote range overlapping a local pod or service range is refused and reported, whatever
//   the peering's status says.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/base/result.h"
#include "common/net/prefix.h"
#include "common/wireguard/device.h"

namespace cw::agent {

// A cluster's topology (docs/gateway.md): every node peers with every remote node, or only
// gateways do.
enum class Mode { kMesh, kGateway };
const char* to_string(Mode mode);  // "mesh", "gateway"
Result<Mode> parse_mode(const std::string& text);

// The route table, and the rule's priority, that send what came out of the tunnel back into
// it on a gateway candidate.
inline constexpr int kGatewayTable = 119;
inline constexpr std::uint32_t kGatewayRulePriority = 119;

// Persistent keepalive of a candidate's remote peers when nothing else sets one: gateways
// are often behind NAT, whose mappings time out without traffic.
inline constexpr std::uint16_t kGatewayKeepalive = 25;

struct RemoteNode {
  std::string name;
  std::string endpoint;    // host:port
  std::string public_key;  // base64
  std::vector<net::Prefix> pod_cidrs;
};

struct RemoteCluster {
  std::string cluster_id;  // the peering's remoteClusterID
  std::string phase;       // from ClusterPeering status
  std::vector<net::Prefix> pod_cidrs;
  std::vector<net::Prefix> service_cidrs;
  std::vector<RemoteNode> nodes;
  std::uint16_t persistent_keepalive = 0;
  Mode mode = Mode::kMesh;
  std::vector<RemoteNode> gateways;  // gateway mode: its candidates (endpoint may be empty: discovered)
  std::string active_gateway;        // which of them is active, as this node last learned it
};

struct LocalNode {
  std::string name;
  std::vector<net::IpAddress> internal_ips;   // status.addresses InternalIP, one per family on dual-stack nodes
  std::vector<net::Prefix> pod_cidrs;         // clusterwire.io/pod-cidr
  // Gateway mode: the node's tunnel in the cluster (clusterwire.io/public-key and
  // clusterwire.io/endpoint) and whether it is a gateway candidate.
  std::string public_key;
  std::string endpoint;
  bool gateway_candidate = false;
};

// Who routes another local node's pod block (--in-cluster-routes).
enum class InClusterRoutes {
  kAuto,  // clusterwire, unless a route of someone else's already reaches the block
  kOn,    // clusterwire, always
  kOff,   // never clusterwire: the CNI does
};

struct TopologyInput {
  std::string node_name;
  std::vector<net::Prefix> local_pod_cidrs;      // the cluster's blocks
  std::vector<net::Prefix> local_service_cidrs;
  std::vector<LocalNode> local_nodes;            // this one included
  std::vector<RemoteCluster> remotes;
  std::uint16_t default_keepalive = 0;
  InClusterRoutes in_cluster_routes = InClusterRoutes::kAuto;
  // Destinations of the routes in the main table that are not clusterwire's (another
  // protocol than 119), as the kernel holds them now.
  std::vector<net::Prefix> foreign_routes;
  Mode mode = Mode::kMesh;        // this cluster's
  std::string active_gateway;     // gateway mode: the Lease's holder, "" when none
};

// What this node is in its cluster's topology.
enum class Role { kMesh, kActiveGateway, kStandbyGateway, kMember };
const char* to_string(Role role);  // "mesh", "active-gateway", "standby-gateway", "member"

struct DesiredRoute {
  net::Prefix destination;
  bool via_tunnel = false;                 // through the WireGuard device
  std::optional<net::IpAddress> gateway;   // else: via this node address on the underlay

  friend bool operator==(const DesiredRoute&, const DesiredRoute&) = default;
  friend bool operator<(const DesiredRoute& a, const DesiredRoute& b) { return a.destination < b.destination; }
};

struct Topology {
  Role role = Role::kMesh;
  std::vector<wg::Peer> peers;        // sorted by public key; allowed IPs sorted
  std::vector<DesiredRoute> routes;   // sorted by destination
  // On a gateway candidate: routes in kGatewayTable (other local nodes' blocks, via the
  // tunnel), for packets that arrived on the tunnel device. Empty elsewhere: no rule either.
  std::vector<DesiredRoute> gateway_routes;
  std::vector<std::string> refused;   // what was not routed, and why
  std::vector<net::Prefix> left_to_cni;  // other local nodes' blocks that someone else routes (kAuto)
};

Topology compute_topology(const TopologyInput& input);

}  // namespace cw::agent
