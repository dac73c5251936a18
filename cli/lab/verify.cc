// `cwctl lab verify`: checks the running lab end to end and prints a table, a row as soon as
// its check is done. Rows PASS or FAIL; SKIP (nothing to check, with the reason) and INFO (a
// figure, not a check) count as neither. Exit status 0 only when no row fails.
//
// Checks run concurrently (a pool of threads, each running commands in the lab's namespaces),
// so each one measures only its own traffic: whether a packet went through WireGuard is read
// from a counter rule of the check's own (TunnelCounters), matching that check's source and
// destination, never from the device's byte counters, which handshakes and other checks move.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "cli/lab/cluster_api.h"
#include "cli/lab/gateways.h"
#include "cli/lab/lab.h"
#include "cli/lab/layout.h"
#include "cli/lab/process.h"
#include "cli/lab/state.h"
#include "cli/lab/text.h"
#include "cli/lab/world.h"
#include "common/net/prefix.h"

namespace cw::lab {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

enum class Outcome { kPass, kFail, kSkip, kInfo };

const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::kPass: return "PASS";
    case Outcome::kFail: return "FAIL";
    case Outcome::kSkip: return "SKIP";
    case Outcome::kInfo: return "INFO";
  }
  return "?";
}

struct Row {
  std::string check, from, to;
  Outcome outcome = Outcome::kFail;
  std::string detail;
};

// Prints the table a row at a time; column widths come from the layout so that they are known
// before the first row.
class Table {
 public:
  Table(const LabLayout& lab, std::ostream& out) : out_(out) {
    for (const auto& c : lab.clusters) {
      for (const auto& n : c.nodes) w_[1] = std::max(w_[1], n.pod_name.size());
    }
    w_[2] = std::max(w_[1] + 5, std::string("echo.demo.svc.clusterset.local").size());
  }
  void header() { line("CHECK", "FROM", "TO", "RESULT", "DETAIL"); }
  void row(const Row& r) { line(r.check, r.from, r.to, outcome_name(r.outcome), r.detail); }

 private:
  void line(const std::string& a, const std::string& b, const std::string& c, const std::string& d,
            const std::string& e) {
    out_ << std::left << std::setw(static_cast<int>(w_[0] + 2)) << a << std::setw(static_cast<int>(w_[1] + 2)) << b
         << std::setw(static_cast<int>(w_[2] + 2)) << c << std::setw(8) << d << e << std::endl;
  }
  std::ostream& out_;
  std::size_t w_[3] = {13, 8, 8};
};

struct Pair {
  const NodeLayout* from;
  const NodeLayout* to;
  bool v6 = false;  // which of the pods' addresses the check uses
};

// " /v6" rows carry the family in their TO column; IPv4 rows are as they always were.
std::string family_tag(bool v6) { return v6 ? "/v6" : ""; }

