// Links, addresses and routes of one network namespace through rtnetlink: what the node
// agent needs to give a WireGuard device its addresses and point the remote clusters' CIDRs
// at it. The setters state the whole desired list and are idempotent, after Kilo's
// route.Table.Set: they read the kernel's state, change only what differs, report what they
// changed, and never touch what clusterwire does not own.
//
// Threading: an Rtnetlink owns one netlink Socket and is not thread-safe (one per thread).
// It works in the network namespace its thread was in when open() ran, for its whole life.
#pragma once

#include <linux/rtnetlink.h>

#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"
#include "common/net/ip_address.h"
#include "common/net/prefix.h"
#include "common/netlink/socket.h"

namespace cw::netlink {

// The rtm_protocol of every route clusterwire installs: set_routes() adds, changes and removes
// only routes that carry it, so it can never disturb a route someone else made. 119 (0x77,
// 'w') because it is taken by nobody we know of: the kernel interprets 0-4 (unspec,
// redirect, kernel, boot, static) and names 8-18, 42, 99 (Open/R) and 186-192 in
// <linux/rtnetlink.h>; iproute2's /etc/iproute2/rt_protos lists the same; FRR's zebra uses
// 186-198, Calico's felix 80, Monogon 129, and Cilium installs its routes as "kernel" (2).
// `ip route show proto 119` lists ours; an rt_protos.d entry can give it a name.
inline constexpr std::uint8_t kRouteProtocol = 119;

struct LinkInfo {
  int index = 0;
  std::string name;
  std::string kind;  // "dummy", "wireguard", "veth", ...; empty for physical devices and lo
  std::uint32_t mtu = 0;
  bool up = false;          // administratively up (IFF_UP), whatever the carrier does
  std::uint32_t flags = 0;  // IFF_* as the kernel reports them

  friend bool operator==(const LinkInfo&, const LinkInfo&) = default;
};

// An address on an interface with the length of its subnet: "10.0.0.1/24". Not a net::Prefix,
// whose address part may not have host bits: here the host bits are the point.
struct InterfaceAddress {
  net::IpAddress address;
  int prefix_length = 0;

  // "<address>/<length>", strictly: both parts as IpAddress and Prefix parse them.
  static Result<InterfaceAddress> parse(std::string_view text);
  std::string to_string() const;
  // The subnet the address is in: 10.0.0.0/24 for 10.0.0.1/24.
  Result<net::Prefix> subnet() const;

  friend bool operator==(const InterfaceAddress&, const InterfaceAddress&) = default;
  friend std::strong_ordering operator<=>(const InterfaceAddress&,
                                          const InterfaceAddress&) = default;
};

// What set_addresses() changed, each list sorted.
struct AddressDiff {
  std::vector<InterfaceAddress> added;
  std::vector<InterfaceAddress> removed;
  bool unchanged() const { return added.empty() && removed.empty(); }
};

struct Route {
  net::Prefix destination;
  // The outgoing link. Empty only with a gateway, to let the kernel pick the link; a route
  // read back names its link (unless it is multipath, which clusterwire never makes).
  std::string device;
  std::optional<net::IpAddress> gateway;
  std::optional<net::IpAddress> source;  // the preferred source address (RTA_PREFSRC)
  int table = RT_TABLE_MAIN;
  // The route's priority. IPv6 has no metric 0: the kernel stores it as 1024, and so does
  // comparing a desired route with what the kernel holds.
  std::uint32_t metric = 0;
  // Read back by list_routes(); set_routes() always writes kRouteProtocol and refuses others.
  std::uint8_t protocol = kRouteProtocol;

  std::string to_string() const;  // "10.1.0.0/16 via 10.0.0.2 dev cw0 src 10.0.0.1 metric 10"
  friend bool operator==(const Route&, const Route&) = default;
};

struct IifRule {
  net::Family family = net::Family::kIPv4;
  std::string iif;          // packets that arrived on this link
  int table = RT_TABLE_MAIN;  // are routed by this table
  std::uint32_t priority = 0;
  friend bool operator==(const IifRule&, const IifRule&) = default;
};

struct RouteChange {
  Route before;
  Route after;
};

// What set_routes() changed (or, from plan_routes(), would change), each list sorted by
// destination.
struct RouteDiff {
  std::vector<Route> added;
  std::vector<RouteChange> changed;
  std::vector<Route> removed;
  bool unchanged() const { return added.empty() && changed.empty() && removed.empty(); }
};

// The pure decision behind set_routes(): given clusterwire's routes now in `table` and the
// desired ones, what to add, change and remove. Routes are identified by destination:
// clusterwire keeps at most one route per destination and table. A desired route without a
// device matches a current one on any device. kInvalidArgument for a desired route that is
// malformed (see set_routes()) or listed twice with different values.
Result<RouteDiff> plan_routes(const std::vector<Route>& current, const std::vector<Route>& desired,
                              int table);

class Rtnetlink {
 public:
  static Result<Rtnetlink> open(std::chrono::milliseconds timeout = Socket::kDefaultTimeout);

