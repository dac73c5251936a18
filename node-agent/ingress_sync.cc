#include "node-agent/ingress_sync.h"

#include <algorithm>
#include <atomic>
#include <mutex>

#include "common/kube/informer.h"
#include "common/kube/json_fields.h"
#include "common/kube/mcs_api.h"
#include "node-agent/ingress_table.h"

namespace cw::agent {
namespace {

using json = nlohmann::json;

using kube::field;
using kube::strings;
using kube::text;

}  // namespace

std::optional<LocalPod> local_pod(const json& pod) {
  if (field(field(pod, "spec"), "hostNetwork") == true) return std::nullopt;
  const std::string phase = text(field(pod, "status"), "phase");
  if (phase == "Succeeded" || phase == "Failed") return std::nullopt;
  LocalPod p;
  p.ns = text(field(pod, "metadata"), "namespace");
  p.name = text(field(pod, "metadata"), "name");
  const json& labels = field(field(pod, "metadata"), "labels");
  if (labels.is_object()) {
    for (auto it = labels.begin(); it != labels.end(); ++it) {
      if (it->is_string()) p.labels[it.key()] = it->get<std::string>();
    }
  }
  const json& ips = field(field(pod, "status"), "podIPs");
  if (ips.is_array()) {
    for (const auto& i : ips) {
      if (auto a = net::IpAddress::parse(text(i, "ip"))) p.ips.push_back(*a);
    }
  }
  if (p.ips.empty()) {
    if (auto a = net::IpAddress::parse(text(field(pod, "status"), "podIP"))) p.ips.push_back(*a);
  }
  if (p.ips.empty()) return std::nullopt;
  return p;
}

IngressPolicy parse_ingress_policy(const json& policy, std::vector<std::string>& problems) {
  IngressPolicy out;
  out.ns = text(field(policy, "metadata"), "namespace");
  out.name = text(field(policy, "metadata"), "name");
  const json& spec = field(policy, "spec");
  auto selector = kube::LabelSelector::from_json(field(spec, "podSelector"));
  if (!selector) {
    problems.push_back("spec.podSelector: " + selector.error().message() + "; the policy selects no pod");
    return out;  // no rules: nothing allowed by it
  }
  out.pods = *selector;
  const json& from = field(spec, "from");
  if (!from.is_array()) return out;
  for (std::size_t i = 0; i < from.size(); ++i) {
    const json& item = from[i];
    IngressRule rule;
    rule.all_clusters = field(item, "allClusters") == true;
    rule.clusters = strings(field(item, "clusters"));
    rule.namespaces = strings(field(item, "namespaces"));
    const json& ports = field(item, "ports");
    if (ports.is_array()) {
      for (std::size_t j = 0; j < ports.size(); ++j) {
        const json& p = ports[j];
        auto proto = parse_protocol(field(p, "protocol").is_string() ? text(p, "protocol") : "TCP");
        const json& port = field(p, "port");
        const json& end = field(p, "endPort");
        const std::string where = "spec.from[" + std::to_string(i) + "].ports[" + std::to_string(j) + "]";
        if (!proto || !port.is_number_integer() || port.get<int>() < 1 || port.get<int>() > 65535) {
          problems.push_back(where + ": not a protocol and port; left out");
          continue;
        }
        const int first = port.get<int>();
        int last = first;
        if (end.is_number_integer()) {
          last = end.get<int>();
          if (last < first || last > 65535) {
            problems.push_back(where + ": endPort " + std::to_string(last) + " is below port " +
                               std::to_string(first) + "; left out");
            continue;
          }
        }
        rule.ports.push_back({*proto, static_cast<std::uint16_t>(first), static_cast<std::uint16_t>(last)});
      }
      // Every port of the rule was refused: it must not widen to "every port".
      if (rule.ports.empty()) continue;
    }
    out.from.push_back(std::move(rule));
  }
  return out;
}

std::vector<ExportedTarget> exported_targets(const std::vector<json>& exports, const std::vector<json>& slices,
                                             const std::string& node) {
  std::set<std::pair<std::string, std::string>> exported;
  for (const auto& e : exports) exported.insert({text(field(e, "metadata"), "namespace"), text(field(e, "metadata"), "name")});
  std::vector<ExportedTarget> out;
  for (const auto& s : slices) {
    const json& labels = field(field(s, "metadata"), "labels");
    if (!field(labels, "multicluster.kubernetes.io/source-cluster").is_null()) continue;  // imported
    const std::string service = text(labels, "kubernetes.io/service-name");
    if (!exported.count({text(field(s, "metadata"), "namespace"), service})) continue;
    const json& endpoints = field(s, "endpoints");
    const json& ports = field(s, "ports");
    if (!endpoints.is_array() || !ports.is_array()) continue;
    for (const auto& ep : endpoints) {
      if (!node.empty() && text(ep, "nodeName") != node) continue;
      if (field(field(ep, "conditions"), "ready") == false) continue;
      for (const auto& a : strings(field(ep, "addresses"))) {
        auto addr = net::IpAddress::parse(a);
        if (!addr) continue;
        for (const auto& p : ports) {
          auto proto = parse_protocol(field(p, "protocol").is_string() ? text(p, "protocol") : "TCP");
          const json& port = field(p, "port");
          if (!proto || !port.is_number_integer() || port.get<int>() < 1 || port.get<int>() > 65535) continue;
          out.push_back({*addr, *proto, static_cast<std::uint16_t>(port.get<int>())});
        }
      }
    }
  }
  return out;
}

std::vector<RemoteWorkload> remote_workloads(const std::vector<json>& slices) {
  std::vector<RemoteWorkload> out;
  for (const auto& s : slices) {
    const std::string cluster = text(field(field(s, "metadata"), "labels"), "multicluster.kubernetes.io/source-cluster");
    if (cluster.empty()) continue;
    const json& endpoints = field(s, "endpoints");
    if (!endpoints.is_array()) continue;
    for (const auto& ep : endpoints) {
      for (const auto& a : strings(field(ep, "addresses"))) {
        if (auto addr = net::IpAddress::parse(a)) out.push_back({cluster, text(field(s, "metadata"), "namespace"), *addr});
      }
    }
  }
  return out;
}

std::optional<json> policy_status_update(const json& policy, const std::string& node,
                                        const std::optional<PolicyStatus>& mine, const std::set<std::string>& live_nodes) {
  constexpr std::size_t kMaxProblems = 16, kMaxProblemBytes = 1024;  // the CRD's limits
  std::optional<json> entry;
  if (mine) {
    entry = json{{"node", node}, {"selectedPods", mine->selected_pods}};
    if (!mine->problems.empty()) {
      json problems = json::array();
      for (const auto& p : mine->problems) {
        if (problems.size() == kMaxProblems) break;
        problems.push_back(p.size() <= kMaxProblemBytes ? p : p.substr(0, kMaxProblemBytes - 3) + "...");
      }
      (*entry)["problems"] = std::move(problems);
    }
  }
  const json& status = field(policy, "status");
  json nodes = json::array();
  std::optional<json> current;
  bool pruned = false;
  if (field(status, "nodes").is_array()) {
    for (const auto& n : status["nodes"]) {
      if (text(n, "node") == node) {
        current = n;
      } else if (!live_nodes.empty() && !live_nodes.count(text(n, "node"))) {
        pruned = true;  // a node that is gone: nobody else will remove its entry
      } else {
        nodes.push_back(n);
      }
    }
  }
  std::int64_t sum = 0;
  for (const auto& n : nodes) {
    if (field(n, "selectedPods").is_number_integer()) sum += field(n, "selectedPods").get<std::int64_t>();
  }
  if (entry) sum += static_cast<std::int64_t>(mine->selected_pods);
  if (current == entry && !pruned && field(status, "selectedPods") == json(sum)) return std::nullopt;
  if (entry) nodes.push_back(std::move(*entry));
  std::sort(nodes.begin(), nodes.end(), [](const json& a, const json& b) { return text(a, "node") < text(b, "node"); });
  json out = status.is_object() ? status : json::object();
  out["selectedPods"] = sum;
  if (nodes.empty()) {
    out.erase("nodes");
  } else {
    out["nodes"] = std::move(nodes);
  }
  return out;
}

namespace {

class InformerEnforcer final : public IngressEnforcer {
 public:
  InformerEnforcer(kube::Client& local, netfilter::Nftables& nftables, Clock& clock, log::Logger log,
                   std::string node, std::chrono::milliseconds resync, std::function<void()> kick)
      : local_(local), nftables_(nftables), log_(std::move(log)), node_(std::move(node)) {
    // Every event bumps the generation and asks for a pass; a pass with the same generation,
    // peers and blocks as the last has nothing to compile.
    auto changed = [this, kick] {
      ++generation_;
      kick();
    };
    auto make = [&](const kube::Resource& r, std::string field_selector) {
      return std::make_unique<kube::Informer>(
          local, kube::InformerOptions{.resource = r, .field_selector = std::move(field_selector), .resync_period = resync},
          clock);
    };
    auto on_any = [changed](kube::Informer& i) {
      i.add_handlers({.on_add = [changed](const json&) { changed(); },
                      .on_update = [changed](const json&, const json&) { changed(); },
                      .on_delete = [changed](const json&) { changed(); }});
    };
    pods_ = make(kube::resources::kPods, "spec.nodeName=" + node_);
    policies_ = make(kClusterSetIngressPolicies, "");
    exports_ = make(kube::mcs::kServiceExports, "");
    slices_ = make(kube::resources::kEndpointSlices, "");
    // This node's pods are kept parsed: a pass reads them without copying the cache.
    pods_->add_handlers({.on_add = [this, changed](const json& o) { keep_pod(o), changed(); },
                         .on_update = [this, changed](const json&, const json& o) { keep_pod(o), changed(); },
                         .on_delete = [this, changed](const json& o) { drop_pod(o), changed(); }});
    // A policy update that leaves metadata.generation alone changed its status only (another
    // node's entry, or this node's own write coming back): nothing to compile, but this node's
    // entry is checked again (a write of its own may have lost that race).
    policies_->add_handlers({.on_add = [changed](const json&) { changed(); },
                             .on_update =
                                 [this, changed, kick](const json& old, const json& now) {
                                   const json& g0 = field(field(old, "metadata"), "generation");
                                   if (!g0.is_null() && g0 == field(field(now, "metadata"), "generation")) {
                                     ++status_generation_;
                                     kick();
                                   } else {
                                     changed();
                                   }
                                 },
                             .on_delete = [changed](const json&) { changed(); }});
    on_any(*exports_);
    on_any(*slices_);
    for (auto* i : {pods_.get(), policies_.get(), exports_.get(), slices_.get()}) i->start();
  }
  ~InformerEnforcer() override { stop(); }