// An address as a peer reported it ("10.0.0.1", or socat's "[fd10:0240:...]" and
// "[...:ffff:0af1:0002]" for an IPv4 client of an IPv6 socket), in canonical form.
std::string canonical_address(std::string a) {
  if (a.size() > 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
  auto ip = net::IpAddress::parse(a);
  if (!ip) return a;
  const net::Uint128 mapped = net::Uint128{0xffff} << 32;
  if (!ip->is_v4() && (ip->bits() >> 32) == 0xffff && (ip->bits() & ~((net::Uint128{1} << 32) - 1)) == mapped) {
    return net::IpAddress::from_bits(net::Family::kIPv4, ip->bits() & 0xffffffffu).to_string();
  }
  return ip->to_string();
}

std::string token() {
  std::random_device rd;
  std::ostringstream s;
  s << "cwlab-marker-" << std::hex << rd() << rd();
  return s.str();
}

// "rtt min/avg/max/mdev = 0.051/0.060/0.071/0.008 ms" -> "rtt 0.060 ms"
std::string ping_avg(const std::string& out) {
  static const std::regex re("= [0-9.]+/([0-9.]+)/");
  std::smatch m;
  return std::regex_search(out, m, re) ? "rtt " + m[1].str() + " ms" : "";
}

CommandResult ping(const NodeLayout& from, const std::string& ip, int count = 3) {
  return in_netns(from.pod_netns,
                  {"ping", "-n", "-q", "-c", std::to_string(count), "-i", "0.05", "-W", "1", ip}, seconds(10));
}

// One TCP exchange from a pod: sends `input`, returns what came back.
Result<std::string> tcp(const NodeLayout& from, const std::string& ip, int port, const std::string& input,
                        seconds timeout = seconds(10)) {
  return tcp_exchange(from.pod_netns, ip, port, input, timeout);
}

// Sends a line to the pod's echo server and expects it back.
std::pair<bool, std::string> tcp_echo(const NodeLayout& from, const std::string& ip, const std::string& line) {
  auto r = tcp(from, ip, kPodEchoPort, line + "\n");
  if (r && r->find(line) != std::string::npos) return {true, "echoed " + std::to_string(line.size() + 1) + " bytes"};
  return {false, r ? "connected, but no echo" : r.error().message()};
}

// Packet counters of single checks, in a table of the lab's own in each node namespace
// (`inet cwlab_verify`, chain `count` at postrouting): for every ordered pair of pods, one rule
// counting the ICMP echo requests and one the echo replies that the node sends from its pod to
// the other pod through its WireGuard device, made at zero once before the checks run (after
// the capture, which pings too). Exactly one check pings each pair and no other check sends
// ICMP, so a check's counters hold only its own packets. Nothing is added or removed while
// checks run; they are read once, per node, after all checks ran. Removed when verify ends.
class TunnelCounters {
 public:
  TunnelCounters(const LabLayout& lab, const LabState& s) : lab_(lab), s_(s) {}
  ~TunnelCounters() {
    for (const auto& c : lab_.clusters) {
      for (const auto& n : c.nodes) (void)in_netns(n.netns, {"nft", "delete", "table", "inet", "cwlab_verify"}, seconds(5));
    }
  }
  TunnelCounters(const TunnelCounters&) = delete;
  TunnelCounters& operator=(const TunnelCounters&) = delete;

  // The counters of `node`'s pod towards every other pod of the lab, in every family.
  Result<void> prepare(const NodeLayout& node) {
    std::ostringstream script;
    script << "add table inet cwlab_verify\ndelete table inet cwlab_verify\ntable inet cwlab_verify {\n"
           << "  chain count {\n    type filter hook postrouting priority 0; policy accept;\n";
    for (const bool v6 : {false, true}) {
      const std::string src = ip(node, v6), ipf = v6 ? "ip6" : "ip", icmp = v6 ? "icmpv6" : "icmp";
      for (const auto& c : lab_.clusters) {
        for (const auto& other : c.nodes) {
          if (&other == &node || src.empty() || ip(other, v6).empty()) continue;
          for (const char* type : {"echo-request", "echo-reply"}) {
            script << "    oifname \"" << node.wg_interface << "\" " << ipf << " saddr " << src << " " << ipf << " daddr "
                   << ip(other, v6) << " " << icmp << " type " << type << " counter comment \"" << src << ">" << ip(other, v6)
                   << " " << type << "\"\n";
          }
        }
      }
    }
    script << "  }\n}\n";
    auto r = in_netns(node.netns, {"nft", "-f", "-"}, seconds(10), script.str());
    if (!r.ok()) return Error(ErrorCode::kUnavailable, "nft in " + node.netns + ": " + r.summary() + " " + r.err);
    return ok_result();
  }

  // Every counter of `node`, by comment ("<src>><dst> echo-request"): one read per node once
  // the checks have sent their pings, rather than one per check.
  Result<std::map<std::string, long long>> snapshot(const NodeLayout& node) {
    auto r = in_netns(node.netns, {"nft", "-j", "list", "chain", "inet", "cwlab_verify", "count"}, seconds(10));
    auto listing = nlohmann::json::parse(r.out, nullptr, false);
    if (!r.ok() || listing.is_discarded()) {
      return Error(ErrorCode::kUnavailable, "cannot read the counters in " + node.netns + ": " + r.summary());
    }
    std::map<std::string, long long> out;
    for (const auto& item : listing.value("nftables", nlohmann::json::array())) {
      if (!item.contains("rule")) continue;
      for (const auto& e : item["rule"].value("expr", nlohmann::json::array())) {
        if (e.contains("counter")) out[item["rule"].value("comment", "")] = e["counter"].value("packets", 0LL);
      }
    }
    return out;
  }

 private:
  std::string ip(const NodeLayout& n, bool v6) const {
    const auto& m = v6 ? s_.pod_ips6 : s_.pod_ips;
    auto it = m.find(n.node_name);
    return it == m.end() ? "" : it->second;
  }
  const LabLayout& lab_;
  const LabState& s_;
};

// Runs the tasks on `workers` threads; returns when all are done.
void run_concurrently(const std::vector<std::function<void()>>& tasks, std::size_t workers) {
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < std::min(workers, tasks.size()); ++i) {
    threads.emplace_back([&] {
      for (std::size_t k; (k = next++) < tasks.size();) tasks[k]();
    });
  }
  for (auto& t : threads) t.join();
}

constexpr std::size_t kWorkers = 16;
constexpr std::size_t kTransferBytes = 4 << 20;

class Verifier {
 public:
  Verifier(const LabLayout& lab, const LabState& s, Table& table)
      : lab_(lab), s_(s), table_(table), counters_(lab, s), cni_(parse_cni(s.cni)) {
    if (!s.pod_ips.empty()) families_.push_back(false);
    if (!s.pod_ips6.empty()) families_.push_back(true);
    for (const auto& c : lab.clusters) {
      // In the nat world only the routers show on the underlay (node addresses repeat in every
      // cluster and never leave it).
      if (lab.nat) node_cluster_[c.router_ip] = c.id;
      for (const auto& n : c.nodes) {
        if (!lab.nat) {
          node_cluster_[n.underlay_ip] = c.id;
          node_cluster_[n.underlay_ip6] = c.id;
        }
        if (auto it = s.node_cidrs.find(n.node_name); it != s.node_cidrs.end()) {
          for (const bool v6 : {false, true}) {
            if (auto p = net::Prefix::parse(family_block(it->second, v6))) pod_blocks_.push_back({*p, c.id});
          }
        }
        for (const bool v6 : families_) {
          for (const auto& oc : lab.clusters) {
            for (const auto& on : oc.nodes) {
              if (&n != &on) (c.id == oc.id ? in_cluster_ : cross_).push_back({&n, &on, v6});
            }
          }
        }
      }
    }
    for (const bool v6 : families_) {
      for (const auto& c : lab.clusters) {
        for (const auto& oc : lab.clusters) {
          if (c.id != oc.id) cluster_pairs_.push_back({&c.nodes.front(), &oc.nodes.back(), v6});
        }
      }
    }
  }

