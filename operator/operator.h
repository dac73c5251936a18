// The clusterwire operator of one member cluster: claims the cluster's pod blocks on the
// broker, gives every Node a block inside them, publishes the cluster's advertisement, and
// keeps each ClusterPeering's status (DESIGN.md "Flows" 2 and 4).
//
// Wiring: informers on the local API (Nodes, ClusterPeerings) and on the broker (ClusterSet,
// CIDRClaims, ClusterAdvertisements) feed two controllers, active only while this replica
// holds the leader Lease:
//   "cluster"   one key: cluster blocks → node blocks → advertisement (and its heartbeat);
//   "peerings"  one key per ClusterPeering: its status, from the remote advertisement.
// Every pass re-reads what it needs and writes only what differs.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/base/clock.h"
#include "common/kube/client.h"
#include "common/log/log.h"
#include "common/net/prefix.h"
#include "operator/node_cidrs.h"

namespace cw::metrics {
class Metrics;
}

namespace cw::op {

namespace resources {
inline const kube::Resource kClusterSets{"clusterwire.io", "v1alpha1", "clustersets", true};
inline const kube::Resource kCidrClaims{"clusterwire.io", "v1alpha1", "cidrclaims", true};
inline const kube::Resource kClusterAdvertisements{"clusterwire.io", "v1alpha1", "clusteradvertisements", true};
inline const kube::Resource kClusterPeerings{"clusterwire.io", "v1alpha1", "clusterpeerings", false};
}  // namespace resources

struct OperatorConfig {
  std::string cluster_id;
  std::string broker_namespace = "clusterwire-broker";
  std::string clusterset_name = "default";
  std::vector<net::Prefix> pod_cidrs;      // blocks this cluster already uses (adopted exactly)
  std::vector<net::Prefix> service_cidrs;  // its Service ranges (reserved, advertised)
  NodeCidrMode node_cidr_mode = NodeCidrMode::kAllocate;
  std::string dns_endpoint;                // advertised for the DNS issue
  std::chrono::milliseconds heartbeat_interval{std::chrono::seconds(15)};
  std::chrono::milliseconds resync_period{std::chrono::seconds(60)};
  // Leader election on the local API.
  bool leader_election = true;
  std::string lease_namespace = "kube-system";
  std::string lease_name = "clusterwire-operator";
  std::string identity;  // default: cluster id + host + pid
  std::chrono::milliseconds lease_duration{std::chrono::seconds(15)};
  std::chrono::milliseconds renew_deadline{std::chrono::seconds(10)};
  std::chrono::milliseconds retry_period{std::chrono::seconds(2)};
  // Topology (docs/gateway.md): "mesh", "gateway", or "" for the ClusterSet's defaultTopology.
  std::string topology;
  // Gateway mode: a candidate's endpoint for other clusters (a load balancer, an elastic IP),
  // by node name; it wins over the node's clusterwire.io/public-endpoint annotation. A
  // candidate with neither is advertised without an endpoint (reached from behind NAT).
  std::map<std::string, std::string> gateway_endpoints;
  // The Lease the gateway candidates elect with; its holder is advertised as a hint.
  std::string gateway_lease_namespace = "kube-system";
  std::string gateway_lease_name = "clusterwire-gateway";
  // The label (set to "true") that makes a Node a gateway candidate.
  std::string gateway_label = "clusterwire.io/gateway";
  // The ingress posture of a ClusterPeering without spec.ingress (docs/policy.md): "All",
  // "ExportedServices" or "None".
  std::string default_ingress = "All";
};

// kInvalidArgument naming the bad setting.
Result<void> validate(const OperatorConfig& config);

// host:port with an IPv4 address, a bracketed IPv6 address or a DNS name: what the
// ClusterAdvertisement schema accepts as an endpoint.
bool valid_endpoint(const std::string& text);

// What the operator last decided, for /readyz, `cwctl status` and tests.
struct OperatorState {
  bool leading = false;
  std::vector<net::Prefix> pod_blocks;    // held
  std::vector<std::string> problems;      // cluster-level: invalid ClusterSet, conflict, exhausted...
  std::size_t nodes_with_blocks = 0;
  bool advertised = false;
  std::string broker_error;               // the last failed write to the broker; "" after a success
  std::string topology = "mesh";          // in effect: the flag's, else the ClusterSet's
  std::vector<std::string> gateways;      // gateway mode: the advertised candidates
};

class Operator {
 public:
  // `local` and `broker` may be the same client when the broker is in this cluster.
  // `metrics` may be null (no metrics); it must outlive the operator.
  Operator(OperatorConfig config, kube::Client& local, kube::Client& broker, Clock& clock,
           log::Logger logger, metrics::Metrics* metrics);
  ~Operator();
  Operator(const Operator&) = delete;
  Operator& operator=(const Operator&) = delete;

  Result<void> start();
  void stop();
  OperatorState state() const;

  // Leaving the clusterset: delete this cluster's claims and advertisement. Run once, with
  // the operator stopped (the chart's uninstall hook runs `cw-operator leave`).
  static Result<void> leave(const OperatorConfig& config, kube::Client& broker, log::Logger logger);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cw::op
