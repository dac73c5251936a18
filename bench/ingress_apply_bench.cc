// ClusterSet ingress policy on a node with 10,000 pods and 100 policies (docs/policy.md): the
// node agent's own enforcer (node-agent/ingress_sync.h: informers, compiler, nftables table
// through libnftables) against a lab API server in this process, in a network namespace this
// benchmark makes for itself (unshare), so nothing outside it is touched.
//
// Each figure is the median of its rounds, timed from the API write that makes the change to
// the enforcer's pass returning with the change in the kernel's table (the write, the watch
// event, the compile, the plan, the nftables transaction and this node's status entry):
//   - a new policy selecting 100 pods;
//   - a pod's labels changed so that a policy selects it;
//   - a pass with nothing to change (most agent passes: the enforcer compiles only when one of
//     its informers saw an event or the peers changed).
// Baselines measured in the same run, on the same rules: compiling alone, and rewriting the
// whole table for the same change (what an agent without element updates would do).
//
// Usage (root): ingress_apply_bench [--pods N] [--policies N] [--rounds N]
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/lab_api.h"
#include "common/base/clock.h"
#include "common/kube/mcs_api.h"
#include "common/netfilter/nftables.h"
#include "node-agent/ingress_sync.h"
#include "node-agent/ingress_table.h"

namespace {

using Clock = std::chrono::steady_clock;
using cw::kube::json;
namespace res = cw::kube::resources;
using namespace std::chrono_literals;

double median_ms(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

template <typename T>
T must(cw::Result<T> r, const char* what) {
  if (!r) {
    std::fprintf(stderr, "ingress_apply_bench: %s: %s\n", what, r.error().message().c_str());
    std::exit(1);
  }
  if constexpr (!std::is_void_v<T>) return std::move(*r);
}

std::string pod_ip(int i) { return "10.64." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 2); }
std::string ns_of(int i) { return "team-" + std::to_string(i % 10); }

json make_pod(int i, const std::string& app) {
  return {{"apiVersion", "v1"}, {"kind", "Pod"},
          {"metadata", {{"name", "pod-" + std::to_string(i)}, {"namespace", ns_of(i)},
                        {"labels", {{"app", app}, {"tier", i % 2 ? "back" : "front"}}}}},
          {"spec", {{"nodeName", "n1"}, {"containers", {{{"name", "c"}, {"image", "busybox"}}}}}},
          {"status", {{"phase", "Running"}, {"podIP", pod_ip(i)}, {"podIPs", {{{"ip", pod_ip(i)}}}}}}};
}

// Policy j selects app=app-<j> in namespace team-<j % 10>: pods i with i % 100 == j, 100 of
// the 10,000 pods; from c2 on a port of its own, from c3 on any port for every third one.
json make_policy(int j, const std::string& name) {
  json from = json::array({{{"clusters", {"c2"}}, {"ports", {{{"protocol", "TCP"}, {"port", 8000 + j}}}}}});
  if (j % 3 == 0) from.push_back({{"clusters", {"c3"}}});
  return {{"apiVersion", "clusterwire.io/v1alpha1"}, {"kind", "ClusterSetIngressPolicy"},
          {"metadata", {{"name", name}, {"namespace", ns_of(j)}}},
          {"spec", {{"podSelector", {{"matchLabels", {{"app", "app-" + std::to_string(j)}}}}}, {"from", from}}}};
}

}  // namespace