  bool synced() const override {
    return pods_->has_synced() && policies_->has_synced() && exports_->has_synced() && slices_->has_synced();
  }

  Result<IngressRules> apply(std::vector<net::Prefix> node_pod_cidrs, std::vector<PeeredCluster> clusters,
                             std::set<std::string> cluster_nodes) override {
    std::lock_guard lock(mu_);
    const bool nodes_changed = cluster_nodes != cluster_nodes_;
    cluster_nodes_ = std::move(cluster_nodes);
    // Read before the caches: an event during this pass makes the next one compile again.
    const std::uint64_t generation = generation_.load();
    const std::uint64_t status_generation = status_generation_.load();
    if (applied_ && generation == applied_generation_ && node_pod_cidrs == applied_cidrs_ &&
        clusters == applied_clusters_) {
      // Nothing observed has changed since the rules in force; a policy's status may have.
      if (status_generation != written_status_generation_ || nodes_changed) {
        written_status_generation_ = status_generation;
        write_status(*applied_);
      }
      return *applied_;
    }
    written_status_generation_ = status_generation;
    IngressInput in;
    in.node_pod_cidrs = node_pod_cidrs;
    in.clusters = clusters;
    const auto slices = slices_->list();
    const auto exports = exports_->list();
    in.exported = exported_targets(exports, slices, node_);
    in.exported_cluster = exported_targets(exports, slices, "");
    in.remote_workloads = remote_workloads(slices);
    {
      std::lock_guard pods_lock(pods_mu_);
      in.pods.reserve(pods_by_key_.size());
      for (const auto& [key, pod] : pods_by_key_) in.pods.push_back(pod);
    }
    std::map<std::string, std::vector<std::string>> parse_problems;
    for (const auto& p : policies_->list()) {
      std::vector<std::string> problems;
      in.policies.push_back(parse_ingress_policy(p, problems));
      if (!problems.empty()) parse_problems[in.policies.back().ns + "/" + in.policies.back().name] = problems;
    }
    IngressRules rules = compile_ingress(in);
    for (auto& [key, problems] : parse_problems) {
      auto& st = rules.policies[key].problems;
      st.insert(st.begin(), problems.begin(), problems.end());
    }
    // An empty plan: the table already holds these rules, but what is not in the table (the
    // policies' status) may differ, and later passes with nothing to compile write from them.
    if (const std::string plan = plan_ingress_table(rules, applied_); !plan.empty()) {
      auto r = nftables_.run(plan);
      if (!r && applied_) {
        // The kernel's table is not what this agent last wrote (removed or changed by hand):
        // write it whole.
        log_.warn("nftables ingress update refused; replacing the table", {{"error", r.error().message()}});
        r = nftables_.run(render_ingress_table(rules));
      }
      if (!r) {
        applied_.reset();
        return r.error().with_context("writing table inet " + std::string(kIngressTable));
      }
      log_.info("ingress policy applied", {{"table", std::string("inet ") + kIngressTable},
                                           {"whole_table", !applied_},
                                           {"clusters", static_cast<std::int64_t>(rules.clusters.size())},
                                           {"policies", static_cast<std::int64_t>(rules.policies.size())},
                                           {"pods", static_cast<std::int64_t>(in.pods.size())}});
    }
    applied_ = rules;
    remember(generation, std::move(node_pod_cidrs), std::move(clusters));
    write_status(rules);
    return rules;
  }

