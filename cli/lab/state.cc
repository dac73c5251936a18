#include "cli/lab/state.h"

#include <cstdio>
#include <fstream>
#include <sstream>

namespace cw::lab {

nlohmann::json to_json(const LabState& s) {
  nlohmann::json procs = nlohmann::json::object();
  for (const auto& [name, p] : s.processes) procs[name] = {{"pid", p.pid}, {"argv", p.argv}};
  return {{"name", s.name},         {"clusters", s.clusters}, {"nodes", s.nodes},
          {"phase", s.phase},       {"binDir", s.bin_dir},    {"backend", s.backend},
          {"dns", s.dns},           {"podIPs", s.pod_ips},    {"nodeCIDRs", s.node_cidrs},
          {"processes", procs},     {"convergenceMs", s.convergence_ms}, {"notes", s.notes}};
}

Result<LabState> state_from_json(const nlohmann::json& j) {
  try {
    LabState s;
    s.name = j.at("name").get<std::string>();
    s.clusters = j.at("clusters").get<int>();
    s.nodes = j.at("nodes").get<int>();
    s.phase = j.value("phase", "");
    s.bin_dir = j.value("binDir", "");
    s.backend = j.value("backend", "");
    s.dns = j.value("dns", false);
    s.pod_ips = j.value("podIPs", std::map<std::string, std::string>{});
    s.node_cidrs = j.value("nodeCIDRs", std::map<std::string, std::string>{});
    s.convergence_ms = j.value("convergenceMs", -1LL);
    s.notes = j.value("notes", "");
    if (j.contains("processes") && j["processes"].is_object()) {
      for (auto it = j["processes"].begin(); it != j["processes"].end(); ++it) {
        s.processes[it.key()] = {it.key(), it->at("pid").get<int>(), it->at("argv").get<std::vector<std::string>>()};
      }
    }
    return s;
  } catch (const nlohmann::json::exception& e) {
    return Error(ErrorCode::kInvalidArgument, std::string("state file: ") + e.what());
  }
}

Result<LabState> load_state(const LabLayout& lab) {
  const std::string path = lab.state_dir + "/state.json";
  std::ifstream in(path);
  if (!in) {
    return Error(ErrorCode::kNotFound,
                 "no lab \"" + lab.name + "\" (" + path + " is missing): start one with `cwctl lab up`");
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return Error(ErrorCode::kInvalidArgument, path + " is not JSON");
  return state_from_json(j);
}

Result<void> save_state(const LabLayout& lab, const LabState& s) {
  const std::string path = lab.state_dir + "/state.json";
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << to_json(s).dump(2) << "\n";
    if (!out) return Error(ErrorCode::kInternal, "cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return Error(ErrorCode::kInternal, "cannot rename " + tmp);
  return ok_result();
}

}  // namespace cw::lab