int main(int argc, char** argv) {
  int pods = 10000, policies = 100, rounds = 10;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--pods") == 0) pods = std::max(100, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--policies") == 0) policies = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--rounds") == 0) rounds = std::max(3, std::atoi(argv[i + 1]));
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "ingress_apply_bench: needs root (it makes a network namespace of its own)\n");
    return 1;
  }
  if (unshare(CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "ingress_apply_bench: unshare(CLONE_NEWNET): %s\n", std::strerror(errno));
    return 1;
  }
  {  // the new namespace's loopback starts down; the API server listens there
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_UP;
    if (fd < 0 || ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) {
      std::fprintf(stderr, "ingress_apply_bench: bringing lo up: %s\n", std::strerror(errno));
      return 1;
    }
    close(fd);
  }
  auto server = must(cw::lab::ApiServer::start({}), "starting the lab API server");
  auto api = cw::bench::client_for(*server);
  cw::bench::install_crds(*api);
  for (int n = 0; n < 10; ++n) {
    must(api->create(res::kNamespaces, "", {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns_of(n)}}}}),
         "namespace");
  }
  const auto populate_start = Clock::now();
  for (int i = 0; i < pods; ++i) must(api->create(res::kPods, ns_of(i), make_pod(i, "app-" + std::to_string(i % 100))), "pod");
  for (int j = 0; j < policies; ++j) {
    must(api->create(cw::agent::kClusterSetIngressPolicies, ns_of(j), make_policy(j, "p-" + std::to_string(j))), "policy");
  }
  std::printf("populated: %d pods on node n1, %d policies (%.1f s through the API)\n", pods, policies,
              ms_since(populate_start) / 1000);

  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t kicks = 0;
  auto nft = cw::netfilter::make_nftables();
  cw::SystemClock clock;
  auto enforcer = cw::agent::IngressEnforcer::start(*api, *nft, clock, cw::log::Logger(), "n1", 10min, [&] {
    std::lock_guard lock(mu);
    ++kicks;
    cv.notify_all();
  });
  const auto sync_start = Clock::now();
  while (!enforcer->synced()) std::this_thread::sleep_for(5ms);
  const double sync_ms = ms_since(sync_start);
  const std::vector<cw::net::Prefix> blocks = {cw::net::Prefix::parse("10.64.0.0/16").value()};
  const std::vector<cw::agent::PeeredCluster> clusters = {
      {"c2", cw::agent::IngressPosture::kNone, {cw::net::Prefix::parse("10.65.0.0/16").value()}},
      {"c3", cw::agent::IngressPosture::kNone, {cw::net::Prefix::parse("10.66.0.0/16").value()}}};
  const auto first_start = Clock::now();
  auto rules = must(enforcer->apply(blocks, clusters, {"n1"}), "first apply");
  const double first_ms = ms_since(first_start);
  std::size_t elements = 0;
  for (const auto& [id, ci] : rules.clusters) elements += ci.to_any.size() + ci.to_ports.size();
  std::printf("informers synced in %.0f ms; first apply (compile, whole table, %d status entries): %.0f ms, %zu elements\n",
              sync_ms, policies, first_ms, elements);

  // Runs passes as the agent does (one per kick) until `done` holds for the rules in force.
  auto until = [&](const std::function<bool(const cw::agent::IngressRules&)>& done) {
    for (int pass = 0; pass < 1000; ++pass) {
      {
        std::unique_lock lock(mu);
        cv.wait_for(lock, 1s, [&] { return kicks > 0; });
        kicks = 0;
      }
      auto r = must(enforcer->apply(blocks, clusters, {"n1"}), "apply");
      if (done(r)) return r;
    }
    std::fprintf(stderr, "ingress_apply_bench: the change never came into force\n");
    std::exit(1);
  };
  auto has_port = [](const cw::agent::IngressRules& r, const std::string& ip, int port) {
    const auto& ports = r.clusters.at("c2").to_ports;
    return ports.count({cw::net::IpAddress::parse(ip).value(), cw::agent::PortRange{cw::agent::kTcp, static_cast<std::uint16_t>(port),
                                                                                    static_cast<std::uint16_t>(port)}}) > 0;
  };

  std::vector<double> new_policy, relabel, idle, compile_only, rewrite;
  for (int round = 0; round < rounds; ++round) {
    // A new policy: app-<k> (100 pods), from c2 on a port no other policy names.
    const int k = round % 100, port = 20000 + round;
    json p = make_policy(k, "new-" + std::to_string(round));
    p["spec"]["from"] = json::array({{{"clusters", {"c2"}}, {"ports", {{{"protocol", "TCP"}, {"port", port}}}}}});
    auto t0 = Clock::now();
    must(api->create(cw::agent::kClusterSetIngressPolicies, ns_of(k), p), "new policy");
    rules = until([&](const auto& r) { return has_port(r, pod_ip(k), port); });
    new_policy.push_back(ms_since(t0));

    // A pod relabelled into policy p-<j>'s selection (port 8000 + j).
    const int i = 5000 + round, j = (i % 100 + 10) % 100;  // same namespace: j % 10 == i % 10
    t0 = Clock::now();
    must(api->merge_patch(res::kPods, ns_of(i), "pod-" + std::to_string(i), {{"metadata", {{"labels", {{"app", "app-" + std::to_string(j)}}}}}}),
         "relabel");
    rules = until([&](const auto& r) { return has_port(r, pod_ip(i), 8000 + j); });
    relabel.push_back(ms_since(t0));

    // A pass with nothing to change (once the events of this round's writes have come in),
    // and the baseline on the same rules.
    for (int settle = 0; settle < 20; ++settle) {
      std::this_thread::sleep_for(20ms);
      std::lock_guard lock(mu);
      if (kicks == 0) break;
      kicks = 0;
    }
    must(enforcer->apply(blocks, clusters, {"n1"}), "settling pass");
    t0 = Clock::now();
    must(enforcer->apply(blocks, clusters, {"n1"}), "idle pass");
    idle.push_back(ms_since(t0));
    t0 = Clock::now();
    must(nft->run(cw::agent::render_ingress_table(rules)), "whole-table rewrite");
    rewrite.push_back(ms_since(t0));
  }
  // Compiling alone: the same input the enforcer builds from its caches.
  {
    cw::agent::IngressInput in;
    in.node_pod_cidrs = blocks;
    in.clusters = clusters;
    const json pod_list = must(api->list(res::kPods, ""), "list pods");
    const json policy_list = must(api->list(cw::agent::kClusterSetIngressPolicies, ""), "list policies");
    for (const auto& o : pod_list["items"]) {
      if (auto pod = cw::agent::local_pod(o)) in.pods.push_back(std::move(*pod));
    }
    for (const auto& o : policy_list["items"]) {
      std::vector<std::string> problems;
      in.policies.push_back(cw::agent::parse_ingress_policy(o, problems));
    }
    for (int r = 0; r < rounds; ++r) {
      const auto t0 = Clock::now();
      auto compiled = cw::agent::compile_ingress(in);
      compile_only.push_back(ms_since(t0));
      if (compiled.clusters.empty()) return 1;
    }
  }
  enforcer->stop();
  std::printf("\nchange -> rules in force, %d pods and %d+ policies on the node, median of %d rounds:\n", pods, policies, rounds);
  std::printf("  a new policy (100 pods)                %7.1f ms   (API write, watch, compile, element update, status)\n",
              median_ms(new_policy));
  std::printf("  a pod relabelled into a policy         %7.1f ms\n", median_ms(relabel));
  std::printf("  a pass with nothing to change          %7.1f ms   (nothing observed changed: nothing compiled)\n", median_ms(idle));
  std::printf("baselines, same rules, same run:\n");
  std::printf("  compiling alone                        %7.1f ms\n", median_ms(compile_only));
  std::printf("  rewriting the whole table              %7.1f ms   (what each change would cost without element updates)\n",
              median_ms(rewrite));
  return 0;
}
