// `cwctl lab verify`: checks the running lab end to end and prints a table, a row as soon as
// its check is done. Rows PASS or FAIL; SKIP (nothing to check, with the reason) and INFO (a
// figure, not a check) count as neither. Exit status 0 only when no row fails.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <filesystem>
#include <iomanip>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "cli/lab/cluster_api.h"
#include "cli/lab/lab.h"
#include "cli/lab/layout.h"
#include "cli/lab/process.h"
#include "cli/lab/state.h"
#include "cli/lab/text.h"

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
  std::size_t w_[3] = {11, 8, 8};
};

struct Pair {
  const NodeLayout* from;
  const NodeLayout* to;
};

std::string token() {
  std::random_device rd;
  std::ostringstream s;
  s << "cwlab-marker-" << std::hex << rd() << rd();
  return s.str();
}

// "rtt min/avg/max/mdev = 0.051/0.060/0.071/0.008 ms" -> "0.060 ms"
std::string ping_avg(const std::string& out) {
  static const std::regex re("= [0-9.]+/([0-9.]+)/");
  std::smatch m;
  return std::regex_search(out, m, re) ? "rtt " + m[1].str() + " ms" : "";
}

CommandResult ping(const NodeLayout& from, const std::string& ip, int count = 3) {
  return in_netns(from.pod_netns, {"ping", "-n", "-q", "-c", std::to_string(count), "-i", "0.2", "-W", "1", ip},
                  seconds(10));
}

// Sends a line to the pod's echo server and expects it back.
std::pair<bool, std::string> tcp_echo(const NodeLayout& from, const std::string& ip, const std::string& line) {
  auto r = in_netns(from.pod_netns,
                    {"socat", "-t", "2", "-T", "5", "-", "TCP:" + ip + ":" + std::to_string(kPodEchoPort) + ",connect-timeout=3"},
                    seconds(10), line + "\n");
  if (r.ok() && r.out.find(line) != std::string::npos) return {true, "echoed " + std::to_string(line.size() + 1) + " bytes"};
  return {false, r.ok() ? "connected, but no echo" : r.summary()};
}

// Sum of every peer's received and sent bytes on the node's WireGuard device; nullopt when
// the device cannot be read.
std::optional<long long> wg_bytes(const NodeLayout& n) {
  auto r = in_netns(n.netns, {"wg", "show", n.wg_interface, "transfer"}, seconds(10));
  if (!r.ok()) return std::nullopt;
  std::istringstream in(r.out);
  std::string key;
  long long rx = 0, tx = 0, sum = 0;
  while (in >> key >> rx >> tx) sum += rx + tx;
  return sum;
}

std::string unreadable(const NodeLayout& n) { return "cannot read " + n.wg_interface + " on " + n.node_name + " (wg show transfer)"; }

bool in_pool(const std::string& ip) {  // 10.240.0.0/12: every pod address of the lab
  unsigned a = 0, b = 0;
  return std::sscanf(ip.c_str(), "%u.%u.", &a, &b) == 2 && a == 10 && b >= 240 && b <= 255;
}

class Verifier {
 public:
  Verifier(const LabLayout& lab, const LabState& s, Table& table) : lab_(lab), s_(s), table_(table) {
    for (const auto& c : lab.clusters) {
      for (const auto& n : c.nodes) {
        for (const auto& oc : lab.clusters) {
          for (const auto& on : oc.nodes) {
            if (&n == &on) continue;
            (c.id == oc.id ? in_cluster_ : cross_).push_back({&n, &on});
          }
        }
      }
    }
  }

  std::vector<Row> run_all() {
    table_.header();
    peerings();
    cross_cluster();
    in_cluster();
    capture();
    dns();
    convergence();
    return rows_;
  }

 private:
  std::string ip_of(const NodeLayout& n) const {
    auto it = s_.pod_ips.find(n.node_name);
    return it == s_.pod_ips.end() ? "" : it->second;
  }

  void add(std::string check, std::string from, std::string to, Outcome outcome, std::string detail) {
    rows_.push_back({std::move(check), std::move(from), std::move(to), outcome, one_line(std::move(detail))});
    table_.row(rows_.back());
  }
  void add(std::string check, std::string from, std::string to, bool pass, std::string detail) {
    add(std::move(check), std::move(from), std::move(to), pass ? Outcome::kPass : Outcome::kFail, std::move(detail));
  }

