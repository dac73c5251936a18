// `cwctl lab verify`: checks the running lab end to end and prints a pass/fail table.
// Exit status 0 only when every row passes.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>

#include <algorithm>
#include <filesystem>
#include <fstream>
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

namespace cw::lab {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct Row {
  std::string check, from, to;
  bool pass = false;
  std::string detail;
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

// Sum of every peer's received and sent bytes on the node's WireGuard device.
long long wg_bytes(const NodeLayout& n) {
  auto r = in_netns(n.netns, {"wg", "show", n.wg_interface, "transfer"});
  std::istringstream in(r.out);
  std::string key;
  long long rx = 0, tx = 0, sum = 0;
  while (in >> key >> rx >> tx) sum += rx + tx;
  return r.ok() ? sum : -1;
}

bool in_pool(const std::string& ip) {  // 10.240.0.0/12: every pod address of the lab
  unsigned a = 0, b = 0;
  return std::sscanf(ip.c_str(), "%u.%u.", &a, &b) == 2 && a == 10 && b >= 240 && b <= 255;
}

class Verifier {
 public:
  Verifier(const LabLayout& lab, const LabState& s) : lab_(lab), s_(s) {
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

  std::vector<Row> run_all(std::ostream& out) {
    out << "verifying lab " << lab_.name << " ..." << std::endl;
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

  void add(std::string check, std::string from, std::string to, bool pass, std::string detail) {
    rows_.push_back({std::move(check), std::move(from), std::move(to), pass, std::move(detail)});
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
    for (const auto& p : cross_) {
      auto r = ping(*p.from, ip_of(*p.to));
      add("ping", p.from->pod_name, p.to->pod_name, r.ok(), r.ok() ? ping_avg(r.out) + ", via WireGuard" : r.summary());
    }
    for (const auto& p : cross_) {
      auto [ok, detail] = tcp_echo(*p.from, ip_of(*p.to), token());
      add("tcp", p.from->pod_name, p.to->pod_name + ":" + std::to_string(kPodEchoPort), ok, detail);
    }
  }

  void in_cluster() {
    if (in_cluster_.empty()) {
      add("in-cluster", "-", "-", true, "one node per cluster: nothing to check");
      return;
    }
    for (const auto& p : in_cluster_) {
      const std::string dst = ip_of(*p.to);
      auto route = in_netns(p.from->netns, {"ip", "-o", "route", "get", dst});
      const bool plain = route.ok() && route.out.find("dev eth0") != std::string::npos &&
                         route.out.find(p.from->wg_interface) == std::string::npos &&
                         route.out.find("via " + p.to->underlay_ip) != std::string::npos;
      const long long before = wg_bytes(*p.from) + wg_bytes(*p.to);
      auto r = ping(*p.from, dst, 5);
      const long long after = wg_bytes(*p.from) + wg_bytes(*p.to);
      const bool untouched = before >= 0 && before == after;
      std::string detail = plain ? "route via " + p.to->underlay_ip + " dev eth0" : "route: " + route.out + route.err;
      detail += untouched ? ", WireGuard counters unchanged" : ", WireGuard counters moved (" + std::to_string(after - before) + " bytes)";
      detail += r.ok() ? ", " + ping_avg(r.out) : ", ping: " + r.summary();
      while (!detail.empty() && detail.back() == '\n') detail.pop_back();
      std::replace(detail.begin(), detail.end(), '\n', ' ');
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
    auto pid = spawn_background(netns_exec(lab_.underlay_netns, {"tcpdump", "-i", kUnderlayBridge, "-n", "-U", "-w", pcap}),
                                log);
    if (!pid) {
      add("underlay", "*", "*", false, pid.error().message());
      return;
    }
    auto read_log = [&] {
      std::ifstream in(log);
      std::stringstream ss;
      ss << in.rdbuf();
      return ss.str();
    };
    if (!wait_until([&] { return read_log().find("listening on") != std::string::npos; }, seconds(10))) {
      stop_pids({*pid}, seconds(2));
      add("underlay", "*", "*", false, "tcpdump did not start: " + read_log());
      return;
    }
    const std::string marker = token();
    int sent = 0;
    for (const auto& p : cross_) {
      if (ping(*p.from, ip_of(*p.to), 2).ok()) ++sent;
      if (tcp_echo(*p.from, ip_of(*p.to), marker).first) ++sent;
    }
    std::this_thread::sleep_for(milliseconds(300));
    kill(*pid, SIGINT);
    stop_pids({*pid}, seconds(3));
    auto text = run({"tcpdump", "-n", "-r", pcap}, {.timeout = seconds(20)});
    std::ifstream raw(pcap, std::ios::binary);
    std::stringstream bytes;
    bytes << raw.rdbuf();
    const bool marker_seen = bytes.str().find(marker) != std::string::npos;
    static const std::regex ip_re(R"(^\S+ IP (\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+): (\S+))");
    static const std::regex addr_re(R"((\d+\.\d+\.\d+\.\d+))");
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
      } else {
        ++housekeeping;  // ARP, IPv6 neighbour discovery of the veths
      }
    }
    const bool pass = text.ok() && wireguard > 0 && clear == 0 && other == 0 && !marker_seen && sent > 0;
    std::ostringstream d;
    d << wireguard << " WireGuard UDP packets, " << clear << " with a pod address, " << other << " other IPv4, "
      << api << " to the API servers, " << housekeeping << " ARP/IPv6; payload marker "
      << (marker_seen ? "FOUND in clear" : "not seen");
    if (!text.ok()) d << "; tcpdump -r: " << text.summary();
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
      wait_until(
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
      while (!last.empty() && last.back() == '\n') last.pop_back();
      std::replace(last.begin(), last.end(), '\n', ' ');
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

  void convergence() {
    const bool ok = s_.convergence_ms >= 0;
    add("convergence", "peerings", "first packet", ok,
        ok ? std::to_string(s_.convergence_ms) + " ms from the start of the last ClusterPeering's kubectl apply to the first cross-cluster ping reply (measured by up)"
           : "not measured: up did not finish");
  }

  const LabLayout& lab_;
  const LabState& s_;
  std::vector<Pair> cross_, in_cluster_;
  std::vector<Row> rows_;
};

void print_table(const std::vector<Row>& rows, std::ostream& out) {
  std::size_t w[3] = {5, 4, 2};
  for (const auto& r : rows) {
    w[0] = std::max(w[0], r.check.size());
    w[1] = std::max(w[1], r.from.size());
    w[2] = std::max(w[2], r.to.size());
  }
  auto line = [&](const std::string& a, const std::string& b, const std::string& c, const std::string& d,
                  const std::string& e) {
    out << std::left << std::setw(static_cast<int>(w[0] + 2)) << a << std::setw(static_cast<int>(w[1] + 2)) << b
        << std::setw(static_cast<int>(w[2] + 2)) << c << std::setw(8) << d << e << "\n";
  };
  line("CHECK", "FROM", "TO", "RESULT", "DETAIL");
  for (const auto& r : rows) line(r.check, r.from, r.to, r.pass ? "PASS" : "FAIL", r.detail);
  const auto failed = std::count_if(rows.begin(), rows.end(), [](const Row& r) { return !r.pass; });
  out << rows.size() - static_cast<std::size_t>(failed) << " passed, " << failed << " failed\n";
}

}  // namespace

int lab_verify(const LabOptions& options, std::ostream& out, std::ostream& err) {
  if (geteuid() != 0) {
    err << "cwctl lab verify needs root: it runs commands inside the lab's network namespaces (run it with sudo)\n";
    return 1;
  }
  auto probe = make_layout(options.name, 2, 1);
  if (!probe) {
    err << "cwctl lab verify: " << probe.error().message() << "\n";
    return 2;
  }
  auto state = load_state(*probe);
  if (!state) {
    err << "cwctl lab verify: " << state.error().message() << "\n";
    return 1;
  }
  auto lab = make_layout(options.name, state->clusters, state->nodes);
  if (!lab) {
    err << "cwctl lab verify: " << lab.error().message() << "\n";
    return 1;
  }
  if (state->phase != "up") out << "note: lab " << lab->name << " is in phase \"" << state->phase << "\" (up did not finish)\n";
  Verifier v(*lab, *state);
  const auto rows = v.run_all(out);
  print_table(rows, out);
  return std::all_of(rows.begin(), rows.end(), [](const Row& r) { return r.pass; }) ? 0 : 1;
}

}  // namespace cw::lab
