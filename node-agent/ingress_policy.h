// Who in other clusters may reach what on this node: ClusterSet ingress policy (docs/policy.md),
// compiled into what the node's nftables table holds. A pure function of what the agent
// observes; the table itself is written elsewhere.
//
// The identity of a packet's source comes from WireGuard, not from anything the packet says:
// a peer's packets leave the tunnel only with a source inside that peer's allowed IPs
// (cryptokey routing), and those are the remote cluster's ranges. So a source address that
// came out of the tunnel names its cluster, and a spoofed one never gets this far.
//
// A packet is judged on the node its destination pod runs on: the node that takes it out of
// the tunnel may not be that node (a ClusterIP's endpoint elsewhere, a gateway), and only the
// pod's own node knows its labels. So a node judges packets to its own pod blocks, from a
// remote cluster's ranges, whichever interface they came in on.
//
// For each peered cluster, what may pass, in order:
//   - posture All: everything;
//   - posture ExportedServices: to the endpoints and ClusterIPs of the Services this cluster
//     exports, on their exported ports;
//   - posture None: nothing by posture;
//   - plus, whatever the posture, what ClusterSetIngressPolicies allow: to the local pods they
//     select, from that cluster (or from the endpoints of the Services it exports in the
//     namespaces a rule names), on the rule's ports or on all of them;
//   - everything else from that cluster is dropped.
// Connections already open keep the decision taken at their start (conntrack).
//
// One case is judged before the destination pod's node: a remote cluster's packet to one of
// this cluster's Service addresses that kube-proxy translated, on the node it entered, to a
// pod on another node. kube-proxy masquerades such packets (their source is outside the
// cluster), so the pod's node would see a local source and could not judge them. The node
// that translated them does, by posture: All passes; ExportedServices passes to the exported
// Services' endpoints anywhere in the cluster; anything else is dropped there, since that node
// does not know the labels of another node's pods (a policy admits a pod by its own address,
// or through a ClusterSetIP, which the client's cluster translates to that address).
//
// Elements are sets of plain tuples, so a change of policy, pods or exports is a difference of
// sets: `diff` gives the elements to add and remove, never a rewrite of rules.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "common/base/result.h"
#include "common/kube/selector.h"
#include "common/net/ip_address.h"
#include "common/net/prefix.h"

namespace cw::agent {

enum class IngressPosture { kAll, kExportedServices, kNone };
// "All", "ExportedServices", "None" (the API's words); anything else is kInvalidArgument.
Result<IngressPosture> parse_ingress_posture(std::string_view text);
const char* to_string(IngressPosture posture);

// IP protocol numbers, as nftables' `meta l4proto` compares them.
inline constexpr std::uint8_t kTcp = 6;
inline constexpr std::uint8_t kUdp = 17;
inline constexpr std::uint8_t kSctp = 132;
// "TCP", "UDP", "SCTP" (Kubernetes' words).
Result<std::uint8_t> parse_protocol(std::string_view text);

struct PortRange {
  std::uint8_t protocol = kTcp;
  std::uint16_t first = 0;
  std::uint16_t last = 0;  // == first for one port
  friend auto operator<=>(const PortRange&, const PortRange&) = default;
};

// A peered cluster, as its Connected ClusterPeering's status shows it.
struct PeeredCluster {
  std::string id;
  IngressPosture posture = IngressPosture::kAll;
  std::vector<net::Prefix> ranges;  // its pod and service ranges: what its tunnel may carry
  friend bool operator==(const PeeredCluster&, const PeeredCluster&) = default;
};

// An endpoint of a Service this cluster exports, on its target port: what a packet to the
// Service's ClusterIP is addressed to once kube-proxy has translated it, before it reaches the
// node judging it.
struct ExportedTarget {
  net::IpAddress address;
  std::uint8_t protocol = kTcp;
  std::uint16_t port = 0;
  friend auto operator<=>(const ExportedTarget&, const ExportedTarget&) = default;
};

// An endpoint of a Service a remote cluster exports: the only remote addresses whose namespace
// this cluster knows (from the imported EndpointSlices).
struct RemoteWorkload {
  std::string cluster;
  std::string ns;
  net::IpAddress address;
};

struct LocalPod {
  std::string ns;
  std::string name;
  std::map<std::string, std::string> labels;
  std::vector<net::IpAddress> ips;
};

struct IngressRule {
  bool all_clusters = false;          // every peered cluster
  std::vector<std::string> clusters;  // else these
  std::vector<std::string> namespaces;  // empty: any source in those clusters
  std::vector<PortRange> ports;         // empty: every port and protocol
};

// A ClusterSetIngressPolicy: allow-only and additive, like NetworkPolicy.
struct IngressPolicy {
  std::string ns;
  std::string name;
  kube::LabelSelector pods = kube::LabelSelector::everything();  // local pods in `ns`
  std::vector<IngressRule> from;
};

struct IngressInput {
  std::vector<net::Prefix> node_pod_cidrs;  // this node's pod blocks: the packets judged here
  std::vector<PeeredCluster> clusters;
  std::vector<ExportedTarget> exported;          // on this node
  std::vector<ExportedTarget> exported_cluster;  // on every node of the cluster
  std::vector<RemoteWorkload> remote_workloads;
  std::vector<LocalPod> pods;  // this node's own pods
  std::vector<IngressPolicy> policies;
};

// What one cluster's packets may reach. A source of `from_sources` is an exact remote address;
// the rest apply to any source of the cluster. Port ranges are merged, so no two elements of
// one set overlap (nftables refuses overlapping intervals).
struct ClusterIngress {
  IngressPosture posture = IngressPosture::kAll;
  std::vector<net::Prefix> ranges;
  std::set<std::tuple<net::IpAddress, PortRange>> to_ports;  // destination, ports
  std::set<net::IpAddress> to_any;                           // destination, any port
  std::set<std::tuple<net::IpAddress, net::IpAddress, PortRange>> from_to_ports;  // source, destination, ports
  std::set<std::tuple<net::IpAddress, net::IpAddress>> from_to_any;                // source, destination
  friend bool operator==(const ClusterIngress&, const ClusterIngress&) = default;
};

struct PolicyStatus {
  std::size_t selected_pods = 0;  // on this node
  std::vector<std::string> problems;  // e.g. a cluster the rule names that is not peered
  friend bool operator==(const PolicyStatus&, const PolicyStatus&) = default;
};

struct IngressRules {
  std::vector<net::Prefix> node_pod_cidrs;         // sorted
  std::map<std::string, ClusterIngress> clusters;  // by cluster ID
  std::set<ExportedTarget> exported;               // shared by every ExportedServices cluster
  std::set<ExportedTarget> exported_cluster;       // the same on every node: for relayed traffic
  std::map<std::string, PolicyStatus> policies;    // by "namespace/name"
  friend bool operator==(const IngressRules&, const IngressRules&) = default;
};

IngressRules compile_ingress(const IngressInput& input);

// Merges overlapping and adjacent port ranges of one protocol: what a set of intervals holds.
std::vector<PortRange> merge_port_ranges(std::vector<PortRange> ranges);

}  // namespace cw::agent
