// What one node joining a 5,000-node cluster costs the clusterset, mesh against gateway mode
// (docs/gateway.md), measured against lab API servers with the real operators:
//   - bytes written to the broker (the cluster's advertisement, when it changes);
//   - bytes written to each peer's API (its ClusterPeering's status, when it changes);
//   - bytes sent to node agents: every agent of a peer watches ClusterPeerings and receives
//     the whole changed object, so (that object's size) x (agents per peer) x (peers).
// The joining cluster "big" has NODES nodes and peers with one cluster "peer", standing for
// each of its PEERS peers (each peer's operator does the same work, independently); the
// figures for PEERS peers of PEER_NODES agents each are computed from that one. Each mode is
// run in the same process: mesh first (the baseline), then gateway (2 candidates).
//
// In mesh mode an advertisement lists at most 5,000 nodes (the CRD's maxItems): a 5,001st node
// cannot be advertised at all, so the joining cluster has 4,990 nodes by default and its joins
// stay within the limit.
//
// Run: build/bench/topology_bench [--nodes 4990] [--peers 9] [--peer-nodes 5000] [--joins 3]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/yaml/to_json.h"
#include "bench/lab_api.h"
#include "lab/apiserver/api_server.h"
#include "operator/operator.h"

namespace {

using namespace std::chrono_literals;
using cw::kube::json;
namespace kres = cw::kube::resources;
namespace ores = cw::op::resources;

using cw::bench::client_for;
using cw::bench::install_crds;
using cw::bench::key_for;

json node(int i, bool candidate) {
  json n{{"apiVersion", "v1"},
         {"kind", "Node"},
         {"metadata", {{"name", "n" + std::to_string(i)},
                       {"annotations", {{"clusterwire.io/public-key", key_for(i)},
                                        {"clusterwire.io/endpoint", "10.0." + std::to_string(i / 250) + "." +
                                                                        std::to_string(i % 250 + 1) + ":51820"}}}}},
         {"spec", json::object()}};
  if (candidate) {
    n["metadata"]["labels"] = {{"clusterwire.io/gateway", "true"}};
    n["metadata"]["annotations"]["clusterwire.io/public-endpoint"] = "203.0.113." + std::to_string(i + 1) + ":51820";
  }
  return n;
}

bool wait_for(const std::function<bool()>& cond, std::chrono::seconds within) {
  const auto end = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return cond();
}

struct Figures {
  double broker_bytes = 0, peer_bytes = 0;  // per join
  double ad_size = 0, peering_size = 0;     // the objects, as written
};

Figures run(const std::string& topology, int nodes, int joins) {
  auto broker_server = cw::lab::ApiServer::start({}).value();
  auto big_server = cw::lab::ApiServer::start({}).value();
  auto peer_server = cw::lab::ApiServer::start({}).value();
  auto broker = client_for(*broker_server);
  auto big = client_for(*big_server);
  auto peer = client_for(*peer_server);
  for (auto* c : {broker.get(), big.get(), peer.get()}) install_crds(*c);
  (void)broker->create(kres::kNamespaces, "", {{"metadata", {{"name", "clusterwire-broker"}}}});
  (void)broker->create(ores::kClusterSets, "clusterwire-broker",
                       {{"apiVersion", "clusterwire.io/v1alpha1"},
                        {"kind", "ClusterSet"},
                        {"metadata", {{"name", "default"}, {"namespace", "clusterwire-broker"}}},
                        {"spec", {{"ipv6", {{"pools", {"fd00::/32"}}, {"clusterPrefixLength", 48}, {"nodePrefixLength", 64}}}}}});
  for (int i = 0; i < nodes; ++i) (void)big->create(kres::kNodes, "", node(i, i < 2));
  (void)peer->create(kres::kNodes, "", node(0, false));
  for (const auto& [c, remote] : {std::pair{big.get(), "peer"}, std::pair{peer.get(), "big"}}) {
    (void)c->create(ores::kClusterPeerings, "", {{"apiVersion", "clusterwire.io/v1alpha1"}, {"kind", "ClusterPeering"},
                                                {"metadata", {{"name", remote}}}, {"spec", {{"remoteClusterID", remote}}}});
  }
  cw::SystemClock clock;
  cw::log::Logger quiet;
  cw::op::OperatorConfig big_cfg;
  big_cfg.cluster_id = "big";
  big_cfg.topology = topology;
  big_cfg.leader_election = false;
  big_cfg.heartbeat_interval = 3600s;  // no heartbeat during the run: every write is a change
  cw::op::OperatorConfig peer_cfg = big_cfg;
  peer_cfg.cluster_id = "peer";
  peer_cfg.topology = "mesh";
  cw::op::Operator big_op(big_cfg, *big, *broker, clock, quiet, nullptr);
  cw::op::Operator peer_op(peer_cfg, *peer, *broker, clock, quiet, nullptr);
  (void)big_op.start();
  (void)peer_op.start();
  auto version = [](cw::kube::Client& c, const cw::kube::Resource& r, const std::string& ns, const std::string& name) {
    auto o = c.get(r, ns, name);
    return o ? std::make_pair((*o)["metadata"].value("resourceVersion", ""), o->dump().size()) : std::make_pair(std::string(), std::size_t{0});
  };
  const bool settled = wait_for(
      [&] {
        auto p = peer->get(ores::kClusterPeerings, "", "big");
        return big_op.state().nodes_with_blocks == static_cast<std::size_t>(nodes) && p && p->contains("status") &&
               (*p)["status"].value("phase", "") == "Connected";
      },
      300s);
  if (!settled) std::fprintf(stderr, "topology_bench: %s did not settle\n", topology.c_str());
  std::this_thread::sleep_for(1s);
  Figures f;
  for (int j = 0; j < joins; ++j) {
    const auto ad_before = version(*broker, ores::kClusterAdvertisements, "clusterwire-broker", "big");
    const auto peering_before = version(*peer, ores::kClusterPeerings, "", "big");
    (void)big->create(kres::kNodes, "", node(nodes + j, false));
    wait_for([&] { return big_op.state().nodes_with_blocks == static_cast<std::size_t>(nodes + j + 1); }, 60s);
    std::this_thread::sleep_for(1500ms);  // what follows a join has happened (or never will)
    const auto ad_after = version(*broker, ores::kClusterAdvertisements, "clusterwire-broker", "big");
    const auto peering_after = version(*peer, ores::kClusterPeerings, "", "big");
    if (ad_after.first != ad_before.first) f.broker_bytes += static_cast<double>(ad_after.second);
    if (peering_after.first != peering_before.first) f.peer_bytes += static_cast<double>(peering_after.second);
    f.ad_size = static_cast<double>(ad_after.second);
    f.peering_size = static_cast<double>(peering_after.second);
  }
  f.broker_bytes /= joins;
  f.peer_bytes /= joins;
  big_op.stop();
  peer_op.stop();
  return f;
}

std::string human(double bytes) {
  char buf[32];
  if (bytes >= 1e9) std::snprintf(buf, sizeof buf, "%.1f GB", bytes / 1e9);
  else if (bytes >= 1e6) std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  else if (bytes >= 1e3) std::snprintf(buf, sizeof buf, "%.1f kB", bytes / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f B", bytes);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  int nodes = 4990, peers = 9, peer_nodes = 5000, joins = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--nodes")) nodes = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--peers")) peers = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--peer-nodes")) peer_nodes = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--joins")) joins = std::atoi(argv[i + 1]);
  }
  std::printf("topology_bench: one node joins a %d-node cluster peered with %d others of %d nodes (%d joins each)\n",
              nodes, peers, peer_nodes, joins);
  const Figures mesh = run("mesh", nodes, joins);
  const Figures gateway = run("gateway", nodes, joins);
  auto line = [&](const char* what, const Figures& f) {
    std::printf("  %-22s broker %10s   each peer's API %10s (all %d: %10s)   node agents %10s   "
                "[advertisement %s, peering %s]\n",
                what, human(f.broker_bytes).c_str(), human(f.peer_bytes).c_str(), peers,
                human(f.peer_bytes * peers).c_str(), human(f.peer_bytes * peers * peer_nodes).c_str(),
                human(f.ad_size).c_str(), human(f.peering_size).c_str());
  };
  std::printf("bytes written per node join:\n");
  line("mesh (baseline)", mesh);
  line("gateway (2 candidates)", gateway);
  std::printf("  (mesh: an advertisement holds at most 5,000 nodes, the CRD's maxItems; gateway mode lists only "
              "its candidates, so a cluster of any size joins)\n");
  return 0;
}
