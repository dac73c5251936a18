// The nat world's gateways (docs/lab.md, "The nat world"): which one is active, what each
// WireGuard device carried, the verify rows of that world, and the kill-gateway fault. Shared
// by verify, status and impair.
#pragma once

#include <string>
#include <vector>

#include "cli/lab/layout.h"
#include "cli/lab/state.h"
#include "common/base/result.h"

namespace cw::lab {

// The holder of the cluster's gateway Lease and its epoch (leaseTransitions); kNotFound when
// there is none (yet).
struct ActiveGateway {
  std::string node;
  long long epoch = 0;
};
Result<ActiveGateway> active_gateway(const LabLayout& lab, const ClusterLayout& cluster);

// Bytes a node's WireGuard device has sent and received, all peers together (wg show transfer).
Result<unsigned long long> wireguard_bytes(const NodeLayout& node);

struct WorldRow {
  std::string check, from, to;
  bool pass = false;
  std::string detail;
};

// The nat world's own checks:
//   isolation  no path from one cluster's nodes to another's except through the gateways:
//              the node subnets are the same, and a router forwards only its gateways' UDP;
//   gateway    which gateway is active in each cluster, and that it carried the cross-cluster
//              traffic of a pod of another node (a member where there is one);
//   private-net  meanwhile, no pod address of the other cluster in clear on the cluster's node
//              network (what an underlay with source/destination checks needs).
std::vector<WorldRow> nat_world_rows(const LabLayout& lab, const LabState& state);

// `impair kill-gateway C`: the active gateway of C dies as a node does: its agent killed
// (SIGKILL), its WireGuard device gone, all its traffic dropped. Returns the node's name.
Result<std::string> kill_active_gateway(const LabLayout& lab, LabState& state, const ClusterLayout& cluster);
// Brings killed gateways back: traffic allowed, agent (and wireguard-go) started again.
Result<void> revive_gateways(const LabLayout& lab, LabState& state);

}  // namespace cw::lab