  std::vector<Row> run_all() {
    table_.header();
    peerings();
    // The capture first and alone: it records the underlay while its own traffic runs. Then the
    // counters, at zero, so that each ping check reads only its own packets.
    capture();
    std::vector<std::function<void()>> prepare;
    for (const auto& c : lab_.clusters) {
      for (const auto& n : c.nodes) {
        prepare.push_back([this, &n] {
          if (auto r = counters_.prepare(n); !r) add("counters", n.node_name, "-", false, r.error().message());
        });
      }
    }
    run_concurrently(prepare, kWorkers);
    std::vector<std::function<void()>> checks;
    for (const auto& p : cross_) checks.push_back([this, p] { cross_cluster(p); });
    for (const auto& p : in_cluster_) checks.push_back([this, p] { in_cluster(p); });
    if (in_cluster_.empty()) {
      add("in-cluster", "-", "-", Outcome::kSkip, "one node per cluster: no in-cluster pair to check");
    }
    for (const auto& c : lab_.clusters) {
      for (const auto& n : c.nodes) checks.push_back([this, &c, &n] { cni_routes(c, n); });
    }
    for (const auto& p : cluster_pairs_) {
      if (!p.v6) checks.push_back([this, p] { cluster_ip(p); });
    }
    if (std::find(families_.begin(), families_.end(), true) != families_.end()) {
      for (const char* check : {"clusterip", "clusterset-ip"}) {
        add(check, "-", "-" + family_tag(true), Outcome::kSkip,
            "the lab API server allocates IPv4 ClusterIPs only, and the kube-proxy stand-in serves IPv4");
      }
    }
    if (!s_.pod_ips.empty()) {
      for (const auto& c : lab_.clusters) checks.push_back([this, &c] { clusterset_ip(c); });
    }
    for (const bool v6 : families_) {
      for (const auto& c : lab_.clusters) {
        if (&c != &lab_.clusters.front()) checks.push_back([this, &c, v6] { dns(c, v6); });
      }
    }
    run_concurrently(checks, kWorkers);
    // The 4 MiB transfers on their own, after the rest: in the nat world they fill the one
    // path through the gateways (wireguard-go, ~20 Mbit/s), and a check sharing it, such as a
    // ClusterIP connect through the remote gateway's kube-proxy, would measure the queue.
    std::vector<std::function<void()>> transfers;
    for (const auto& p : cluster_pairs_) transfers.push_back([this, p] { transfer(p); });
    run_concurrently(transfers, kWorkers);
    // The ping checks' verdicts, from one read of every node's counters.
    std::vector<std::function<void()>> reads;
    for (const auto& c : lab_.clusters) {
      for (const auto& n : c.nodes) {
        reads.push_back([this, &n] {
          auto got = counters_.snapshot(n);
          std::lock_guard lock(mu_);
          counts_.emplace(n.node_name, std::move(got));
        });
      }
    }
    run_concurrently(reads, kWorkers);
    for (const auto& verdict : deferred_) verdict();
    for (const auto& r : nat_world_rows(lab_, s_)) add(r.check, r.from, r.to, r.pass, r.detail);
    convergence();
    return rows_;
  }

 private:
  std::string ip_of(const NodeLayout& n, bool v6 = false) const {
    const auto& m = v6 ? s_.pod_ips6 : s_.pod_ips;
    auto it = m.find(n.node_name);
    return it == m.end() ? "" : it->second;
  }

  void add(std::string check, std::string from, std::string to, Outcome outcome, std::string detail) {
    std::lock_guard lock(mu_);
    rows_.push_back({std::move(check), std::move(from), std::move(to), outcome, one_line(std::move(detail))});
    table_.row(rows_.back());
  }
  void add(std::string check, std::string from, std::string to, bool pass, std::string detail) {
    add(std::move(check), std::move(from), std::move(to), pass ? Outcome::kPass : Outcome::kFail, std::move(detail));
  }

  // The cluster a pod address belongs to ("" when it is no pod's).
  std::string pod_cluster(const std::string& ip) const {
    auto addr = net::IpAddress::parse(ip);
    if (!addr) return "";
    for (const auto& [block, cluster] : pod_blocks_) {
      if (block.contains(*addr)) return cluster;
    }
    return "";
  }

  // Each cluster's peerings and their datapath, from the view `cwctl status` prints
  // (cli/mesh/mesh.h), and `cwctl diagnose`'s rules over it. A peering only just Connected
  // may not have a probe verdict yet: wait a few seconds for one.
  void peerings() {
    mesh::MeshView view = lab_mesh_view(lab_);
    auto settled = [](const mesh::MeshView& v) {
      for (const auto& c : v.clusters) {
        for (const auto& p : c.peerings) {
          if (p.phase == "Connected" && p.condition("DatapathHealthy").value("status", "") == "Unknown") return false;
        }
      }
      return true;
    };
    for (int i = 0; i < 50 && !settled(view); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      view = lab_mesh_view(lab_);
    }
    for (const auto& c : view.clusters) {
      if (!c.error.empty()) {
        add("peering", c.id, "*", false, c.error);
        continue;
      }
      for (const auto& oc : lab_.clusters) {
        if (oc.id == c.id) continue;
        const auto it = std::find_if(c.peerings.begin(), c.peerings.end(),
                                     [&](const mesh::PeeringView& p) { return p.remote == oc.id; });
        const std::string phase = it == c.peerings.end() ? "missing" : it->phase.empty() ? "(none)" : it->phase;
        add("peering", c.id, oc.id, phase == "Connected", "phase " + phase);
        if (it == c.peerings.end()) continue;
        const auto d = it->condition("DatapathHealthy");
        add("datapath", c.id, oc.id, d.value("status", "") == "True",
            d.empty() ? "no DatapathHealthy condition" : d.value("reason", "") + ": " + d.value("message", ""));
      }
    }
    std::string problems;
    int found = 0;
    for (const auto& f : mesh::diagnose(view)) {
      if (f.severity == mesh::Severity::kOk) continue;
      ++found;
      problems += (problems.empty() ? "" : "; ") + f.check + " [" + f.subject + "]: " + f.finding;
    }
    add("diagnose", "*", "*", found == 0, found == 0 ? "cwctl diagnose finds nothing wrong" : problems);
  }

