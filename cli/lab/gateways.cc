#include "cli/lab/gateways.h"

#include <signal.h>
#include <unistd.h>

#include <sstream>
#include <thread>

#include "cli/lab/cluster_api.h"
#include "cli/lab/process.h"
#include "cli/lab/world.h"

namespace cw::lab {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A pod on the cluster's last node that is not a gateway (a member), else its last node's.
const NodeLayout& member_or_last(const ClusterLayout& c) {
  for (auto it = c.nodes.rbegin(); it != c.nodes.rend(); ++it) {
    if (!it->gateway) return *it;
  }
  return c.nodes.back();
}

// A dead node's network: nothing in, out or through.
constexpr const char* kDeadNodeRules =
    "table inet cwlab_dead {\n"
    "  chain input { type filter hook input priority -300; policy drop; }\n"
    "  chain output { type filter hook output priority -300; policy drop; }\n"
    "  chain forward { type filter hook forward priority -300; policy drop; }\n"
    "}\n";

const NodeLayout* node_named(const ClusterLayout& c, const std::string& name) {
  for (const auto& n : c.nodes) {
    if (n.node_name == name) return &n;
  }
  return nullptr;
}

}  // namespace

Result<ActiveGateway> active_gateway(const LabLayout& lab, const ClusterLayout& cluster) {
  auto lease = kubectl_get_json(lab, cluster, {"lease", "-n", "kube-system", "clusterwire-gateway"});
  if (!lease) return Error(ErrorCode::kNotFound, "no gateway Lease in " + cluster.id + ": " + lease.error().message());
  const auto& spec = (*lease)["spec"];
  ActiveGateway a;
  if (spec.is_object()) {
    if (spec.contains("holderIdentity") && spec["holderIdentity"].is_string()) a.node = spec["holderIdentity"];
    if (spec.contains("leaseTransitions") && spec["leaseTransitions"].is_number_integer()) a.epoch = spec["leaseTransitions"];
  }
  if (a.node.empty()) return Error(ErrorCode::kNotFound, "the gateway Lease of " + cluster.id + " has no holder");
  return a;
}

Result<unsigned long long> wireguard_bytes(const NodeLayout& node) {
  auto r = in_netns(node.netns, {"wg", "show", node.wg_interface, "transfer"}, seconds(5));
  if (!r.ok()) return Error(ErrorCode::kUnavailable, "wg show " + node.wg_interface + ": " + r.summary());
  unsigned long long total = 0;
  std::istringstream in(r.out);
  std::string key;
  unsigned long long rx = 0, tx = 0;
  while (in >> key >> rx >> tx) total += rx + tx;
  return total;
}

std::vector<WorldRow> nat_world_rows(const LabLayout& lab, const LabState& state) {
  std::vector<WorldRow> rows;
  if (!lab.nat) return rows;
  // Isolation: the clusters' node subnets are one and the same, and nothing but the gateways'
  // WireGuard ports is forwarded: a node of one cluster has no way to another's nodes or pods.
  for (const auto& c : lab.clusters) {
    for (const auto& other : lab.clusters) {
      if (other.id == c.id) continue;
      const auto& from = c.nodes.back();
      const auto& to = other.nodes.back();
      // The other cluster's pods' echo port, at its router (the only address of it that is
      // reachable at all): the router forwards it nowhere.
      auto r = tcp_exchange(from.netns, other.router_ip, kPodEchoPort, "x", milliseconds(1500));
      const bool same_address = from.underlay_ip == to.underlay_ip;
      std::string detail = to.node_name + "'s address " + to.underlay_ip + " is " + from.node_name +
                           "'s own here (node subnets overlap); " + other.id + "'s router " + other.router_ip + ":" +
                           std::to_string(kPodEchoPort) + " " +
                           (r ? "ANSWERED: something is forwarded" : "does not answer: only gateways' UDP is forwarded");
      rows.push_back({"isolation", from.node_name, other.id, same_address && !r, detail});
    }
  }
  // The gateways: the active one of each cluster, and the traffic it carried.
  for (const auto& c : lab.clusters) {
    auto active = active_gateway(lab, c);
    if (!active) {
      rows.push_back({"gateway", c.id, "-", false, active.error().message()});
      continue;
    }
    const NodeLayout* gw = node_named(c, active->node);
    if (gw == nullptr || !gw->gateway) {
      rows.push_back({"gateway", c.id, active->node, false, active->node + " holds the Lease but is no gateway candidate"});
      continue;
    }
    const auto& from = member_or_last(c);
    const auto& other = c.index == 1 ? lab.clusters[1] : lab.clusters.front();
    auto to_ip = state.pod_ips.find(other.nodes.front().node_name);
    if (to_ip == state.pod_ips.end()) continue;  // an IPv6-only lab: pings below are IPv4
    auto before = wireguard_bytes(*gw);
    std::vector<std::pair<std::string, unsigned long long>> others_before;
    for (const auto& n : c.nodes) {
      if (n.gateway && &n != gw) {
        if (auto b = wireguard_bytes(n)) others_before.emplace_back(n.node_name, *b);
      }
    }
    // Meanwhile the cluster's private bridge is recorded: the other cluster's pod addresses
    // must never show there in clear (member -> gateway is inside WireGuard), which is what lets
    // an underlay with source/destination checks carry it.
    std::string remote_range;
    if (auto b = state.node_cidrs.find(other.nodes.front().node_name); b != state.node_cidrs.end()) {
      if (auto r = cluster_range_of(family_block(b->second, false))) remote_range = *r;
    }
    CommandResult capture;
    std::thread recorder([&] {
      if (!remote_range.empty()) {
        capture = in_netns(c.router_netns, {"timeout", "3", "tcpdump", "-n", "-l", "-i", kNatBridge, "net", remote_range},
                           seconds(10));
      }
    });
    std::this_thread::sleep_for(milliseconds(800));  // tcpdump is listening
    // 20 pings of 1000 bytes: 40 kB through the active gateway, each way, far above what its
    // probes and beacons send in the same second.
    auto ping = in_netns(from.pod_netns, {"ping", "-c", "20", "-i", "0.01", "-s", "1000", "-W", "1", to_ip->second},
                         seconds(10));
    recorder.join();
    if (!remote_range.empty()) {
      std::size_t in_clear = 0;
      std::istringstream lines(capture.out);
      for (std::string l; std::getline(lines, l);) if (l.find(" IP ") != std::string::npos) ++in_clear;
      const bool recorded = capture.err.find("listening on") != std::string::npos;
      rows.push_back({"private-net", c.id, kNatBridge, recorded && in_clear == 0 && ping.ok(),
                      std::to_string(in_clear) + " packets with " + other.id + "'s pod range " + remote_range +
                          " in clear on " + c.id + "'s node network while " + from.pod_name + " pinged " +
                          other.nodes.front().pod_name + (recorded ? "" : " (tcpdump did not record: " + capture.err + ")") +
                          ": members reach the gateway inside WireGuard (node addresses outside)"});
    }
    auto after = wireguard_bytes(*gw);
    std::ostringstream d;
    const bool pinged = ping.ok();
    unsigned long long carried = 0;
    if (before && after) carried = *after - *before;
    d << "active " << active->node << " (epoch " << active->epoch << ") carried " << carried / 1024 << " KiB of "
      << from.pod_name << " -> " << other.nodes.front().pod_name << " (20 x 1000-byte pings"
      << (pinged ? "" : ", NOT answered") << ")";
    for (const auto& [name, b] : others_before) {
      auto a = wireguard_bytes(*node_named(c, name));
      if (a) d << "; standby " << name << " " << (*a - b) / 1024 << " KiB (probes)";
    }
    if (!from.gateway) d << "; " << from.node_name << " is a member";
    rows.push_back({"gateway", c.id, active->node, pinged && carried >= 40000, d.str()});
  }
  return rows;
}

