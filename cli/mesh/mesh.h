// The clusterset as cwctl sees it through the Kubernetes APIs (docs/cwctl.md): each member
// cluster's ClusterPeerings and Nodes (with the node agents' datapath reports and errors),
// and the broker's advertisements and claims. `cwctl status`, `diagnose` and `graph` are pure
// functions of this view, so every rule is a table test; fetch.cc fills it from kubeconfig
// contexts, and the lab fills it from its own clusters.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "common/base/result.h"

namespace cw::mesh {

using nlohmann::json;

struct NodeView {
  std::string name;
  std::string pod_cidrs;    // clusterwire.io/pod-cidr
  std::string public_key;   // clusterwire.io/public-key
  std::string endpoint;     // clusterwire.io/endpoint
  json datapath = json::object();  // clusterwire.io/datapath, parsed; {} when absent or malformed
  std::string agent_error;  // clusterwire.io/agent-error
};

struct PeeringView {
  std::string name;
  std::string remote;  // spec.remoteClusterID
  std::string phase;   // "" without status
  json status = json::object();
  // The condition of `type` ({} when absent).
  json condition(const std::string& type) const;
};

struct ClusterView {
  std::string context;  // where it was read
  std::string id;       // its cluster ID: matched with the broker's advertisements, else the context
  std::string error;    // it could not be read: why
  std::vector<NodeView> nodes;
  std::vector<PeeringView> peerings;
};

struct BrokerView {
  std::string context;
  std::string error;
  std::vector<json> advertisements;  // ClusterAdvertisement objects
  std::vector<json> claims;          // CIDRClaim objects
  const json* advertisement(const std::string& cluster_id) const;
};

struct MeshView {
  std::vector<ClusterView> clusters;
  std::optional<BrokerView> broker;
  std::chrono::system_clock::time_point now;
  const ClusterView* cluster(const std::string& id) const;
};

// One cluster from the items of its `nodes` and `clusterpeerings` lists.
ClusterView cluster_from(const std::string& context, const json& nodes, const json& peerings);
BrokerView broker_from(const std::string& context, const json& advertisements, const json& claims);
// Gives each cluster its ID: the advertisement naming most of its nodes (ties: none), else the
// context name.
void identify(MeshView& view);

// ---- status

void print_status(const MeshView& view, std::ostream& out);
json status_json(const MeshView& view);

// ---- diagnose: each known fault, found or not, with what to do about it.

enum class Severity { kOk, kWarning, kError };

struct Finding {
  Severity severity = Severity::kOk;
  std::string check;    // "udp-blocked", "mtu", "snat", "overlap", "one-sided", "broker", "remote-silent",
                        // "agent-apply", "clock-skew", "datapath"
  std::string subject;  // "c1 → c2", "c1-n1", ...
  std::string finding;
  std::string fix;      // what to do; empty for kOk
};

std::vector<Finding> diagnose(const MeshView& view);
// Exit status: 0 nothing wrong, 1 a warning or an error.
int print_findings(const std::vector<Finding>& findings, std::ostream& out);
json findings_json(const std::vector<Finding>& findings);

// ---- graph: Graphviz DOT, clusters as subgraphs, nodes inside, peerings as edges coloured by
// datapath health (green answered, red failing, grey unknown).
std::string graph_dot(const MeshView& view);

}  // namespace cw::mesh