  // The packets `node` counted from src to dst of one ICMP type, once the counters are read.
  Result<long long> counted(const NodeLayout& node, const std::string& src, const std::string& dst,
                            const std::string& type) const {
    auto it = counts_.find(node.node_name);
    if (it == counts_.end()) return Error(ErrorCode::kInternal, "no counters read on " + node.node_name);
    if (!it->second) return it->second.error();
    auto c = it->second->find(src + ">" + dst + " " + type);
    if (c == it->second->end()) return Error(ErrorCode::kNotFound, "no counter " + src + ">" + dst + " on " + node.node_name);
    return c->second;
  }

  // A verdict given once every node's counters are read (run_all).
  void defer(std::function<void()> verdict) {
    std::lock_guard lock(mu_);
    deferred_.push_back(std::move(verdict));
  }

  void cross_cluster(const Pair& p) {
    const std::string src = ip_of(*p.from, p.v6), dst = ip_of(*p.to, p.v6), to = p.to->pod_name + family_tag(p.v6);
    const CommandResult r = ping(*p.from, dst);
    defer([this, p, r, src, dst, to] {
      auto through = counted(*p.from, src, dst, "echo-request");
      const std::string n = through ? std::to_string(*through) + " echo requests out of " + p.from->wg_interface
                                    : through.error().message();
      const bool tunnelled = through && *through >= 3;
      add("ping", p.from->pod_name, to, r.ok() && tunnelled,
          (r.ok() ? ping_avg(r.out) : "ping: " + r.summary()) + ", " + n +
              (through ? (tunnelled ? " (through WireGuard)" : " (NOT through WireGuard)") : ""));
    });
    auto [ok, detail] = tcp_echo(*p.from, dst, token());
    add("tcp", p.from->pod_name, to + ":" + std::to_string(kPodEchoPort), ok, detail);
    auto web = tcp(*p.from, dst, kPodWebPort, "");
    std::istringstream in(web ? *web : std::string());
    std::string name, seen;
    in >> name >> seen;
    seen = canonical_address(seen);
    const bool preserved = web && name == p.to->pod_name && seen == src;
    add("source", p.from->pod_name, to + ":" + std::to_string(kPodWebPort), preserved,
        !web          ? web.error().message()
        : name.empty() ? "no answer"
        : preserved   ? name + " saw the client at " + seen + ", the pod's own address (no SNAT)"
                      : name + " saw the client at " + seen + ", expected " + src +
                          (seen == p.from->underlay_ip || seen == p.from->underlay_ip6
                               ? " (SNAT to its node's address: a masquerade hit it)"
                               : ""));
  }

  // In-cluster traffic takes the CNI's path (or clusterwire's plain route), never the tunnel:
  // the route, a ping, and the check's own counters on both nodes.
  void in_cluster(const Pair& p) {
    const std::string src = ip_of(*p.from, p.v6), dst = ip_of(*p.to, p.v6);
    auto route = in_netns(p.from->netns, {"ip", "-o", "route", "get", dst}, seconds(10));
    const std::string via = cni_ && *cni_ == Cni::kVxlan
                                ? "dev flannel.1"
                                : "via " + (p.v6 ? p.to->underlay_ip6 : p.to->underlay_ip) + " dev eth0";
    const bool plain = route.ok() && route.out.find(via) != std::string::npos &&
                       route.out.find(p.from->wg_interface) == std::string::npos;
    std::string detail = plain ? "route " + via : "route: " + one_line(route.out + route.err) + " (expected " + via + ")";
    const CommandResult r = ping(*p.from, dst, 5);
    defer([this, p, r, src, dst, plain, detail]() mutable {
      const auto out = counted(*p.from, src, dst, "echo-request"), back = counted(*p.to, dst, src, "echo-reply");
      bool untouched = false;
      if (!out) {
        detail += ", " + out.error().message();
      } else if (!back) {
        detail += ", " + back.error().message();
      } else {
        untouched = *out == 0 && *back == 0;
        detail += untouched ? ", 0 echo requests or replies through WireGuard"
                            : ", " + std::to_string(*out + *back) + " packets through WireGuard";
      }
      detail += r.ok() ? ", " + ping_avg(r.out) : ", ping: " + r.summary();
      add("in-cluster", p.from->pod_name, p.to->pod_name + family_tag(p.v6), plain && untouched && r.ok(), detail);
    });
  }

