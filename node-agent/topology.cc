#include "node-agent/topology.h"

#include <algorithm>
#include <map>

#include "node-agent/probe.h"

namespace cw::agent {
namespace {

bool overlaps_any(const net::Prefix& p, const std::vector<net::Prefix>& list) {
  return std::any_of(list.begin(), list.end(), [&](const net::Prefix& q) { return q.overlaps(p); });
}

template <typename T>
std::vector<T> sorted_by_name(std::vector<T> list) {
  std::sort(list.begin(), list.end(), [](const T& a, const T& b) { return a.name < b.name; });
  return list;
}

// Builds the peer list, one peer per public key.
class PeerSet {
 public:
  explicit PeerSet(Topology& t) : t_(t) {}

  // False (and a refusal) when the key is already a peer's.
  bool add(const std::string& who, const wg::Key& key, std::optional<wg::Endpoint> endpoint,
           std::vector<net::Prefix> allowed, std::uint16_t keepalive) {
    const std::string k = key.to_base64();
    if (index_.count(k)) {
      t_.refused.push_back(who + ": its public key is another peer's too; not used twice");
      return false;
    }
    wg::Peer peer;
    peer.public_key = key;
    peer.endpoint = endpoint;
    std::sort(allowed.begin(), allowed.end());
    peer.allowed_ips = std::move(allowed);
    peer.persistent_keepalive = keepalive;
    index_[k] = t_.peers.size();
    t_.peers.push_back(std::move(peer));
    return true;
  }

 private:
  Topology& t_;
  std::map<std::string, std::size_t> index_;
};

// A remote node's (or gateway candidate's) blocks that may be routed to it: inside its
// cluster's pod ranges and clear of ours; the others are refused.
std::vector<net::Prefix> usable_blocks(const RemoteCluster& r, const RemoteNode& n, const std::vector<net::Prefix>& local,
                                       Topology& t) {
  std::vector<net::Prefix> out;
  for (const auto& p : n.pod_cidrs) {
    const bool inside = std::any_of(r.pod_cidrs.begin(), r.pod_cidrs.end(), [&](const net::Prefix& c) { return c.contains(p); });
    if (!inside || overlaps_any(p, local)) {
      t.refused.push_back("cluster " + r.cluster_id + " node " + n.name + ": " + p.to_string() +
                          " is outside its cluster's pod ranges or overlaps ours; not routed");
      continue;
    }
    out.push_back(p);
  }
  return out;
}

std::uint16_t keepalive_of(const RemoteCluster& r, const TopologyInput& in, Role role) {
  if (r.persistent_keepalive != 0) return r.persistent_keepalive;
  if (in.default_keepalive != 0) return in.default_keepalive;
  return role == Role::kActiveGateway || role == Role::kStandbyGateway ? kGatewayKeepalive : 0;
}

// Peers with a remote mesh cluster's nodes; true when some node is ready (routes go there).
bool peer_with_mesh(const RemoteCluster& r, const TopologyInput& in, Role role, const std::vector<net::Prefix>& local,
                    PeerSet& peers, Topology& t) {
  bool services_placed = false;
  for (const auto& n : sorted_by_name(r.nodes)) {
    auto key = wg::Key::from_base64(n.public_key);
    auto endpoint = wg::Endpoint::parse(n.endpoint);
    if (!key || !endpoint || n.pod_cidrs.empty()) continue;  // not ready
    std::vector<net::Prefix> allowed = usable_blocks(r, n, local, t);
    if (allowed.empty()) continue;
    if (!services_placed) allowed.insert(allowed.end(), r.service_cidrs.begin(), r.service_cidrs.end());
    if (peers.add("cluster " + r.cluster_id + " node " + n.name, *key, *endpoint, allowed, keepalive_of(r, in, role))) {
      services_placed = true;
    }
  }
  return services_placed;
}

// Peers with a remote gateway cluster's candidates; true when the active one is a peer.
bool peer_with_gateways(const RemoteCluster& r, const TopologyInput& in, Role role,
                        const std::vector<net::Prefix>& local, PeerSet& peers, Topology& t) {
  bool active_placed = false;
  for (const auto& g : sorted_by_name(r.gateways)) {
    auto key = wg::Key::from_base64(g.public_key);
    if (!key) continue;  // not ready
    // No endpoint: the gateway is behind NAT and reaches us; WireGuard learns where from.
    std::optional<wg::Endpoint> endpoint;
    if (!g.endpoint.empty()) {
      auto e = wg::Endpoint::parse(g.endpoint);
      if (!e) continue;
      endpoint = *e;
    }
    std::vector<net::Prefix> allowed = usable_blocks(r, g, local, t);
    const bool active = g.name == r.active_gateway;
    if (active) {
      allowed.insert(allowed.end(), r.pod_cidrs.begin(), r.pod_cidrs.end());
      allowed.insert(allowed.end(), r.service_cidrs.begin(), r.service_cidrs.end());
    }
    if (allowed.empty()) continue;
    if (peers.add("cluster " + r.cluster_id + " gateway " + g.name, *key, endpoint, allowed, keepalive_of(r, in, role))) {
      active_placed = active_placed || active;
    }
  }
  return active_placed;
}

Role role_of(const TopologyInput& in) {
  if (in.mode == Mode::kMesh) return Role::kMesh;
  auto self = std::find_if(in.local_nodes.begin(), in.local_nodes.end(),
                           [&](const LocalNode& n) { return n.name == in.node_name; });
  if (self == in.local_nodes.end() || !self->gateway_candidate) return Role::kMember;
  return in.active_gateway == in.node_name ? Role::kActiveGateway : Role::kStandbyGateway;
}

}  // namespace

const char* to_string(Mode mode) { return mode == Mode::kGateway ? "gateway" : "mesh"; }

Result<Mode> parse_mode(const std::string& text) {
  if (text == "mesh") return Mode::kMesh;
  if (text == "gateway") return Mode::kGateway;
  return Error(ErrorCode::kInvalidArgument, "topology \"" + text + "\" is neither mesh nor gateway");
}

const char* to_string(Role role) {
  switch (role) {
    case Role::kMesh: return "mesh";
    case Role::kActiveGateway: return "active-gateway";
    case Role::kStandbyGateway: return "standby-gateway";
    case Role::kMember: return "member";
  }
  return "?";
}

Topology compute_topology(const TopologyInput& in) {
  Topology t;
  t.role = role_of(in);
  std::vector<net::Prefix> local = in.local_pod_cidrs;
  local.insert(local.end(), in.local_service_cidrs.begin(), in.local_service_cidrs.end());
  PeerSet peers(t);
  std::vector<net::Prefix> via_gateway;  // a member's remote ranges, all for the active gateway

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

    if (t.role == Role::kMember) {
      via_gateway.insert(via_gateway.end(), r.pod_cidrs.begin(), r.pod_cidrs.end());
      via_gateway.insert(via_gateway.end(), r.service_cidrs.begin(), r.service_cidrs.end());
      continue;
    }
    const bool reachable = r.mode == Mode::kGateway ? peer_with_gateways(r, in, t.role, local, peers, t)
                                                    : peer_with_mesh(r, in, t.role, local, peers, t);
    if (!reachable) continue;  // no ready node or active gateway: nothing to route to yet
    for (const auto* list : {&r.pod_cidrs, &r.service_cidrs}) {
      for (const auto& p : *list) t.routes.push_back({p, true, std::nullopt});
    }
  }