Result<std::string> kill_active_gateway(const LabLayout& lab, LabState& state, const ClusterLayout& cluster) {
  auto active = active_gateway(lab, cluster);
  if (!active) return active.error();
  const NodeLayout* gw = node_named(cluster, active->node);
  if (gw == nullptr) return Error(ErrorCode::kNotFound, "the active gateway " + active->node + " is no node of the lab");
  // The agent first (it would recreate the device), then the device, then the link: a node
  // that is gone, not one that says goodbye.
  for (const std::string& process : {"node-agent-" + gw->node_name, "wireguard-go-" + gw->node_name}) {
    auto it = state.processes.find(process);
    if (it != state.processes.end() && same_process(it->second.started())) {
      signal_process(it->second.started(), SIGKILL);
      (void)stop_processes({it->second.started()}, seconds(2));
    }
  }
  (void)in_netns(gw->netns, {"ip", "link", "del", gw->wg_interface}, seconds(5));
  // Its network dies with it: everything in, out and through dropped (a table of the lab's own,
  // so that the node keeps its addresses and routes for when it comes back).
  auto down = in_netns(gw->netns, {"nft", "-f", "-"}, seconds(5), kDeadNodeRules);
  if (!down.ok()) return Error(ErrorCode::kUnavailable, "nft in " + gw->netns + ": " + down.summary() + " " + down.err);
  state.killed_gateways.push_back(gw->node_name);
  return gw->node_name;
}

Result<void> revive_gateways(const LabLayout& lab, LabState& state) {
  for (const auto& name : state.killed_gateways) {
    for (const auto& c : lab.clusters) {
      const NodeLayout* n = node_named(c, name);
      if (n == nullptr) continue;
      auto up = in_netns(n->netns, {"nft", "delete", "table", "inet", "cwlab_dead"}, seconds(5));
      if (!up.ok() && up.err.find("No such file") == std::string::npos) {
        return Error(ErrorCode::kUnavailable, "nft delete table inet cwlab_dead in " + n->netns + ": " + up.summary());
      }
      // wireguard-go first (the agent expects the device), then the agent.
      for (const std::string& process : {"wireguard-go-" + name, "node-agent-" + name}) {
        auto it = state.processes.find(process);
        if (it == state.processes.end()) continue;
        auto started = spawn_background(it->second.argv, lab.log_path(process));
        if (!started) return started.error();
        it->second.pid = static_cast<int>(started->pid);
        it->second.start_ticks = started->start_ticks;
        if (auto w = write_pid_file(lab, process, *started); !w) return w;
        if (process.rfind("wireguard-go-", 0) == 0) {
          const std::string sock = "/var/run/wireguard/" + n->wg_interface + ".sock";
          (void)wait_until([&] { return access(sock.c_str(), F_OK) == 0; }, seconds(10));
        }
      }
    }
  }
  state.killed_gateways.clear();
  return ok_result();
}

}  // namespace cw::lab
