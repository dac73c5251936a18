// What a running lab remembers between cwctl invocations: <state dir>/state.json.
// `down` never depends on it (it also finds the lab by its names), `verify`, `status` and
// `restart` do.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "cli/lab/layout.h"
#include "common/base/result.h"

namespace cw::lab {

struct LabProcess {
  std::string name;   // "operator-c1", "node-agent-c1-n2", ...
  int pid = 0;
  std::vector<std::string> argv;  // as started (with `ip netns exec` in front), for restarts
};

struct LabState {
  std::string name;
  int clusters = 0;
  int nodes = 0;
  std::string phase;        // creating, up
  std::string bin_dir;
  std::string backend;      // uapi (wireguard-go) or kernel
  bool dns = false;         // cw-dns was started
  std::map<std::string, std::string> pod_ips;     // node name -> its pod's IPv4 address
  std::map<std::string, std::string> node_cidrs;  // node name -> pod CIDR the operator gave it
  std::map<std::string, LabProcess> processes;
  long long convergence_ms = -1;  // last ClusterPeering applied -> first cross-cluster ping reply
  std::string notes;              // what up could not do (e.g. cw-dns missing)
};

nlohmann::json to_json(const LabState& s);
Result<LabState> state_from_json(const nlohmann::json& j);
Result<LabState> load_state(const LabLayout& lab);
Result<void> save_state(const LabLayout& lab, const LabState& s);  // atomically (rename)

}  // namespace cw::lab
