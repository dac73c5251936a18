// The zone's input from the local API: ServiceImports, imported EndpointSlices, peerings.
#include "dns/snapshot.h"

#include <gtest/gtest.h>

namespace cw::dns {
namespace {

using nlohmann::json;

json import(const std::string& ns, const std::string& name, const std::string& type, json ports = json::array()) {
  return {{"metadata", {{"name", name}, {"namespace", ns}}}, {"spec", {{"type", type}, {"ports", ports}}}};
}

json slice(const std::string& ns, const std::string& service, const std::string& cluster, json endpoints,
           const std::string& ips = "") {
  json s{{"metadata", {{"name", service + "-" + cluster}, {"namespace", ns},
                       {"labels", {{"multicluster.kubernetes.io/service-name", service}}}}},
         {"endpoints", endpoints}};
  if (!cluster.empty()) s["metadata"]["labels"]["multicluster.kubernetes.io/source-cluster"] = cluster;
  if (!ips.empty()) s["metadata"]["annotations"] = {{"clusterwire.io/service-ips", ips}};
  return s;
}

json peering(const std::string& remote, const std::string& phase) {
  return {{"metadata", {{"name", remote}}}, {"spec", {{"remoteClusterID", remote}}}, {"status", {{"phase", phase}}}};
}

TEST(SnapshotTest, ClusterSetIpServiceIpsComeFromTheAnnotationAndReachabilityFromPeerings) {
  SnapshotInput in{"east",
                   {import("shop", "web", "ClusterSetIP", json::parse(R"([{"name":"http","port":80},{"port":8080,"protocol":"UDP"}])"))},
                   {slice("shop", "web", "west", json::array(), "10.112.0.10,fd00::10"),
                    slice("shop", "web", "north", json::array(), "10.113.0.10"),
                    slice("shop", "web", "east", json::array(), "10.96.0.10,not-an-ip")},
                   {peering("west", "Connected"), peering("north", "Pending")}};
  const auto built = build_snapshot(in);
  ASSERT_EQ(built.snapshot.services.size(), 1U);
  const auto& svc = built.snapshot.services[0];
  EXPECT_FALSE(svc.headless);
  ASSERT_EQ(svc.ports.size(), 2U);
  EXPECT_EQ(svc.ports[0].name, "http");
  EXPECT_EQ(svc.ports[0].protocol, "TCP");  // defaulted
  EXPECT_EQ(svc.ports[1].protocol, "UDP");
  ASSERT_EQ(svc.clusters.size(), 3U);  // sorted by cluster
  EXPECT_EQ(svc.clusters[0].cluster_id, "east");
  EXPECT_TRUE(svc.clusters[0].reachable);  // the local cluster
  EXPECT_EQ(svc.clusters[0].service_ips.size(), 1U);  // "not-an-ip" skipped
  EXPECT_EQ(svc.clusters[1].cluster_id, "north");
  EXPECT_FALSE(svc.clusters[1].reachable);  // Pending: no routes
  EXPECT_EQ(svc.clusters[2].cluster_id, "west");
  EXPECT_TRUE(svc.clusters[2].reachable);
  EXPECT_EQ(svc.clusters[2].service_ips.size(), 2U);
}

TEST(SnapshotTest, HeadlessEndpointsKeepReadinessAndOnlyLabelHostnames) {
  SnapshotInput in{"east",
                   {import("data", "db", "Headless")},
                   {slice("data", "db", "west",
                          json::parse(R"([{"addresses":["10.80.0.5"],"hostname":"db-0","conditions":{"ready":true}},
                                          {"addresses":["10.80.0.6"],"hostname":"Bad.Name","conditions":{"ready":false}},
                                          {"addresses":["10.80.0.7"],"conditions":{}},
                                          {"addresses":["garbage"]}])"))},
                   {peering("west", "Connected")}};
  const auto built = build_snapshot(in);
  ASSERT_EQ(built.snapshot.services.size(), 1U);
  const auto& eps = built.snapshot.services[0].clusters.at(0).endpoints;
  ASSERT_EQ(eps.size(), 3U);  // the one with no parseable address is left out
  EXPECT_EQ(eps[0].hostname, "db-0");
  EXPECT_TRUE(eps[0].ready);
  EXPECT_EQ(eps[1].hostname, "");  // not a DNS label: no name of its own
  EXPECT_FALSE(eps[1].ready);
  EXPECT_TRUE(eps[2].ready);  // no ready condition means ready
}

TEST(SnapshotTest, MalformedObjectsAreSkippedAndSaidSoWithoutTakingOthersDown) {
  SnapshotInput in{"east",
                   {import("shop", "web", "ClusterSetIP"), import("shop", "odd", "LoadBalancer"), json::object(),
                    import("shop", "Bad_Name", "Headless")},
                   {slice("shop", "web", "", json::array(), "10.1.1.1"),          // no source cluster
                    slice("shop", "web", "Not_A_Cluster", json::array(), "10.1.1.2"),
                    slice("shop", "web", "west", json::array(), "10.112.0.10"),
                    slice("other", "web", "west", json::array(), "10.9.9.9")},  // another namespace's web
                   {json::object(), peering("west", "Connected")}};
  const auto built = build_snapshot(in);
  ASSERT_EQ(built.snapshot.services.size(), 1U);
  ASSERT_EQ(built.snapshot.services[0].clusters.size(), 1U);
  EXPECT_EQ(built.snapshot.services[0].clusters[0].cluster_id, "west");
  EXPECT_EQ(built.snapshot.services[0].clusters[0].service_ips.size(), 1U);
  EXPECT_EQ(built.skipped.size(), 5U);  // two slices, three imports
}

TEST(SnapshotTest, AnImportWithoutSlicesIsKnownButHasNoParts) {
  const auto built = build_snapshot({"east", {import("shop", "web", "ClusterSetIP")}, {}, {}});
  ASSERT_EQ(built.snapshot.services.size(), 1U);
  EXPECT_TRUE(built.snapshot.services[0].clusters.empty());
  EXPECT_TRUE(built.skipped.empty());
}

TEST(SnapshotTest, OnlyConnectedAndDegradedPeersAreReachable) {
  // Degraded (a late heartbeat, a broker outage) keeps the node agents' routes: keep answering.
  for (const auto& [phase, want] : std::vector<std::pair<std::string, bool>>{
           {"Connected", true}, {"Degraded", true}, {"Pending", false}, {"Connecting", false}, {"Conflict", false}, {"", false}}) {
    const auto built = build_snapshot({"east", {import("shop", "web", "ClusterSetIP")},
                                       {slice("shop", "web", "west", json::array(), "10.112.0.10")},
                                       {peering("west", phase)}});
    EXPECT_EQ(built.snapshot.services.at(0).clusters.at(0).reachable, want) << "phase " << phase;
  }
}

TEST(SnapshotTest, AClusterNoProbeReachesIsLeftOutAPartlyReachableOneIsNot) {
  for (const auto& [reason, want] : std::vector<std::pair<std::string, bool>>{
           {"Unreachable", false}, {"PartlyUnreachable", true}, {"MTUBlackHole", true}, {"SNATOnPath", true}}) {
    json p = peering("west", "Degraded");
    p["status"]["conditions"] = json::array({{{"type", "DatapathHealthy"}, {"status", "False"}, {"reason", reason}}});
    const auto built = build_snapshot({"east", {import("shop", "web", "ClusterSetIP")},
                                       {slice("shop", "web", "west", json::array(), "10.112.0.10")}, {p}});
    EXPECT_EQ(built.snapshot.services.at(0).clusters.at(0).reachable, want) << reason;
  }
  json healed = peering("west", "Connected");
  healed["status"]["conditions"] = json::array({{{"type", "DatapathHealthy"}, {"status", "True"}, {"reason", "ProbesAnswered"}}});
  EXPECT_TRUE(build_snapshot({"east", {import("shop", "web", "ClusterSetIP")},
                              {slice("shop", "web", "west", json::array(), "10.112.0.10")}, {healed}})
                  .snapshot.services.at(0).clusters.at(0).reachable);
}

}  // namespace
}  // namespace cw::dns
