// The nftables table that enforces ClusterSet ingress policy on a node (ingress_policy.h),
// `table inet clusterwire_ingress`, of clusterwire's own and never anywhere else:
//
//   chain forward (filter hook forward, priority filter - 5, policy accept):
//     ct state established,related                    accept   (a connection keeps its start's verdict)
//     ct status dnat ip daddr != @node_pods_v4 ip saddr vmap @relay_from_cluster_v4 (ip6 likewise)
//                                                     jump r_<cluster>  (a Service address translated
//                                                     here to another node's pod: judged here)
//     ip daddr != @node_pods_v4 (ip6 likewise)        accept   (not to a pod of this node: its node judges)
//     ip saddr vmap @from_cluster_v4                  jump c_<cluster>  (the source range names the cluster)
//     ip6 saddr vmap @from_cluster_v6                 jump c_<cluster>
//   chain c_<cluster>: its posture (accept, or the exported Services' set), then the policy
//     sets of that cluster, then a counted drop.
//   chain r_<cluster> (clusters not at All): the exported Services' endpoints anywhere in the
//     cluster under ExportedServices, then a counted drop.
//
// Sets hold every address, so a change of pods, exports or policies is element updates only;
// a change of the peered clusters or their postures rewrites the table in one transaction
// (nothing is ever without rules).
#pragma once

#include <optional>
#include <string>

#include "node-agent/ingress_policy.h"

namespace cw::agent {

inline constexpr const char* kIngressTable = "clusterwire_ingress";

// The whole table for `rules`, replacing whatever table of that name is there.
std::string render_ingress_table(const IngressRules& rules);

// The script that takes the table from `applied` (nullopt: not there) to `desired`: empty when
// they are equal; element additions and deletions when only elements differ; else the whole
// table (render_ingress_table).
std::string plan_ingress_table(const IngressRules& desired, const std::optional<IngressRules>& applied);

// Removes the table (cleanup); a no-op when there is none.
std::string delete_ingress_table();

}  // namespace cw::agent
