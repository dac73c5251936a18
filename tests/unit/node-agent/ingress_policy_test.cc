#include "node-agent/ingress_policy.h"

#include <gtest/gtest.h>

#include "node-agent/ingress_sync.h"
#include "node-agent/ingress_table.h"

namespace cw::agent {
namespace {

net::IpAddress ip(const char* s) { return net::IpAddress::parse(s).value(); }
net::Prefix prefix(const char* s) { return net::Prefix::parse(s).value(); }
kube::LabelSelector selector(const char* s) { return kube::LabelSelector::parse(s).value(); }

// Two peers (c2, c3), two local pods (api in shop, db in shop), one exported Service.
IngressInput base(IngressPosture c2 = IngressPosture::kNone, IngressPosture c3 = IngressPosture::kNone) {
  IngressInput in;
  in.node_pod_cidrs = {prefix("10.1.0.0/24"), prefix("fd00:1::/64")};
  in.clusters = {{"c2", c2, {prefix("10.2.0.0/16"), prefix("fd00:2::/48")}},
                 {"c3", c3, {prefix("10.3.0.0/16")}}};
  in.exported = {{ip("10.96.0.10"), kTcp, 80}, {ip("10.1.0.5"), kTcp, 8080}};
  in.exported_cluster = {{ip("10.1.0.5"), kTcp, 8080}, {ip("10.1.7.7"), kTcp, 8080}};  // also another node's
  in.remote_workloads = {{"c2", "web", ip("10.2.0.7")}, {"c2", "batch", ip("10.2.0.9")}, {"c3", "web", ip("10.3.0.4")}};
  in.pods = {{"shop", "api-1", {{"app", "api"}}, {ip("10.1.0.5"), ip("fd00:1::5")}},
             {"shop", "db-1", {{"app", "db"}}, {ip("10.1.0.6")}},
             {"other", "api-2", {{"app", "api"}}, {ip("10.1.0.8")}}};
  return in;
}

IngressPolicy policy(const char* name, const char* pods, std::vector<IngressRule> from) {
  return {"shop", name, selector(pods), std::move(from)};
}

TEST(IngressPolicy, PosturesAlone) {
  auto r = compile_ingress(base(IngressPosture::kAll, IngressPosture::kExportedServices));
  ASSERT_EQ(r.clusters.size(), 2u);
  EXPECT_EQ(r.clusters["c2"].posture, IngressPosture::kAll);
  EXPECT_EQ(r.clusters["c3"].posture, IngressPosture::kExportedServices);
  EXPECT_EQ(r.exported.size(), 2u) << "an ExportedServices peer needs the exported targets";
  EXPECT_TRUE(compile_ingress(base(IngressPosture::kAll, IngressPosture::kNone)).exported.empty())
      << "no ExportedServices peer: no exported set to keep up";
}

TEST(IngressPolicy, ARuleSelectsPodsInItsNamespaceOnly) {
  auto in = base();
  in.policies = {policy("api", "app=api", {{.clusters = {"c2"}, .ports = {{kTcp, 8080, 8080}}}})};
  auto r = compile_ingress(in);
  EXPECT_EQ(r.policies["shop/api"].selected_pods, 1u) << "api-2 is in another namespace";
  const auto& c2 = r.clusters["c2"];
  EXPECT_EQ(c2.to_ports, (std::set<std::tuple<net::IpAddress, PortRange>>{
                             {ip("10.1.0.5"), {kTcp, 8080, 8080}}, {ip("fd00:1::5"), {kTcp, 8080, 8080}}}));
  EXPECT_TRUE(r.clusters["c3"].to_ports.empty()) << "c3 is not named";
}

TEST(IngressPolicy, NoPortsMeansAnyPortAndSubsumesPortRules) {
  auto in = base();
  in.policies = {policy("any", "app=db", {{.all_clusters = true}}),
                 policy("some", "app=db", {{.clusters = {"c2"}, .ports = {{kTcp, 5432, 5432}}}})};
  auto r = compile_ingress(in);
  for (const char* c : {"c2", "c3"}) {
    EXPECT_EQ(r.clusters[c].to_any, (std::set<net::IpAddress>{ip("10.1.0.6")})) << c;
    EXPECT_TRUE(r.clusters[c].to_ports.empty()) << c << ": covered by any port";
  }
}

TEST(IngressPolicy, PortRangesOfOnePodMergeSoNoIntervalsOverlap) {
  auto in = base();
  in.policies = {policy("a", "app=api", {{.clusters = {"c2"}, .ports = {{kTcp, 8000, 8100}, {kUdp, 53, 53}}}}),
                 policy("b", "app=api", {{.clusters = {"c2"}, .ports = {{kTcp, 8050, 8200}, {kTcp, 8201, 8201}}}})};
  auto r = compile_ingress(in);
  std::set<PortRange> v4;
  for (const auto& [a, p] : r.clusters["c2"].to_ports) {
    if (a == ip("10.1.0.5")) v4.insert(p);
  }
  EXPECT_EQ(v4, (std::set<PortRange>{{kTcp, 8000, 8201}, {kUdp, 53, 53}}));
  EXPECT_EQ(merge_port_ranges({{kTcp, 1, 2}, {kTcp, 4, 5}}), (std::vector<PortRange>{{kTcp, 1, 2}, {kTcp, 4, 5}}));
  EXPECT_EQ(merge_port_ranges({{kTcp, 1, 2}, {kTcp, 3, 5}}), (std::vector<PortRange>{{kTcp, 1, 5}}));
  EXPECT_EQ(merge_port_ranges({{kTcp, 1, 65535}, {kTcp, 65535, 65535}}), (std::vector<PortRange>{{kTcp, 1, 65535}}));
}

TEST(IngressPolicy, NamespacesNarrowSourcesToThatClustersExportedEndpoints) {
  auto in = base();
  in.policies = {policy("web", "app=api", {{.clusters = {"c2", "c3"}, .namespaces = {"web"}, .ports = {{kTcp, 8080, 8080}}}})};
  auto r = compile_ingress(in);
  EXPECT_TRUE(r.clusters["c2"].to_ports.empty());
  EXPECT_EQ(r.clusters["c2"].from_to_ports,
            (std::set<std::tuple<net::IpAddress, net::IpAddress, PortRange>>{
                {ip("10.2.0.7"), ip("10.1.0.5"), {kTcp, 8080, 8080}}}))
      << "c2's web endpoint only (not batch's), to the IPv4 address only (families match)";
  EXPECT_EQ(r.clusters["c3"].from_to_ports.size(), 1u);
}

TEST(IngressPolicy, APeerWithPostureAllNeedsNoPolicyElements) {
  auto in = base(IngressPosture::kAll, IngressPosture::kNone);
  in.policies = {policy("any", "", {{.all_clusters = true}})};
  auto r = compile_ingress(in);
  EXPECT_TRUE(r.clusters["c2"].to_any.empty());
  EXPECT_EQ(r.clusters["c3"].to_any.size(), 3u) << "api-1 (two addresses) and db-1";
}

TEST(IngressPolicy, ANamedClusterThatIsNotPeeredIsReportedNotGuessed) {
  auto in = base();
  in.policies = {policy("typo", "app=api", {{.clusters = {"c9", "c2"}}})};
  auto r = compile_ingress(in);
  EXPECT_EQ(r.policies["shop/typo"].problems,
            (std::vector<std::string>{"cluster c9 is not a Connected peer of this cluster"}));
  EXPECT_EQ(r.clusters["c2"].to_any.size(), 2u) << "the rest of the rule applies";
  EXPECT_EQ(r.clusters.count("c9"), 0u);
}

TEST(IngressPolicy, ParsesTheApisWords) {
  EXPECT_EQ(parse_ingress_posture("ExportedServices").value(), IngressPosture::kExportedServices);
  EXPECT_FALSE(parse_ingress_posture("exportedservices"));
  EXPECT_EQ(parse_protocol("SCTP").value(), kSctp);
  EXPECT_FALSE(parse_protocol("ICMP"));
}

// ---- the table

TEST(IngressTable, RendersAChainPerClusterAndItsSets) {
  auto in = base(IngressPosture::kAll, IngressPosture::kExportedServices);
  in.policies = {policy("api", "app=api", {{.clusters = {"c3"}, .ports = {{kTcp, 9000, 9100}}}})};
  const std::string t = render_ingress_table(compile_ingress(in));
  for (const char* want : {
           "add table inet clusterwire_ingress\ndelete table inet clusterwire_ingress\n",
           "chain c_c2 {\n    counter accept comment \"c2: ingress All\"\n  }",
           "meta l4proto { tcp, udp, sctp } ip daddr . meta l4proto . th dport @exported_v4 counter accept",
           "counter drop comment \"c3: not allowed by ingress ExportedServices or a ClusterSetIngressPolicy\"",
           "ip daddr != @node_pods_v4 accept",
           "add element inet clusterwire_ingress node_pods_v4 { 10.1.0.0/24 }",
           "ct state established,related accept",
           "set c_c3_ports_v4 { type ipv4_addr . inet_proto . inet_service; flags interval; }",
           "add element inet clusterwire_ingress from_cluster_v4 { 10.2.0.0/16 : jump c_c2, 10.3.0.0/16 : jump c_c3 }",
           "add element inet clusterwire_ingress from_cluster_v6 { fd00:2::/48 : jump c_c2 }",
           "add element inet clusterwire_ingress c_c3_ports_v4 { 10.1.0.5 . tcp . 9000-9100 }",
           "add element inet clusterwire_ingress exported_v4 { 10.1.0.5 . tcp . 8080, 10.96.0.10 . tcp . 80 }",
           // A Service address translated here to another node's pod: judged here, by posture.
           "ct status dnat ip daddr != @node_pods_v4 ip saddr vmap @relay_from_cluster_v4\n",
           "add element inet clusterwire_ingress relay_from_cluster_v4 { 10.3.0.0/16 : jump r_c3 }",
           "chain r_c3 {\n    meta l4proto { tcp, udp, sctp } ip daddr . meta l4proto . th dport @exported_cluster_v4 counter accept",
           "counter drop comment \"c3: a Service address translated here to another node's pod; ingress ExportedServices admits only exported endpoints this way\"",
           "add element inet clusterwire_ingress exported_cluster_v4 { 10.1.0.5 . tcp . 8080, 10.1.7.7 . tcp . 8080 }",
       }) {
    EXPECT_NE(t.find(want), std::string::npos) << "missing: " << want << "\nin:\n" << t;
  }
  EXPECT_EQ(t.find("chain c_c2 {\n    meta"), std::string::npos) << "an All peer's chain only accepts";
  EXPECT_EQ(t.find("chain r_c2"), std::string::npos) << "an All peer's translated traffic falls through";
  EXPECT_EQ(t.find("jump r_c2"), std::string::npos);
  // Posture None: what was translated here to another node's pod is dropped here.
  const std::string none = render_ingress_table(compile_ingress(base(IngressPosture::kNone, IngressPosture::kAll)));
  EXPECT_NE(none.find("chain r_c2 {\n    counter drop comment \"c2: a Service address translated here to another node's pod; "
                      "ingress None admits none this way\"\n  }"),
            std::string::npos)
      << none;
  EXPECT_EQ(none.find("add element inet clusterwire_ingress exported_cluster_v4"), std::string::npos)
      << "no ExportedServices peer: the cluster's exported endpoints are not needed";
}

TEST(IngressTable, APolicyOrPodChangeIsElementUpdatesOnly) {
  auto in = base(IngressPosture::kNone, IngressPosture::kNone);
  in.policies = {policy("api", "app=api", {{.clusters = {"c2"}, .ports = {{kTcp, 8080, 8080}}}})};
  const auto before = compile_ingress(in);
  EXPECT_EQ(plan_ingress_table(before, before), "") << "nothing changed, nothing written";

  in.pods.push_back({"shop", "api-3", {{"app", "api"}}, {ip("10.1.0.9")}});
  in.policies[0].from[0].ports = {{kTcp, 8443, 8443}};
  const auto after = compile_ingress(in);
  const std::string plan = plan_ingress_table(after, before);
  EXPECT_EQ(plan,
            "delete element inet clusterwire_ingress c_c2_ports_v4 { 10.1.0.5 . tcp . 8080 }\n"
            "delete element inet clusterwire_ingress c_c2_ports_v6 { fd00:1::5 . tcp . 8080 }\n"
            "add element inet clusterwire_ingress c_c2_ports_v4 { 10.1.0.5 . tcp . 8443, 10.1.0.9 . tcp . 8443 }\n"
            "add element inet clusterwire_ingress c_c2_ports_v6 { fd00:1::5 . tcp . 8443 }\n");
}

TEST(IngressTable, APostureOrPeerChangeRewritesTheTable) {
  const auto before = compile_ingress(base(IngressPosture::kNone, IngressPosture::kNone));
  const auto after = compile_ingress(base(IngressPosture::kAll, IngressPosture::kNone));
  EXPECT_EQ(plan_ingress_table(after, before).rfind("add table inet clusterwire_ingress\ndelete table", 0), 0u);
  EXPECT_EQ(plan_ingress_table(before, std::nullopt).rfind("add table", 0), 0u);
  EXPECT_EQ(delete_ingress_table(), "add table inet clusterwire_ingress\ndelete table inet clusterwire_ingress\n");
}

}  // namespace
}  // namespace cw::agent

