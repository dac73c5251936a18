#include "node-agent/topology.h"

#include <algorithm>
#include <map>

namespace cw::agent {
namespace {

bool overlaps_any(const net::Prefix& p, const std::vector<net::Prefix>& list) {
  return std::any_of(list.begin(), list.end(), [&](const net::Prefix& q) { return q.overlaps(p); });
}

}  // namespace

Topology compute_topology(const TopologyInput& in) {
  Topology t;
  std::vector<net::Prefix> local = in.local_pod_cidrs;
  local.insert(local.end(), in.local_service_cidrs.begin(), in.local_service_cidrs.end());
  std::map<std::string, std::size_t> peer_index;  // public key → position in t.peers

  std::vector<RemoteCluster> remotes = in.remotes;
  std::sort(remotes.begin(), remotes.end(),
            [](const RemoteCluster& a, const RemoteCluster& b) { return a.cluster_id < b.cluster_id; });
  for (const auto& r : remotes) {
    if (r.phase != "Connected" && r.phase != "Degraded") continue;
    // Every range of this cluster that we would route, checked against ours first.
    bool refused = false;
    for (const auto* list : {&r.pod_cidrs, &r.service_cidrs}) {
      for (const auto& p : *list) {
        if (overlaps_any(p, local)) {
          t.refused.push_back("cluster " + r.cluster_id + ": " + p.to_string() +
                              " overlaps a local pod or service range; not routed");
          refused = true;
        }
      }
    }
    if (refused) continue;  // the whole cluster: half a peering is worse than none

    std::vector<RemoteNode> nodes = r.nodes;
    std::sort(nodes.begin(), nodes.end(), [](const RemoteNode& a, const RemoteNode& b) { return a.name < b.name; });
    bool services_placed = false;
    for (const auto& n : nodes) {
      auto key = wg::Key::from_base64(n.public_key);
      auto endpoint = wg::Endpoint::parse(n.endpoint);
      if (!key || !endpoint || n.pod_cidrs.empty()) continue;  // not ready
      std::vector<net::Prefix> allowed;
      for (const auto& p : n.pod_cidrs) {
        const bool inside = std::any_of(r.pod_cidrs.begin(), r.pod_cidrs.end(),
                                        [&](const net::Prefix& c) { return c.contains(p); });
        if (!inside || overlaps_any(p, local)) {
          t.refused.push_back("cluster " + r.cluster_id + " node " + n.name + ": " + p.to_string() +
                              " is outside its cluster's pod ranges or overlaps ours; not routed");
          continue;
        }
        allowed.push_back(p);
      }
      if (allowed.empty()) continue;
      if (!services_placed) {
        allowed.insert(allowed.end(), r.service_cidrs.begin(), r.service_cidrs.end());
        services_placed = true;
      }
      const std::string k = key->to_base64();
      if (peer_index.count(k)) {
        t.refused.push_back("cluster " + r.cluster_id + " node " + n.name +
                            ": its public key is another remote node's too; not used twice");
        continue;
      }
      wg::Peer peer;
      peer.public_key = *key;
      peer.endpoint = *endpoint;
      std::sort(allowed.begin(), allowed.end());
      peer.allowed_ips = allowed;
      peer.persistent_keepalive = r.persistent_keepalive != 0 ? r.persistent_keepalive : in.default_keepalive;
      peer_index[k] = t.peers.size();
      t.peers.push_back(std::move(peer));
    }
    if (!services_placed) continue;  // no ready node: nothing to route to yet
    for (const auto* list : {&r.pod_cidrs, &r.service_cidrs}) {
      for (const auto& p : *list) t.routes.push_back({p, true, std::nullopt});
    }
  }

  // Flat in-cluster routing: other local nodes' blocks via their node address, where nobody
  // else routes them. A default route does not count: it reaches everything and routes nothing.
  for (const auto& n : in.local_nodes) {
    if (n.name == in.node_name || in.in_cluster_routes == InClusterRoutes::kOff) continue;
    for (const auto& p : n.pod_cidrs) {
      if (in.in_cluster_routes == InClusterRoutes::kAuto &&
          std::any_of(in.foreign_routes.begin(), in.foreign_routes.end(),
                      [&](const net::Prefix& f) { return f.length() > 0 && f.overlaps(p); })) {
        t.left_to_cni.push_back(p);
        continue;
      }
      // A block needs a next hop of its own family: a v6 block is routed via the node's v6 address.
      auto via = std::find_if(n.internal_ips.begin(), n.internal_ips.end(),
                              [&](const net::IpAddress& ip) { return ip.family() == p.family(); });
      if (via == n.internal_ips.end()) continue;
      t.routes.push_back({p, false, *via});
    }
  }
  std::sort(t.left_to_cni.begin(), t.left_to_cni.end());

  std::sort(t.peers.begin(), t.peers.end(), [](const wg::Peer& a, const wg::Peer& b) { return a.public_key < b.public_key; });
  std::sort(t.routes.begin(), t.routes.end());
  t.routes.erase(std::unique(t.routes.begin(), t.routes.end(),
                             [](const DesiredRoute& a, const DesiredRoute& b) { return a.destination == b.destination; }),
                 t.routes.end());
  return t;
}

}  // namespace cw::agent
