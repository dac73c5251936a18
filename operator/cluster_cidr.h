// Which pod block this cluster should hold, per family: a pure function of what the broker
// and the local cluster show (DESIGN.md "Flows" 2; the same rules as `cwctl plan`).
//
// - A claim already held (a CIDRClaim with our clusterID) is kept, whatever else changed:
//   restarting never changes a cluster's block.
// - A cluster that already uses a block (configured with --pod-cidr, or found on its
//   Nodes' spec.podCIDRs) claims exactly that block; if another cluster's claim overlaps
//   it, that is a Conflict and nothing else is claimed.
// - Otherwise the lowest block of the cluster prefix length that no claim overlaps.
//
// The applier creates the claim; a 409 means someone was faster, and the next pass (which
// sees their claim) decides again.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "operator/model.h"

namespace cw::op {

struct ClusterCidrInput {
  std::string cluster_id;
  ipam::ClusterSetSpec clusterset;
  std::vector<Claim> claims;                // every CIDRClaim on the broker
  std::vector<net::Prefix> configured;      // --pod-cidr
  std::vector<net::Prefix> node_pod_cidrs;  // spec.podCIDRs of the local Nodes
};

struct FamilyDecision {
  enum class Kind {
    kHeld,       // `block` is ours already
    kClaim,      // create a claim for `block`
    kConflict,   // the block we must have is someone else's: `message` says whose
    kExhausted,  // no free block left in the pools
  };
  net::Family family;
  Kind kind;
  std::optional<net::Prefix> block;
  std::string message;
};

std::vector<FamilyDecision> decide_cluster_cidrs(const ClusterCidrInput& input);

// The block a cluster already uses, from its Nodes' pod CIDRs of one family: the smallest
// prefix holding them all, widened to `cluster_prefix_length` if that is shorter.
std::optional<net::Prefix> block_from_node_cidrs(const std::vector<net::Prefix>& node_cidrs,
                                                 net::Family family, int cluster_prefix_length);

}  // namespace cw::op