// ---- from objects (ingress_sync.h)

namespace cw::agent {
namespace {

using nlohmann::json;

TEST(IngressObjects, APodIsADestinationOnlyWithItsOwnAddress) {
  auto pod = json::parse(R"({"metadata":{"namespace":"shop","name":"api-1","labels":{"app":"api"}},
      "spec":{"nodeName":"n1"},"status":{"phase":"Running","podIPs":[{"ip":"10.1.0.5"},{"ip":"fd00:1::5"}]}})");
  auto p = local_pod(pod);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->ips.size(), 2u);
  EXPECT_EQ(p->labels.at("app"), "api");
  pod["spec"]["hostNetwork"] = true;
  EXPECT_FALSE(local_pod(pod)) << "a host-network pod's address is the node's";
  pod["spec"].erase("hostNetwork");
  pod["status"]["phase"] = "Succeeded";
  EXPECT_FALSE(local_pod(pod));
  EXPECT_FALSE(local_pod(json::parse(R"({"metadata":{"name":"pending"},"status":{"phase":"Pending"}})")));
}

TEST(IngressObjects, APolicyParsesAndWhatCannotBeEnforcedIsSaid) {
  auto obj = json::parse(R"({"metadata":{"namespace":"shop","name":"p"},"spec":{
      "podSelector":{"matchLabels":{"app":"api"}},
      "from":[{"clusters":["c2"],"ports":[{"port":8080},{"protocol":"UDP","port":53,"endPort":60}]},
              {"allClusters":true,"namespaces":["web"]},
              {"clusters":["c3"],"ports":[{"port":90,"endPort":80}]}]}})");
  std::vector<std::string> problems;
  auto p = parse_ingress_policy(obj, problems);
  ASSERT_EQ(p.from.size(), 2u) << "the third item's only port range is refused: it must not become every port";
  EXPECT_EQ(p.from[0].ports, (std::vector<PortRange>{{kTcp, 8080, 8080}, {kUdp, 53, 60}}));
  EXPECT_TRUE(p.from[1].all_clusters);
  EXPECT_EQ(p.from[1].namespaces, (std::vector<std::string>{"web"}));
  EXPECT_EQ(problems, (std::vector<std::string>{"spec.from[2].ports[0]: endPort 80 is below port 90; left out"}));
  EXPECT_TRUE(p.pods.matches({{"app", "api"}}));
  EXPECT_FALSE(p.pods.matches({{"app", "db"}}));

  problems.clear();
  obj["spec"]["podSelector"] = {{"matchLabel", {{"app", "api"}}}};
  auto bad = parse_ingress_policy(obj, problems);
  EXPECT_TRUE(bad.from.empty()) << "a selector that cannot be read allows nothing";
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("spec.podSelector"), std::string::npos);
}

