// A ClusterPeering's status, as a pure function of the local cluster, the remote cluster's
// advertisement (if any), and the time (docs/api.md, "ClusterPeering"):
//   Pending    the remote has no advertisement, or does not name us in its peers
//   Conflict   a remote pod or service CIDR overlaps a local one: never routed
//   Connecting consent both ways, no overlap, but no remote node is ready yet
//   Connected  ready to route
//   Degraded   routed, but probes through the tunnel fail (DatapathHealthy False), or,
//              with no probe results, the remote heartbeat is stale
// The datapath decides between Connected and Degraded when there are probe results: a
// control plane that cannot be reached (broker, remote operator) while traffic flows is
// Connected with RemoteHealthy or BrokerReachable False saying so (docs/decisions.md).
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "operator/model.h"

namespace cw::op {

// One local node's datapath report about the remote cluster: the remote cluster's entry of
// the node's clusterwire.io/datapath annotation (docs/api.md).
struct DatapathReport {
  std::string node;
  json entry;
};

struct PeeringInput {
  std::string remote_cluster_id;
  std::int64_t generation = 1;
  // The local side.
  std::string cluster_id;
  std::vector<net::Prefix> local_pod_cidrs;
  std::vector<net::Prefix> local_service_cidrs;
  // The remote side: nullopt when it has no advertisement; `remote_error` when it has a
  // malformed one.
  std::optional<Advertisement> remote;
  std::string remote_error;
  std::chrono::system_clock::time_point now;
  int heartbeat_timeout_seconds = 60;
  json old_status;  // to keep lastTransitionTime of conditions that did not change
  std::vector<DatapathReport> datapath;  // from the local node agents
  std::string broker_error;  // non-empty while this operator cannot reach the broker
  // This cluster's topology, and in gateway mode whether any candidate has an endpoint other
  // clusters can reach (a public one): two gateway clusters that both have none cannot meet.
  std::string local_topology = "mesh";
  bool local_gateway_reachable = false;
  // The ingress posture in force: spec.ingress, else the operator's default (docs/policy.md).
  std::string ingress = "All";
};

// The DatapathHealthy condition's status ("True", "False", "Unknown"), reason and message,
// and status.datapath, from the node agents' reports.
struct DatapathVerdict {
  std::string status = "Unknown";
  std::string reason = "NotProbed";
  std::string message;
  json summary = json::object();
  int probed_pairs = 0, failing_pairs = 0;
  std::optional<double> rtt_p50_seconds, rtt_max_seconds;
};
DatapathVerdict datapath_verdict(const std::string& remote, const std::vector<DatapathReport>& reports);

json peering_status(const PeeringInput& input);

// Every overlap between the remote's and the local cluster's pod and service CIDRs, spelled
// out ("remote pod CIDR 10.64.0.0/16 overlaps local service CIDR 10.64.0.0/12").
std::vector<std::string> cidr_conflicts(const std::vector<net::Prefix>& local_pods,
                                        const std::vector<net::Prefix>& local_services,
                                        const Advertisement& remote);

std::string rfc3339(std::chrono::system_clock::time_point t);
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(const std::string& text);

}  // namespace cw::op
