#include "common/ipam/plan.h"

#include <algorithm>
#include <set>

namespace cw::ipam {
namespace {

using net::Family;
using net::Prefix;

// A range some cluster already uses, for the pairwise overlap checks.
struct Taken {
  Prefix cidr;
  std::string owner;
  bool service;

  std::string describe() const {
    return owner + "'s " + (service ? "service" : "pod") + " CIDR " + cidr.to_string();
  }
};

std::string family_field(const char* what, std::size_t i) {
  return std::string(what) + "[" + std::to_string(i) + "]";
}

}  // namespace

const char* to_string(BlockSource source) {
  return source == BlockSource::kAdopted ? "adopted" : "allocated";
}

std::vector<FieldError> validate(const std::vector<ClusterInput>& clusters) {
  std::vector<FieldError> errors;
  std::set<std::string> ids;
  for (std::size_t i = 0; i < clusters.size(); ++i) {
    const auto& c = clusters[i];
    const std::string at = family_field("clusters", i);
    if (auto why = check_dns_label(c.id)) {
      errors.push_back({at + ".id", "cluster id \"" + c.id + "\" " + *why});
    } else if (!ids.insert(c.id).second) {
      errors.push_back({at + ".id", "cluster id \"" + c.id + "\" is used twice"});
    }
    for (const auto* list : {&c.pod_cidrs, &c.service_cidrs}) {
      const char* name = list == &c.pod_cidrs ? ".podCIDRs" : ".serviceCIDRs";
      for (std::size_t j = 0; j < list->size(); ++j) {
        for (std::size_t k = 0; k < j; ++k) {
          if ((*list)[j].family() == (*list)[k].family()) {
            errors.push_back({at + name + "[" + std::to_string(j) + "]",
                              "more than one " + std::string(net::to_string((*list)[j].family())) +
                                  " CIDR"});
          }
        }
      }
    }
    std::set<std::string> names;
    for (std::size_t j = 0; j < c.nodes.size(); ++j) {
      if (!names.insert(c.nodes[j]).second) {
        errors.push_back({at + ".nodes[" + std::to_string(j) + "]",
                          "node \"" + c.nodes[j] + "\" is listed twice"});
      }
    }
  }
  return errors;
}

Plan make_plan(const ClusterSetSpec& spec, const std::vector<ClusterInput>& clusters) {
  Plan plan;
  std::vector<Prefix> all_pools;
  for (Family f : {Family::kIPv4, Family::kIPv6}) {
    if (const auto& fp = spec.pools_for(f)) {
      all_pools.insert(all_pools.end(), fp->pools.begin(), fp->pools.end());
    }
  }
  auto created = net::PrefixPool::create(all_pools);
  if (!created) die_on_misuse("make_plan on an unvalidated spec", created.error().message());
  net::PrefixPool pool = std::move(created).value();

  auto in_pools = [&](const Prefix& p) {
    return std::any_of(all_pools.begin(), all_pools.end(),
                       [&](const Prefix& q) { return q.contains(p); });
  };
  // Takes the part of `cidr` that lies in the pools, so allocation steers around it.
  auto reserve = [&](const Prefix& cidr, const std::string& holder) {
    for (const auto& q : all_pools) {
      if (auto part = net::intersection(cidr, q)) (void)pool.claim(*part, holder);
    }
  };

  plan.clusters.reserve(clusters.size());
  for (const auto& c : clusters) plan.clusters.push_back(ClusterPlan{c.id, {}, c.service_cidrs, {}});

  // 1. Service ranges first, largest first: a nested or equal range is then already covered
  //    by the reservation of the larger one.
  std::vector<Taken> taken;
  for (const auto& c : clusters) {
    for (const auto& s : c.service_cidrs) taken.push_back({s, c.id, true});
  }
  {
    std::vector<Taken> by_size = taken;
    std::stable_sort(by_size.begin(), by_size.end(),
                     [](const Taken& a, const Taken& b) { return a.cidr.length() < b.cidr.length(); });
    for (const auto& t : by_size) reserve(t.cidr, t.owner + " (services)");
  }

  // Clusters may share a service range in one set, but two that do can never peer: imported
  // Services are reached at the exporting cluster's service IPs, so those ranges are routed.
  for (std::size_t i = 0; i < clusters.size(); ++i) {
    for (std::size_t j = i + 1; j < clusters.size(); ++j) {
      for (const auto& a : clusters[i].service_cidrs) {
        for (const auto& b : clusters[j].service_cidrs) {
          if (a.overlaps(b)) {
            plan.warnings.push_back(clusters[i].id + " and " + clusters[j].id + " share service range " +
                                    (a.length() <= b.length() ? a : b).to_string() +
                                    ": a ClusterPeering between them would report Conflict");
          }
        }
      }
    }
  }

  // 2. Adopt the pod CIDRs clusters already have, in input order. An overlap with any range
  //    already taken is a Conflict, and the later cluster claims nothing else for that family.
  std::vector<std::set<Family>> blocked(clusters.size());
  for (std::size_t i = 0; i < clusters.size(); ++i) {
    const auto& c = clusters[i];
    for (const auto& cidr : c.pod_cidrs) {
      auto clash = std::find_if(taken.begin(), taken.end(),
                                [&](const Taken& t) { return t.cidr.overlaps(cidr); });
      if (clash != taken.end()) {
        plan.conflicts.push_back({c.id, "pod CIDR " + cidr.to_string() + " overlaps " +
                                            clash->describe() + "; " + c.id +
                                            " gets no other " + net::to_string(cidr.family()) +
                                            " block"});
        blocked[i].insert(cidr.family());
        continue;
      }
      taken.push_back({cidr, c.id, false});
      const bool inside = in_pools(cidr);
      if (!inside) {
        plan.warnings.push_back(c.id + ": pod CIDR " + cidr.to_string() +
                                " is outside the ClusterSet pools; adopted as it is");
      }
      reserve(cidr, c.id);
      plan.clusters[i].pod_blocks.push_back({cidr, BlockSource::kAdopted, inside});
      blocked[i].insert(cidr.family());  // has its block
    }
  }

  // 3. Allocate a block to every cluster that still lacks one, in input order.
  for (std::size_t i = 0; i < clusters.size(); ++i) {
    for (Family f : {Family::kIPv4, Family::kIPv6}) {
      const auto& fp = spec.pools_for(f);
      if (!fp || blocked[i].count(f)) continue;
      auto block = pool.allocate(f, fp->cluster_prefix_length, clusters[i].id);
      if (!block) {
        plan.conflicts.push_back({clusters[i].id, "no " + std::string(net::to_string(f)) +
                                                      " block: " + block.error().message() +
                                                      " (the pools are too small)"});
        continue;
      }
      plan.clusters[i].pod_blocks.push_back({*block, BlockSource::kAllocated, true});
    }
    auto& blocks = plan.clusters[i].pod_blocks;
    std::sort(blocks.begin(), blocks.end(),
              [](const PodBlock& a, const PodBlock& b) { return a.cidr < b.cidr; });
  }

  // 4. Node blocks inside each cluster block, nodes in the order given.
  for (std::size_t i = 0; i < clusters.size(); ++i) {
    auto& cp = plan.clusters[i];
    for (const auto& name : clusters[i].nodes) cp.nodes.push_back(NodePlan{name, {}});
    for (const auto& block : cp.pod_blocks) {
      const auto& fp = spec.pools_for(block.cidr.family());
      const int node_len = fp ? fp->node_prefix_length
                              : std::min(net::bit_width(block.cidr.family()),
                                         block.cidr.length() + 8);
      if (node_len < block.cidr.length()) {
        plan.conflicts.push_back({cp.id, "pod CIDR " + block.cidr.to_string() +
                                             " is smaller than one node block (/" +
                                             std::to_string(node_len) + ")"});
        continue;
      }
      auto nodes_pool = net::PrefixPool::create({block.cidr}).value();
      for (auto& node : cp.nodes) {
        auto got = nodes_pool.allocate(block.cidr.family(), node_len, node.name);
        if (!got) {
          const auto capacity = block.cidr.subprefix_count(node_len);
          plan.conflicts.push_back(
              {cp.id, block.cidr.to_string() + " holds " +
                          std::to_string(static_cast<unsigned long long>(capacity)) + " /" +
                          std::to_string(node_len) + " node blocks but the cluster has " +
                          std::to_string(cp.nodes.size()) + " nodes"});
          break;
        }
        node.pod_cidrs.push_back(*got);
      }
    }
  }

  for (Family f : {Family::kIPv4, Family::kIPv6}) {
    const auto& fp = spec.pools_for(f);
    if (!fp) continue;
    net::Uint128 total = 0;
    for (const auto& q : fp->pools) total += q.subprefix_count(fp->cluster_prefix_length);
    plan.usage.push_back({f, fp->cluster_prefix_length, total,
                          pool.free_blocks(f, fp->cluster_prefix_length)});
  }
  return plan;
}

}  // namespace cw::ipam
