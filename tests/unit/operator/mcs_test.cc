// The MCS sync's rules (KEP-1645): export records, conflict resolution, imports.
#include "operator/mcs.h"

#include <gtest/gtest.h>

namespace cw::op {
namespace {

json service_export(const std::string& ns, const std::string& name, const std::string& created) {
  return {{"metadata", {{"name", name}, {"namespace", ns}, {"creationTimestamp", created}}}};
}

json service(const std::string& cluster_ip, json ports, const std::string& type = "ClusterIP") {
  return {{"spec", {{"type", type}, {"clusterIP", cluster_ip}, {"clusterIPs", {cluster_ip}}, {"ports", ports}}}};
}

ExportRecord record(const std::string& cluster, const std::string& created, bool headless, std::vector<ExportPort> ports,
                    const std::string& ns = "default") {
  return {cluster, ns, "web", headless, std::move(ports), headless ? std::vector<std::string>{} : std::vector<std::string>{"10.96.0.1"},
          headless ? std::vector<ExportEndpoint>{{{"10.80.0.5"}, "web-0", true}} : std::vector<ExportEndpoint>{}, created};
}

TEST(ExportRecordTest, ClusterSetIpServiceExportsItsIpsAndPorts) {
  auto r = make_export_record("east", service_export("default", "web", "2026-01-01T00:00:00Z"),
                              service("10.96.0.10", json::array({{{"name", "http"}, {"port", 80}}})), {});
  ASSERT_TRUE(r.record.has_value()) << r.invalid_message;
  EXPECT_FALSE(r.record->headless);
  EXPECT_EQ(r.record->service_ips, std::vector<std::string>{"10.96.0.10"});
  ASSERT_EQ(r.record->ports.size(), 1U);
  EXPECT_EQ(r.record->ports[0].protocol, "TCP");  // defaulted
  EXPECT_EQ(r.record->exported_at, "2026-01-01T00:00:00Z");
  // Round trip through the broker object's spec.
  auto back = parse_export_record(to_json(*r.record));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->ports, r.record->ports);
}

TEST(ExportRecordTest, HeadlessServiceExportsItsEndpointsWithReadiness) {
  json slice{{"endpoints", {{{"addresses", {"10.80.0.5"}}, {"hostname", "db-0"}, {"conditions", {{"ready", true}}}},
                            {{"addresses", {"10.80.0.6"}}, {"conditions", {{"ready", false}}}},
                            {{"addresses", {"10.80.0.7"}}}}}};
  auto r = make_export_record("east", service_export("data", "db", "t"), service("None", json::array()), {slice});
  ASSERT_TRUE(r.record.has_value());
  EXPECT_TRUE(r.record->headless);
  ASSERT_EQ(r.record->endpoints.size(), 3U);
  EXPECT_EQ(r.record->endpoints[0].hostname, "db-0");
  EXPECT_FALSE(r.record->endpoints[1].ready);
  EXPECT_TRUE(r.record->endpoints[2].ready);  // no condition: ready, as Kubernetes reads it
}

TEST(ExportRecordTest, MissingAndExternalNameServicesAreInvalid) {
  auto missing = make_export_record("east", service_export("default", "web", "t"), json(), {});
  EXPECT_FALSE(missing.record.has_value());
  EXPECT_EQ(missing.invalid_reason, "ServiceNotFound");
  auto external = make_export_record("east", service_export("default", "web", "t"),
                                     service("", json::array(), "ExternalName"), {});
  EXPECT_EQ(external.invalid_reason, "InvalidServiceType");
}

TEST(PlanImportsTest, MergesPortsAndSlicesPerReachableCluster) {
  std::vector<ExportRecord> recs{record("west", "2026-01-02T00:00:00Z", false, {{"http", "TCP", 80, ""}}),
                                 record("north", "2026-01-01T00:00:00Z", false, {{"http", "TCP", 80, ""}, {"grpc", "TCP", 9090, ""}}),
                                 record("south", "2026-01-03T00:00:00Z", false, {{"http", "TCP", 80, ""}})};
  auto plan = plan_imports("east", recs, {"east", "west", "north"}, {"default"});
  ASSERT_EQ(plan.imports.size(), 1U);
  const auto& imp = plan.imports[0];
  EXPECT_FALSE(imp.headless);
  EXPECT_EQ(imp.ports.size(), 2U);
  ASSERT_EQ(imp.slices.size(), 2U);  // south is not reachable
  EXPECT_EQ(imp.slices[0].source_cluster, "north");
  EXPECT_EQ(imp.slices[1].source_cluster, "west");
  EXPECT_TRUE(plan.conflicts.empty());
}

TEST(PlanImportsTest, TheOldestExportDecidesTheTypeAndEveryExportHearsOfTheConflict) {
  std::vector<ExportRecord> recs{record("east", "2026-01-02T00:00:00Z", true, {{"http", "TCP", 80, ""}}),
                                 record("west", "2026-01-01T00:00:00Z", false, {{"http", "TCP", 80, ""}})};
  auto plan = plan_imports("east", recs, {"east", "west"}, {"default"});
  ASSERT_EQ(plan.imports.size(), 1U);
  EXPECT_FALSE(plan.imports[0].headless);  // west's, the oldest
  ASSERT_EQ(plan.imports[0].slices.size(), 1U);  // east's headless export does not contribute
  EXPECT_EQ(plan.imports[0].slices[0].source_cluster, "west");
  ASSERT_EQ(plan.conflicts.count("default/web"), 1U);
  EXPECT_NE(plan.conflicts["default/web"].find("oldest export (cluster west)"), std::string::npos) << plan.conflicts["default/web"];
  // West, the winner, is told of the conflict too.
  EXPECT_EQ(plan_imports("west", recs, {"east", "west"}, {"default"}).conflicts.count("default/web"), 1U);
}

TEST(PlanImportsTest, PortConflictsKeepTheOlderPort) {
  std::vector<ExportRecord> recs{record("east", "2026-01-01T00:00:00Z", false, {{"http", "TCP", 80, ""}}),
                                 record("west", "2026-01-02T00:00:00Z", false, {{"http", "TCP", 8080, ""}, {"web", "TCP", 80, ""}})};
  auto plan = plan_imports("west", recs, {"east", "west"}, {"default"});
  ASSERT_EQ(plan.imports[0].ports.size(), 1U);
  EXPECT_EQ(plan.imports[0].ports[0].port, 80);
  ASSERT_EQ(plan.conflicts.count("default/web"), 1U);
  EXPECT_NE(plan.conflicts["default/web"].find("(and 1 more)"), std::string::npos) << plan.conflicts["default/web"];
}

TEST(PlanImportsTest, ANamespaceThatDoesNotExistHereIsNotImported) {
  std::vector<ExportRecord> recs{record("west", "t", false, {{"http", "TCP", 80, ""}}, "shop")};
  EXPECT_TRUE(plan_imports("east", recs, {"east", "west"}, {"default"}).imports.empty());
  EXPECT_EQ(plan_imports("east", recs, {"east", "west"}, {"default", "shop"}).imports.size(), 1U);
}

TEST(PlanImportsTest, TiesAreBrokenByClusterIdSoEveryClusterAgrees) {
  std::vector<ExportRecord> a{record("west", "t", true, {}), record("east", "t", false, {})};
  std::vector<ExportRecord> b{record("east", "t", false, {}), record("west", "t", true, {})};
  EXPECT_EQ(plan_imports("x", a, {"east", "west"}, {"default"}).imports[0].headless,
            plan_imports("y", b, {"east", "west"}, {"default"}).imports[0].headless);
}

// ---- the objects written for an import

PlannedImport planned(bool headless, std::vector<ImportedSlice> slices, std::vector<std::string> precedence) {
  return {"shop", "web", headless, {{"http", "TCP", 80, ""}, {"", "UDP", 53, ""}}, std::move(slices), std::move(precedence)};
}

TEST(ImportObjectsTest, ClusterSetIpImportTakesThePreferredClustersIpsOnePerFamily) {
  struct Case {
    std::string local;
    std::vector<std::string> precedence;
    std::vector<std::string> want_ips;
  };
  const ImportedSlice west{"west", {"10.112.0.10", "fd00::10"}, {}};
  const ImportedSlice east{"east", {"10.96.0.10"}, {}};
  for (const auto& c : std::vector<Case>{
           {"north", {"west", "east"}, {"10.112.0.10", "fd00::10"}},  // by precedence
           {"north", {"east", "west"}, {"10.96.0.10"}},
           {"east", {"west", "east"}, {"10.96.0.10"}},                // the local cluster's, when it exports
       }) {
    json imp = service_import_for(planned(false, {east, west}, c.precedence), c.local);
    EXPECT_EQ(imp["spec"]["type"], "ClusterSetIP");
    EXPECT_EQ(imp["spec"]["ips"], json(c.want_ips)) << c.local << " " << c.precedence.front();
    EXPECT_EQ(imp["status"]["clusters"], json::parse(R"([{"cluster":"east"},{"cluster":"west"}])"));
    EXPECT_EQ(imp["metadata"]["labels"]["app.kubernetes.io/managed-by"], "clusterwire");
    // An unnamed port has no name field (the schema's name is optional, never "").
    EXPECT_FALSE(imp["spec"]["ports"][1].contains("name"));
  }
}

TEST(ImportObjectsTest, HeadlessImportHasNoIps) {
  json imp = service_import_for(planned(true, {{"west", {}, {{{"10.80.0.5"}, "db-0", true}}}}, {"west"}), "east");
  EXPECT_EQ(imp["spec"]["type"], "Headless");
  EXPECT_FALSE(imp["spec"].contains("ips"));
}

TEST(ImportObjectsTest, SlicesAreOnePerClusterAndFamilyWithTheKepLabels) {
  const PlannedImport imp = planned(true,
                                    {{"east", {}, {}},  // no endpoints at all: still a (IPv4) slice, to show as a source
                                     {"west", {}, {{{"10.80.0.5", "fd00::5"}, "db-0", true}, {{"10.80.0.6"}, "", false}, {{"bogus"}, "x", true}}}},
                                    {"west", "east"});
  const auto slices = endpoint_slices_for(imp);
  ASSERT_EQ(slices.size(), 3U);
  EXPECT_EQ(slices[0]["metadata"]["name"], "web.east.ipv4");
  EXPECT_EQ(slices[0]["endpoints"], json::array());
  EXPECT_EQ(slices[1]["metadata"]["name"], "web.west.ipv4");
  EXPECT_EQ(slices[1]["addressType"], "IPv4");
  EXPECT_EQ(slices[1]["endpoints"], json::parse(R"([{"addresses":["10.80.0.5"],"conditions":{"ready":true},"hostname":"db-0"},
                                                    {"addresses":["10.80.0.6"],"conditions":{"ready":false}}])"));
  EXPECT_EQ(slices[2]["metadata"]["name"], "web.west.ipv6");
  EXPECT_EQ(slices[2]["addressType"], "IPv6");
  EXPECT_EQ(slices[2]["endpoints"][0]["addresses"], json({"fd00::5"}));
  const json& labels = slices[1]["metadata"]["labels"];
  EXPECT_EQ(labels["multicluster.kubernetes.io/service-name"], "web");
  EXPECT_EQ(labels["multicluster.kubernetes.io/source-cluster"], "west");
  EXPECT_EQ(labels["endpointslice.kubernetes.io/managed-by"], "clusterwire.io/operator");
  EXPECT_FALSE(labels.contains("kubernetes.io/service-name"));  // kube-proxy must not take them for a local Service's
  EXPECT_FALSE(slices[1]["metadata"].contains("annotations"));
}

TEST(ImportObjectsTest, ClusterSetIpSlicesCarryTheServiceIpsInTheAnnotation) {
  const auto slices = endpoint_slices_for(planned(false, {{"west", {"10.112.0.10", "fd00::10"}, {}}}, {"west"}));
  ASSERT_EQ(slices.size(), 2U);
  EXPECT_EQ(slices[0]["metadata"]["annotations"]["clusterwire.io/service-ips"], "10.112.0.10");
  EXPECT_EQ(slices[1]["metadata"]["annotations"]["clusterwire.io/service-ips"], "fd00::10");
  EXPECT_EQ(slices[0]["endpoints"], json::array());
  EXPECT_EQ(slices[0]["ports"], json::parse(R"([{"name":"http","port":80,"protocol":"TCP"},{"port":53,"protocol":"UDP"}])"));
}

// ---- a ServiceExport's conditions

TEST(ExportConditionsTest, ValidAndConflictFollowTheResult) {
  ExportResult valid;
  valid.record = record("east", "t", false, {{"http", "TCP", 80, ""}});
  ExportResult invalid;
  invalid.invalid_reason = "ServiceNotFound";
  invalid.invalid_message = "there is no Service default/web to export";
  struct Case {
    const ExportResult* result;
    std::string publish_error;
    std::string conflict;
    std::vector<std::string> want;  // type=status(reason)
  };
  for (const auto& c : std::vector<Case>{
           {&valid, "", "", {"Valid=True(Exported)", "Ready=True(Published)", "Conflict=False(NoConflict)"}},
           {&valid, "", "Conflict: type: ...", {"Valid=True(Exported)", "Ready=True(Published)", "Conflict=True(Conflict)"}},
           {&valid, "connection refused", "", {"Valid=True(Exported)", "Ready=False(BrokerUnavailable)", "Conflict=False(NoConflict)"}},
           {&invalid, "", "", {"Valid=False(ServiceNotFound)", "Ready=False(Invalid)"}},
       }) {
    json conds = export_conditions(*c.result, c.publish_error, c.conflict, 3, "2026-11-21T10:00:00Z", json::array());
    std::vector<std::string> got;
    for (const auto& x : conds) {
      got.push_back(x["type"].get<std::string>() + "=" + x["status"].get<std::string>() + "(" + x["reason"].get<std::string>() + ")");
      EXPECT_EQ(x["observedGeneration"], 3);
    }
    EXPECT_EQ(got, c.want);
  }
}

TEST(ExportConditionsTest, AnUnchangedStatusKeepsItsTransitionTime) {
  ExportResult valid;
  valid.record = record("east", "t", false, {});
  json first = export_conditions(valid, "", "", 1, "2026-11-21T10:00:00Z", json::array());
  json again = export_conditions(valid, "", "", 1, "2026-11-21T11:00:00Z", first);
  EXPECT_EQ(again, first);  // nothing to write
  json conflicted = export_conditions(valid, "", "Conflict: x", 1, "2026-11-21T12:00:00Z", first);
  EXPECT_EQ(conflicted[0]["lastTransitionTime"], "2026-11-21T10:00:00Z");  // Valid did not change
  EXPECT_EQ(conflicted[2]["lastTransitionTime"], "2026-11-21T12:00:00Z");  // Conflict did
}

TEST(ImportObjectsTest, SliceNamesOfLookAlikeServicesAndClustersDiffer) {
  // "web-us" from "east" and "web" from "us-east" would both be "web-us-east-ipv4" with dashes.
  PlannedImport a{"shop", "web-us", false, {}, {{"east", {"10.1.0.1"}, {}}}, {"east"}};
  PlannedImport b{"shop", "web", false, {}, {{"us-east", {"10.2.0.1"}, {}}}, {"us-east"}};
  EXPECT_NE(endpoint_slices_for(a)[0]["metadata"]["name"], endpoint_slices_for(b)[0]["metadata"]["name"]);
}

TEST(ExportRecordTest, HeadlessPortsAreThePodsPortsAsTheSlicesResolveThem) {
  json svc{{"spec", {{"type", "ClusterIP"}, {"clusterIP", "None"},
                     {"ports", {{{"name", "sql"}, {"port", 5432}, {"targetPort", "pg"}},     // named: the slice says
                                {{"name", "metrics"}, {"port", 80}, {"targetPort", 9100}},  // numeric
                                {{"name", "admin"}, {"port", 81}}}}}}};                      // none: the port
  json slice{{"ports", {{{"name", "sql"}, {"protocol", "TCP"}, {"port", 15432}}}},
             {"endpoints", {{{"addresses", {"10.80.0.5"}}, {"conditions", {{"ready", true}}}}}}};
  auto r = make_export_record("east", service_export("default", "db", "t"), svc, {slice});
  ASSERT_TRUE(r.record.has_value());
  ASSERT_EQ(r.record->ports.size(), 3U);
  EXPECT_EQ(r.record->ports[0].port, 15432);
  EXPECT_EQ(r.record->ports[1].port, 9100);
  EXPECT_EQ(r.record->ports[2].port, 81);
  // A ClusterSetIP Service keeps its Service ports: clients reach the Service IP.
  auto c = make_export_record("east", service_export("default", "web", "t"),
                              service("10.96.0.10", json::array({{{"name", "http"}, {"port", 80}, {"targetPort", 8080}}})), {});
  EXPECT_EQ(c.record->ports.at(0).port, 80);
}

TEST(PlanImportsTest, AnUnreachableClusterDecidesNothingHereButItsConflictIsStillReported) {
  // "ghost" exported first, as Headless on port 8080, and never withdrew; only east is reachable.
  std::vector<ExportRecord> recs{record("ghost", "2020-01-01T00:00:00Z", true, {{"http", "TCP", 8080, ""}}),
                                 record("east", "2026-01-01T00:00:00Z", false, {{"http", "TCP", 80, ""}})};
  auto plan = plan_imports("east", recs, {"east"}, {"default"});
  ASSERT_EQ(plan.imports.size(), 1U);
  EXPECT_FALSE(plan.imports[0].headless);  // east's type, not the ghost's
  ASSERT_EQ(plan.imports[0].ports.size(), 1U);
  EXPECT_EQ(plan.imports[0].ports[0].port, 80);
  EXPECT_EQ(plan.conflicts.count("default/web"), 1U);  // the clusterset still disagrees
  // Nothing reachable exports it: no import at all.
  EXPECT_TRUE(plan_imports("north", recs, {"north"}, {"default"}).imports.empty());
}

// ---- writing only what changed

TEST(NeedsWriteTest, WhatARealServerReturnsForAnUnchangedSliceIsNotAChange) {
  const json desired = json::parse(R"({"metadata":{"name":"web.west.ipv4","labels":{"a":"1"},
      "annotations":{"clusterwire.io/service-ips":"10.1.0.1"}},
      "addressType":"IPv4","ports":[{"port":80}],"endpoints":[]})");
  struct Case {
    const char* what;
    const char* current;
    bool want;
  };
  for (const auto& c : std::vector<Case>{
           {"as written", R"({"metadata":{"labels":{"a":"1"},"annotations":{"clusterwire.io/service-ips":"10.1.0.1"}},
               "addressType":"IPv4","ports":[{"port":80}],"endpoints":[]})", false},
           {"defaults filled in, empty list as null, others' labels and annotations",
            R"({"metadata":{"resourceVersion":"9","labels":{"a":"1","argocd.argoproj.io/instance":"x"},
               "annotations":{"clusterwire.io/service-ips":"10.1.0.1","note":"y"}},
               "addressType":"IPv4","ports":[{"name":"","protocol":"TCP","port":80}],"endpoints":null})", false},
           {"our label changed", R"({"metadata":{"labels":{"a":"2"},"annotations":{"clusterwire.io/service-ips":"10.1.0.1"}},
               "addressType":"IPv4","ports":[{"port":80}],"endpoints":[]})", true},
           {"our annotation gone", R"({"metadata":{"labels":{"a":"1"}},"addressType":"IPv4","ports":[{"port":80}],"endpoints":[]})", true},
           {"an endpoint added by someone", R"({"metadata":{"labels":{"a":"1"},"annotations":{"clusterwire.io/service-ips":"10.1.0.1"}},
               "addressType":"IPv4","ports":[{"port":80}],"endpoints":[{"addresses":["1.2.3.4"]}]})", true},
           {"another port", R"({"metadata":{"labels":{"a":"1"},"annotations":{"clusterwire.io/service-ips":"10.1.0.1"}},
               "addressType":"IPv4","ports":[{"port":81}],"endpoints":[]})", true},
       }) {
    EXPECT_EQ(needs_write(json::parse(c.current), desired), c.want) << c.what;
  }
}

