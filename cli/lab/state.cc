#include "cli/lab/state.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/lab/text.h"

namespace cw::lab {

nlohmann::json to_json(const LabState& s) {
  nlohmann::json procs = nlohmann::json::object();
  for (const auto& [name, p] : s.processes) {
    procs[name] = {{"pid", p.pid}, {"startTicks", p.start_ticks}, {"argv", p.argv}};
  }
  return {{"name", s.name},         {"clusters", s.clusters}, {"nodes", s.nodes},
          {"phase", s.phase},       {"binDir", s.bin_dir},    {"backend", s.backend},
          {"dns", s.dns},           {"podIPs", s.pod_ips},    {"nodeCIDRs", s.node_cidrs},
          {"processes", procs},     {"convergenceMs", s.convergence_ms}, {"notes", s.notes},
          {"cni", s.cni},           {"webIPs", s.web_ips},    {"ipFamily", s.ip_family}, {"podIPs6", s.pod_ips6},           {"underlayMTU", s.underlay_mtu}, {"impairments", s.impairments},
          {"world", s.world},       {"gateways", s.gateways}, {"killedGateways", s.killed_gateways}};
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
    s.web_ips = j.value("webIPs", std::map<std::string, std::string>{});
    s.ip_family = j.value("ipFamily", "ipv4");
    s.pod_ips6 = j.value("podIPs6", std::map<std::string, std::string>{});
    s.cni = j.value("cni", "clusterwire");  // labs made before worlds existed
    s.underlay_mtu = j.value("underlayMTU", 1500);
    s.impairments = j.value("impairments", std::vector<std::string>{});
    s.world = j.value("world", "flat");
    s.gateways = j.value("gateways", 0);
    s.killed_gateways = j.value("killedGateways", std::vector<std::string>{});
    if (j.contains("processes") && j["processes"].is_object()) {
      for (auto it = j["processes"].begin(); it != j["processes"].end(); ++it) {
        s.processes[it.key()] = {it.key(), it->at("pid").get<int>(), it->value("startTicks", 0ULL),
                                 it->at("argv").get<std::vector<std::string>>()};
      }
    }
    return s;
  } catch (const nlohmann::json::exception& e) {
    return Error(ErrorCode::kInvalidArgument, std::string("state file: ") + e.what());
  }
}

Result<LabState> load_state(const LabLayout& lab) {
  const std::string path = lab.state_dir + "/state.json";
  auto text = read_file(path);
  if (!text) {
    if (text.error().code() == ErrorCode::kNotFound) {
      return Error(ErrorCode::kNotFound,
                   "no lab \"" + lab.name + "\" (" + path + " is missing): start one with `cwctl lab up`");
    }
    if (text.error().code() == ErrorCode::kPermissionDenied) {
      return Error(ErrorCode::kPermissionDenied, "cannot read " + path + ": the lab's state needs root (run it with sudo)");
    }
    return text.error().with_context("reading the lab's state");
  }
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded()) return Error(ErrorCode::kInvalidArgument, path + " is not JSON");
  return state_from_json(j);
}

Result<void> save_state(const LabLayout& lab, const LabState& s) {
  const std::string path = lab.state_dir + "/state.json";
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << to_json(s).dump(2) << "\n";
    out.flush();
    if (!out) return Error(ErrorCode::kInternal, "cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return Error(ErrorCode::kInternal, "cannot rename " + tmp);
  return ok_result();
}

Result<LoadedLab> load_lab(const std::string& name) {
  auto probe = make_layout(name, 2, 1);  // only the name matters for where the state is
  if (!probe) return probe.error();
  auto state = load_state(*probe);
  if (!state) return state.error();
  auto lab = make_layout(name, state->clusters, state->nodes, state->world == "nat", state->gateways);
  if (!lab) return lab.error().with_context(probe->state_dir + "/state.json");
  return LoadedLab{std::move(*lab), std::move(*state)};
}

Result<void> write_pid_file(const LabLayout& lab, const std::string& process, const Started& p) {
  const std::string path = lab.pid_path(process);
  std::ofstream out(path, std::ios::trunc);
  out << p.pid << " " << p.start_ticks << "\n";
  out.flush();
  if (!out) return Error(ErrorCode::kInternal, "cannot write " + path);
  return ok_result();
}

std::vector<Started> read_pid_files(const std::string& state_dir) {
  namespace fs = std::filesystem;
  std::vector<Started> out;
  std::error_code ec;
  const std::string dir = state_dir + "/pids";
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& f : fs::directory_iterator(dir, ec)) {
    std::istringstream in(read_file_or_empty(f.path().string()));
    long pid = 0;
    unsigned long long ticks = 0;
    if (in >> pid >> ticks && pid > 1 && ticks > 0) out.push_back({static_cast<pid_t>(pid), ticks});
  }
  return out;
}

}  // namespace cw::lab
