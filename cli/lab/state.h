// What a running lab remembers between cwctl invocations: <state dir>/state.json, and one
// pidfile per process (<state dir>/pids/<process>.pid: "<pid> <start ticks>").
// `down` never depends on state.json (it also finds the lab by its names), `verify`, `status`
// and `restart` do.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "cli/lab/layout.h"
#include "cli/lab/process.h"
#include "common/base/result.h"

namespace cw::lab {

struct LabProcess {
  std::string name;   // "operator-c1", "node-agent-c1-n2", ...
  int pid = 0;
  unsigned long long start_ticks = 0;  // with pid, names the process (process.h: Started)
  std::vector<std::string> argv;  // as started (with `ip netns exec` in front), for restarts
  Started started() const { return {static_cast<pid_t>(pid), start_ticks}; }
};

struct LabState {
  std::string name;
  int clusters = 0;
  int nodes = 0;
  std::string phase;        // creating, up
  std::string bin_dir;
  std::string backend;      // uapi (wireguard-go) or kernel
  std::string cni = "clusterwire";  // who routes inside a cluster: bird, vxlan, clusterwire (world.h)
  int underlay_mtu = 1500;
  std::vector<std::string> impairments;  // active faults, as `cwctl lab impair` took them: "partition c1 c2"
  bool dns = false;         // cw-dns was started
  std::string ip_family = "ipv4";  // of the pods: ipv4, ipv6 or dual (labs made before dual-stack: ipv4)
  std::string world = "flat";      // flat (one underlay) or nat (docs/lab.md)
  int gateways = 0;                // the nat world: gateway candidates per cluster
  std::vector<std::string> killed_gateways;  // `impair kill-gateway`: nodes made dead
  std::map<std::string, std::string> pod_ips;     // node name -> its pod's IPv4 address
  std::map<std::string, std::string> pod_ips6;    // node name -> its pod's IPv6 address
  std::map<std::string, std::string> node_cidrs;  // node name -> pod CIDR the operator gave it
  std::map<std::string, std::string> web_ips;     // cluster -> the ClusterIP of its demo Service web
  std::map<std::string, LabProcess> processes;
  long long convergence_ms = -1;  // last ClusterPeering applied -> first ping reply c1 -> last cluster
  std::string notes;              // what up could not do (e.g. cw-dns missing)
};

nlohmann::json to_json(const LabState& s);
Result<LabState> state_from_json(const nlohmann::json& j);
// kNotFound: no such lab; kPermissionDenied: not readable (not root).
Result<LabState> load_state(const LabLayout& lab);
Result<void> save_state(const LabLayout& lab, const LabState& s);  // atomically (rename)

// A lab as verify, status, restart and kubectl see it: its state and the layout of its size.
struct LoadedLab {
  LabLayout lab;
  LabState state;
};
Result<LoadedLab> load_lab(const std::string& name);

// <state dir>/pids/<process>.pid: "<pid> <start ticks>\n".
Result<void> write_pid_file(const LabLayout& lab, const std::string& process, const Started& p);
// Every pidfile of the lab's state directory that names a process (running or not); files of
// another format (no start time) are left out: their pid cannot be trusted.
std::vector<Started> read_pid_files(const std::string& state_dir);

}  // namespace cw::lab
