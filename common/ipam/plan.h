// make_plan: the address plan a clusterset would converge to, computed in one process. It
// follows the operator's rules (DESIGN.md, "Flows" 2): a cluster that already has a pod
// CIDR keeps exactly that block or gets a Conflict and nothing else; a cluster without one
// gets the lowest free block of the pool; nodes get blocks inside their cluster's block.
// It is a pure function: the same input gives the same plan, byte for byte.
#pragma once

#include <string>
#include <vector>

#include "common/ipam/clusterset.h"
#include "common/net/prefix_pool.h"

namespace cw::ipam {

struct ClusterInput {
  std::string id;
  std::vector<net::Prefix> pod_cidrs;      // blocks it already uses, at most one per family
  std::vector<net::Prefix> service_cidrs;  // its Service ranges, at most one per family
  std::vector<std::string> nodes;          // node names (may be empty)
};

// Field errors for the clusters list ("clusters[1].id", ...); the spec is validated apart.
std::vector<FieldError> validate(const std::vector<ClusterInput>& clusters);

enum class BlockSource { kAdopted, kAllocated };
const char* to_string(BlockSource source);

struct PodBlock {
  net::Prefix cidr;
  BlockSource source;
  bool in_pool;  // false: adopted from outside every pool
};

struct NodePlan {
  std::string name;
  std::vector<net::Prefix> pod_cidrs;  // one per family the cluster has a block for
};

struct ClusterPlan {
  std::string id;
  std::vector<PodBlock> pod_blocks;  // IPv4 first
  std::vector<net::Prefix> service_cidrs;
  std::vector<NodePlan> nodes;
};

struct Conflict {
  std::string cluster;
  std::string message;
};

struct FamilyUsage {
  net::Family family;
  int cluster_prefix_length;
  net::Uint128 total_blocks;  // cluster blocks the pools could hold when empty
  net::Uint128 free_blocks;   // still free after this plan
};

struct Plan {
  std::vector<ClusterPlan> clusters;  // in input order
  std::vector<Conflict> conflicts;
  std::vector<std::string> warnings;
  std::vector<FamilyUsage> usage;
};

// Precondition: validate(spec) and validate(clusters) returned no errors.
Plan make_plan(const ClusterSetSpec& spec, const std::vector<ClusterInput>& clusters);

}  // namespace cw::ipam