  void peerings() {
    for (const auto& c : lab_.clusters) {
      auto list = kubectl_get_json(lab_, c, {"clusterpeerings"});
      if (!list) {
        add("peering", c.id, "*", false, list.error().message());
        continue;
      }
      std::map<std::string, std::string> phases;
      for (const auto& p : list->value("items", nlohmann::json::array())) {
        phases[p["metadata"].value("name", "")] = p.value("status", nlohmann::json::object()).value("phase", "(none)");
      }
      for (const auto& oc : lab_.clusters) {
        if (oc.id == c.id) continue;
        auto it = phases.find(oc.id);
        const std::string phase = it == phases.end() ? "missing" : it->second;
        add("peering", c.id, oc.id, phase == "Connected", "phase " + phase);
      }
    }
  }

  void cross_cluster() {
    // A ping through the tunnel moves the source node's WireGuard counters: they are read
    // before and after, and the row says what they did.
    for (const auto& p : cross_) {
      const auto before = wg_bytes(*p.from);
      auto r = ping(*p.from, ip_of(*p.to));
      const auto after = wg_bytes(*p.from);
      if (!before || !after) {
        add("ping", p.from->pod_name, p.to->pod_name, false,
            (r.ok() ? ping_avg(r.out) : "ping: " + r.summary()) + "; " + unreadable(*p.from));
        continue;
      }
      const long long moved = *after - *before;
      const std::string counters = p.from->wg_interface + " on " + p.from->node_name + " moved " +
                                   std::to_string(moved) + " bytes";
      add("ping", p.from->pod_name, p.to->pod_name, r.ok() && moved > 0,
          r.ok() ? ping_avg(r.out) + ", " + counters + (moved > 0 ? " (through WireGuard)" : " (NOT through WireGuard)")
                 : "ping: " + r.summary() + ", " + counters);
    }
    for (const auto& p : cross_) {
      auto [ok, detail] = tcp_echo(*p.from, ip_of(*p.to), token());
      add("tcp", p.from->pod_name, p.to->pod_name + ":" + std::to_string(kPodEchoPort), ok, detail);
    }
  }

  void in_cluster() {
    if (in_cluster_.empty()) {
      add("in-cluster", "-", "-", Outcome::kSkip, "one node per cluster: no in-cluster pair to check");
      return;
    }
    for (const auto& p : in_cluster_) {
      const std::string dst = ip_of(*p.to);
      auto route = in_netns(p.from->netns, {"ip", "-o", "route", "get", dst}, seconds(10));
      const bool plain = route.ok() && route.out.find("dev eth0") != std::string::npos &&
                         route.out.find(p.from->wg_interface) == std::string::npos &&
                         route.out.find("via " + p.to->underlay_ip) != std::string::npos;
      const auto from_before = wg_bytes(*p.from), to_before = wg_bytes(*p.to);
      auto r = ping(*p.from, dst, 5);
      const auto from_after = wg_bytes(*p.from), to_after = wg_bytes(*p.to);
      std::string detail = plain ? "route via " + p.to->underlay_ip + " dev eth0" : "route: " + route.out + route.err;
      bool untouched = false;
      if (!from_before || !from_after) {
        detail += ", " + unreadable(*p.from);
      } else if (!to_before || !to_after) {
        detail += ", " + unreadable(*p.to);
      } else {
        const long long moved = (*from_after - *from_before) + (*to_after - *to_before);
        untouched = moved == 0;
        detail += untouched ? ", WireGuard counters of both nodes unchanged"
                            : ", WireGuard counters moved (" + std::to_string(moved) + " bytes)";
      }
      detail += r.ok() ? ", " + ping_avg(r.out) : ", ping: " + r.summary();
      add("in-cluster", p.from->pod_name, p.to->pod_name, plain && untouched && r.ok(), detail);
    }
  }

