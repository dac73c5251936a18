// The operator at size: 200 clusters' advertisements on the broker, 199 ClusterPeerings and
// 5,000 Nodes in our cluster (IPv6: a /48 per cluster, a /64 per node). Prints:
//   - time from start to every Node's block written and the advertisement published (with
//     every Node), and to every peering's status;
//   - per-event latency: a remote advertisement changes → its peering's status shows it;
// each beside the same figures for a small clusterset (5 clusters, 10 Nodes) in the same run.
//
// Run: ./scripts/bench.sh operator   (or build-bench/bench/operator_bench [--clusters N --nodes M])
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/yaml/to_json.h"
#include "bench/lab_api.h"
#include "lab/apiserver/api_server.h"
#include "operator/operator.h"
#include "operator/peering_status.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using cw::kube::json;
namespace kres = cw::kube::resources;
namespace ores = cw::op::resources;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

using cw::bench::client_for;
using cw::bench::install_crds;
using cw::bench::key_for;

json advertisement(int c, const std::string& heartbeat, const std::string& extra_node = "") {
  char block[64];
  std::snprintf(block, sizeof block, "fd00:%x::/48", c + 1);
  json nodes = json::array();
  for (int n = 0; n < 3; ++n) {
    char node_block[64];
    std::snprintf(node_block, sizeof node_block, "fd00:%x:0:%x::/64", c + 1, n);
    nodes.push_back({{"name", "r" + std::to_string(c) + "-" + std::to_string(n)},
                     {"endpoint", "192.0.2." + std::to_string(n + 1) + ":51820"},
                     {"publicKey", key_for(c * 10 + n)}, {"podCIDRs", {node_block}}});
  }
  if (!extra_node.empty()) nodes.push_back({{"name", extra_node}, {"podCIDRs", json::array()}});
  return {{"apiVersion", "clusterwire.io/v1alpha1"}, {"kind", "ClusterAdvertisement"},
          {"metadata", {{"name", "c" + std::to_string(c)}, {"namespace", "clusterwire-broker"}}},
          {"spec", {{"clusterID", "c" + std::to_string(c)}, {"podCIDRs", {block}}, {"serviceCIDRs", json::array()},
                    {"nodes", nodes}, {"gateways", json::array()}, {"peers", {"me"}}, {"heartbeat", heartbeat}}}};
}

struct Figures {
  double converge_s = 0;        // start → nodes annotated + advertisement published
  double peerings_s = 0;        // start → every peering has a status
  std::vector<double> event_ms; // advertisement change → status shows it
};

