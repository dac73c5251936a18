// The operator's decisions as pure functions: cluster blocks, node blocks, peering status.
#include <gtest/gtest.h>

#include "operator/cluster_cidr.h"
#include "operator/operator.h"
#include "operator/node_cidrs.h"
#include "operator/peering_status.h"

namespace cw::op {
namespace {

using net::Family;
using net::Prefix;
using Kind = FamilyDecision::Kind;

Prefix P(const std::string& t) { return Prefix::parse(t).value(); }

ipam::ClusterSetSpec v4(const std::string& pool, int cluster_len, int node_len) {
  return {ipam::FamilyPools{{P(pool)}, cluster_len, node_len}, std::nullopt};
}

Claim claim(const std::string& cidr, const std::string& owner, const std::string& purpose = "pods") {
  return {"", P(cidr), owner, purpose};
}

std::string describe(const std::vector<FamilyDecision>& ds) {
  std::string s;
  for (const auto& d : ds) {
    static const char* kinds[] = {"held", "claim", "conflict", "exhausted"};
    s += std::string(kinds[static_cast<int>(d.kind)]) + (d.block ? " " + d.block->to_string() : "") + ";";
  }
  return s;
}

struct CidrCase {
  std::string name;
  ClusterCidrInput input;
  std::string expect;
  friend void PrintTo(const CidrCase& c, std::ostream* os) { *os << c.name; }
};

class ClusterCidrTest : public testing::TestWithParam<CidrCase> {};

TEST_P(ClusterCidrTest, Decides) { EXPECT_EQ(describe(decide_cluster_cidrs(GetParam().input)), GetParam().expect); }

INSTANTIATE_TEST_SUITE_P(
    Table, ClusterCidrTest,
    testing::Values(
        CidrCase{"NewClusterTakesTheLowestFreeBlock", {"east", v4("10.64.0.0/12", 16, 24), {}, {}, {}}, "claim 10.64.0.0/16;"},
        CidrCase{"StepsOverOthersClaims",
                 {"east", v4("10.64.0.0/12", 16, 24), {claim("10.64.0.0/16", "west"), claim("10.65.0.0/16", "north")}, {}, {}},
                 "claim 10.66.0.0/16;"},
        CidrCase{"StepsOverServiceReservations",
                 {"east", v4("10.64.0.0/12", 16, 24), {claim("10.64.0.0/14", "west", "services"), claim("10.64.0.0/16", "x", "services")}, {}, {}},
                 "claim 10.68.0.0/16;"},
        CidrCase{"KeepsWhatItHolds",
                 {"east", v4("10.64.0.0/12", 16, 24), {claim("10.70.0.0/16", "east"), claim("10.64.0.0/16", "west")}, {P("10.99.0.0/16")}, {}},
                 "held 10.70.0.0/16;"},
        CidrCase{"AdoptsAConfiguredBlock", {"east", v4("10.64.0.0/12", 16, 24), {}, {P("10.72.0.0/16")}, {}}, "claim 10.72.0.0/16;"},
        CidrCase{"AdoptsABlockOutsideThePools", {"east", v4("10.64.0.0/12", 16, 24), {}, {P("172.20.0.0/16")}, {}}, "claim 172.20.0.0/16;"},
        CidrCase{"AdoptsFromNodeCidrs",
                 {"east", v4("10.64.0.0/12", 16, 24), {}, {}, {P("10.244.0.0/24"), P("10.244.7.0/24")}}, "claim 10.244.0.0/16;"},
        CidrCase{"ConflictWhenTheBlockInUseIsTaken",
                 {"west", v4("10.64.0.0/12", 16, 24), {claim("10.64.0.0/16", "east")}, {P("10.64.0.0/16")}, {}}, "conflict 10.64.0.0/16;"},
        CidrCase{"ConflictOnPartialOverlap",
                 {"west", v4("10.64.0.0/12", 16, 24), {claim("10.64.128.0/17", "east")}, {P("10.64.0.0/16")}, {}}, "conflict 10.64.0.0/16;"},
        CidrCase{"Exhausted",
                 {"c", v4("10.64.0.0/15", 16, 24), {claim("10.64.0.0/16", "a"), claim("10.65.0.0/16", "b")}, {}, {}}, "exhausted;"},
        CidrCase{"DualStack",
                 {"east", {ipam::FamilyPools{{P("10.64.0.0/12")}, 16, 24}, ipam::FamilyPools{{P("fd00:c1::/48")}, 56, 64}},
                  {claim("fd00:c1::/56", "west")}, {}, {}},
                 "claim 10.64.0.0/16;claim fd00:c1:0:100::/56;"}),
    [](const auto& param_info) { return param_info.param.name; });

TEST(ClusterCidrTest, ConflictMessageNamesTheOwner) {
  auto d = decide_cluster_cidrs({"west", v4("10.64.0.0/12", 16, 24), {claim("10.64.0.0/16", "east")}, {P("10.64.0.0/16")}, {}});
  ASSERT_EQ(d.size(), 1U);
  EXPECT_NE(d[0].message.find("claimed by cluster east"), std::string::npos) << d[0].message;
}

TEST(BlockFromNodeCidrsTest, CoversAndWidens) {
  EXPECT_EQ(block_from_node_cidrs({P("10.1.0.0/24"), P("10.1.1.0/24")}, Family::kIPv4, 24)->to_string(), "10.1.0.0/23");
  EXPECT_EQ(block_from_node_cidrs({P("10.1.0.0/24"), P("10.1.1.0/24")}, Family::kIPv4, 16)->to_string(), "10.1.0.0/16");
  EXPECT_EQ(block_from_node_cidrs({P("10.1.0.0/24"), P("10.200.0.0/24")}, Family::kIPv4, 16)->to_string(), "10.0.0.0/8");
  EXPECT_FALSE(block_from_node_cidrs({P("fd00::/64")}, Family::kIPv4, 16).has_value());
}

std::map<std::string, std::string> assigned(const NodeCidrPlan& p) {
  std::map<std::string, std::string> out;
  for (const auto& [n, cidrs] : p.assigned) {
    for (const auto& c : cidrs) out[n] += c.to_string() + " ";
  }
  return out;
}

TEST(NodeCidrsTest, NewNodesGetTheLowestFreeBlocksAndCarriedOnesStay) {
  std::vector<NodeState> nodes{{"c", {}, {}}, {"a", {P("10.64.1.0/24")}, {P("10.64.1.0/24")}},
                               {"b", {P("10.64.0.0/24")}, {}}, {"d", {}, {P("10.64.3.0/24")}}};
  auto plan = plan_node_cidrs({P("10.64.0.0/16")}, {{Family::kIPv4, 24}}, nodes, NodeCidrMode::kAllocate);
  EXPECT_TRUE(plan.problems.empty());
  EXPECT_EQ(assigned(plan), (std::map<std::string, std::string>{{"a", "10.64.1.0/24 "},
                                                                 {"b", "10.64.0.0/24 "},
                                                                 {"c", "10.64.2.0/24 "},
                                                                 {"d", "10.64.3.0/24 "}}));
  // a is done; b needs its annotation; c needs both; d needs spec.podCIDRs filled in.
  EXPECT_EQ(plan.writes.count("a"), 0U);
  EXPECT_EQ(plan.writes.count("b"), 1U);
  EXPECT_EQ(plan.writes.count("c"), 1U);
  EXPECT_EQ(plan.writes.count("d"), 1U);
}

TEST(NodeCidrsTest, ARestartWithNoMemoryChangesNothing) {
  std::vector<NodeState> nodes{{"a", {}, {}}, {"b", {}, {}}, {"c", {}, {}}};
  auto first = plan_node_cidrs({P("10.64.0.0/16")}, {{Family::kIPv4, 24}}, nodes, NodeCidrMode::kAllocate);
  // What the applier wrote, read back; then a node goes and a new one comes.
  std::vector<NodeState> after;
  for (const auto& [n, c] : first.assigned) {
    if (n != "b") after.push_back({n, c, c});
  }
  after.push_back({"d", {}, {}});
  auto second = plan_node_cidrs({P("10.64.0.0/16")}, {{Family::kIPv4, 24}}, after, NodeCidrMode::kAllocate);
  EXPECT_EQ(assigned(second)["a"], assigned(first)["a"]);
  EXPECT_EQ(assigned(second)["c"], assigned(first)["c"]);
  EXPECT_EQ(assigned(second)["d"], assigned(first)["b"]);  // b's block is free again
  EXPECT_EQ(second.writes.size(), 1U);
}

TEST(NodeCidrsTest, DuplicatesAndExhaustionAreReported) {
  std::vector<NodeState> nodes{{"a", {}, {P("10.64.0.0/24")}}, {"b", {}, {P("10.64.0.0/24")}},
                               {"c", {}, {}}, {"d", {}, {}}, {"e", {}, {}}};
  auto plan = plan_node_cidrs({P("10.64.0.0/22")}, {{Family::kIPv4, 24}}, nodes, NodeCidrMode::kAllocate);
  ASSERT_EQ(plan.problems.size(), 2U);
  EXPECT_NE(plan.problems[0].find("b: its pod CIDR 10.64.0.0/24 is also another node's"), std::string::npos) << plan.problems[0];
  EXPECT_NE(plan.problems[1].find("no free /24 left in 10.64.0.0/22"), std::string::npos) << plan.problems[1];
}

TEST(NodeCidrsTest, AdoptModeOnlyCopiesSpec) {
  std::vector<NodeState> nodes{{"a", {P("10.244.3.0/24")}, {}}, {"b", {}, {}}};
  auto plan = plan_node_cidrs({P("10.244.0.0/16")}, {{Family::kIPv4, 24}}, nodes, NodeCidrMode::kAdopt);
  EXPECT_EQ(plan.writes.size(), 1U);
  EXPECT_EQ(plan.writes["a"][0].to_string(), "10.244.3.0/24");
  EXPECT_TRUE(plan.assigned["b"].empty());
}

Advertisement remote_ad(std::vector<std::string> peers, const std::string& heartbeat) {
  Advertisement ad;
  ad.cluster_id = "west";
  ad.pod_cidrs = {P("10.80.0.0/16")};
  ad.service_cidrs = {P("10.112.0.0/16")};
  ad.nodes = {{"w1", "192.0.2.1:51820", "9YtV7g8b1oV6YQe0fM0cZ3y8Jm3x7b2KZ0v5yq3u8Xo=", {P("10.80.0.0/24")}}};
  ad.peers = std::move(peers);
  ad.heartbeat = heartbeat;
  return ad;
}

PeeringInput peering(std::optional<Advertisement> remote) {
  PeeringInput in;
  in.remote_cluster_id = "west";
  in.cluster_id = "east";
  in.local_pod_cidrs = {P("10.64.0.0/16")};
  in.local_service_cidrs = {P("10.96.0.0/16")};
  in.remote = std::move(remote);
  in.now = parse_rfc3339("2026-11-21T10:00:00Z").value();
  return in;
}

TEST(PeeringStatusTest, Phases) {
  const std::string fresh = "2026-11-21T09:59:50Z";
  EXPECT_EQ(peering_status(peering(std::nullopt))["phase"], "Pending");
  EXPECT_EQ(peering_status(peering(remote_ad({"north"}, fresh)))["phase"], "Pending");
  EXPECT_EQ(peering_status(peering(remote_ad({"east"}, fresh)))["phase"], "Connected");
  EXPECT_EQ(peering_status(peering(remote_ad({"east"}, "2026-11-21T09:50:00Z")))["phase"], "Degraded");
  auto no_block = remote_ad({"east"}, fresh);
  no_block.pod_cidrs.clear();
  no_block.nodes[0].pod_cidrs.clear();
  EXPECT_EQ(peering_status(peering(no_block))["phase"], "Pending");
  auto no_nodes = remote_ad({"east"}, fresh);
  no_nodes.nodes[0].public_key.clear();
  EXPECT_EQ(peering_status(peering(no_nodes))["phase"], "Connecting");
  auto overlapping = remote_ad({"east"}, fresh);
  overlapping.service_cidrs = {P("10.64.0.0/12")};
  auto s = peering_status(peering(overlapping));
  EXPECT_EQ(s["phase"], "Conflict");
  EXPECT_EQ(s["conflicts"][0], "remote service CIDR 10.64.0.0/12 overlaps local pod CIDR 10.64.0.0/16");
  EXPECT_FALSE(s.contains("remote") && s["phase"] == "Connected");
}

TEST(PeeringStatusTest, ConflictWinsOverEverythingButConsent) {
  auto ad = remote_ad({"east"}, "2026-11-21T09:00:00Z");  // stale too
  ad.pod_cidrs = {P("10.64.0.0/16")};
  ad.nodes[0].pod_cidrs = {P("10.64.0.0/24")};
  EXPECT_EQ(peering_status(peering(ad))["phase"], "Conflict");
}

TEST(PeeringStatusTest, ConnectedCopiesTheRemoteForTheAgents) {
  auto s = peering_status(peering(remote_ad({"east"}, "2026-11-21T09:59:59Z")));
  EXPECT_EQ(s["remote"]["podCIDRs"], json({"10.80.0.0/16"}));
  EXPECT_EQ(s["remote"]["nodes"][0]["publicKey"], "9YtV7g8b1oV6YQe0fM0cZ3y8Jm3x7b2KZ0v5yq3u8Xo=");
  // RemoteConsents, CIDRsDisjoint, RemoteHealthy, BrokerReachable, DatapathHealthy, Ready.
  EXPECT_EQ(s["conditions"].size(), 6U);
}

// The condition of `type` in a status.
json condition_of(const json& status, const std::string& type) {
  for (const auto& c : status["conditions"]) {
    if (c["type"] == type) return c;
  }
  return json();
}

DatapathReport report(const std::string& node, const char* entry) { return {node, json::parse(entry)}; }

TEST(PeeringStatusTest, DatapathDecidesConnectedOrDegraded) {
  const std::string fresh = "2026-11-21T09:59:50Z", stale = "2026-11-21T09:50:00Z";
  const char* up = R"({"up":1,"down":0,"mtu":0,"snat":0,"unknown":0,"lossPercent":0,"rttP50Micros":400,"rttMaxMicros":900,"failing":[]})";
  const char* down = R"({"up":0,"down":1,"mtu":0,"snat":0,"unknown":0,"lossPercent":100,"failing":[{"node":"w1","verdict":"Down","detail":"no answer to 8 probes in a row"}]})";
  const char* mtu = R"({"up":0,"down":0,"mtu":1,"snat":0,"unknown":0,"lossPercent":0,"failing":[{"node":"w1","verdict":"MTUBlackHole","detail":"small probes are answered"}]})";
  const char* snat = R"({"up":0,"down":0,"mtu":0,"snat":1,"unknown":0,"lossPercent":0,"failing":[{"node":"w1","verdict":"SNAT","detail":"answered from 192.0.2.1"}]})";
  struct Case {
    std::string name, heartbeat;
    std::vector<DatapathReport> reports;
    std::string broker_error;
    std::string phase, datapath, reason;
  };
  const std::vector<Case> cases{
      {"no probes yet, fresh", fresh, {}, "", "Connected", "Unknown", "NotProbed"},
      {"no probes yet, stale", stale, {}, "", "Degraded", "Unknown", "NotProbed"},
      {"all answered", fresh, {report("e1", up), report("e2", up)}, "", "Connected", "True", "ProbesAnswered"},
      {"traffic flows, remote operator silent", stale, {report("e1", up)}, "", "Connected", "True", "ProbesAnswered"},
      {"traffic flows, broker out of reach", stale, {report("e1", up)}, "connection refused", "Connected", "True",
       "ProbesAnswered"},
      {"cut", fresh, {report("e1", down), report("e2", down)}, "", "Degraded", "False", "Unreachable"},
      {"one of two nodes cut", fresh, {report("e1", down), report("e2", up)}, "", "Degraded", "False",
       "PartlyUnreachable"},
      {"mtu", fresh, {report("e1", mtu), report("e2", up)}, "", "Degraded", "False", "MTUBlackHole"},
      {"snat", fresh, {report("e1", snat)}, "", "Degraded", "False", "SNATOnPath"},
      {"garbage reports are ignored", fresh, {{"e1", json("x")}, {"e2", json::parse(R"({"up":"many"})")}}, "",
       "Connected", "Unknown", "NotProbed"},
  };
  for (const auto& c : cases) {
    auto in = peering(remote_ad({"east"}, c.heartbeat));
    in.datapath = c.reports;
    in.broker_error = c.broker_error;
    const json s = peering_status(in);
    EXPECT_EQ(s["phase"], c.phase) << c.name;
    const json d = condition_of(s, "DatapathHealthy");
    EXPECT_EQ(d["status"], c.datapath) << c.name;
    EXPECT_EQ(d["reason"], c.reason) << c.name;
  }
}

TEST(PeeringStatusTest, DatapathMessageNamesTheFailingPairsAndFigures) {
  auto in = peering(remote_ad({"east"}, "2026-11-21T09:59:50Z"));
  const char* down = R"({"up":0,"down":2,"lossPercent":100,"failing":[{"node":"w1","verdict":"Down","detail":"no answer to 8 probes in a row"},{"node":"w2","verdict":"Down","detail":"no answer to 8 probes in a row"}]})";
  in.datapath = {report("e1", down), report("e2", down), report("e3", R"({"up":2,"rttP50Micros":1500,"rttMaxMicros":2000000})")};
  const json s = peering_status(in);
  const std::string m = condition_of(s, "DatapathHealthy")["message"];
  EXPECT_NE(m.find("4 of 6 node pairs fail"), std::string::npos) << m;
  EXPECT_NE(m.find("e1→w1 Down (no answer to 8 probes in a row)"), std::string::npos) << m;
  EXPECT_NE(m.find("and 1 more"), std::string::npos) << m;
  EXPECT_NE(m.find("loss up to 100%"), std::string::npos) << m;
  EXPECT_EQ(s["datapath"]["failingPairs"], 4);
  EXPECT_EQ(s["datapath"]["probedPairs"], 6);
  EXPECT_EQ(s["datapath"]["rttP50"], "1.5ms");
  EXPECT_EQ(s["datapath"]["rttMax"], "2s");
  EXPECT_EQ(condition_of(s, "Ready")["reason"], "PartlyUnreachable");
}

TEST(PeeringStatusTest, HostileReportsAreIgnoredNotThrown) {
  auto in = peering(remote_ad({"east"}, "2026-11-21T09:59:50Z"));
  in.datapath = {report("e1", R"({"down":1,"failing":[{"node":7,"verdict":["x"],"detail":{"a":1}},"junk",null]})"),
                 report("e2", R"({"up":-5,"down":"1","failing":"all","rttP50Micros":"fast","lossPercent":1e300})"),
                 {"e3", json::array()}, {"e4", json(nullptr)}};
  json s;
  ASSERT_NO_THROW(s = peering_status(in));
  const std::string m = condition_of(s, "DatapathHealthy")["message"];
  EXPECT_NE(m.find("e1→? ?"), std::string::npos) << m;
  EXPECT_EQ(s["datapath"]["failingPairs"], 1);
}

TEST(PeeringStatusTest, ControlPlaneTroubleIsNamedTruthfully) {
  auto in = peering(remote_ad({"east"}, "2026-11-21T09:50:00Z"));
  json s = peering_status(in);
  EXPECT_EQ(condition_of(s, "RemoteHealthy")["reason"], "HeartbeatStale");
  EXPECT_NE(condition_of(s, "RemoteHealthy")["message"].get<std::string>().find(
                "cluster west has not refreshed its advertisement since 2026-11-21T09:50:00Z"),
            std::string::npos);
  EXPECT_EQ(condition_of(s, "BrokerReachable")["status"], "True");
  in.broker_error = "connecting to 192.0.2.9:6443: connection refused";
  s = peering_status(in);
  EXPECT_EQ(condition_of(s, "RemoteHealthy")["reason"], "BrokerUnreachable");
  EXPECT_EQ(condition_of(s, "BrokerReachable")["status"], "False");
  EXPECT_EQ(condition_of(s, "BrokerReachable")["message"],
            "this operator cannot reach the broker: connecting to 192.0.2.9:6443: connection refused");
  EXPECT_EQ(condition_of(s, "Ready")["reason"], "BrokerUnreachable");
}

TEST(PeeringStatusTest, KeepsTransitionTimesOfUnchangedConditions) {
  auto in = peering(remote_ad({"east"}, "2026-11-21T09:59:59Z"));
  in.old_status = peering_status(in);
  in.now += std::chrono::minutes(5);
  auto later = peering_status(in);
  EXPECT_EQ(later["conditions"][0]["lastTransitionTime"], "2026-11-21T10:00:00Z");
}

TEST(PeeringStatusTest, SelfPeeringIsAConflict) {
  auto in = peering(std::nullopt);
  in.remote_cluster_id = "east";
  EXPECT_EQ(peering_status(in)["phase"], "Conflict");
}

TEST(ModelTest, AMistypedClusterSetNumberIsReportedNotThrown) {
  auto r = parse_clusterset(json::parse(R"({"spec":{"heartbeatTimeoutSeconds":"60s","ipv4":{"pools":["10.0.0.0/8"],"clusterPrefixLength":"16","nodePrefixLength":24}}})"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("spec.heartbeatTimeoutSeconds: must be a whole number, got \"60s\""), std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find("spec.ipv4.clusterPrefixLength"), std::string::npos);
}

TEST(ModelTest, MalformedObjectsAreErrorsNotCrashes) {
  EXPECT_FALSE(parse_claim(json::parse(R"({"spec":{"cidr":"10.0.0.1/8","clusterID":"a","purpose":"pods"}})")).ok());
  EXPECT_FALSE(parse_claim(json::parse(R"({"spec":{"cidr":"10.0.0.0/8","purpose":"pods"}})")).ok());
  EXPECT_FALSE(parse_claim(json::parse(R"([1,2])")).ok());
  EXPECT_FALSE(parse_advertisement(json::parse(R"({"spec":{"clusterID":"a","podCIDRs":"nope"}})")).ok());
  EXPECT_FALSE(parse_advertisement(json::parse(R"({"spec":{"clusterID":"a","nodes":[{"podCIDRs":[]}]}})")).ok());
  auto bad_set = parse_clusterset(json::parse(R"({"metadata":{"name":"default"},"spec":{"ipv4":{"pools":["10.0.0.0/8"],"clusterPrefixLength":16,"nodePrefixLength":8}}})"));
  ASSERT_FALSE(bad_set.ok());
  EXPECT_NE(bad_set.error().message().find("spec.ipv4.nodePrefixLength"), std::string::npos) << bad_set.error().message();
  EXPECT_TRUE(parse_clusterset(json::parse(R"({"spec":{"ipv4":{"pools":["10.0.0.0/8"],"clusterPrefixLength":16,"nodePrefixLength":24}}})")).ok());
}

}  // namespace
}  // namespace cw::op

namespace cw::op {
namespace {

TEST(ValidEndpointTest, AcceptsWhatTheSchemaAccepts) {
  for (const char* ok : {"192.0.2.1:51820", "[2001:db8::1]:51820", "lb.example.com:51820", "gw:1"}) {
    EXPECT_TRUE(valid_endpoint(ok)) << ok;
  }
  for (const char* bad : {"", "192.0.2.1", "192.0.2.1:0", "host:65536", "2001:db8::1:51820", "Host.Example:1",
                          "-bad.example:1", "a b:1", "host.example.:1"}) {
    EXPECT_FALSE(valid_endpoint(bad)) << bad;
  }
}

// ---- gateway mode (docs/gateway.md)

Advertisement gateway_ad(bool with_endpoint) {
  Advertisement ad = remote_ad({"east"}, "2026-11-21T09:59:55Z");
  ad.topology = "gateway";
  ad.nodes.clear();
  ad.gateways = {{"w-gw1", with_endpoint ? "203.0.113.5:51820" : "", "9YtV7g8b1oV6YQe0fM0cZ3y8Jm3x7b2KZ0v5yq3u8Xo=",
                  {P("10.80.7.0/24")}}};
  ad.active_gateway = "w-gw1";
  return ad;
}

TEST(PeeringStatusTest, TheIngressPostureInForceIsInTheStatusWhateverThePhase) {
  auto in = peering(remote_ad({"east"}, "2026-11-21T09:59:55Z"));
  EXPECT_EQ(peering_status(in)["ingress"], "All") << "the default";
  in.ingress = "ExportedServices";
  EXPECT_EQ(peering_status(in)["ingress"], "ExportedServices");
  in.remote.reset();
  auto pending = peering_status(in);
  EXPECT_EQ(pending["phase"], "Pending");
  EXPECT_EQ(pending["ingress"], "ExportedServices") << "known before the remote side is";
}

TEST(PeeringStatusTest, GatewayClustersConnectWhenOneSideIsReachable) {
  // A remote gateway behind NAT (no endpoint) is ready: it reaches us.
  auto in = peering(gateway_ad(false));
  auto s = peering_status(in);
  EXPECT_EQ(s["phase"], "Connected") << s.dump();
  EXPECT_EQ(s["localTopology"], "mesh");
  EXPECT_EQ(s["remote"]["topology"], "gateway");
  EXPECT_EQ(s["remote"]["activeGateway"], "w-gw1");
  EXPECT_EQ(s["remote"]["gateways"][0]["name"], "w-gw1");
  EXPECT_FALSE(s["remote"]["gateways"][0].contains("endpoint"));

  // Both gateway clusters, neither reachable: NAT to NAT, said so.
  in.local_topology = "gateway";
  in.local_gateway_reachable = false;
  s = peering_status(in);
  EXPECT_EQ(s["phase"], "Connecting");
  EXPECT_EQ(condition_of(s, "Ready")["reason"], "NoReachableEndpoint");
  EXPECT_NE(condition_of(s, "Ready")["message"].get<std::string>().find("NAT to NAT is not supported"), std::string::npos);
  in.local_gateway_reachable = true;
  EXPECT_EQ(peering_status(in)["phase"], "Connected");
  in.local_gateway_reachable = false;
  in.remote = gateway_ad(true);
  EXPECT_EQ(peering_status(in)["phase"], "Connected");
}

TEST(PeeringStatusTest, AGatewayClusterWithoutCandidatesIsConnectingAndSaysWhatToLabel) {
  auto ad = gateway_ad(true);
  ad.gateways.clear();
  auto s = peering_status(peering(ad));
  EXPECT_EQ(s["phase"], "Connecting");
  EXPECT_EQ(condition_of(s, "Ready")["reason"], "NoRemoteGateways");
  EXPECT_NE(condition_of(s, "Ready")["message"].get<std::string>().find("clusterwire.io/gateway=true"), std::string::npos);
  // A gateway's block outside the cluster's ranges is a conflict, as a node's is.
  ad = gateway_ad(true);
  ad.gateways[0].pod_cidrs = {P("10.81.0.0/24")};
  EXPECT_EQ(peering_status(peering(ad))["phase"], "Conflict");
}

TEST(AdvertisementTest, TopologyRoundTripsAndIsChecked) {
  auto ad = gateway_ad(false);
  json object{{"metadata", {{"name", "west"}}}, {"spec", to_json(ad)}};
  auto back = parse_advertisement(object);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->topology, "gateway");
  EXPECT_EQ(back->active_gateway, "w-gw1");
  EXPECT_EQ(back->gateways.size(), 1U);
  object["spec"].erase("topology");
  EXPECT_EQ(parse_advertisement(object)->topology, "mesh") << "an advertisement from before topologies is a mesh";
  object["spec"]["topology"] = "star";
  auto bad = parse_advertisement(object);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("neither mesh nor gateway"), std::string::npos);
}

TEST(OperatorConfigTest, TopologyAndGatewayEndpointsAreChecked) {
  OperatorConfig c;
  c.cluster_id = "east";
  EXPECT_TRUE(validate(c).ok());
  c.topology = "gateway";
  c.gateway_endpoints = {{"gw-1", "lb.example.com:51820"}, {"gw-2", "203.0.113.9:4500"}};
  EXPECT_TRUE(validate(c).ok());
  c.topology = "hub";
  EXPECT_FALSE(validate(c).ok());
  c.topology = "gateway";
  c.gateway_endpoints["gw-3"] = "203.0.113.9";
  auto r = validate(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("gw-3=203.0.113.9"), std::string::npos);
}

}  // namespace
}  // namespace cw::op