  // Cross-cluster traffic with a marker in its payload while tcpdump records the underlay
  // bridge: every IPv4 packet must be WireGuard UDP (or the node agents' own API traffic to the
  // lab API servers), no pod address may appear, and the marker must not be in the capture.
  void capture() {
    const std::string pcap = lab_.state_dir + "/verify-underlay.pcap";
    const std::string log = lab_.log_path("verify-tcpdump");
    std::filesystem::remove(pcap);
    std::filesystem::remove(log);
    auto tcpdump = spawn_background(
        netns_exec(lab_.underlay_netns, {"tcpdump", "-i", kUnderlayBridge, "-n", "-U", "-w", pcap}), log);
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
    int pinged = 0, markers_sent = 0, markers_echoed = 0;
    for (const auto& p : cross_) {
      if (ping(*p.from, ip_of(*p.to), 2).ok()) ++pinged;
      ++markers_sent;
      if (tcp_echo(*p.from, ip_of(*p.to), marker).first) ++markers_echoed;
    }
    std::this_thread::sleep_for(milliseconds(300));
    signal_process(*tcpdump, SIGINT);  // tcpdump flushes the file on SIGINT
    stop_processes({*tcpdump}, seconds(3));
    auto text = run({"tcpdump", "-n", "-r", pcap}, {.timeout = seconds(20)});
    auto bytes = read_file(pcap);
    const bool marker_seen = bytes && bytes->find(marker) != std::string::npos;
    static const std::regex ip_re(R"(^\S+ IP (\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+): (\S+))");
    static const std::regex addr_re(R"((\d+\.\d+\.\d+\.\d+))");
    static const std::regex housekeeping_re(R"(^\S+ (ARP,|IP6 ))");  // ARP; IPv6 neighbour discovery
    int wireguard = 0, api = 0, clear = 0, other = 0, housekeeping = 0;
    std::string example;
    std::istringstream in(text.out);
    std::string line;
    std::set<std::string> api_ports;
    for (const auto& c : lab_.clusters) api_ports.insert(std::to_string(c.api_port));
    while (std::getline(in, line)) {
      bool pod = false;
      for (std::sregex_iterator it(line.begin(), line.end(), addr_re), end; it != end; ++it) pod |= in_pool((*it)[1].str());
      std::smatch m;
      if (pod) {
        ++clear;
        if (example.empty()) example = line;
      } else if (std::regex_search(line, m, ip_re)) {
        const bool udp = m[5].str() == "UDP,";
        const std::string wg = std::to_string(kWireGuardPort);
        if (udp && (m[2].str() == wg || m[4].str() == wg)) {
          ++wireguard;
        } else if ((m[1].str() == kUnderlayGateway && api_ports.count(m[2].str())) ||
                   (m[3].str() == kUnderlayGateway && api_ports.count(m[4].str()))) {
          ++api;
        } else {
          ++other;
          if (example.empty()) example = line;
        }
      } else if (std::regex_search(line, housekeeping_re)) {
        ++housekeeping;  // ARP, IPv6 neighbour discovery of the veths
      } else {
        ++other;  // IPv4 without ports (ICMP, fragments) or anything else: not explained, fails
        if (example.empty()) example = line;
      }
    }
    const bool pass = text.ok() && bytes && wireguard > 0 && clear == 0 && other == 0 && !marker_seen &&
                      markers_echoed > 0;
    std::ostringstream d;
    d << wireguard << " WireGuard UDP packets, " << clear << " with a pod address, " << other << " other, " << api
      << " to the API servers, " << housekeeping << " ARP/IPv6; " << pinged << "/" << cross_.size() << " pings, "
      << markers_echoed << "/" << markers_sent << " marker echoes; payload marker "
      << (markers_echoed == 0 ? "never echoed (nothing to look for)" : marker_seen ? "FOUND in clear" : "not seen");
    if (!text.ok()) d << "; tcpdump -r: " << text.summary();
    if (!bytes) d << "; " << bytes.error().message();
    if (!example.empty()) d << "; e.g. " << example;
    add("underlay", "capture", kUnderlayBridge, pass, d.str());
  }

  void dns() {
    const auto& exporter = lab_.clusters.front();
    const std::string want = ip_of(exporter.nodes.front());
    const std::string name = "echo.demo.svc.clusterset.local";
    for (const auto& c : lab_.clusters) {
      if (c.id == exporter.id) continue;
      const auto& from = c.nodes.back();
      const std::string resolver = c.dns_node().underlay_ip;
      std::string answer, last;
      (void)wait_until(
          [&] {
            auto r = in_netns(from.pod_netns, {"dig", "@" + resolver, "+time=2", "+tries=1", "+short", name, "A"}, seconds(5));
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
      add("dns", from.pod_name, name, !answer.empty(),
          answer.empty() ? why : answer + " through unbound " + resolver + " (" + c.id + "'s resolver)");
      if (answer.empty()) {
        add("dns-tcp", from.pod_name, "echo.demo:" + std::to_string(kPodEchoPort), false, "no address to connect to");
        continue;
      }
      auto [ok, detail] = tcp_echo(from, answer, token());
      add("dns-tcp", from.pod_name, "echo.demo:" + std::to_string(kPodEchoPort), ok, detail + " from " + answer);
    }
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
  std::vector<Pair> cross_, in_cluster_;
  std::vector<Row> rows_;
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
  out << "verifying lab " << lab.name << " ..." << std::endl;
  Table table(lab, out);
  Verifier v(lab, state, table);
  const auto rows = v.run_all();
  auto count = [&](Outcome o) { return std::count_if(rows.begin(), rows.end(), [o](const Row& r) { return r.outcome == o; }); };
  const auto passed = count(Outcome::kPass), failed = count(Outcome::kFail);
  out << passed << " passed, " << failed << " failed, " << count(Outcome::kSkip) << " skipped, " << count(Outcome::kInfo)
      << " info\n";
  return failed == 0 && passed > 0 ? 0 : 1;
}

}  // namespace cw::lab