TEST(IngressObjects, ExportedTargetsAreTheExportedServicesLocalReadyEndpoints) {
  const std::vector<json> exports = {json::parse(R"({"metadata":{"namespace":"shop","name":"api"}})")};
  const std::vector<json> slices = {
      json::parse(R"({"metadata":{"namespace":"shop","name":"api-x","labels":{"kubernetes.io/service-name":"api"}},
          "ports":[{"port":8080,"protocol":"TCP"},{"port":9090}],
          "endpoints":[{"addresses":["10.1.0.5"],"nodeName":"n1"},
                       {"addresses":["10.1.0.6"],"nodeName":"n1","conditions":{"ready":false}},
                       {"addresses":["10.1.1.7"],"nodeName":"n2"}]})"),
      json::parse(R"({"metadata":{"namespace":"shop","name":"db-x","labels":{"kubernetes.io/service-name":"db"}},
          "ports":[{"port":5432}],"endpoints":[{"addresses":["10.1.0.8"],"nodeName":"n1"}]})"),
      json::parse(R"({"metadata":{"namespace":"shop","name":"imported","labels":{"kubernetes.io/service-name":"api",
          "multicluster.kubernetes.io/source-cluster":"c2"}},
          "ports":[{"port":8080}],"endpoints":[{"addresses":["10.2.0.7"],"nodeName":"n1"}]})")};
  auto targets = exported_targets(exports, slices, "n1");
  EXPECT_EQ(std::set<ExportedTarget>(targets.begin(), targets.end()),
            (std::set<ExportedTarget>{{ip("10.1.0.5"), kTcp, 8080}, {ip("10.1.0.5"), kTcp, 9090}}))
      << "not the unready endpoint, not n2's, not the unexported db, not the imported slice";
  auto everywhere = exported_targets(exports, slices, "");
  EXPECT_EQ(std::set<ExportedTarget>(everywhere.begin(), everywhere.end()),
            (std::set<ExportedTarget>{{ip("10.1.0.5"), kTcp, 8080}, {ip("10.1.0.5"), kTcp, 9090},
                                      {ip("10.1.1.7"), kTcp, 8080}, {ip("10.1.1.7"), kTcp, 9090}}))
      << "every node's ready endpoints";
  auto workloads = remote_workloads(slices);
  ASSERT_EQ(workloads.size(), 1u);
  EXPECT_EQ(workloads[0].cluster, "c2");
  EXPECT_EQ(workloads[0].ns, "shop");
  EXPECT_EQ(workloads[0].address, ip("10.2.0.7"));
}