  // Who routes the other nodes' blocks of a node's cluster: the CNI's routes are there and
  // clusterwire added none beside them (bird, vxlan); clusterwire's in its own world.
  void cni_routes(const ClusterLayout& c, const NodeLayout& n) {
    if (c.nodes.size() < 2) {
      add("cni-routes", n.node_name, "-", Outcome::kSkip, "one node per cluster: no in-cluster block to route");
      return;
    }
    auto r = in_netns(n.netns, {"ip", "-4", "route", "show"}, seconds(10));
    r.out += in_netns(n.netns, {"ip", "-6", "route", "show"}, seconds(10)).out;
    if (!r.ok()) {
      add("cni-routes", n.node_name, c.id, false, "ip route: " + r.summary());
      return;
    }
    const Cni world = cni_ ? *cni_ : Cni::kClusterwire;
    const std::string want = world == Cni::kBird ? "proto bird" : world == Cni::kVxlan ? "dev flannel.1" : "proto 119";
    int good = 0, blocks = 0;
    std::string bad;
    for (const auto& other : c.nodes) {
      if (&other == &n) continue;
      for (const bool v6 : families_) {
      ++blocks;
      const std::string block =
          s_.node_cidrs.count(other.node_name) ? family_block(s_.node_cidrs.at(other.node_name), v6) : "?";
      std::string line;
      std::istringstream in(r.out);
      for (std::string l; std::getline(in, l);) {
        if (l.rfind(block + " ", 0) == 0) line += (line.empty() ? "" : " | ") + l;
      }
      const bool theirs_only = world == Cni::kClusterwire || line.find("proto 119") == std::string::npos;
      if (line.find(want) != std::string::npos && theirs_only && line.find(" | ") == std::string::npos) ++good;
      else bad += "; " + block + ": " + (line.empty() ? "no route" : line);
      }
    }
    add("cni-routes", n.node_name, c.id, bad.empty(),
        std::to_string(good) + "/" + std::to_string(blocks) + " blocks routed " + want +
            (world == Cni::kClusterwire ? " (clusterwire routes in-cluster in this world)"
                                        : ", none by clusterwire (" + std::string(cni_name(world)) + " world)") +
            bad);
  }

  // A 4 MiB transfer across clusters (mtu), and the MSS the far pod saw on its SYN (mss):
  // TCP must work at the lab's underlay MTU, with whatever faults are on.
  void transfer(const Pair& p) {
    const std::string dst = ip_of(*p.to, p.v6), to = p.to->pod_name + family_tag(p.v6);
    const std::string pcap_log =
        lab_.log_path("verify-mss-" + p.from->node_name + "-" + p.to->node_name + (p.v6 ? "-v6" : ""));
    std::filesystem::remove(pcap_log);
    auto tcpdump = spawn_background(
        // The first packet from the sending pod to the sink is this transfer's SYN (one check per
        // pair and family). Not `tcp[tcpflags]`: libpcap reads it for IPv4 only.
        netns_exec(p.to->pod_netns, {"tcpdump", "--immediate-mode", "-ni", "eth0", "-c", "1", "-v", "-l",
                                     "src host " + ip_of(*p.from, p.v6) + " and tcp dst port " + std::to_string(kPodSinkPort)}),
        pcap_log);
    const bool listening = tcpdump && wait_until([&] { return read_file_or_empty(pcap_log).find("listening on") != std::string::npos; },
                                                 seconds(5));
    static const std::string payload = [] {
      std::string bytes(kTransferBytes, '\0');
      std::mt19937 rng(12345);
      for (auto& b : bytes) b = static_cast<char>(rng());
      return bytes;
    }();
    const auto started = std::chrono::steady_clock::now();
    auto r = tcp(*p.from, dst, kPodSinkPort, payload, seconds(30));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::string received = r ? one_line(*r) : "";
    received.erase(0, received.find_first_not_of(' '));
    const bool whole = r && received == std::to_string(kTransferBytes);
    std::ostringstream d;
    d << std::fixed << std::setprecision(2);
    if (whole) d << "4 MiB in " << secs << " s (" << (kTransferBytes * 8 / secs / 1e6) << " Mbit/s)";
    else d << (r ? "sink answered \"" + received + "\"" : r.error().message()) << " after " << secs << " s";
    d << ", underlay MTU " << s_.underlay_mtu;
    std::string faults;
    for (const auto& f : s_.impairments) faults += (faults.empty() ? "" : ", ") + f;
    d << (faults.empty() ? ", no faults" : ", faults: " + faults);
    add("mtu", p.from->pod_name, to + ":" + std::to_string(kPodSinkPort), whole, d.str());

    if (tcpdump) {
      (void)wait_until([&] { return !same_process(*tcpdump); }, seconds(2));
      stop_processes({*tcpdump}, seconds(1));
    }
    const std::string captured = read_file_or_empty(pcap_log);
    static const std::regex mss_re("mss ([0-9]+)");
    std::smatch m;
    auto link = in_netns(p.from->netns, {"ip", "-o", "link", "show", p.from->wg_interface}, seconds(5));
    static const std::regex mtu_re(" mtu ([0-9]+) ");
    std::smatch mm;
    if (!listening || !std::regex_search(captured, m, mss_re) || !std::regex_search(link.out, mm, mtu_re)) {
      add("mss", p.from->pod_name, to, false,
          !listening ? "tcpdump in " + p.to->pod_netns + " did not start: " + one_line(captured)
                     : "no SYN with an MSS captured at " + p.to->pod_name + " (or no MTU on " + p.from->wg_interface + ")");
      return;
    }
    const int headers = p.v6 ? 60 : 40;  // IPv6 + TCP, or IPv4 + TCP
    const int mss = std::stoi(m[1].str()), limit = std::stoi(mm[1].str()) - headers;
    add("mss", p.from->pod_name, to, mss <= limit,
        "the SYN arrived with MSS " + std::to_string(mss) + (mss <= limit ? " <= " : " > ") + std::to_string(limit) +
            " (" + p.from->wg_interface + " MTU " + mm[1].str() + " - " + std::to_string(headers) + ")" +
            (mss <= limit ? ": clamped" : ": NOT clamped"));
  }

