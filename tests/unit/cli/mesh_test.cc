// cwctl status / diagnose / graph over hand-made views: each diagnose rule, table-driven.
#include "cli/mesh/mesh.h"

#include <gtest/gtest.h>

#include <sstream>

namespace cw::mesh {
namespace {

json condition(const std::string& type, const std::string& status, const std::string& reason,
               const std::string& message = "m") {
  return {{"type", type}, {"status", status}, {"reason", reason}, {"message", message}};
}

json peering(const std::string& remote, const std::string& phase, json conditions, json datapath = json::object()) {
  return {{"metadata", {{"name", remote}}},
          {"spec", {{"remoteClusterID", remote}}},
          {"status", {{"phase", phase}, {"conditions", conditions}, {"datapath", datapath}}}};
}

json node(const std::string& name, const std::string& endpoint, const std::string& report = "",
          const std::string& error = "") {
  json ann{{"clusterwire.io/pod-cidr", "10.0.0.0/24"}, {"clusterwire.io/endpoint", endpoint}};
  if (!report.empty()) ann["clusterwire.io/datapath"] = report;
  if (!error.empty()) ann["clusterwire.io/agent-error"] = error;
  return {{"metadata", {{"name", name}, {"annotations", ann}}}};
}

json healthy() {
  return json::array({condition("RemoteConsents", "True", "PeeringNamesUs"), condition("CIDRsDisjoint", "True", "NoOverlap"),
                      condition("RemoteHealthy", "True", "HeartbeatFresh"), condition("BrokerReachable", "True", "BrokerAnswers"),
                      condition("DatapathHealthy", "True", "ProbesAnswered"), condition("Ready", "True", "Connected")});
}

// `conditions` with the one of `type` replaced.
json with(json conditions, const json& c) {
  for (auto& x : conditions) {
    if (x["type"] == c["type"]) x = c;
  }
  return conditions;
}

MeshView two_clusters(json a_peering, json b_peering) {
  MeshView v;
  v.now = std::chrono::system_clock::from_time_t(1'800'000'000);
  v.clusters.push_back(cluster_from("a", json::array({node("a1", "192.0.2.1:51820")}), json::array({a_peering})));
  v.clusters.push_back(cluster_from("b", json::array({node("b1", "192.0.2.2:51820")}), json::array({b_peering})));
  return v;
}

std::vector<std::string> errors(const std::vector<Finding>& f) {
  std::vector<std::string> out;
  for (const auto& x : f) {
    if (x.severity != Severity::kOk) out.push_back(x.check);
  }
  return out;
}

TEST(Diagnose, EachFaultIsNamed) {
  struct Case {
    std::string name;
    json a, b;
    std::vector<std::string> want;
  };
  const json h = healthy();
  const std::vector<Case> cases{
      {"healthy", peering("b", "Connected", h), peering("a", "Connected", h), {}},
      {"cut both ways: udp-blocked, told once",
       peering("b", "Degraded", with(h, condition("DatapathHealthy", "False", "Unreachable"))),
       peering("a", "Degraded", with(h, condition("DatapathHealthy", "False", "Unreachable"))), {"udp-blocked"}},
      {"mtu", peering("b", "Degraded", with(h, condition("DatapathHealthy", "False", "MTUBlackHole"))),
       peering("a", "Connected", h), {"mtu"}},
      {"snat", peering("b", "Degraded", with(h, condition("DatapathHealthy", "False", "SNATOnPath"))),
       peering("a", "Connected", h), {"snat"}},
      {"partial", peering("b", "Degraded", with(h, condition("DatapathHealthy", "False", "PartlyUnreachable"))),
       peering("a", "Connected", h), {"datapath"}},
      {"one-sided", peering("b", "Pending", with(h, condition("RemoteConsents", "False", "AwaitingRemote"))),
       peering("a", "Connected", h), {"one-sided"}},
      {"overlap", peering("b", "Conflict", with(h, condition("CIDRsDisjoint", "False", "Overlap"))),
       peering("a", "Connected", h), {"overlap"}},
      {"broker", peering("b", "Connected", with(h, condition("BrokerReachable", "False", "BrokerUnreachable"))),
       peering("a", "Connected", h), {"broker"}},
      {"remote silent", peering("b", "Connected", with(h, condition("RemoteHealthy", "False", "HeartbeatStale"))),
       peering("a", "Connected", h), {"remote-silent"}},
      {"no status", json{{"metadata", {{"name", "b"}}}, {"spec", {{"remoteClusterID", "b"}}}},
       peering("a", "Connected", h), {"operator"}},
  };
  for (const auto& c : cases) {
    const auto got = errors(diagnose(two_clusters(c.a, c.b)));
    EXPECT_EQ(got, c.want) << c.name;
  }
}

TEST(Diagnose, BlockedUdpNamesBothSidesEndpointsAndStaleHandshakes) {
  const json cut = peering("b", "Degraded", with(healthy(), condition("DatapathHealthy", "False", "Unreachable")));
  auto v = two_clusters(cut, peering("a", "Degraded", with(healthy(), condition("DatapathHealthy", "False", "Unreachable"))));
  v.clusters[0] = cluster_from("a", json::array({node("a1", "192.0.2.1:51820", R"({"b":{"down":1,"handshakeStale":1}})")}),
                               json::array({cut}));
  const auto f = diagnose(v);
  ASSERT_EQ(f.front().check, "udp-blocked");
  EXPECT_EQ(f.front().subject, "a ↔ b");
  EXPECT_NE(f.front().finding.find("192.0.2.1:51820"), std::string::npos) << f.front().finding;
  EXPECT_NE(f.front().finding.find("192.0.2.2:51820"), std::string::npos);
  EXPECT_NE(f.front().finding.find("1 WireGuard peer(s) complete no handshake"), std::string::npos);
  // Only one side readable: its own finding, and advice to look at the other.
  v.clusters.pop_back();
  const auto one = diagnose(v);
  EXPECT_EQ(one.front().subject, "a → b");
  EXPECT_NE(one.front().fix.find("run diagnose with b's context too"), std::string::npos);
}

TEST(Diagnose, AgentErrorsUnreadableClustersClockSkewAndOverlapsOnTheBroker) {
  auto v = two_clusters(peering("b", "Connected", healthy()), peering("a", "Connected", healthy()));
  v.clusters[0].nodes[0].agent_error = "nftables: Operation not permitted";
  v.clusters[1].error = "listing nodes: connection refused";
  BrokerView b;
  b.context = "a";
  b.advertisements = {
      {{"metadata", {{"name", "a"}}}, {"spec", {{"podCIDRs", {"10.1.0.0/16"}}, {"heartbeat", "2027-01-15T08:01:40Z"}}}},
      {{"metadata", {{"name", "c"}}}, {"spec", {{"podCIDRs", {"10.1.128.0/17"}}, {"heartbeat", "2027-01-15T08:00:00Z"}}}}};
  v.broker = b;
  v.now = std::chrono::system_clock::from_time_t(1'800'000'000);  // 2027-01-15T08:00:00Z
  const auto got = errors(diagnose(v));
  for (const char* want : {"agent-apply", "api", "clock-skew", "overlap"}) {
    EXPECT_NE(std::find(got.begin(), got.end(), want), got.end()) << want;
  }
  std::ostringstream out;
  EXPECT_EQ(print_findings(diagnose(v), out), 1);
  EXPECT_NE(out.str().find("what to do:"), std::string::npos);
}

TEST(Diagnose, EveryCheckIsListedAndNothingWrongExitsZero) {
  const auto f = diagnose(two_clusters(peering("b", "Connected", healthy()), peering("a", "Connected", healthy())));
  EXPECT_EQ(f.size(), 11U);
  std::ostringstream out;
  EXPECT_EQ(print_findings(f, out), 0);
  EXPECT_NE(out.str().find("no problem found"), std::string::npos);
  EXPECT_EQ(findings_json(f).size(), 11U);
}

TEST(MeshView, IdentifiesClustersByTheirNodesAndIgnoresMalformedReports) {
  MeshView v;
  v.clusters.push_back(cluster_from("ctx-east", json::array({node("n1", "", "not json"), node("n2", "")}), json::array()));
  BrokerView b;
  b.advertisements = {{{"metadata", {{"name", "east"}}}, {"spec", {{"nodes", {{{"name", "n1"}}, {{"name", "n2"}}}}}}},
                      {{"metadata", {{"name", "west"}}}, {"spec", {{"nodes", {{{"name", "w1"}}}}}}}};
  v.broker = b;
  identify(v);
  EXPECT_EQ(v.clusters[0].id, "east");
  EXPECT_TRUE(v.clusters[0].nodes[0].datapath.empty());
}

TEST(MeshStatus, HostileAnnotationsAndObjectsDoNotThrow) {
  MeshView v;
  v.now = std::chrono::system_clock::from_time_t(1'800'000'000);
  v.clusters.push_back(cluster_from(
      "a",
      json::array({node("a1", "x", R"({"b":{"up":"2","down":-1,"handshakeStale":"many","rttP50Micros":"slow"},"c":7})"),
                   json("not an object"), json::object()}),
      json::array({json{{"metadata", 5}, {"spec", "x"}, {"status", {{"conditions", "none"}, {"datapath", 3}}}}})));
  BrokerView b;
  b.advertisements = {json{{"metadata", "x"}, {"spec", {{"podCIDRs", "10.0.0.0/8"}, {"heartbeat", 5}}}},
                      json{{"metadata", {{"name", 3}}}, {"spec", {{"podCIDRs", {"10.0.0.0/8", 4}}}}}, json("junk")};
  v.broker = b;
  std::ostringstream out;
  EXPECT_NO_THROW(print_status(v, out));
  EXPECT_NO_THROW((void)status_json(v));
  EXPECT_NO_THROW((void)diagnose(v));
  EXPECT_NO_THROW((void)graph_dot(v));
}

TEST(MeshStatus, AGatewayClusterShowsItsCandidatesAndTheActiveOne) {
  auto v = two_clusters(peering("b", "Connected", healthy()), peering("a", "Connected", healthy()));
  BrokerView b;
  b.context = "a";
  b.advertisements = {
      {{"metadata", {{"name", "a"}}},
       {"spec", {{"podCIDRs", {"10.1.0.0/16"}}, {"topology", "gateway"}, {"activeGateway", "a-gw2"},
                 {"gateways", {{{"name", "a-gw1"}, {"endpoint", "203.0.113.1:51820"}}, {{"name", "a-gw2"}}}}}}},
      {{"metadata", {{"name", "b"}}}, {"spec", {{"podCIDRs", {"10.2.0.0/16"}}, {"topology", "mesh"}}}}};
  v.broker = b;
  std::ostringstream out;
  print_status(v, out);
  EXPECT_NE(out.str().find("topology gateway   active a-gw2   candidates a-gw1 203.0.113.1:51820, a-gw2 (behind NAT)"),
            std::string::npos)
      << out.str();
  EXPECT_EQ(out.str().find("topology gateway", out.str().find("cluster b")), std::string::npos) << "b is a mesh";
}

TEST(MeshStatus, TableAndJsonAndGraph) {
  const json up = {{"probedPairs", 2}, {"failingPairs", 0}, {"rttP50", "1.2ms"}, {"rttMax", "3ms"}};
  auto v = two_clusters(peering("b", "Connected", healthy(), up),
                        peering("a", "Degraded", with(healthy(), condition("DatapathHealthy", "False", "Unreachable")),
                                {{"probedPairs", 2}, {"failingPairs", 2}}));
  std::ostringstream out;
  print_status(v, out);
  EXPECT_NE(out.str().find("2/2 pairs answer"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("Unreachable (2/2 fail)"), std::string::npos) << out.str();
  EXPECT_EQ(status_json(v)["clusters"][1]["peerings"][0]["conditions"]["DatapathHealthy"]["reason"], "Unreachable");
  const std::string dot = graph_dot(v);
  EXPECT_NE(dot.find("digraph clusterset"), std::string::npos);
  EXPECT_NE(dot.find("\"a/a1\" -> \"b/b1\" [color=forestgreen"), std::string::npos) << dot;
  EXPECT_NE(dot.find("\"b/b1\" -> \"a/a1\" [color=red"), std::string::npos) << dot;
}

}  // namespace
}  // namespace cw::mesh
