// The lab's view of its clusters and namespaces: kubectl against a cluster's lab API server
// (run inside the underlay namespace, where the servers listen), and commands inside a
// namespace. Shared by up, verify, status and restart.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "cli/lab/layout.h"
#include "cli/mesh/mesh.h"
#include "cli/lab/process.h"
#include "common/base/result.h"

namespace cw::lab {

CommandResult kubectl(const LabLayout& lab, const ClusterLayout& cluster, const std::vector<std::string>& args,
                      const std::string& input = "");
// kubectl apply -f - of the given objects (a List), validated by the server as kubectl asks
// (fieldValidation=Strict: an unknown field fails the apply).
Result<void> kubectl_apply(const LabLayout& lab, const ClusterLayout& cluster, const nlohmann::json& objects);
Result<nlohmann::json> kubectl_get_json(const LabLayout& lab, const ClusterLayout& cluster,
                                        const std::vector<std::string>& what);

// The clusterset as `cwctl status` sees it (cli/mesh/mesh.h), read from the lab's API servers:
// what `lab status` and `lab verify` print, through the same code as for real clusters.
mesh::MeshView lab_mesh_view(const LabLayout& lab);

// A command inside a network namespace, joined with setns (RunOptions::netns): no mount
// namespace, so /etc/netns/<ns>/resolv.conf does not apply (name a server, as `dig @...`).
CommandResult in_netns(const std::string& netns, std::vector<std::string> argv,
                       std::chrono::milliseconds timeout = std::chrono::seconds(15), const std::string& input = "");
// One TCP exchange from inside a network namespace, without a process: the calling thread joins
// the namespace (setns) only to make the socket, then returns to its own. Connects to ip:port,
// sends `input`, half-closes, and returns everything received until the server closes.
// kUnavailable (with the reason) when it cannot connect or the deadline passes first.
Result<std::string> tcp_exchange(const std::string& netns, const std::string& ip, int port, const std::string& input,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10));
// The argv prefix that runs a command inside a namespace: {"ip", "netns", "exec", netns}.
std::vector<std::string> netns_exec(const std::string& netns, std::vector<std::string> argv);

// Polls until check() is true or the deadline passes (or cwctl is interrupted: see
// catch_interrupts); checks every `every`.
bool wait_until(const std::function<bool()>& check, std::chrono::milliseconds deadline,
                std::chrono::milliseconds every = std::chrono::milliseconds(100));

// `ip netns list`, names only; an error when ip fails.
Result<std::vector<std::string>> list_netns();

// `ip netns pids`: every process living in that namespace; an error when ip fails.
Result<std::vector<pid_t>> netns_pids(const std::string& netns);

// Progress lines for long steps: "[ 3/12] starting the operators ... ok (0.4 s)".
class Progress {
 public:
  Progress(std::ostream& out, int total) : out_(out), total_(total) {}
  void begin(const std::string& what);
  void end(const std::string& detail = "ok");
  void note(const std::string& line);  // an indented line under the current step

 private:
  std::ostream& out_;
  int total_;
  int step_ = 0;
  bool noted_ = false;  // a note broke the step's line: end() starts a new one
  std::chrono::steady_clock::time_point started_;
};

}  // namespace cw::lab
