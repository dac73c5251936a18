#include "operator/cluster_cidr.h"

#include <algorithm>

#include "common/net/prefix_pool.h"

namespace cw::op {
namespace {

using net::Family;
using net::Prefix;

Prefix widen(const Prefix& p, int length) {
  const auto mask = net::network_mask(p.family(), length);
  return Prefix::make(net::IpAddress::from_bits(p.family(), p.address().bits() & mask), length).value();
}

}  // namespace

std::optional<Prefix> block_from_node_cidrs(const std::vector<Prefix>& node_cidrs, Family family,
                                            int cluster_prefix_length) {
  std::optional<Prefix> cover;
  for (const auto& p : node_cidrs) {
    if (p.family() != family) continue;
    if (!cover) {
      cover = p;
      continue;
    }
    int len = std::min(cover->length(), p.length());
    while (len > 0 && !widen(*cover, len).contains(p)) --len;
    cover = widen(*cover, len);
  }
  if (cover && cover->length() > cluster_prefix_length) cover = widen(*cover, cluster_prefix_length);
  return cover;
}

std::vector<FamilyDecision> decide_cluster_cidrs(const ClusterCidrInput& in) {
  std::vector<FamilyDecision> out;
  for (Family f : {Family::kIPv4, Family::kIPv6}) {
    const auto& fp = in.clusterset.pools_for(f);
    if (!fp) continue;

    // 1. A block we hold already. (Two would be a bug elsewhere: keep the lowest.)
    std::optional<Prefix> held;
    for (const auto& c : in.claims) {
      if (c.cluster_id == in.cluster_id && c.purpose == "pods" && c.cidr.family() == f &&
          (!held || c.cidr < *held)) {
        held = c.cidr;
      }
    }
    if (held) {
      out.push_back({f, FamilyDecision::Kind::kHeld, held, ""});
      continue;
    }

    // 2. A block the cluster already uses.
    std::optional<Prefix> existing;
    for (const auto& p : in.configured) {
      if (p.family() == f) existing = p;
    }
    if (!existing) existing = block_from_node_cidrs(in.node_pod_cidrs, f, fp->cluster_prefix_length);
    if (existing) {
      const Claim* clash = nullptr;
      for (const auto& c : in.claims) {
        if (c.cluster_id != in.cluster_id && c.cidr.overlaps(*existing) &&
            (clash == nullptr || c.cidr < clash->cidr)) {
          clash = &c;
        }
      }
      if (clash != nullptr) {
        out.push_back({f, FamilyDecision::Kind::kConflict, existing,
                       "this cluster's pod CIDR " + existing->to_string() + " overlaps " +
                           clash->cidr.to_string() + " claimed by cluster " + clash->cluster_id +
                           " (" + clash->purpose + "); claiming nothing else, so that no pod "
                           "address is ever shared"});
      } else {
        out.push_back({f, FamilyDecision::Kind::kClaim, existing, "adopting the block in use"});
      }
      continue;
    }

    // 3. The lowest free block of the pools.
    auto pool = net::PrefixPool::create(fp->pools);
    if (!pool) {
      out.push_back({f, FamilyDecision::Kind::kExhausted, std::nullopt, pool.error().message()});
      continue;
    }
    // Largest first: a nested claim is then already covered by the one around it.
    std::vector<const Claim*> by_size;
    for (const auto& c : in.claims) by_size.push_back(&c);
    std::stable_sort(by_size.begin(), by_size.end(),
                     [](const Claim* a, const Claim* b) { return a->cidr.length() < b->cidr.length(); });
    for (const Claim* c : by_size) {
      for (const auto& q : fp->pools) {
        if (auto part = net::intersection(c->cidr, q)) (void)pool->claim(*part, c->cluster_id);
      }
    }
    auto block = pool->allocate(f, fp->cluster_prefix_length, in.cluster_id);
    if (!block) {
      out.push_back({f, FamilyDecision::Kind::kExhausted, std::nullopt,
                     "no free /" + std::to_string(fp->cluster_prefix_length) + " left in the " +
                         net::to_string(f) + " pools: grow the ClusterSet's pools"});
      continue;
    }
    out.push_back({f, FamilyDecision::Kind::kClaim, *block, "lowest free block"});
  }
  return out;
}

}  // namespace cw::op