TEST(IngressObjects, EachNodeWritesOnlyItsOwnStatusEntryAndTheSumFollows) {
  auto policy = json::parse(R"({"metadata":{"namespace":"shop","name":"p","resourceVersion":"7"},"spec":{},
      "status":{"selectedPods":3,"nodes":[{"node":"n1","selectedPods":1},{"node":"n3","selectedPods":2}]}})");
  // n2 comes in with two pods: its entry is added in node order and the sum grows.
  auto st = policy_status_update(policy, "n2", PolicyStatus{2, {}});
  ASSERT_TRUE(st);
  EXPECT_EQ(*st, json::parse(R"({"selectedPods":5,"nodes":[{"node":"n1","selectedPods":1},
      {"node":"n2","selectedPods":2},{"node":"n3","selectedPods":2}]})"));
  policy["status"] = *st;
  EXPECT_FALSE(policy_status_update(policy, "n2", PolicyStatus{2, {}})) << "nothing changed: nothing to write";
  // A problem is a change of n2's entry only.
  st = policy_status_update(policy, "n2", PolicyStatus{2, {"cluster c9 is not a Connected peer of this cluster"}});
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)["nodes"][1], json::parse(R"({"node":"n2","selectedPods":2,
      "problems":["cluster c9 is not a Connected peer of this cluster"]})"));
  EXPECT_EQ((*st)["nodes"][0], policy["status"]["nodes"][0]);
  EXPECT_EQ((*st)["nodes"][2], policy["status"]["nodes"][2]);
  // n1 no longer runs a selected pod: its entry goes, the others stay.
  st = policy_status_update(policy, "n1", std::nullopt);
  ASSERT_TRUE(st);
  EXPECT_EQ(*st, json::parse(R"({"selectedPods":4,"nodes":[{"node":"n2","selectedPods":2},{"node":"n3","selectedPods":2}]})"));
  // A node with no entry and nothing selected writes nothing, unless the sum is wrong.
  EXPECT_FALSE(policy_status_update(policy, "n9", std::nullopt));
  policy["status"]["selectedPods"] = 1;
  st = policy_status_update(policy, "n9", std::nullopt);
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)["selectedPods"], 5);
  // The last entry gone: no nodes list, a sum of zero.
  auto single = json::parse(R"({"metadata":{"name":"q"},"status":{"selectedPods":1,"nodes":[{"node":"n1","selectedPods":1}]}})");
  EXPECT_EQ(policy_status_update(single, "n1", std::nullopt), json::parse(R"({"selectedPods":0})"));
  // A policy with no status yet.
  EXPECT_EQ(policy_status_update(json::parse(R"({"metadata":{"name":"r"}})"), "n1", PolicyStatus{1, {}}),
            json::parse(R"({"selectedPods":1,"nodes":[{"node":"n1","selectedPods":1}]})"));
}