  // Links. Names are checked as the kernel does (1-15 characters, no '/', ':' or white
  // space) before anything is sent. kNotFound when the link does not exist.
  Result<LinkInfo> get_link(const std::string& name);
  Result<std::vector<LinkInfo>> list_links();  // sorted by index
  // kAlreadyExists if the name is taken; kInvalidArgument if the kernel has no such kind
  // (for "wireguard": the module is not loaded or not built).
  Result<void> create_link(const std::string& name, const std::string& kind);
  Result<void> set_mtu(const std::string& name, std::uint32_t mtu);
  Result<void> set_up(const std::string& name, bool up = true);
  // One IPv4 per-device setting (net.ipv4.conf.<name>.<key>), `key` an IPV4_DEVCONF_* of
  // <linux/ip.h>, e.g. IPV4_DEVCONF_RP_FILTER. Through rtnetlink (IFLA_AF_SPEC, AF_INET,
  // IFLA_INET_CONF) rather than /proc/sys, which containers mount read-only: CAP_NET_ADMIN is
  // all it needs.
  Result<void> set_ipv4_conf(const std::string& name, int key, std::uint32_t value);
  Result<void> delete_link(const std::string& name);

  // Addresses of one link, sorted, including the IPv6 link-local ones the kernel made.
  Result<std::vector<InterfaceAddress>> list_addresses(const std::string& ifname);
  // Makes `desired` the link's addresses: adds the missing, removes the others, except
  // IPv6 link-local addresses (fe80::/10), which the kernel generates and neighbour
  // discovery needs; they are only added when desired. Duplicates are harmless.
  Result<AddressDiff> set_addresses(const std::string& ifname,
                                    const std::vector<InterfaceAddress>& desired);

  // Unicast routes in `table`, sorted; with `only_ours`, those with kRouteProtocol.
  Result<std::vector<Route>> list_routes(int table = RT_TABLE_MAIN, bool only_ours = true);
  // Makes `desired` exactly the routes with kRouteProtocol in `table` (IPv4 and IPv6):
  // adds the missing, replaces the changed in place (NLM_F_REPLACE; a new metric is a new
  // kernel route, so that one is added before the old one goes), then deletes ours that are
  // not desired. A route of another protocol is never replaced or deleted: adding where one
  // already sits is kAlreadyExists.
  //
  // Every desired route must have table == `table`, a device or a gateway, and a gateway and
  // source of the destination's family. Devices are resolved before anything is changed: a
  // missing one is kNotFound and nothing is touched. A kernel error stops the pass with the
  // changes made so far in place; the next pass re-reads the table and carries on.
  Result<RouteDiff> set_routes(const std::vector<Route>& desired, int table = RT_TABLE_MAIN);

  // Policy rules of the form "iif <device> lookup <table>" at `priority`, one family each:
  // makes one present or absent, true when it changed something. A rule is recognised by
  // its family, priority, input device and table, whoever made it; ours carry kRouteProtocol.
  Result<bool> set_iif_rule(const IifRule& rule, bool present);
  Result<std::vector<IifRule>> list_iif_rules();

  // For requests this class does not wrap.
  Socket& socket() { return socket_; }

 private:
  explicit Rtnetlink(Socket socket) : socket_(std::move(socket)) {}
  Result<std::vector<InterfaceAddress>> list_addresses(int ifindex);
  Result<std::vector<Route>> dump_routes(int table, bool only_ours,
                                         const std::vector<LinkInfo>& links);

  Socket socket_;
};

// The messages Rtnetlink sends, exposed so that their bytes can be checked without a kernel.

// RTM_NEWLINK creating `name` of `kind` (NLM_F_CREATE | NLM_F_EXCL).
Request build_new_link(const std::string& name, const std::string& kind);
// RTM_NEWADDR (NLM_F_CREATE | NLM_F_REPLACE) or RTM_DELADDR of `address` on link `ifindex`.
Request build_address(std::uint16_t type, int ifindex, const InterfaceAddress& address);
// RTM_NEWROUTE with `flags` (NLM_F_CREATE | NLM_F_EXCL to add, NLM_F_REPLACE to change)
// or RTM_DELROUTE of `route` out of link `ifindex` (0: none) with rtm_protocol `protocol`.
// A delete names only what identifies the route (destination, table, metric, protocol).
Request build_route(std::uint16_t type, std::uint16_t flags, const Route& route, int ifindex,
                    std::uint8_t protocol);

}  // namespace cw::netlink
