// `cwctl lab down`: removes everything a lab made, found twice over: from its state directory
// and by its names (`ip netns list`), so that it also works after `up` crashed before writing
// anything. Only names of this lab's scheme are touched (layout.h): namespaces "<lab>-...",
// UAPI sockets "cw<hash6>c<i>n<j>.sock", /etc/netns/<lab namespace>, /run/clusterwire-lab/<lab>.
#include "cli/lab/down.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "cli/lab/cluster_api.h"
#include "cli/lab/lab.h"
#include "cli/lab/layout.h"
#include "cli/lab/process.h"
#include "cli/lab/state.h"
#include "cli/lab/text.h"

namespace cw::lab {
namespace {
namespace fs = std::filesystem;

int rank(const std::string& ns) {  // pods first, then nodes, the underlay last
  if (ns.ends_with("-pod")) return 0;
  if (ns.ends_with("-underlay")) return 2;
  return 1;
}

enum class SocketUse { kUnused, kListening, kUnknown };

// Does a process still serve this UAPI socket? A dead wireguard-go leaves its socket file
// behind, and connecting to it is refused; a live one (another lab's, should two names hash
// alike) accepts.
SocketUse socket_use(const std::string& path, std::string& why) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    why = std::string("socket: ") + std::strerror(errno);
    return SocketUse::kUnknown;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    close(fd);
    why = "path too long";
    return SocketUse::kUnknown;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int rc = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int e = errno;
  close(fd);
  if (rc == 0) return SocketUse::kListening;
  if (e == ECONNREFUSED || e == ENOENT) return SocketUse::kUnused;
  why = std::strerror(e);
  return SocketUse::kUnknown;
}

}  // namespace

int remove_lab(const std::string& lab, std::ostream& out, std::ostream& err) {
  const std::string state_dir = state_dir_for(lab);
  std::vector<std::string> problems;  // each one keeps the state directory
  std::vector<std::string> namespaces;
  if (auto all = list_netns(); !all) {
    problems.push_back(all.error().message());
  } else {
    for (const auto& ns : *all) {
      if (is_lab_netns(lab, ns)) namespaces.push_back(ns);
    }
  }
  std::sort(namespaces.begin(), namespaces.end(),
            [](const std::string& a, const std::string& b) { return rank(a) != rank(b) ? rank(a) < rank(b) : a < b; });

  // Processes: every process inside a lab namespace is the lab's by construction (whoever
  // started it: a shell a user opened there too), plus the recorded ones that are still the
  // processes the lab started (pid and start time: a pid alone may have been reused).
  std::map<pid_t, Started> processes;
  for (const auto& ns : namespaces) {
    auto pids = netns_pids(ns);
    if (!pids) {
      problems.push_back(pids.error().message());
      continue;
    }
    for (pid_t p : *pids) {
      const Started s = identify(p);
      if (s.start_ticks != 0 && p != getpid()) processes[p] = s;
    }
  }
  for (const auto& s : read_pid_files(state_dir)) {
    if (same_process(s)) processes[s.pid] = s;
  }
  bool stuck = false;
  if (!processes.empty()) {
    std::vector<Started> list;
    for (const auto& [pid, s] : processes) list.push_back(s);
    out << "stopping " << list.size() << " processes ... " << std::flush;
    const auto left = stop_processes(list, std::chrono::seconds(5));
    if (left.empty()) {
      out << "ok\n";
    } else {
      out << left.size() << " would not die\n";
      std::string pids;
      for (const auto& s : left) pids += " " + std::to_string(s.pid);
      problems.push_back("processes that would not die (even with SIGKILL):" + pids +
                         "; the namespaces are kept so that another down finds them");
      stuck = true;
    }
  }
  int deleted = 0;
  if (!stuck) {
    for (const auto& ns : namespaces) {
      auto r = run({"ip", "netns", "del", ns}, {.timeout = std::chrono::seconds(15)});
      if (!r.ok()) {
        problems.push_back("ip netns del " + ns + ": " + r.summary());
      } else {
        ++deleted;
      }
    }
    if (deleted > 0) out << "deleted " << deleted << " namespaces (and every link in them)\n";
  }
  std::error_code ec;
  if (fs::is_directory("/etc/netns", ec)) {  // also the resolv.conf of namespaces already gone
    for (const auto& d : fs::directory_iterator("/etc/netns", ec)) {
      const std::string ns = d.path().filename().string();
      if (!is_lab_netns(lab, ns)) continue;
      if (stuck && std::find(namespaces.begin(), namespaces.end(), ns) != namespaces.end()) continue;
      std::error_code rm;
      fs::remove_all(d.path(), rm);
      if (rm) problems.push_back("removing " + d.path().string() + ": " + rm.message());
    }
  }
  int sockets = 0;
  if (fs::is_directory("/var/run/wireguard", ec)) {
    for (const auto& f : fs::directory_iterator("/var/run/wireguard", ec)) {
      const std::string file = f.path().filename().string();
      if (!is_lab_socket(lab, file)) continue;
      std::string why;
      switch (socket_use(f.path().string(), why)) {
        case SocketUse::kUnused: {
          std::error_code rm;
          if (fs::remove(f.path(), rm)) ++sockets;
          if (rm) problems.push_back("removing " + f.path().string() + ": " + rm.message());
          break;
        }
        case SocketUse::kListening:
          // Every process of this lab is stopped: a live one is another lab's whose name hashes alike.
          err << "left " << f.path().string() << ": a live process serves it (another lab's WireGuard device "
              << "with the same interface name)\n";
          break;
        case SocketUse::kUnknown:
          problems.push_back("cannot tell whether " + f.path().string() + " is in use (" + why + "): left");
          break;
      }
    }
  }
  if (sockets > 0) out << "removed " << sockets << " stale WireGuard UAPI sockets\n";
  const bool had_state = fs::exists(state_dir, ec);
  if (problems.empty() && had_state) {
    std::error_code rm;
    fs::remove_all(state_dir, rm);
    if (rm) {
      problems.push_back("removing " + state_dir + ": " + rm.message());
    } else {
      out << "removed " << state_dir << "\n";
    }
  }
  if (!problems.empty()) {
    for (const auto& p : problems) err << "cwctl lab down: " << p << "\n";
    err << "lab " << lab << " is NOT fully removed" << (had_state ? " (" + state_dir + " is kept)" : "")
        << "; fix the above and run `cwctl lab --name " << lab << " down` again\n";
    return 1;
  }
  if (namespaces.empty() && processes.empty() && sockets == 0 && !had_state) {
    out << "lab " << lab << ": nothing left to remove\n";
  }
  out << "lab " << lab << " is down\n";
  return 0;
}

int lab_down(const LabOptions& options, std::ostream& out, std::ostream& err) {
  ignore_sigpipe();
  if (auto r = validate_name(options.name); !r) {
    err << "cwctl lab down: " << r.error().message() << "\n";
    return 2;
  }
  if (geteuid() != 0) {
    err << "cwctl lab down needs root: it deletes network namespaces (run it with sudo)\n";
    return 1;
  }
  return remove_lab(options.name, out, err);
}

}  // namespace cw::lab
