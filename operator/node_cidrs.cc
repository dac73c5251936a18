#include "operator/node_cidrs.h"

#include <algorithm>

#include "common/net/prefix_pool.h"

namespace cw::op {

NodeCidrPlan plan_node_cidrs(const std::vector<net::Prefix>& cluster_blocks,
                             const std::map<net::Family, int>& node_prefix_length,
                             const std::vector<NodeState>& nodes_in, NodeCidrMode mode) {
  NodeCidrPlan plan;
  std::vector<NodeState> nodes = nodes_in;
  std::sort(nodes.begin(), nodes.end(), [](const NodeState& a, const NodeState& b) { return a.name < b.name; });

  if (mode == NodeCidrMode::kAdopt) {
    for (const auto& n : nodes) {
      plan.assigned[n.name] = n.spec_pod_cidrs;
      if (!n.spec_pod_cidrs.empty() && n.annotated != n.spec_pod_cidrs) plan.writes[n.name] = n.spec_pod_cidrs;
    }
    return plan;
  }

  for (const auto& block : cluster_blocks) {
    const auto len_it = node_prefix_length.find(block.family());
    if (len_it == node_prefix_length.end()) continue;
    auto pool = net::PrefixPool::create({block}).value();
    std::map<std::string, net::Prefix> chosen;

    // What Nodes already carry, in name order: the first keeps a block two Nodes claim.
    for (const auto& n : nodes) {
      const auto& carried = !n.annotated.empty() ? n.annotated : n.spec_pod_cidrs;
      for (const auto& p : carried) {
        if (p.family() != block.family()) continue;
        if (!block.contains(p)) {
          plan.problems.push_back(n.name + ": its pod CIDR " + p.to_string() + " is outside the cluster's block " +
                                  block.to_string() + "; left as it is");
          chosen.emplace(n.name, p);
          continue;
        }
        if (auto r = pool.claim(p, n.name); !r) {
          plan.problems.push_back(n.name + ": its pod CIDR " + p.to_string() + " is also another node's (" +
                                  r.error().message() + ")");
          continue;
        }
        chosen.emplace(n.name, p);
      }
    }
    // Nodes without a block of this family get the lowest free one.
    for (const auto& n : nodes) {
      if (chosen.count(n.name)) continue;
      const bool spec_has_family = std::any_of(n.spec_pod_cidrs.begin(), n.spec_pod_cidrs.end(),
                                               [&](const net::Prefix& p) { return p.family() == block.family(); });
      if (spec_has_family) continue;  // reported above as a duplicate; spec.podCIDRs is immutable
      auto got = pool.allocate(block.family(), len_it->second, n.name);
      if (!got) {
        plan.problems.push_back(n.name + ": no free /" + std::to_string(len_it->second) + " left in " +
                                block.to_string());
        continue;
      }
      chosen.emplace(n.name, *got);
    }
    for (const auto& [name, p] : chosen) plan.assigned[name].push_back(p);
  }
  for (const auto& n : nodes) {
    auto& a = plan.assigned[n.name];
    std::sort(a.begin(), a.end());
    if (!a.empty() && a != n.annotated) plan.writes[n.name] = a;
    if (!a.empty() && n.spec_pod_cidrs.empty() && !plan.writes.count(n.name)) plan.writes[n.name] = a;
  }
  return plan;
}

}  // namespace cw::op
