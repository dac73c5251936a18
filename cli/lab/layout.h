// The lab's names and addresses: a pure function of the lab's name and size, so that `up`,
// `verify`, `status` and `down` (even after a crash, without a state file) agree on them.
#pragma once

#include <string>
#include <vector>

#include "common/base/result.h"

namespace cw::lab {

inline constexpr const char* kStateRoot = "/run/clusterwire-lab";
inline constexpr const char* kUnderlayBridge = "br0";
inline constexpr const char* kUnderlaySubnet = "192.168.77.0/24";
inline constexpr const char* kUnderlayGateway = "192.168.77.254";  // the bridge; API servers listen here
inline constexpr const char* kClusterSetPool = "10.240.0.0/12";     // /16 per cluster, /24 per node
inline constexpr const char* kUnderlaySubnet6 = "fd00:77::/64";      // the underlay's IPv6 (dual-stack labs)
inline constexpr const char* kClusterSetPool6 = "fd10:240::/32";     // /48 per cluster, /64 per node
inline constexpr int kClusterPrefixLength6 = 48;
inline constexpr int kNodePrefixLength6 = 64;
inline constexpr int kClusterPrefixLength = 16;
inline constexpr int kNodePrefixLength = 24;
inline constexpr int kWireGuardPort = 51820;
inline constexpr int kFirstApiPort = 6443;    // cluster i's API server: kFirstApiPort + i - 1
inline constexpr int kFirstEtcdPort = 2379;   // cluster i's etcd, on the underlay namespace's loopback: client 2379 + 2(i-1), peer +1
inline constexpr int kPodEchoPort = 7000;     // every pod runs a TCP echo server here
inline constexpr int kPodWebPort = 8080;      // and one answering "<pod name> <client address>"
inline constexpr int kPodSinkPort = 7002;     // and one answering the byte count it received
inline constexpr int kDnsServerPort = 5300;   // cw-dns on the first node's loopback
inline constexpr int kResolverPort = 53;      // unbound on the first node's underlay address
// The nat world (docs/lab.md, "The nat world"): every cluster's nodes on a private bridge of
// its own, the same subnet in every cluster, behind a router namespace that masquerades them
// to the underlay (the "internet") and forwards each gateway's WireGuard port to it.
inline constexpr const char* kNatNodeSubnet = "172.31.0.0/24";  // every AWS default VPC's first subnet
inline constexpr const char* kNatRouterInside = "172.31.0.1";
inline constexpr const char* kNatNodeSubnet6 = "fd00:31::/64";
inline constexpr const char* kNatBridge = "vpc0";                // in the router's namespace
inline constexpr int kGatewayPublicPortBase = 40000;             // gateway k: <router>:40000+k
inline constexpr int kMaxClusters = 9;
inline constexpr int kMaxNodes = 9;

struct NodeLayout {
  int cluster = 0;         // 1-based
  int index = 0;           // 1-based within its cluster
  std::string node_name;   // the Node object: "c1-n1"
  std::string netns;       // "<lab>-c1-n1"
  std::string pod_netns;   // "<lab>-c1-n1-pod"
  std::string pod_name;    // "c1-n1-pod"
  std::string underlay_ip; // 192.168.77.<10*cluster+index>
  std::string underlay_ip6;  // fd00:77::<10*cluster+index> (the same digits, read as hex)
  std::string underlay_veth;  // the bridge side, in the underlay namespace: "c1n1"
  std::string wg_interface;   // unique across labs (UAPI sockets are global): "cw<hash6>c1n1"
  // The nat world: a gateway candidate (labelled clusterwire.io/gateway=true), and where other
  // clusters reach it (its router's port forward).
  bool gateway = false;
  std::string public_endpoint;
};

struct ClusterLayout {
  int index = 0;
  std::string id;            // the cluster ID: "c1"
  std::string service_cidr;  // 10.96.<index>.0/24, distinct per cluster
  int api_port = 0;
  std::vector<NodeLayout> nodes;
  // The nat world: the router's namespace ("<lab>-c1-rt") and its address on the underlay.
  std::string router_netns;
  std::string router_ip;
  const NodeLayout& dns_node() const { return nodes.front(); }  // runs cw-dns and unbound
};

struct LabLayout {
  std::string name;
  std::string underlay_netns;  // "<lab>-underlay"
  std::string state_dir;       // /run/clusterwire-lab/<lab>
  std::string interface_prefix;  // "cw<hash>": every WireGuard interface of this lab starts so
  bool nat = false;              // the nat world
  int gateways = 0;              // gateway candidates per cluster (the nat world)
  std::vector<ClusterLayout> clusters;

  std::string kubeconfig(const ClusterLayout& c) const { return state_dir + "/" + c.id + ".kubeconfig"; }
  std::string log_path(const std::string& process) const { return state_dir + "/logs/" + process + ".log"; }
  std::string pid_path(const std::string& process) const { return state_dir + "/pids/" + process + ".pid"; }
  const ClusterLayout* cluster(const std::string& id_or_index) const;
};

// Lab names: a lowercase letter then up to 11 lowercase letters or digits. No hyphen, so that
// "<lab>-" never prefixes another lab's names.
Result<void> validate_name(const std::string& name);

// `nat`: the nat world, with `gateways` candidates per cluster (its first nodes; 1 to nodes).
Result<LabLayout> make_layout(const std::string& name, int clusters, int nodes, bool nat = false, int gateways = 0);

// Does this network namespace belong to the lab (by its naming scheme alone)?
bool is_lab_netns(const std::string& lab, const std::string& netns);
// Does this UAPI socket file name ("cwab12cdc1n1.sock") belong to the lab?
bool is_lab_socket(const std::string& lab, const std::string& file_name);

// "cw" and 6 hex digits of a hash of the lab's name.
std::string interface_prefix(const std::string& lab);
// /run/clusterwire-lab/<lab>: the state directory, also for a lab whose size is unknown.
std::string state_dir_for(const std::string& lab);

}  // namespace cw::lab
