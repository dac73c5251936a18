// Each Node's pod block inside the cluster's block: a pure function of the Nodes as they are.
// A block a Node already carries (annotation, else spec.podCIDRs) is kept, so a restarted
// operator with an empty memory never hands it to another Node; a deleted Node's block is
// free again because the function no longer sees it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/net/prefix.h"

namespace cw::op {

inline constexpr const char* kPodCidrAnnotation = "clusterwire.io/pod-cidr";

enum class NodeCidrMode {
  kAllocate,  // clusterwire allocates node blocks
  kAdopt,     // Kubernetes allocates them (spec.podCIDRs): only copy them to the annotation
};

struct NodeState {
  std::string name;
  std::vector<net::Prefix> spec_pod_cidrs;  // spec.podCIDRs
  std::vector<net::Prefix> annotated;       // clusterwire.io/pod-cidr
};

struct NodeCidrPlan {
  // Nodes whose annotation (and empty spec.podCIDRs, in kAllocate mode) must be written,
  // with the blocks to write, IPv4 first.
  std::map<std::string, std::vector<net::Prefix>> writes;
  // Every Node's blocks after the plan, for the advertisement.
  std::map<std::string, std::vector<net::Prefix>> assigned;
  std::vector<std::string> problems;  // "node-7: no free /24 left in 10.64.0.0/16"
};

// `cluster_blocks`: the cluster's pod blocks (one per family); `node_prefix_length` for each.
NodeCidrPlan plan_node_cidrs(const std::vector<net::Prefix>& cluster_blocks,
                             const std::map<net::Family, int>& node_prefix_length,
                             const std::vector<NodeState>& nodes, NodeCidrMode mode);

}  // namespace cw::op
