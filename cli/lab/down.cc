// `cwctl lab down`: removes everything a lab made, found twice over: from its state directory
// and by its names (`ip netns list`), so that it also works after `up` crashed before writing
// anything. Only names of this lab's scheme are touched (layout.h): namespaces "<lab>-...",
// UAPI sockets "cw<hash>c<i>n<j>.sock", /etc/netns/<lab namespace>, /run/clusterwire-lab/<lab>.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>

#include "cli/lab/cluster_api.h"
#include "cli/lab/lab.h"
#include "cli/lab/layout.h"
#include "cli/lab/process.h"

namespace cw::lab {
namespace {
namespace fs = std::filesystem;

int rank(const std::string& ns) {  // pods first, then nodes, the underlay last
  if (ns.ends_with("-pod")) return 0;
  if (ns.ends_with("-underlay")) return 2;
  return 1;
}
}  // namespace

int lab_down(const LabOptions& options, std::ostream& out, std::ostream& err) {
  if (auto r = validate_name(options.name); !r) {
    err << "cwctl lab down: " << r.error().message() << "\n";
    return 2;
  }
  if (geteuid() != 0) {
    err << "cwctl lab down needs root: it deletes network namespaces (run it with sudo)\n";
    return 1;
  }
  const std::string& lab = options.name;
  const std::string state_dir = std::string(kStateRoot) + "/" + lab;
  std::vector<std::string> namespaces;
  for (const auto& ns : list_netns()) {
    if (is_lab_netns(lab, ns)) namespaces.push_back(ns);
  }
  std::sort(namespaces.begin(), namespaces.end(),
            [](const std::string& a, const std::string& b) { return rank(a) != rank(b) ? rank(a) < rank(b) : a < b; });

  // Processes: every process inside a lab namespace (whoever started it: wireguard-go may have
  // been started by a node agent), plus the recorded pids that are still ours.
  std::set<pid_t> pids;
  for (const auto& ns : namespaces) {
    for (pid_t p : netns_pids(ns)) pids.insert(p);
  }
  std::error_code ec;
  if (fs::is_directory(state_dir + "/pids", ec)) {
    for (const auto& f : fs::directory_iterator(state_dir + "/pids", ec)) {
      std::ifstream in(f.path());
      long pid = 0;
      // A recorded pid is only trusted while its command line still names this lab's state
      // directory or namespaces: after a reboot the number may belong to anyone.
      if (in >> pid && pid > 1 && pid_alive(static_cast<pid_t>(pid))) {
        const std::string cmd = pid_cmdline(static_cast<pid_t>(pid));
        if (cmd.find(state_dir) != std::string::npos || cmd.find(" " + lab + "-") != std::string::npos) {
          pids.insert(static_cast<pid_t>(pid));
        }
      }
    }
  }
  if (!pids.empty()) {
    out << "stopping " << pids.size() << " processes ... " << std::flush;
    auto left = stop_pids(std::vector<pid_t>(pids.begin(), pids.end()), std::chrono::seconds(5));
    out << (left.empty() ? "ok" : std::to_string(left.size()) + " would not die") << "\n";
  }
  int failures = 0;
  for (const auto& ns : namespaces) {
    auto r = run({"ip", "netns", "del", ns});
    if (!r.ok()) {
      err << "ip netns del " << ns << ": " << r.summary() << "\n";
      ++failures;
    }
  }
  if (!namespaces.empty()) out << "deleted " << namespaces.size() << " namespaces (and every link in them)\n";
  for (const auto& ns : namespaces) fs::remove_all("/etc/netns/" + ns, ec);
  if (fs::is_directory("/etc/netns", ec)) {  // also the resolv.conf of namespaces already gone
    for (const auto& d : fs::directory_iterator("/etc/netns", ec)) {
      if (is_lab_netns(lab, d.path().filename().string())) fs::remove_all(d.path(), ec);
    }
  }
  int sockets = 0;
  if (fs::is_directory("/var/run/wireguard", ec)) {
    for (const auto& f : fs::directory_iterator("/var/run/wireguard", ec)) {
      if (is_lab_socket(lab, f.path().filename().string()) && fs::remove(f.path(), ec)) ++sockets;
    }
  }
  if (sockets > 0) out << "removed " << sockets << " stale WireGuard UAPI sockets\n";
  if (fs::exists(state_dir, ec)) {
    fs::remove_all(state_dir, ec);
    if (ec) {
      err << "removing " << state_dir << ": " << ec.message() << "\n";
      ++failures;
    } else {
      out << "removed " << state_dir << "\n";
    }
  }
  if (namespaces.empty() && pids.empty() && sockets == 0) out << "lab " << lab << ": nothing left to remove\n";
  if (failures == 0) out << "lab " << lab << " is down\n";
  return failures == 0 ? 0 : 1;
}

}  // namespace cw::lab