  // Which cluster's pod answers a web request to ip:80 ("<pod name> <client address>").
  std::pair<std::string, std::string> ask_web(const NodeLayout& from, const std::string& ip, std::string& answer) {
    auto r = tcp(from, ip, 80, "");
    answer = r ? one_line(*r) : r.error().message();
    std::istringstream in(r ? *r : std::string());
    std::string pod, seen;
    in >> pod >> seen;
    for (const auto& c : lab_.clusters) {
      for (const auto& n : c.nodes) {
        if (n.pod_name == pod) return {c.id, seen};
      }
    }
    return {"", seen};
  }

  // A remote cluster's Service "web" by its ClusterIP: through the tunnel to that cluster's
  // kube-proxy (the lab's stand-in), which picks an endpoint there, and back.
  void cluster_ip(const Pair& p) {
    const std::string remote = lab_.clusters[static_cast<std::size_t>(p.to->cluster - 1)].id;
    auto it = s_.web_ips.find(remote);
    if (it == s_.web_ips.end() || it->second.empty()) {
      add("clusterip", p.from->pod_name, "web." + remote, Outcome::kSkip, "no ClusterIP of web in " + remote + " in the lab's state");
      return;
    }
    std::string answer;
    const auto [cluster, seen] = ask_web(*p.from, it->second, answer);
    add("clusterip", p.from->pod_name, it->second + ":80", cluster == remote,
        cluster == remote ? "web of " + remote + ": answered by " + answer.substr(0, answer.find(' ')) + ", which saw the client at " + seen +
                                " (" + remote + "'s kube-proxy masquerades sources outside its pod range)"
                          : "answer \"" + answer + "\", expected a pod of " + remote + path_evidence(*p.from, it->second));
  }

  // For a failed Service check: the active gateways and what conntrack recorded of the
  // client's connections to the Service address on each node of the remote cluster, so that a
  // rare failure says where the packets stopped.
  std::string path_evidence(const NodeLayout& from, const std::string& service_ip) const {
    if (lab_.gateways == 0) return "";
    std::string out;
    for (const auto& c : lab_.clusters) {
      auto g = active_gateway(lab_, c);
      out += "; " + c.id + " active gateway " + (g ? g->node + " (epoch " + std::to_string(g->epoch) + ")" : g.error().message());
    }
    const std::string client = ip_of(from);
    for (const auto& c : lab_.clusters) {
      for (const auto& n : c.nodes) {
        auto r = in_netns(n.netns, {"conntrack", "-L", "-p", "tcp", "-s", client, "-d", service_ip}, seconds(5));
        std::string entries;
        std::istringstream lines(r.out);
        for (std::string line; std::getline(lines, line);) entries += (entries.empty() ? "" : " | ") + line;
        if (!entries.empty()) out += "; conntrack on " + n.node_name + ": " + entries;
      }
    }
    return out;
  }

  // The clusterset name of web through the cluster's resolver, and every address it gives
  // answered by a pod of the cluster whose Service address it is.
  void clusterset_ip(const ClusterLayout& c) {
    const std::string name = "web.demo.svc.clusterset.local";
    const auto& from = c.nodes.back();
    std::vector<std::string> ips;
    std::string last;
    (void)wait_until(
        [&] {
          auto r = in_netns(from.pod_netns, {"dig", "@" + c.dns_node().underlay_ip, "+time=2", "+tries=1", "+short", name, "A"},
                            seconds(5));
          last = r.ok() ? one_line(r.out) : r.summary();
          ips.clear();
          std::istringstream in(r.out);
          for (std::string a; in >> a;) ips.push_back(a);
          return r.ok() && !ips.empty();
        },
        s_.dns ? seconds(10) : seconds(1), milliseconds(500));
    if (ips.empty()) {
      add("clusterset-ip", from.pod_name, name, false, "no address (resolver answered \"" + last + "\")");
      return;
    }
    bool all = true;
    std::string detail;
    for (const auto& ip : ips) {
      std::string owner;
      for (const auto& [cluster, web] : s_.web_ips) {
        if (web == ip) owner = cluster;
      }
      std::string answer;
      const auto [cluster, seen] = ask_web(from, ip, answer);
      const bool good = !owner.empty() && cluster == owner;
      all = all && good;
      detail += (detail.empty() ? "" : "; ") + ip + (owner.empty() ? " (no cluster's web)" : " (" + owner + "'s web)") +
                (good ? " answered by " + answer.substr(0, answer.find(' ')) : ": " + answer);
    }
    add("clusterset-ip", from.pod_name, name, all, detail);
  }

