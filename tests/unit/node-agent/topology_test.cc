#include "node-agent/topology.h"

#include <gtest/gtest.h>

#include "node-agent/device_diff.h"

namespace cw::agent {
namespace {

net::Prefix P(const std::string& t) { return net::Prefix::parse(t).value(); }

std::string key(int i) {  // distinct valid keys (byte 0 is clamped away by X25519: vary byte 1)
  return wg::public_key_of(wg::Key(std::array<std::uint8_t, 32>{8, static_cast<std::uint8_t>(i + 1), 9})).value().to_base64();
}

RemoteCluster west(const std::string& phase = "Connected") {
  return {"west", phase, {P("10.80.0.0/16")}, {P("10.112.0.0/16")},
          {{"w2", "192.0.2.12:51820", key(2), {P("10.80.1.0/24")}},
           {"w1", "192.0.2.11:51820", key(1), {P("10.80.0.0/24")}}},
          0};
}

TopologyInput base() {
  return {"e1", {P("10.64.0.0/16")}, {P("10.96.0.0/16")},
          {{"e1", {net::IpAddress::parse("198.51.100.1").value()}, {P("10.64.0.0/24")}},
           {"e2", {net::IpAddress::parse("198.51.100.2").value()}, {P("10.64.1.0/24")}}},
          {west()}, 25};
}

std::vector<std::string> routes(const Topology& t) {
  std::vector<std::string> out;
  for (const auto& r : t.routes) out.push_back(r.destination.to_string() + (r.via_tunnel ? " wg" : " via " + r.gateway->to_string()));
  return out;
}

TEST(TopologyTest, PeersWithEveryReadyRemoteNodeAndRoutesFlatInside) {
  auto t = compute_topology(base());
  ASSERT_EQ(t.peers.size(), 2U);
  EXPECT_TRUE(t.refused.empty());
  EXPECT_EQ(routes(t), (std::vector<std::string>{"10.64.1.0/24 via 198.51.100.2", "10.80.0.0/16 wg", "10.112.0.0/16 wg"}));
  // w1 (first by name) carries the service range; w2 only its block.
  for (const auto& p : t.peers) {
    EXPECT_EQ(p.persistent_keepalive, 25);
    if (p.public_key.to_base64() == key(1)) {
      EXPECT_EQ(p.allowed_ips, (std::vector<net::Prefix>{P("10.80.0.0/24"), P("10.112.0.0/16")}));
    } else {
      EXPECT_EQ(p.allowed_ips, (std::vector<net::Prefix>{P("10.80.1.0/24")}));
    }
  }
}

TEST(TopologyTest, OnlyConnectedAndDegradedPeeringsAreRouted) {
  for (const char* phase : {"Pending", "Connecting", "Conflict", ""}) {
    auto in = base();
    in.remotes = {west(phase)};
    auto t = compute_topology(in);
    EXPECT_TRUE(t.peers.empty()) << phase;
    EXPECT_EQ(t.routes.size(), 1U) << phase;  // only the in-cluster route
  }
  auto in = base();
  in.remotes = {west("Degraded")};
  EXPECT_EQ(compute_topology(in).peers.size(), 2U);  // keep what works while the heartbeat is late
}

TEST(TopologyTest, OverlapsAreRefusedWhateverTheStatusSays) {
  auto in = base();
  in.remotes[0].service_cidrs = {P("10.96.0.0/12")};  // contains our service range
  auto t = compute_topology(in);
  EXPECT_TRUE(t.peers.empty());
  ASSERT_EQ(t.refused.size(), 1U);
  EXPECT_NE(t.refused[0].find("10.96.0.0/12 overlaps a local"), std::string::npos) << t.refused[0];
  EXPECT_EQ(routes(t), std::vector<std::string>{"10.64.1.0/24 via 198.51.100.2"});
}

TEST(TopologyTest, NodesThatAreNotReadyOrOutsideTheirClusterAreLeftOut) {
  auto in = base();
  in.remotes[0].nodes.push_back({"w3", "not-an-endpoint", key(3), {P("10.80.2.0/24")}});
  in.remotes[0].nodes.push_back({"w4", "192.0.2.14:51820", "bad-key", {P("10.80.3.0/24")}});
  in.remotes[0].nodes.push_back({"w5", "192.0.2.15:51820", key(5), {P("10.99.0.0/24")}});
  auto t = compute_topology(in);
  EXPECT_EQ(t.peers.size(), 2U);
  ASSERT_EQ(t.refused.size(), 1U);
  EXPECT_NE(t.refused[0].find("w5"), std::string::npos);
}

struct InClusterCase {
  const char* name;
  InClusterRoutes mode;
  std::vector<const char*> foreign;  // routes of someone else's in the main table
  bool routed;                       // does clusterwire route e2's block 10.64.1.0/24?
  bool left_to_cni;
};

TEST(TopologyTest, InClusterRoutesAreLeftToTheCniThatHasThem) {
  const std::vector<InClusterCase> cases = {
      {"auto, nothing else routes it", InClusterRoutes::kAuto, {}, true, false},
      {"auto, a default route only", InClusterRoutes::kAuto, {"0.0.0.0/0", "198.51.100.0/24"}, true, false},
      {"auto, BIRD's route to the block (Calico)", InClusterRoutes::kAuto, {"10.64.1.0/24"}, false, true},
      {"auto, smaller blocks inside it (Calico /26)", InClusterRoutes::kAuto, {"10.64.1.64/26"}, false, true},
      {"auto, a cluster-wide route (Cilium)", InClusterRoutes::kAuto, {"10.64.0.0/16"}, false, true},
      {"auto, another node's route does not count", InClusterRoutes::kAuto, {"10.64.7.0/24", "10.80.0.0/16"}, true, false},
      {"on, whatever is there", InClusterRoutes::kOn, {"10.64.1.0/24"}, true, false},
      {"off", InClusterRoutes::kOff, {}, false, false},
  };
  for (const auto& c : cases) {
    auto in = base();
    in.in_cluster_routes = c.mode;
    for (const char* f : c.foreign) in.foreign_routes.push_back(P(f));
    const auto t = compute_topology(in);
    const auto r = routes(t);
    EXPECT_EQ(std::count(r.begin(), r.end(), "10.64.1.0/24 via 198.51.100.2"), c.routed ? 1 : 0) << c.name;
    EXPECT_EQ(t.left_to_cni, c.left_to_cni ? std::vector<net::Prefix>{P("10.64.1.0/24")} : std::vector<net::Prefix>{})
        << c.name;
    // Remote ranges are clusterwire's in every mode.
    EXPECT_EQ(std::count(r.begin(), r.end(), "10.80.0.0/16 wg"), 1) << c.name;
  }
}

TEST(TopologyTest, DualStackBlocksAreRoutedViaTheNextHopOfTheirFamily) {
  auto in = base();
  in.local_nodes = {{"e1", {net::IpAddress::parse("198.51.100.1").value(), net::IpAddress::parse("2001:db8::1").value()},
                     {P("10.64.0.0/24"), P("fd00:64::/64")}},
                    {"e2", {net::IpAddress::parse("198.51.100.2").value(), net::IpAddress::parse("2001:db8::2").value()},
                     {P("10.64.1.0/24"), P("fd00:64:0:1::/64")}},
                    {"e3", {net::IpAddress::parse("198.51.100.3").value()}, {P("10.64.2.0/24"), P("fd00:64:0:2::/64")}}};
  in.local_pod_cidrs = {P("10.64.0.0/16"), P("fd00:64::/48")};
  const auto r = routes(compute_topology(in));
  EXPECT_EQ(std::count(r.begin(), r.end(), "10.64.1.0/24 via 198.51.100.2"), 1);
  EXPECT_EQ(std::count(r.begin(), r.end(), "fd00:64:0:1::/64 via 2001:db8::2"), 1);
  EXPECT_EQ(std::count(r.begin(), r.end(), "10.64.2.0/24 via 198.51.100.3"), 1);
  // e3 has no IPv6 address: its v6 block has no next hop of its family and is not routed.
  EXPECT_EQ(std::count_if(r.begin(), r.end(), [](const std::string& x) { return x.rfind("fd00:64:0:2::/64", 0) == 0; }), 0);
}

TEST(TopologyTest, IsDeterministic) {
  auto a = base();
  auto b = base();
  std::reverse(b.remotes[0].nodes.begin(), b.remotes[0].nodes.end());
  std::reverse(b.local_nodes.begin(), b.local_nodes.end());
  auto ta = compute_topology(a);
  auto tb = compute_topology(b);
  ASSERT_EQ(ta.peers.size(), tb.peers.size());
  for (std::size_t i = 0; i < ta.peers.size(); ++i) EXPECT_TRUE(wg::same_config(ta.peers[i], tb.peers[i]));
  EXPECT_EQ(routes(ta), routes(tb));
}

wg::Device device_from(const DesiredDevice& d) {
  wg::Device dev;
  dev.private_key = d.private_key;
  dev.listen_port = d.listen_port;
  dev.fwmark = d.fwmark;
  dev.peers = d.peers;
  for (auto& p : dev.peers) {
    p.rx_bytes = 1234;  // statistics never count as a difference
    p.last_handshake = std::chrono::system_clock::now();
  }
  return dev;
}

TEST(DeviceDiffTest, EqualStateIsAnEmptyUpdate) {
  DesiredDevice d{wg::generate_private_key().value(), 51820, 0, compute_topology(base()).peers};
  auto diff = diff_device(d, device_from(d));
  EXPECT_TRUE(diff.empty());
  EXPECT_EQ(diff.added + diff.changed + diff.removed, 0U);
}

TEST(DeviceDiffTest, AddingOnePeerTouchesNoOther) {
  DesiredDevice d{wg::generate_private_key().value(), 51820, 0, compute_topology(base()).peers};
  auto current = device_from(d);
  auto in = base();
  in.remotes[0].nodes.push_back({"w3", "192.0.2.13:51820", key(3), {P("10.80.2.0/24")}});
  d.peers = compute_topology(in).peers;
  auto diff = diff_device(d, current);
  EXPECT_EQ(diff.added, 1U);
  EXPECT_EQ(diff.changed, 0U);
  EXPECT_EQ(diff.removed, 0U);
  ASSERT_EQ(diff.update.peers.size(), 1U);
  EXPECT_EQ(diff.update.peers[0].peer.public_key.to_base64(), key(3));
  EXPECT_FALSE(diff.update.replace_peers);
  EXPECT_FALSE(diff.update.private_key.has_value());
}

TEST(DeviceDiffTest, ChangesOnlyWhatDiffersAndRemovesWhatWent) {
  DesiredDevice d{wg::generate_private_key().value(), 51820, 0, compute_topology(base()).peers};
  auto current = device_from(d);
  d.peers[0].persistent_keepalive = 10;
  d.peers.pop_back();
  auto diff = diff_device(d, current);
  EXPECT_EQ(diff.changed, 1U);
  EXPECT_EQ(diff.removed, 1U);
  const auto& change = diff.update.peers[0];
  EXPECT_TRUE(change.update_only);
  EXPECT_TRUE(change.set_keepalive);
  EXPECT_FALSE(change.set_endpoint);
  EXPECT_FALSE(change.replace_allowed_ips);
  EXPECT_TRUE(diff.update.peers[1].remove);
}

TEST(DeviceDiffTest, ADeviceWithoutOurKeyGetsIt) {
  DesiredDevice d{wg::generate_private_key().value(), 51820, 0, {}};
  wg::Device blank;
  auto diff = diff_device(d, blank);
  ASSERT_TRUE(diff.update.private_key.has_value());
  EXPECT_EQ(diff.update.listen_port, 51820);
}

// ---- gateway mode (docs/gateway.md)

net::IpAddress A(const std::string& t) { return net::IpAddress::parse(t).value(); }

// West in gateway mode: candidates wg1 (public endpoint) and wg2 (behind NAT, no endpoint).
RemoteCluster west_gateways(const std::string& active) {
  RemoteCluster r = west();
  r.mode = Mode::kGateway;
  r.nodes.clear();
  r.gateways = {{"wg2", "", key(12), {P("10.80.9.0/24")}}, {"wg1", "203.0.113.1:51820", key(11), {P("10.80.8.0/24")}}};
  r.active_gateway = active;
  return r;
}

// East in gateway mode: e1 and e2 candidates, e3 a member.
TopologyInput east_gateway(const std::string& self, const std::string& active) {
  TopologyInput in = base();
  in.node_name = self;
  in.mode = Mode::kGateway;
  in.active_gateway = active;
  in.local_nodes = {{"e1", {A("198.51.100.1")}, {P("10.64.0.0/24")}, key(21), "198.51.100.1:51820", true},
                    {"e2", {A("198.51.100.2")}, {P("10.64.1.0/24")}, key(22), "198.51.100.2:51820", true},
                    {"e3", {A("198.51.100.3")}, {P("10.64.2.0/24")}, key(23), "198.51.100.3:51820", false}};
  in.default_keepalive = 0;
  return in;
}

const wg::Peer* peer_of(const Topology& t, const std::string& k) {
  for (const auto& p : t.peers) {
    if (p.public_key.to_base64() == k) return &p;
  }
  return nullptr;
}

TEST(TopologyTest, ModesAndRolesHaveNames) {
  EXPECT_EQ(parse_mode("gateway").value(), Mode::kGateway);
  EXPECT_EQ(parse_mode("mesh").value(), Mode::kMesh);
  EXPECT_FALSE(parse_mode("Gateway").ok());
  EXPECT_STREQ(to_string(Role::kStandbyGateway), "standby-gateway");
}

TEST(TopologyTest, AMeshNodePeersWithEveryRemoteCandidateAndTheActiveOneCarriesTheCluster) {
  auto in = base();
  in.remotes = {west_gateways("wg2")};
  auto t = compute_topology(in);
  EXPECT_EQ(t.role, Role::kMesh);
  ASSERT_EQ(t.peers.size(), 2U);
  const auto* wg1 = peer_of(t, key(11));
  const auto* wg2 = peer_of(t, key(12));
  ASSERT_TRUE(wg1 && wg2);
  EXPECT_EQ(wg1->allowed_ips, std::vector<net::Prefix>{P("10.80.8.0/24")}) << "a standby: its own block only";
  EXPECT_EQ(wg2->allowed_ips, (std::vector<net::Prefix>{P("10.80.0.0/16"), P("10.80.9.0/24"), P("10.112.0.0/16")}));
  EXPECT_FALSE(wg2->endpoint.has_value()) << "behind NAT: WireGuard learns it from the handshake";
  EXPECT_TRUE(wg1->endpoint.has_value());
  EXPECT_EQ(routes(t), (std::vector<std::string>{"10.64.1.0/24 via 198.51.100.2", "10.80.0.0/16 wg", "10.112.0.0/16 wg"}));

  // Failover moves only the cluster's ranges; both peers stay (their sessions too).
  in.remotes = {west_gateways("wg1")};
  auto after = compute_topology(in);
  ASSERT_EQ(after.peers.size(), 2U);
  EXPECT_EQ(peer_of(after, key(12))->allowed_ips, std::vector<net::Prefix>{P("10.80.9.0/24")});
  EXPECT_EQ(peer_of(after, key(11))->allowed_ips,
            (std::vector<net::Prefix>{P("10.80.0.0/16"), P("10.80.8.0/24"), P("10.112.0.0/16")}));
  DesiredDevice d{wg::generate_private_key().value(), 51820, 0, t.peers};
  auto diff = diff_device(DesiredDevice{d.private_key, 51820, 0, after.peers}, device_from(d));
  EXPECT_EQ(diff.changed, 2U);
  EXPECT_EQ(diff.added + diff.removed, 0U);
  for (const auto& u : diff.update.peers) {
    EXPECT_TRUE(u.replace_allowed_ips);
    EXPECT_FALSE(u.set_endpoint);
  }
}

TEST(TopologyTest, WithoutAnActiveRemoteGatewayNothingIsRouted) {
  auto in = base();
  in.remotes = {west_gateways("")};
  auto t = compute_topology(in);
  EXPECT_EQ(t.peers.size(), 2U) << "the candidates are peers (probes), but carry no cluster range";
  EXPECT_EQ(routes(t), std::vector<std::string>{"10.64.1.0/24 via 198.51.100.2"});
}

TEST(TopologyTest, AMemberSendsEverythingRemoteToTheActiveGatewayInItsCluster) {
  auto in = east_gateway("e3", "e2");
  in.remotes = {west(), west_gateways("wg1")};
  in.remotes[1].cluster_id = "north";
  in.remotes[1].pod_cidrs = {P("10.81.0.0/16")};
  in.remotes[1].service_cidrs = {};
  in.remotes[1].gateways = {{"n1", "203.0.113.9:51820", key(31), {P("10.81.0.0/24")}}};
  in.remotes[1].active_gateway = "n1";
  auto t = compute_topology(in);
  EXPECT_EQ(t.role, Role::kMember);
  ASSERT_EQ(t.peers.size(), 2U) << "only the local candidates";
  const auto* e2 = peer_of(t, key(22));
  ASSERT_TRUE(e2);
  // The active one: every remote range, and its tunnel address (what it masquerades to).
  EXPECT_EQ(e2->allowed_ips, (std::vector<net::Prefix>{P("10.64.1.0/32"), P("10.80.0.0/16"), P("10.81.0.0/16"),
                                                       P("10.112.0.0/16")}));
  EXPECT_EQ(e2->endpoint->to_string(), "198.51.100.2:51820") << "in-cluster, the node's own endpoint";
  EXPECT_EQ(peer_of(t, key(21))->allowed_ips, std::vector<net::Prefix>{P("10.64.0.0/32")})
      << "the standby: a peer, ready for failover, with only its tunnel address";
  EXPECT_TRUE(t.gateway_routes.empty());
  // Candidates' tunnel addresses through the tunnel: answers to what a gateway masqueraded.
  EXPECT_EQ(routes(t), (std::vector<std::string>{"10.64.0.0/24 via 198.51.100.1", "10.64.0.0/32 wg",
                                                 "10.64.1.0/24 via 198.51.100.2", "10.64.1.0/32 wg", "10.80.0.0/16 wg",
                                                 "10.81.0.0/16 wg", "10.112.0.0/16 wg"}));

  in.active_gateway = "";
  auto none = compute_topology(in);
  EXPECT_EQ(routes(none), (std::vector<std::string>{"10.64.0.0/24 via 198.51.100.1", "10.64.0.0/32 wg",
                                                    "10.64.1.0/24 via 198.51.100.2", "10.64.1.0/32 wg"}));
  ASSERT_FALSE(none.refused.empty());
  EXPECT_NE(none.refused.back().find("no active gateway"), std::string::npos);
}

TEST(TopologyTest, ACandidatePeersRemotelyAndWithEveryLocalNodeAndRoutesBackIntoTheTunnel) {
  for (const std::string active : {"e1", "e2"}) {
    auto in = east_gateway("e1", active);
    auto t = compute_topology(in);
    EXPECT_EQ(t.role, active == "e1" ? Role::kActiveGateway : Role::kStandbyGateway);
    // w1, w2 remote (mesh), e2, e3 local.
    ASSERT_EQ(t.peers.size(), 4U);
    EXPECT_EQ(peer_of(t, key(23))->allowed_ips, std::vector<net::Prefix>{P("10.64.2.0/24")});
    EXPECT_EQ(peer_of(t, key(22))->allowed_ips, std::vector<net::Prefix>{P("10.64.1.0/24")});
    EXPECT_EQ(peer_of(t, key(1))->persistent_keepalive, kGatewayKeepalive) << "gateways keep NAT mappings open";
    EXPECT_EQ(peer_of(t, key(23))->persistent_keepalive, kGatewayKeepalive)
        << "a restarted gateway handshakes with every node at once";
    ASSERT_EQ(t.gateway_routes.size(), 2U);
    EXPECT_EQ(t.gateway_routes[0].destination, P("10.64.1.0/24"));
    EXPECT_TRUE(t.gateway_routes[0].via_tunnel);
    // e2 is the other candidate: its tunnel address through the tunnel; e3 a member: none.
    EXPECT_EQ(routes(t), (std::vector<std::string>{"10.64.1.0/24 via 198.51.100.2", "10.64.1.0/32 wg",
                                                   "10.64.2.0/24 via 198.51.100.3", "10.80.0.0/16 wg", "10.112.0.0/16 wg"}));
  }
}

TEST(TopologyTest, GatewayClustersPeerWithEachOther) {
  auto in = east_gateway("e2", "e2");
  in.remotes = {west_gateways("wg1")};
  auto t = compute_topology(in);
  EXPECT_EQ(t.role, Role::kActiveGateway);
  ASSERT_EQ(t.peers.size(), 4U);  // wg1, wg2, e1, e3
  EXPECT_EQ(peer_of(t, key(11))->allowed_ips.size(), 3U);
  EXPECT_EQ(peer_of(t, key(12))->persistent_keepalive, kGatewayKeepalive);
}

TEST(TopologyTest, AGatewayOverlappingUsIsRefusedLikeANode) {
  auto in = east_gateway("e1", "e1");
  in.remotes = {west_gateways("wg1")};
  in.remotes[0].gateways[1].pod_cidrs = {P("10.64.0.0/24")};  // wg1 claims one of our blocks
  auto t = compute_topology(in);
  EXPECT_FALSE(t.refused.empty());
  for (const auto& p : t.peers) {
    for (const auto& a : p.allowed_ips) EXPECT_NE(a, P("10.64.0.0/24"));
  }
}

TEST(DeviceDiffTest, ADiscoveredEndpointIsKept) {
  auto in = base();
  in.remotes = {west_gateways("wg2")};
  DesiredDevice d{wg::generate_private_key().value(), 51820, 0, compute_topology(in).peers};
  auto current = device_from(d);
  for (auto& p : current.peers) {
    if (!p.endpoint) p.endpoint = wg::Endpoint::parse("198.18.0.7:40001").value();  // learned from a handshake
  }
  auto diff = diff_device(d, current);
  EXPECT_TRUE(diff.empty()) << "the learned endpoint is not cleared, and nothing is rewritten";
}

}  // namespace
}  // namespace cw::agent
