// The node agent's side of ClusterSet ingress policy (docs/policy.md): what it watches, how the
// objects become the input of compile_ingress (ingress_policy.h), and the table kept in the
// kernel (ingress_table.h).
//
// Watched, in the local cluster:
//   - this node's Pods (field selector spec.nodeName): the destinations judged here;
//   - ClusterSetIngressPolicies, ServiceExports and EndpointSlices, all namespaces: the
//     policies, the endpoints of exported Services (local ones), and the endpoints of the
//     Services other clusters export (the imported slices, labelled with their source cluster).
// The peered clusters and this node's pod blocks come from the agent's own pass.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/clock.h"
#include "common/kube/client.h"
#include "common/log/log.h"
#include "common/netfilter/nftables.h"
#include "node-agent/ingress_policy.h"

namespace cw::agent {

inline const kube::Resource kClusterSetIngressPolicies{"clusterwire.io", "v1alpha1", "clustersetingresspolicies", true};

// ---- from objects to the compiler's input (pure)

// A Pod as a destination: nullopt for host-network pods (their address is the node's), pods
// that have ended, and pods without an address yet.
std::optional<LocalPod> local_pod(const nlohmann::json& pod);

// A ClusterSetIngressPolicy; `problems` gets what cannot be enforced as written (a port range
// whose endPort is below its port; a malformed selector makes the whole policy select nothing).
IngressPolicy parse_ingress_policy(const nlohmann::json& policy, std::vector<std::string>& problems);

// The endpoints on `node` (empty: on any node) of the Services `exports` names, on each of
// their slices' ports.
std::vector<ExportedTarget> exported_targets(const std::vector<nlohmann::json>& exports,
                                             const std::vector<nlohmann::json>& slices, const std::string& node);

// The addresses of the imported EndpointSlices (label multicluster.kubernetes.io/source-cluster),
// with the namespace and cluster they come from.
std::vector<RemoteWorkload> remote_workloads(const std::vector<nlohmann::json>& slices);

// The status a ClusterSetIngressPolicy should have once this node's entry says `mine` (nullopt:
// this node selects none of its pods, so it has no entry), or nullopt when the status already
// says so. Each node agent writes only its own entry of status.nodes, except that entries of
// nodes not in `live_nodes` (the cluster's Nodes; empty: not known) are dropped when it
// writes; selectedPods is the sum over the entries. Problems are cut to what the schema holds
// (16, of 1,024 bytes).
std::optional<nlohmann::json> policy_status_update(const nlohmann::json& policy, const std::string& node,
                                                   const std::optional<PolicyStatus>& mine,
                                                   const std::set<std::string>& live_nodes = {});

// ---- the enforcer

class IngressEnforcer {
 public:
  // `kick` asks the agent for a pass (called on informer threads; must not block).
  static std::unique_ptr<IngressEnforcer> start(kube::Client& local, netfilter::Nftables& nftables, Clock& clock,
                                                log::Logger log, std::string node_name,
                                                std::chrono::milliseconds resync, std::function<void()> kick);
  virtual ~IngressEnforcer() = default;
  virtual bool synced() const = 0;
  // Compiles and brings the kernel's table to it: element updates when only elements changed;
  // then writes this node's entry in the status of each policy whose entry changed (a policy
  // selecting none of this node's pods has no entry). Returns the rules in force.
  // `cluster_nodes` are the names of the cluster's Nodes: entries of other nodes are pruned
  // from a policy's status when this node writes its own.
  virtual Result<IngressRules> apply(std::vector<net::Prefix> node_pod_cidrs, std::vector<PeeredCluster> clusters,
                                     std::set<std::string> cluster_nodes) = 0;
  virtual void stop() = 0;
};

}  // namespace cw::agent