  // Gateway mode inside the cluster: members reach the candidates, candidates every node.
  // A candidate's tunnel address (its probe address) is reached through the tunnel from every
  // node: traffic a gateway forwards with its own address as source (kube-proxy masquerades
  // a remote client reaching a ClusterIP) is answered back into the tunnel, not over the CNI,
  // where strict reverse-path filtering on the gateway would drop the answer.
  if (t.role != Role::kMesh) {
    bool active_placed = false;
    for (const auto& n : sorted_by_name(in.local_nodes)) {
      if (n.name == in.node_name) continue;
      const bool candidate_peer = n.gateway_candidate;
      if (t.role == Role::kMember && !candidate_peer) continue;
      auto key = wg::Key::from_base64(n.public_key);
      auto endpoint = wg::Endpoint::parse(n.endpoint);
      if (!key || !endpoint) continue;  // its agent has not published them yet
      std::vector<net::Prefix> tunnel_addresses;
      if (candidate_peer) {
        for (net::Family f : {net::Family::kIPv4, net::Family::kIPv6}) {
          if (auto a = probe::probe_address(n.pod_cidrs, f)) {
            tunnel_addresses.push_back(net::Prefix::make(*a, f == net::Family::kIPv4 ? 32 : 128).value());
          }
        }
      }
      std::vector<net::Prefix> allowed;
      if (t.role == Role::kMember) {
        if (n.name == in.active_gateway) allowed = via_gateway;
        allowed.insert(allowed.end(), tunnel_addresses.begin(), tunnel_addresses.end());
      } else {
        allowed = n.pod_cidrs;
      }
      for (const auto& a : tunnel_addresses) t.routes.push_back({a, true, std::nullopt});
      // A candidate keeps its in-cluster peers alive: a keepalive needs a session, so a restarted
      // gateway starts a handshake with every node at once, instead of members sending into a
      // session it no longer has until WireGuard gives up on it (15 s).
      const std::uint16_t keepalive = t.role == Role::kMember ? 0 : kGatewayKeepalive;
      if (peers.add("local node " + n.name, *key, *endpoint, allowed, keepalive) && t.role == Role::kMember &&
          n.name == in.active_gateway) {
        active_placed = true;
      }
      if (t.role != Role::kMember) {
        for (const auto& p : n.pod_cidrs) t.gateway_routes.push_back({p, true, std::nullopt});
      }
    }
    if (t.role == Role::kMember && !via_gateway.empty()) {
      if (active_placed) {
        for (const auto& p : via_gateway) t.routes.push_back({p, true, std::nullopt});
      } else {
        t.refused.push_back(in.active_gateway.empty()
                                ? "no active gateway in this cluster; remote ranges not routed"
                                : "the active gateway " + in.active_gateway +
                                      " has no public key or endpoint yet; remote ranges not routed");
      }
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
  for (auto* list : {&t.routes, &t.gateway_routes}) {
    std::sort(list->begin(), list->end());
    list->erase(std::unique(list->begin(), list->end(),
                            [](const DesiredRoute& a, const DesiredRoute& b) { return a.destination == b.destination; }),
                list->end());
  }
  return t;
}

}  // namespace cw::agent
