// What one node's WireGuard device and routes should be, as a pure function of what the
// node agent sees (the local cluster's blocks, its Nodes, and the ClusterPeerings' status),
// in the spirit of Kilo's NewTopology: computed, sorted so it is stable, then applied by a
// separate step that writes only the difference.
//
// Rules (docs/node-agent.md):
// - every node peers with every ready node of each Connected or Degraded remote cluster;
//   a peer's allowed IPs are that remote node's pod blocks;
// - the remote cluster's service ranges go to one of its nodes (the first ready one by
//   name), so that Services are reached through it;
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

#include "common/net/prefix.h"
#include "common/wireguard/device.h"

namespace cw::agent {

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
};

struct LocalNode {
  std::string name;
  std::vector<net::IpAddress> internal_ips;   // status.addresses InternalIP, one per family on dual-stack nodes
  std::vector<net::Prefix> pod_cidrs;         // clusterwire.io/pod-cidr
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
};

struct DesiredRoute {
  net::Prefix destination;
  bool via_tunnel = false;                 // through the WireGuard device
  std::optional<net::IpAddress> gateway;   // else: via this node address on the underlay

  friend bool operator==(const DesiredRoute&, const DesiredRoute&) = default;
  friend bool operator<(const DesiredRoute& a, const DesiredRoute& b) { return a.destination < b.destination; }
};

struct Topology {
  std::vector<wg::Peer> peers;        // sorted by public key; allowed IPs sorted
  std::vector<DesiredRoute> routes;   // sorted by destination
  std::vector<std::string> refused;   // what was not routed, and why
  std::vector<net::Prefix> left_to_cni;  // other local nodes' blocks that someone else routes (kAuto)
};

Topology compute_topology(const TopologyInput& input);

}  // namespace cw::agent