TEST(MergeConditionsTest, OtherControllersConditionsAreKeptAndOursReplaced) {
  const json old = json::parse(R"([{"type":"Valid","status":"False"},{"type":"Conflict","status":"True"},
                                   {"type":"example.com/Synced","status":"True"}])");
  const json ours = json::parse(R"([{"type":"Valid","status":"True"},{"type":"Ready","status":"True"}])");
  const json merged = merge_conditions(old, ours);
  ASSERT_EQ(merged.size(), 3U);  // our two, and the other controller's; our stale Conflict is gone
  EXPECT_EQ(merged[0]["status"], "True");
  EXPECT_EQ(merged[2]["type"], "example.com/Synced");
}

// ---- session affinity (KEP-1645: the oldest export's; a difference is a conflict)

TEST(SessionAffinityTest, TravelsFromTheServiceThroughTheRecordToTheImport) {
  json svc = service("10.96.0.10", json::array({{{"name", "http"}, {"port", 80}}}));
  svc["spec"]["sessionAffinity"] = "ClientIP";
  svc["spec"]["sessionAffinityConfig"] = {{"clientIP", {{"timeoutSeconds", 600}}}};
  auto r = make_export_record("east", service_export("default", "web", "t"), svc, {});
  ASSERT_TRUE(r.record.has_value());
  EXPECT_EQ(r.record->session_affinity, "ClientIP");
  EXPECT_EQ(r.record->session_affinity_timeout, 600);
  auto back = parse_export_record(to_json(*r.record));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->session_affinity, "ClientIP");
  EXPECT_EQ(back->session_affinity_timeout, 600);
  auto plan = plan_imports("west", {*back}, {"east", "west"}, {"default"});
  ASSERT_EQ(plan.imports.size(), 1U);
  const json imp = service_import_for(plan.imports[0], "west");
  EXPECT_EQ(imp["spec"]["sessionAffinity"], "ClientIP");
  EXPECT_EQ(imp["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"], 600);
  // None is the default: not written.
  auto none = make_export_record("east", service_export("default", "web", "t"),
                                 service("10.96.0.10", json::array({{{"name", "http"}, {"port", 80}}})), {});
  EXPECT_EQ(none.record->session_affinity, "None");
  EXPECT_FALSE(service_import_for(plan_imports("west", {*none.record}, {"east"}, {"default"}).imports.at(0), "west")["spec"]
                   .contains("sessionAffinity"));
}

TEST(SessionAffinityTest, TheOldestExportsAffinityIsUsedAndADifferenceIsAConflict) {
  ExportRecord older = record("east", "2026-01-01T00:00:00Z", false, {{"http", "TCP", 80, ""}});
  older.session_affinity = "ClientIP";
  older.session_affinity_timeout = 300;
  ExportRecord newer = record("west", "2026-01-02T00:00:00Z", false, {{"http", "TCP", 80, ""}});
  auto plan = plan_imports("west", {older, newer}, {"east", "west"}, {"default"});
  ASSERT_EQ(plan.imports.size(), 1U);
  EXPECT_EQ(plan.imports[0].session_affinity, "ClientIP");
  EXPECT_EQ(plan.imports[0].session_affinity_timeout, 300);
  ASSERT_EQ(plan.conflicts.count("default/web"), 1U);
  EXPECT_NE(plan.conflicts["default/web"].find("sessionAffinity: cluster west has None"), std::string::npos)
      << plan.conflicts["default/web"];
  EXPECT_EQ(plan.imports[0].slices.size(), 2U);  // both still contribute their endpoints
}

}  // namespace
}  // namespace cw::op
