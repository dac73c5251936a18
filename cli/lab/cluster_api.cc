#include "cli/lab/cluster_api.h"

#include <cstdio>
#include <sstream>
#include <thread>

namespace cw::lab {

CommandResult kubectl(const LabLayout& lab, const ClusterLayout& cluster, const std::vector<std::string>& args,
                      const std::string& input) {
  std::vector<std::string> argv = {"ip", "netns", "exec", lab.underlay_netns, "kubectl", "--kubeconfig",
                                   lab.kubeconfig(cluster), "--request-timeout=10s"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, {.timeout = std::chrono::seconds(20), .input = input});
}

Result<void> kubectl_apply(const LabLayout& lab, const ClusterLayout& cluster, const nlohmann::json& objects) {
  const nlohmann::json list = {{"apiVersion", "v1"}, {"kind", "List"}, {"items", objects}};
  auto r = kubectl(lab, cluster, {"apply", "--validate=false", "-f", "-"}, list.dump());
  if (!r.ok()) return Error(ErrorCode::kUnavailable, "kubectl apply in " + cluster.id + ": " + r.summary());
  return ok_result();
}

Result<nlohmann::json> kubectl_get_json(const LabLayout& lab, const ClusterLayout& cluster,
                                        const std::vector<std::string>& what) {
  std::vector<std::string> args = {"get"};
  args.insert(args.end(), what.begin(), what.end());
  args.insert(args.end(), {"-o", "json"});
  auto r = kubectl(lab, cluster, args);
  if (!r.ok()) return Error(ErrorCode::kUnavailable, "kubectl get in " + cluster.id + ": " + r.summary());
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (j.is_discarded()) return Error(ErrorCode::kUnavailable, "kubectl get in " + cluster.id + ": not JSON");
  return j;
}

std::vector<std::string> netns_exec(const std::string& netns, std::vector<std::string> argv) {
  std::vector<std::string> out = {"ip", "netns", "exec", netns};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

CommandResult in_netns(const std::string& netns, std::vector<std::string> argv, std::chrono::milliseconds timeout,
                       const std::string& input) {
  return run(netns_exec(netns, std::move(argv)), {.timeout = timeout, .input = input});
}

bool wait_until(const std::function<bool()>& check, std::chrono::milliseconds deadline,
                std::chrono::milliseconds every) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (true) {
    if (check()) return true;
    if (std::chrono::steady_clock::now() >= end || interrupt_signal() != 0) return false;
    std::this_thread::sleep_for(every);
  }
}

Result<std::vector<std::string>> list_netns() {
  std::vector<std::string> out;
  auto r = run({"ip", "netns", "list"}, {.timeout = std::chrono::seconds(10)});
  if (!r.ok()) return Error(ErrorCode::kUnavailable, "ip netns list: " + r.summary());
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    const auto sp = line.find(' ');
    const std::string name = line.substr(0, sp);
    if (!name.empty()) out.push_back(name);
  }
  return out;
}

Result<std::vector<pid_t>> netns_pids(const std::string& netns) {
  std::vector<pid_t> out;
  auto r = run({"ip", "netns", "pids", netns}, {.timeout = std::chrono::seconds(10)});
  if (!r.ok()) return Error(ErrorCode::kUnavailable, "ip netns pids " + netns + ": " + r.summary());
  std::istringstream in(r.out);
  long pid = 0;
  while (in >> pid) {
    if (pid > 1) out.push_back(static_cast<pid_t>(pid));
  }
  return out;
}

void Progress::begin(const std::string& what) {
  ++step_;
  noted_ = false;
  started_ = std::chrono::steady_clock::now();
  char head[32];
  std::snprintf(head, sizeof head, "[%2d/%d] ", step_, total_);
  out_ << head << what << " ... " << std::flush;
}

void Progress::end(const std::string& detail) {
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  char tail[32];
  std::snprintf(tail, sizeof tail, " (%.1f s)", s);
  out_ << (noted_ ? "        " : "") << detail << tail << "\n" << std::flush;
}

void Progress::note(const std::string& line) {
  out_ << (noted_ ? "" : "\n") << "        " << line << "\n" << std::flush;
  noted_ = true;
}

}  // namespace cw::lab