Figures run(int clusters, int nodes) {
  auto broker = cw::lab::ApiServer::start({.history_limit = 100000}).value();
  auto local_server = cw::lab::ApiServer::start({.history_limit = 100000}).value();
  auto bc = client_for(*broker);
  auto lc = client_for(*local_server);
  install_crds(*bc);
  install_crds(*lc);
  (void)bc->create(kres::kNamespaces, "", {{"metadata", {{"name", "clusterwire-broker"}}}});
  (void)bc->create(ores::kClusterSets, "clusterwire-broker",
                   {{"metadata", {{"name", "default"}}},
                    {"spec", {{"ipv6", {{"pools", {"fd00::/32"}}, {"clusterPrefixLength", 48}, {"nodePrefixLength", 64}}}}}});
  const std::string now = cw::op::rfc3339(std::chrono::system_clock::now());
  for (int c = 0; c < clusters - 1; ++c) {
    // The remote blocks must be claimed too, or our operator could pick one of them.
    char block[64], claim_name[64];
    std::snprintf(block, sizeof block, "fd00:%x::/48", c + 1);
    std::snprintf(claim_name, sizeof claim_name, "fd00-%x-0-0-0-0-0-0-48", c + 1);
    (void)bc->create(ores::kCidrClaims, "clusterwire-broker",
                     {{"metadata", {{"name", claim_name}}}, {"spec", {{"cidr", block}, {"clusterID", "c" + std::to_string(c)}, {"purpose", "pods"}}}});
    (void)bc->create(ores::kClusterAdvertisements, "clusterwire-broker", advertisement(c, now));
    (void)lc->create(ores::kClusterPeerings, "", {{"metadata", {{"name", "c" + std::to_string(c)}}},
                                                   {"spec", {{"remoteClusterID", "c" + std::to_string(c)}}}});
  }
  for (int n = 0; n < nodes; ++n) {
    (void)lc->create(kres::kNodes, "", {{"metadata", {{"name", "node-" + std::to_string(n)},
                                                      {"annotations", {{"clusterwire.io/public-key", key_for(n)},
                                                                       {"clusterwire.io/endpoint", "198.51.100.1:51820"}}}}}});
  }

  cw::SystemClock clock;
  cw::op::OperatorConfig cfg;
  cfg.cluster_id = "me";
  cfg.leader_election = false;
  cfg.heartbeat_interval = 60s;
  cfg.resync_period = 600s;
  cw::op::Operator op(cfg, *lc, *bc, clock, cw::log::Logger(), nullptr);
  Figures f;
  const auto t0 = Clock::now();
  if (!op.start().ok()) return f;
  auto published = [&] {
    auto ad = bc->get(ores::kClusterAdvertisements, "clusterwire-broker", "me");
    return ad && (*ad)["spec"]["nodes"].size() == static_cast<std::size_t>(nodes) &&
           std::all_of((*ad)["spec"]["nodes"].begin(), (*ad)["spec"]["nodes"].end(),
                       [](const json& n) { return !n["podCIDRs"].empty(); });
  };
  while (!(op.state().nodes_with_blocks == static_cast<std::size_t>(nodes) && published()) && since(t0) < 300) {
    std::this_thread::sleep_for(20ms);
  }
  f.converge_s = since(t0);
  auto all_statused = [&] {
    auto list = lc->list(ores::kClusterPeerings, "").value();
    return std::all_of(list["items"].begin(), list["items"].end(),
                       [](const json& p) { return p.contains("status") && p["status"].value("phase", "") == "Connected"; });
  };
  while (!all_statused() && since(t0) < 300) std::this_thread::sleep_for(20ms);
  f.peerings_s = since(t0);

  // Per event: one remote advertisement gains a node; time until its peering shows it.
  for (int i = 0; i < 30; ++i) {
    const int c = i % (clusters - 1);
    const std::string extra = "new-" + std::to_string(i);
    auto current = bc->get(ores::kClusterAdvertisements, "clusterwire-broker", "c" + std::to_string(c)).value();
    json changed = advertisement(c, now, extra);
    changed["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"];
    const auto e0 = Clock::now();
    (void)bc->update(ores::kClusterAdvertisements, "clusterwire-broker", changed);
    while (since(e0) < 30) {
      auto p = lc->get(ores::kClusterPeerings, "", "c" + std::to_string(c));
      if (p && p->contains("status") && (*p)["status"]["remote"]["nodes"].dump().find(extra) != std::string::npos) break;
      std::this_thread::sleep_for(1ms);
    }
    f.event_ms.push_back(since(e0) * 1000);
  }
  op.stop();
  return f;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  int clusters = 200, nodes = 5000;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--clusters") clusters = std::stoi(argv[i + 1]);
    if (std::string(argv[i]) == "--nodes") nodes = std::stoi(argv[i + 1]);
  }
  std::printf("Operator at size: %d clusters' advertisements, %d Nodes (lab API servers, TLS, in process)\n",
              clusters, nodes);
  const Figures small = run(5, 10);
  const Figures big = run(clusters, nodes);
  std::printf("\n  %-52s %12s %12s\n", "", "at size", "baseline");
  std::printf("  %-52s %11.2fs %11.2fs   (baseline: 5 clusters, 10 Nodes)\n",
              "start → every Node's block written, advertisement out", big.converge_s, small.converge_s);
  std::printf("  %-52s %11.2fs %11.2fs\n", "start → every peering Connected", big.peerings_s, small.peerings_s);
  std::printf("  %-52s %10.1fms %10.1fms\n", "advertisement change → peering status, p50",
              percentile(big.event_ms, 0.5), percentile(small.event_ms, 0.5));
  std::printf("  %-52s %10.1fms %10.1fms   (%zu events each)\n", "advertisement change → peering status, p99",
              percentile(big.event_ms, 0.99), percentile(small.event_ms, 0.99), big.event_ms.size());
  return big.converge_s < 300 && big.peerings_s < 300 ? 0 : 1;
}