  void stop() override {
    for (auto* i : {pods_.get(), policies_.get(), exports_.get(), slices_.get()}) {
      if (i) i->stop();
    }
  }

 private:
  static std::string key_of(const json& o) {
    return text(field(o, "metadata"), "namespace") + "/" + text(field(o, "metadata"), "name");
  }
  void keep_pod(const json& o) {
    std::lock_guard lock(pods_mu_);
    if (auto pod = local_pod(o)) {
      pods_by_key_[key_of(o)] = std::move(*pod);
    } else {
      pods_by_key_.erase(key_of(o));
    }
  }
  void drop_pod(const json& o) {
    std::lock_guard lock(pods_mu_);
    pods_by_key_.erase(key_of(o));
  }
  void remember(std::uint64_t generation, std::vector<net::Prefix> cidrs, std::vector<PeeredCluster> clusters) {
    applied_generation_ = generation;
    applied_cidrs_ = std::move(cidrs);
    applied_clusters_ = std::move(clusters);
  }

  // This node's entry in each policy's status, once its rules are in force. A write that lost
  // a race with another node's (409) is left: that node's write comes back through the
  // informer and asks for another pass, which starts from it.
  void write_status(const IngressRules& rules) {
    bool all_written = true;
    for (const auto& policy : policies_->list()) {
      const std::string ns = text(field(policy, "metadata"), "namespace");
      const std::string name = text(field(policy, "metadata"), "name");
      std::optional<PolicyStatus> mine;
      if (auto it = rules.policies.find(ns + "/" + name); it != rules.policies.end() && it->second.selected_pods > 0) {
        mine = it->second;
      }
      auto status = policy_status_update(policy, node_, mine, cluster_nodes_);
      if (!status) continue;
      json updated = policy;
      updated["status"] = std::move(*status);
      auto r = local_.update_status(kClusterSetIngressPolicies, ns, updated);
      if (!r && r.error().code() != ErrorCode::kConflict && r.error().code() != ErrorCode::kNotFound) {
        log_.warn("could not write the policy's status", {{"policy", ns + "/" + name}, {"error", r.error().message()}});
        all_written = false;
      }
    }
    if (!all_written) applied_generation_ = 0;  // the next pass compiles and tries again
  }

  kube::Client& local_;
  netfilter::Nftables& nftables_;
  log::Logger log_;
  std::string node_;
  std::unique_ptr<kube::Informer> pods_, policies_, exports_, slices_;
  std::mutex mu_;  // one pass at a time
  std::optional<IngressRules> applied_;
  std::set<std::string> cluster_nodes_;
  std::uint64_t applied_generation_ = 0;
  std::vector<net::Prefix> applied_cidrs_;
  std::vector<PeeredCluster> applied_clusters_;
  std::atomic<std::uint64_t> generation_{1};
  std::atomic<std::uint64_t> status_generation_{0};
  std::uint64_t written_status_generation_ = 0;
  std::mutex pods_mu_;
  std::map<std::string, LocalPod> pods_by_key_;
};

}  // namespace

std::unique_ptr<IngressEnforcer> IngressEnforcer::start(kube::Client& local, netfilter::Nftables& nftables, Clock& clock,
                                                        log::Logger log, std::string node_name,
                                                        std::chrono::milliseconds resync, std::function<void()> kick) {
  return std::make_unique<InformerEnforcer>(local, nftables, clock, std::move(log), std::move(node_name), resync,
                                            std::move(kick));
}

}  // namespace cw::agent