  // Cross-cluster traffic with a marker in its payload while tcpdump records the underlay
  // bridge. Every packet must be explained: WireGuard UDP, the node agents' API traffic, the
  // CNI's own (BGP, VXLAN) or in-cluster pod traffic in clear (the CNI's business, as on any
  // cluster); a pod address of another cluster in clear, or anything unexplained, fails.
  void capture() {
    const std::string pcap = lab_.state_dir + "/verify-underlay.pcap";
    const std::string log = lab_.log_path("verify-tcpdump");
    std::filesystem::remove(pcap);
    std::filesystem::remove(log);
    auto tcpdump = spawn_background(
        netns_exec(lab_.underlay_netns, {"tcpdump", "--immediate-mode", "-i", kUnderlayBridge, "-n", "-U", "-s", "256", "-w", pcap}), log);
    if (!tcpdump) {
      add("underlay", "capture", kUnderlayBridge, false, tcpdump.error().message());
      return;
    }
    if (!wait_until([&] { return read_file_or_empty(log).find("listening on") != std::string::npos; }, seconds(10))) {
      stop_processes({*tcpdump}, seconds(2));
      add("underlay", "capture", kUnderlayBridge, false, "tcpdump did not start: " + read_file_or_empty(log));
      return;
    }
    const std::string marker = token();
    std::atomic<int> pinged = 0, markers_echoed = 0;
    std::vector<std::function<void()>> traffic;
    for (const auto& p : cluster_pairs_) {
      traffic.push_back([&, p] {
        if (ping(*p.from, ip_of(*p.to, p.v6), 2).ok()) ++pinged;
        if (tcp_echo(*p.from, ip_of(*p.to, p.v6), marker).first) ++markers_echoed;
      });
    }
    run_concurrently(traffic, kWorkers);
    const int markers_sent = static_cast<int>(cluster_pairs_.size());
    std::this_thread::sleep_for(milliseconds(300));
    signal_process(*tcpdump, SIGINT);  // tcpdump flushes the file on SIGINT
    stop_processes({*tcpdump}, seconds(3));
    auto text = run({"tcpdump", "-n", "-r", pcap}, {.timeout = seconds(20)});
    auto bytes = read_file(pcap);
    const bool marker_seen = bytes && bytes->find(marker) != std::string::npos;
    static const std::regex ip_re(R"(^\S+ IP (\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+): (\S+))");
    static const std::regex addr_re(R"((\d+\.\d+\.\d+\.\d+))");
    static const std::regex addr6_re(R"(([0-9a-f]*:[0-9a-f:]*:[0-9a-f]*))");  // timestamps match too, and are no address
    static const std::regex ip6_ports_re(R"(^\S+ IP6 ([0-9a-f:]+)\.(\d+) > ([0-9a-f:]+)\.(\d+): )");
    // ARP; IPv6 neighbour and router discovery, and anything to or from link-local or multicast
    static const std::regex housekeeping_re(R"(^\S+ (ARP,|IP6 .*(ICMP6, (neighbor|router)|fe80::|ff02::)))");
    int wireguard = 0, api = 0, cni = 0, in_cluster = 0, cross = 0, other = 0, housekeeping = 0;
    std::string example;
    std::istringstream in(text.out);
    std::string line;
    std::set<std::string> api_ports;
    for (const auto& c : lab_.clusters) api_ports.insert(std::to_string(c.api_port));
    auto same_cluster_nodes = [&](const std::string& a, const std::string& b) {
      auto x = node_cluster_.find(a), y = node_cluster_.find(b);
      return x != node_cluster_.end() && y != node_cluster_.end() && x->second == y->second;
    };
    while (std::getline(in, line)) {
      std::set<std::string> pod_clusters, node_clusters;
      const bool v6_line = line.find(" IP6 ") != std::string::npos;
      for (std::sregex_iterator it(line.begin(), line.end(), v6_line ? addr6_re : addr_re), end; it != end; ++it) {
        const std::string a = (*it)[1].str();
        if (auto c = pod_cluster(a); !c.empty()) pod_clusters.insert(c);
        else if (auto n = node_cluster_.find(canonical_address(a)); n != node_cluster_.end()) node_clusters.insert(n->second);
      }
      std::smatch m;
      if (!pod_clusters.empty()) {
        // In the clear with a pod address: fine inside one cluster (its own nodes included),
        // a leak when it involves another cluster.
        node_clusters.insert(pod_clusters.begin(), pod_clusters.end());
        if (node_clusters.size() == 1) {
          ++in_cluster;
        } else {
          ++cross;
          if (example.empty()) example = line;
        }
      } else if (std::regex_search(line, m, ip_re)) {
        const std::string wg = std::to_string(kWireGuardPort), vxlan = std::to_string(kVxlanPort);
        const bool udp = m[5].str() == "UDP,";
        // The nat world's WireGuard runs between routers, on forwarded and masqueraded ports.
        const bool between_routers = lab_.nat && node_cluster_.count(m[1].str()) && node_cluster_.count(m[3].str()) &&
                                     !same_cluster_nodes(m[1].str(), m[3].str());
        if (udp && (m[2].str() == wg || m[4].str() == wg || between_routers)) {
          ++wireguard;
        } else if ((m[1].str() == kUnderlayGateway && api_ports.count(m[2].str())) ||
                   (m[3].str() == kUnderlayGateway && api_ports.count(m[4].str()))) {
          ++api;
        } else if (same_cluster_nodes(m[1].str(), m[3].str()) &&
                   (m[2].str() == "179" || m[4].str() == "179" || m[4].str() == vxlan)) {
          ++cni;  // BGP between a cluster's nodes (bird), VXLAN between them (flannel)
        } else {
          ++other;
          if (example.empty()) example = line;
        }
      } else if (std::regex_search(line, m, ip6_ports_re) && same_cluster_nodes(canonical_address(m[1].str()), canonical_address(m[3].str())) &&
                 (m[2].str() == "179" || m[4].str() == "179")) {
        ++cni;  // BGP over IPv6 between a cluster's nodes (the IPv6 blocks' sessions)
      } else if (std::regex_search(line, housekeeping_re)) {
        ++housekeeping;  // ARP, IPv6 neighbour discovery of the veths
      } else {
        ++other;  // IPv4 without ports (ICMP, fragments) or anything else: not explained, fails
        if (example.empty()) example = line;
      }
    }
    const bool pass = text.ok() && bytes && wireguard > 0 && cross == 0 && other == 0 && !marker_seen &&
                      markers_echoed > 0;
    std::ostringstream d;
    d << wireguard << " WireGuard UDP packets, " << cross << " with another cluster's pod address in clear, " << other
      << " other, " << api << " to the API servers, " << cni << " of the CNI (BGP/VXLAN), " << in_cluster
      << " in-cluster pod packets, " << housekeeping << " ARP/IPv6; " << pinged << "/" << cluster_pairs_.size()
      << " pings, " << markers_echoed << "/" << markers_sent << " marker echoes; payload marker "
      << (markers_echoed == 0 ? "never echoed (nothing to look for)" : marker_seen ? "FOUND in clear" : "not seen");
    if (!text.ok()) d << "; tcpdump -r: " << text.summary();
    if (!bytes) d << "; " << bytes.error().message();
    if (!example.empty()) d << "; e.g. " << example;
    add("underlay", "capture", kUnderlayBridge, pass, d.str());
  }

