// The lab's world inside each cluster: who routes pod blocks between a cluster's nodes and who
// masquerades pod traffic, as on real clusters (docs/lab.md, "Worlds"). Pure functions of the
// layout and the node blocks the operators allocated: the commands and configuration files
// `up` applies, so that they can be read and tested without a machine.
//
// - bird: Calico's way. bird2 on every node, an iBGP full mesh among the cluster's nodes, each
//   node originating its block, so the others learn `<block> via <node> proto bird`. Pods from
//   the CNI bridge plugin with ipMasq: the plugin's own masquerade rules (iptables).
// - vxlan: flannel's way, set up as flanneld would: flannel.1 (VXLAN 1, UDP 8472) per node,
//   a neighbour and an FDB entry for every other node, routes to their blocks through it
//   (onlink), and flanneld's masquerade rules.
// - clusterwire: no CNI routing: the node agents route in-cluster, nothing masquerades.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "cli/lab/layout.h"
#include "common/base/result.h"

namespace cw::lab {

enum class Cni { kBird, kVxlan, kClusterwire };

Result<Cni> parse_cni(const std::string& text);  // "bird", "vxlan", "clusterwire"
const char* cni_name(Cni cni);

inline constexpr int kVxlanPort = 8472;   // flannel's default (the Linux kernel's, not IANA's 4789)
inline constexpr int kVxlanOverhead = 50;  // flannel's MTU reduction for VXLAN over IPv4
inline constexpr int kWireGuardOverhead = 80;
inline constexpr int kBgpAs = 64512;       // Calico's default AS number

// The cluster's pod range holding a node block: its /16 (IPv4) or /48 (IPv6).
Result<std::string> cluster_range_of(const std::string& node_block);

// The block of one family in a Node's clusterwire.io/pod-cidr annotation ("10.240.0.0/24,
// fd10:240::/64"): "" when it has none.
std::string family_block(const std::string& annotation, bool v6);

// The CNI bridge plugin's configuration for one node's pods in this world: bridge cni0 as the
// pods' gateway, host-local on the node's blocks (the annotation's, one range per family), the
// pod MTU that world's CNI would use, and ipMasq only in the bird world.
nlohmann::json bridge_config(Cni cni, const std::string& node_blocks, int underlay_mtu, const std::string& ipam_dir);

// bird2's configuration for one node: its blocks originated, an iBGP session with every other
// node of its cluster per family (IPv6 blocks over IPv6 sessions, so their next hops are IPv6),
// and only BGP routes exported to the kernel (where they show as `proto bird`). `node_blocks`
// maps node name to its pod-cidr annotation, for the node's cluster.
std::string bird_config(const ClusterLayout& cluster, const NodeLayout& node,
                        const std::map<std::string, std::string>& node_blocks);

// The MAC address of a node's flannel.1: fixed by the layout so that no node has to read
// another's back (flanneld publishes it in a Node annotation).
std::string vtep_mac(const NodeLayout& node);

// The `ip` and `bridge` commands (argument vectors, run inside the node's namespace) that make
// flannel.1 and the entries for every other node of the cluster. IPv6 blocks ride the same
// VXLAN device (its VTEP gets the v6 block's network address too), where flannel would make a
// second one, flannel-v6.1, over an IPv6 underlay.
std::vector<std::vector<std::string>> vxlan_commands(const ClusterLayout& cluster, const NodeLayout& node,
                                                     const std::map<std::string, std::string>& node_blocks,
                                                     int underlay_mtu);

// flanneld's masquerade rules (--ip-masq), as input to `iptables-restore --noflush` (or
// `ip6tables-restore` with the IPv6 ranges).
std::string flannel_masquerade_rules(const std::string& cluster_range, const std::string& node_block);

// The nat world's router (one per cluster, in its own namespace): masquerade of the private
// subnet to the underlay, a UDP port forward per gateway to its WireGuard port, and a forward
// firewall letting in only replies and forwarded ports. One nft script (table ip cwlab_router).
std::string nat_router_rules(const ClusterLayout& cluster);

}  // namespace cw::lab

namespace cw::lab {

// Faults (`cwctl lab impair`). An impairment is kept as its canonical words: "drop-icmp-frag",
// "partition c1 c2" (clusters in order), "masquerade c1".

// Checks the words against the lab and returns the canonical form.
Result<std::string> parse_impairment(const LabLayout& lab, const std::vector<std::string>& words);

// The underlay's fault table (`table bridge cwlab_impair`, in the underlay namespace, on the
// bridge's forward path) for the active impairments, as one nft script that replaces it; the
// table is empty when none applies there.
// `underlay_mtu`: the links' MTU; mtu-black-hole drops frames 100 bytes smaller than that.
std::string underlay_impairment_rules(const LabLayout& lab, const std::vector<std::string>& impairments,
                                      int underlay_mtu = 1500);

// The masquerade a CNI adds (what flannel --ip-masq, Calico natOutgoing and the bridge plugin's
// ipMasq have in common), in iptables-legacy: a backend other than the iptables-nft the CNI
// plugins of the lab write to, so a node has masquerade in both. `op` is "-A", "-D" or "-C".
std::vector<std::string> masquerade_rule(const std::string& op, const std::string& node_block,
                                         const std::string& cluster_range);

// The `snat C` fault on one node: a source NAT that runs before clusterwire's exemption (as an
// eBPF masquerade does, which netfilter never sees), rewriting the node block's traffic into the
// tunnel to another address of the block (`kSnatHost`, so that WireGuard's allowed IPs still
// let it through and the rewrite shows). One nft script adding table ip cwlab_snat, or (empty
// `node_block`) deleting it.
inline constexpr int kSnatHost = 250;
std::string snat_rules(const std::string& wg_interface, const std::string& node_block);

}  // namespace cw::lab