TEST(IngressObjects, EntriesOfNodesThatAreGoneArePrunedByAWriter) {
  auto policy = json::parse(R"({"metadata":{"name":"p"},
      "status":{"selectedPods":3,"nodes":[{"node":"gone","selectedPods":2},{"node":"n1","selectedPods":1}]}})");
  // n1's own entry is unchanged, but the entry of a node the cluster no longer has goes.
  EXPECT_EQ(policy_status_update(policy, "n1", PolicyStatus{1, {}}, {"n1", "n2"}),
            json::parse(R"({"selectedPods":1,"nodes":[{"node":"n1","selectedPods":1}]})"));
  // Without the cluster's nodes known, nothing is pruned.
  EXPECT_FALSE(policy_status_update(policy, "n1", PolicyStatus{1, {}}));
}

TEST(IngressObjects, ProblemsAreCutToWhatTheSchemaHolds) {
  PolicyStatus many{1, {}};
  for (int i = 0; i < 20; ++i) many.problems.push_back("problem " + std::to_string(i));
  many.problems[0] = std::string(5000, 'x');
  auto st = policy_status_update(json::parse(R"({"metadata":{"name":"p"}})"), "n1", many);
  ASSERT_TRUE(st);
  const auto& problems = (*st)["nodes"][0]["problems"];
  ASSERT_EQ(problems.size(), 16u);
  EXPECT_EQ(problems[0].get<std::string>().size(), 1024u);
  EXPECT_EQ(problems[15], "problem 15");
}

}  // namespace
}  // namespace cw::agent
