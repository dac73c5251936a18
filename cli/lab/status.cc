// `cwctl lab status`: clusters, CIDRs, peerings and their phase (from the API servers, with
// kubectl -o json), and each node's WireGuard peers with their handshake age (`wg show dump`).
// Also `cwctl lab restart` and `cwctl lab kubectl`, which read the same state.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <ctime>
#include <sstream>

#include "cli/lab/cluster_api.h"
#include "cli/lab/gateways.h"
#include "cli/lab/lab.h"
#include "cli/lab/layout.h"
#include "cli/lab/process.h"
#include "cli/lab/state.h"
#include "cli/lab/text.h"
#include "cli/mesh/mesh.h"

namespace cw::lab {
namespace {

using nlohmann::json;

std::string age(long long handshake) {
  if (handshake <= 0) return "never";
  const long long s = static_cast<long long>(std::time(nullptr)) - handshake;
  return std::to_string(s < 0 ? 0 : s) + "s ago";
}

}  // namespace

mesh::MeshView lab_mesh_view(const LabLayout& lab) {
  mesh::MeshView view;
  view.now = std::chrono::system_clock::now();
  for (const auto& c : lab.clusters) {
    auto nodes = kubectl_get_json(lab, c, {"nodes"});
    auto peerings = kubectl_get_json(lab, c, {"clusterpeerings"});
    auto cluster = mesh::cluster_from(c.id, nodes ? *nodes : json::object(), peerings ? *peerings : json::object());
    if (!nodes) cluster.error = nodes.error().message();
    else if (!peerings) cluster.error = peerings.error().message();
    view.clusters.push_back(std::move(cluster));
  }
  const auto& broker = lab.clusters.front();
  auto ads = kubectl_get_json(lab, broker, {"-n", "clusterwire-broker", "clusteradvertisements"});
  auto claims = kubectl_get_json(lab, broker, {"-n", "clusterwire-broker", "cidrclaims"});
  mesh::BrokerView b = mesh::broker_from(broker.id, ads ? *ads : json::object(), claims ? *claims : json::object());
  if (!ads) b.error = ads.error().message();
  view.broker = std::move(b);
  return view;  // the lab's cluster IDs are its context names already
}

int lab_status(const LabOptions& options, std::ostream& out, std::ostream& err) {
  ignore_sigpipe();
  if (geteuid() != 0) {
    err << "cwctl lab status needs root: it reads WireGuard devices inside the lab's namespaces (run it with sudo)\n";
    return 1;
  }
  auto loaded = load_lab(options.name);
  if (!loaded) {
    err << "cwctl lab status: " << loaded.error().message() << "\n";
    return 1;
  }
  const auto& lab = loaded->lab;
  const auto& s = loaded->state;
  out << "lab " << lab.name << " (" << s.phase << "): " << lab.clusters.size() << " clusters x " << s.nodes
      << " nodes, " << (s.backend == "kernel" ? "kernel WireGuard" : "wireguard-go") << ", state " << lab.state_dir
      << "\n";
  if (s.convergence_ms >= 0) out << "convergence at up: " << s.convergence_ms << " ms\n";
  if (!s.notes.empty()) out << "note: " << s.notes << "\n";
  // What `cwctl status` prints for real clusters, from the same view (cli/mesh/mesh.h).
  const auto view = lab_mesh_view(lab);
  mesh::print_status(view, out);
  int problems = 0;
  for (const auto& c : view.clusters) problems += c.error.empty() ? 0 : 1;
  if (lab.nat) {
    // The nat world: who is the active gateway of each cluster (its Lease), and where the
    // routers forward to.
    out << "\nGateways (nat world: nodes on " << kNatNodeSubnet << " in every cluster, behind their routers):\n";
    for (const auto& c : lab.clusters) {
      auto active = active_gateway(lab, c);
      out << "  " << c.id << "  router " << c.router_ip << "  ";
      if (!active) out << "no active gateway (" << active.error().message() << ")";
      for (const auto& n : c.nodes) {
        if (!n.gateway) continue;
        const bool killed = std::find(s.killed_gateways.begin(), s.killed_gateways.end(), n.node_name) != s.killed_gateways.end();
        out << "  " << n.node_name << " " << n.public_endpoint << " "
            << (active && active->node == n.node_name ? "ACTIVE (epoch " + std::to_string(active->epoch) + ")" : "standby")
            << (killed ? " KILLED" : "");
      }
      out << "\n";
    }
  }
  // And what only the lab can show: each node's WireGuard peers, read on the node.
  out << "\nWireGuard peers (wg show, inside the nodes):\n";
  for (const auto& c : lab.clusters) {
    for (const auto& n : c.nodes) {
      auto pod = s.pod_ips.find(n.node_name);
      out << "  node " << n.node_name << "  " << n.underlay_ip << "  " << n.pod_name << " "
          << (pod == s.pod_ips.end() ? "-" : pod->second) << "\n";
      auto dump = in_netns(n.netns, {"wg", "show", n.wg_interface, "dump"});
      if (!dump.ok()) {
        out << "    " << n.wg_interface << ": " << dump.summary() << "\n";
        ++problems;
        continue;
      }
      std::istringstream in(dump.out);
      std::string line;
      bool first = true;
      int peers = 0;
      while (std::getline(in, line)) {
        if (first) {  // the device itself: private key, public key, port, fwmark
          first = false;
          continue;
        }
        std::istringstream f(line);
        std::string key, psk, endpoint, allowed;
        long long handshake = 0, rx = 0, tx = 0;
        f >> key >> psk >> endpoint >> allowed >> handshake >> rx >> tx;
        ++peers;
        out << "    peer " << key.substr(0, 10) << "...  " << endpoint << "  allowed " << allowed << "  handshake "
            << age(handshake) << "  rx " << rx << " tx " << tx << "\n";
      }
      if (peers == 0) out << "    " << n.wg_interface << ": no peers\n";
    }
  }
  return problems == 0 ? 0 : 1;
}

int lab_restart(const LabOptions& options, const std::string& process, bool hard, std::ostream& out,
                std::ostream& err) {
  ignore_sigpipe();
  if (geteuid() != 0) {
    err << "cwctl lab restart needs root (run it with sudo)\n";
    return 1;
  }
  auto loaded = load_lab(options.name);
  if (!loaded) {
    err << "cwctl lab restart: " << loaded.error().message() << "\n";
    return 1;
  }
  auto& s = loaded->state;
  auto it = s.processes.find(process);
  if (it == s.processes.end()) {
    err << "cwctl lab restart: no process \"" << process << "\"; the lab runs:";
    for (const auto& [name, p] : s.processes) err << " " << name;
    err << "\n";
    return 2;
  }
  auto& p = it->second;
  // Only the process the lab started is signalled: pid and start time, since the pid alone may
  // belong to an unrelated process by now.
  std::string before;
  if (same_process(p.started())) {
    if (hard) signal_process(p.started(), SIGKILL);
    const auto left = stop_processes({p.started()}, hard ? std::chrono::seconds(2) : std::chrono::seconds(5));
    if (!left.empty()) {
      err << "cwctl lab restart: " << process << " (pid " << p.pid << ") would not die\n";
      return 1;
    }
    before = std::string(hard ? "killed" : "stopped") + " pid " + std::to_string(p.pid);
  } else {
    before = "was not running (pid " + std::to_string(p.pid) + " is gone or another process now)";
  }
  auto started = spawn_background(p.argv, loaded->lab.log_path(process));
  if (!started) {
    err << "cwctl lab restart: " << started.error().message() << "\n";
    return 1;
  }
  out << process << ": " << before << ", started pid " << started->pid << "\n";
  p.pid = static_cast<int>(started->pid);
  p.start_ticks = started->start_ticks;
  if (auto r = write_pid_file(loaded->lab, process, *started); !r) {
    err << "cwctl lab restart: " << r.error().message() << "\n";
    return 1;
  }
  if (auto r = save_state(loaded->lab, s); !r) {
    err << "cwctl lab restart: " << r.error().message() << "\n";
    return 1;
  }
  return 0;
}

int lab_kubectl(const LabOptions& options, const std::string& cluster, const std::vector<std::string>& args,
                std::ostream& out, std::ostream& err) {
  if (geteuid() != 0) {
    err << "cwctl lab kubectl needs root: the API servers listen inside the lab's network namespace "
           "(run it with sudo)\n";
    return 1;
  }
  auto loaded = load_lab(options.name);
  if (!loaded) {
    err << "cwctl lab kubectl: " << loaded.error().message() << "\n";
    return 1;
  }
  const auto* c = loaded->lab.cluster(cluster);
  if (c == nullptr) {
    err << "cwctl lab kubectl: no cluster \"" << cluster << "\" (c1 ... c" << loaded->lab.clusters.size() << ")\n";
    return 2;
  }
  std::vector<std::string> argv = {"ip", "netns", "exec", loaded->lab.underlay_netns, "kubectl", "--kubeconfig",
                                   loaded->lab.kubeconfig(*c)};
  argv.insert(argv.end(), args.begin(), args.end());
  // kubectl may be interactive (edit, logs -f): hand it the terminal rather than capturing.
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  out.flush();
  std::signal(SIGPIPE, SIG_DFL);  // as any child of cwctl gets it (process.cc)
  execvp(cargv[0], cargv.data());
  err << "cwctl lab kubectl: cannot run ip: " << std::strerror(errno) << "\n";
  return 1;
}

}  // namespace cw::lab