  void dns(const ClusterLayout& c, bool v6) {
    const auto& exporter = lab_.clusters.front();
    const std::string want = ip_of(exporter.nodes.front(), v6);
    const std::string name = "echo.demo.svc.clusterset.local";
    const auto& from = c.nodes.back();
    // The resolver at the address of the family asked about: an IPv6-only pod has no other.
    const std::string resolver = v6 ? c.dns_node().underlay_ip6 : c.dns_node().underlay_ip;
    std::string answer, last;
    (void)wait_until(
        [&] {
          auto r = in_netns(from.pod_netns, {"dig", "@" + resolver, "+time=2", "+tries=1", "+short", name, v6 ? "AAAA" : "A"},
                            seconds(5));
          last = r.ok() ? r.out : r.summary();
          std::istringstream in(r.out);
          std::string a;
          while (in >> a) {
            if (a == want) answer = a;
          }
          return r.ok() && !answer.empty();
        },
        s_.dns ? seconds(10) : seconds(1), milliseconds(500));
    last = one_line(last);
    std::string why;
    if (answer.empty()) {
      why = (s_.dns ? "" : "cw-dns is not running in this lab (" + s_.notes + "); ") + "unbound " + resolver +
            " answered " + (last.empty() ? "nothing" : "\"" + last + "\"") + ", expected " + want;
    }
    add("dns", from.pod_name, name + family_tag(v6), !answer.empty(),
        answer.empty() ? why : answer + " through unbound " + resolver + " (" + c.id + "'s resolver)");
    if (answer.empty()) {
      add("dns-tcp", from.pod_name, "echo.demo" + family_tag(v6) + ":" + std::to_string(kPodEchoPort), false,
          "no address to connect to");
      return;
    }
    auto [ok, detail] = tcp_echo(from, answer, token());
    add("dns-tcp", from.pod_name, "echo.demo" + family_tag(v6) + ":" + std::to_string(kPodEchoPort), ok,
        detail + " from " + answer);
  }

  // A figure, not a check: up measured it once, and no bound would be honest on every machine.
  void convergence() {
    const auto& last = lab_.clusters.back();
    add("convergence", "peerings", "first packet", Outcome::kInfo,
        s_.convergence_ms >= 0
            ? std::to_string(s_.convergence_ms) + " ms from the start of " + last.id +
                  "'s ClusterPeerings kubectl apply to the first ping reply " + lab_.clusters.front().nodes.front().pod_name +
                  " -> " + last.nodes.front().pod_name + " (measured by up)"
            : "not measured: up did not finish");
  }

  const LabLayout& lab_;
  const LabState& s_;
  Table& table_;
  TunnelCounters counters_;
  const Result<Cni> cni_;
  std::map<std::string, std::string> node_cluster_;  // underlay address -> cluster
  std::vector<std::pair<net::Prefix, std::string>> pod_blocks_;  // node block -> cluster
  std::vector<bool> families_;  // false: IPv4, true: IPv6; those the lab's pods have
  std::vector<Pair> cross_, in_cluster_;
  std::vector<Pair> cluster_pairs_;  // one per ordered pair of clusters: first node -> last node
  std::mutex mu_;
  std::vector<Row> rows_;
  std::map<std::string, Result<std::map<std::string, long long>>> counts_;  // node -> its counters, read after the checks
  std::vector<std::function<void()>> deferred_;  // verdicts that wait for those
};

}  // namespace

int lab_verify(const LabOptions& options, std::ostream& out, std::ostream& err) {
  ignore_sigpipe();
  if (geteuid() != 0) {
    err << "cwctl lab verify needs root: it runs commands inside the lab's network namespaces (run it with sudo)\n";
    return 1;
  }
  auto loaded = load_lab(options.name);
  if (!loaded) {
    err << "cwctl lab verify: " << loaded.error().message() << "\n";
    return loaded.error().code() == ErrorCode::kInvalidArgument ? 2 : 1;
  }
  const auto& lab = loaded->lab;
  const auto& state = loaded->state;
  if (state.phase != "up") out << "note: lab " << lab.name << " is in phase \"" << state.phase << "\" (up did not finish)\n";
  out << "verifying lab " << lab.name << " (" << state.cni << " world, " << state.ip_family << ", underlay MTU "
      << state.underlay_mtu
      << (state.impairments.empty() ? "" : ", faults on") << ") ..." << std::endl;
  const auto started = std::chrono::steady_clock::now();
  Table table(lab, out);
  std::vector<Row> rows;
  {
    Verifier v(lab, state, table);
    rows = v.run_all();
  }
  auto count = [&](Outcome o) { return std::count_if(rows.begin(), rows.end(), [o](const Row& r) { return r.outcome == o; }); };
  const auto passed = count(Outcome::kPass), failed = count(Outcome::kFail);
  out << passed << " passed, " << failed << " failed, " << count(Outcome::kSkip) << " skipped, " << count(Outcome::kInfo)
      << " info (" << std::fixed << std::setprecision(1)
      << std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() << " s)\n";
  return failed == 0 && passed > 0 ? 0 : 1;
}

}  // namespace cw::lab
