// The netfilter rules that let the tunnel work beside the cluster's own CNI and kube-proxy,
// kept in a table of clusterwire's own (`table inet clusterwire`), never anywhere else:
//
// - No SNAT between clusters. CNIs masquerade pod traffic that leaves the pod network (Calico
//   natOutgoing, flannel --ip-masq, the bridge plugin's ipMasq, in iptables-legacy,
//   iptables-nft or native nftables). A masqueraded packet leaves with the node's address,
//   which is in no remote peer's allowed IPs, so WireGuard drops it. A nat chain at
//   `srcnat - 1` gives every connection to a remote range a null SNAT binding (to its own
//   source address) before any other NAT chain runs; once a connection has a source binding,
//   the kernel runs no later source NAT for it, whichever backend that NAT is written in. So
//   no backend needs detecting and no foreign chain is edited.
// - MSS clamping: SYNs leaving through the WireGuard device get their MSS lowered to what the
//   device's MTU allows (MTU - 40 for IPv4, MTU - 60 for IPv6), so TCP works even where ICMP
//   "fragmentation needed" is dropped. The values are written out per family (rather than
//   `rt mtu`) so that each family's header size is explicit and the rule, and its counter,
//   matches only SYNs whose MSS it actually lowers.
//
// Every rule carries a counter and a comment tag; the tags say which rules the table should
// have, so that a pass can tell from the kernel's listing whether the table is as desired.
// Only the remote ranges change while the agent runs, and those are set elements: a change
// of peerings is one small set update, never a rewrite of rules.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/result.h"
#include "common/net/prefix.h"

namespace cw::agent {

inline constexpr const char* kNftFamily = "inet";
inline constexpr const char* kNftTable = "clusterwire";

struct TunnelRules {
  std::string interface;                // the WireGuard device
  std::vector<net::Prefix> remote_v4;   // remote pod and service ranges: sorted, none inside another
  std::vector<net::Prefix> remote_v6;
  std::uint32_t mtu = 0;                // the tunnel's MTU, to which SYNs are clamped; 0: no clamping

  friend bool operator==(const TunnelRules&, const TunnelRules&) = default;
};

// The rules for the ranges routed through `interface`, clamping SYNs to `mtu` (0: not at all).
// Ranges are split by family, sorted, and a range lying inside another is dropped (an interval
// set refuses overlapping elements).
TunnelRules make_tunnel_rules(std::string interface, const std::vector<net::Prefix>& remote_ranges, std::uint32_t mtu);

// What our table holds, read back from nft's JSON listing.
struct ObservedRules {
  std::vector<std::string> structure;  // chains and rule tags, as structure_of() lists them
  std::vector<net::Prefix> remote_v4;
  std::vector<net::Prefix> remote_v6;
  bool elements_readable = true;       // false when a set holds something that is not a prefix
};

// Parses the "nftables" array of `nft -j list table inet clusterwire`.
ObservedRules parse_listing(const nlohmann::json& listing);

// The chains (name, type, hook, priority) and rule tags the desired table has, in order.
std::vector<std::string> structure_of(const TunnelRules& rules);

// The nft script that takes the table from `observed` (nullopt: it does not exist) to
// `desired`: empty when they are equal; element updates of the two sets when only the ranges
// differ; else the whole table replaced in one transaction (add, delete, create: atomic, so
// there is no moment without the rules).
std::string plan_tunnel_rules(const TunnelRules& desired, const std::optional<ObservedRules>& observed);

// The whole table, replacing whatever is there.
std::string render_tunnel_rules(const TunnelRules& rules);

// Removes the table (for cleanup); a no-op when there is none.
std::string delete_tunnel_rules();

// Reverse-path filtering: the kernel uses the larger of net.ipv4.conf.all.rp_filter and the
// device's own. Strict mode (1) drops a packet that arrives on an interface other than the one
// its source is routed through, which asymmetric paths through the tunnel do; loose mode (2)
// only asks that the source be routable. Returns the value to write to the device's
// rp_filter so that the effective mode is not strict, or nullopt when nothing needs writing.
std::optional<int> tunnel_rp_filter(int all, int device);

}  // namespace cw::agent
