#include "common/netlink/rtnetlink.h"

#include "common/net/interface_name.h"

#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/fib_rules.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <map>
#include <tuple>

namespace cw::netlink {
namespace {

// IPv6 stores a route added with metric 0 as 1024 (IP6_RT_PRIO_USER).
constexpr std::uint32_t kIPv6DefaultMetric = 1024;

std::uint8_t address_family(net::Family family) {
  return family == net::Family::kIPv4 ? AF_INET : AF_INET6;
}

std::size_t address_size(net::Family family) { return family == net::Family::kIPv4 ? 4 : 16; }

// Network byte order, as rtnetlink carries addresses.
std::vector<std::uint8_t> address_bytes(const net::IpAddress& address) {
  const std::size_t size = address_size(address.family());
  std::vector<std::uint8_t> bytes(size);
  const net::Uint128 bits = address.bits();
  for (std::size_t i = 0; i < size; ++i) {
    bytes[i] = static_cast<std::uint8_t>(bits >> (8 * (size - 1 - i)));
  }
  return bytes;
}

std::optional<net::IpAddress> address_from(std::span<const std::uint8_t> bytes, int af) {
  const net::Family family = af == AF_INET ? net::Family::kIPv4 : net::Family::kIPv6;
  if (bytes.size() != address_size(family)) return std::nullopt;
  net::Uint128 bits = 0;
  for (const std::uint8_t b : bytes) bits = (bits << 8) | b;
  return net::IpAddress::from_bits(family, bits);
}

std::optional<net::IpAddress> address_attribute(const AttributeList& attributes, std::uint16_t type,
                                                int af) {
  const auto attribute = attributes.find(type);
  if (!attribute) return std::nullopt;
  return address_from(attribute->payload(), af);
}

bool is_ipv6_link_local(const net::IpAddress& address) {
  return !address.is_v4() && (address.bits() >> 118) == 0x3fa;  // fe80::/10
}

std::uint32_t effective_metric(const Route& route) {
  if (route.metric == 0 && route.destination.family() == net::Family::kIPv6) {
    return kIPv6DefaultMetric;
  }
  return route.metric;
}

Result<void> check_link_name(const std::string& name) { return net::check_interface_name(name); }

Result<void> check_table(int table) {
  if (table <= 0) {  // RT_TABLE_UNSPEC
    return Error(ErrorCode::kInvalidArgument, "invalid routing table " + std::to_string(table));
  }
  return ok_result();
}

// An error from the kernel with what we were doing in front.
Result<void> run(Socket& socket, Request& request, const std::string& context) {
  auto replies = socket.request(request);
  if (!replies) return replies.error().with_context(context);
  return ok_result();
}

std::optional<LinkInfo> parse_link(const Reply& reply) {
  if (reply.type() != RTM_NEWLINK) return std::nullopt;
  const auto header = reply.family_header<ifinfomsg>();
  if (!header) return std::nullopt;
  LinkInfo link;
  link.index = header->ifi_index;
  link.flags = header->ifi_flags;
  link.up = (header->ifi_flags & IFF_UP) != 0;
  for (const Attribute& attribute : reply.attributes(sizeof(ifinfomsg))) {
    switch (attribute.type()) {
      case IFLA_IFNAME:
        link.name = std::string(attribute.string());
        break;
      case IFLA_MTU:
        link.mtu = attribute.u32().value_or(0);
        break;
      case IFLA_LINKINFO:
        if (const auto kind = attribute.nested().find(IFLA_INFO_KIND)) {
          link.kind = std::string(kind->string());
        }
        break;
      default:
        break;
    }
  }
  return link;
}

std::string index_to_name(const std::vector<LinkInfo>& links, int index) {
  for (const LinkInfo& link : links) {
    if (link.index == index) return link.name;
  }
  return "if" + std::to_string(index);  // a link that appeared after we listed them
}

std::optional<int> name_to_index(const std::vector<LinkInfo>& links, const std::string& name) {
  for (const LinkInfo& link : links) {
    if (link.name == name) return link.index;
  }
  return std::nullopt;
}

// Routes are reported by destination first, so that logs and diffs read like `ip route`.
auto route_key(const Route& r) {
  return std::tie(r.destination, r.metric, r.device, r.gateway, r.source, r.table, r.protocol);
}

void sort_routes(std::vector<Route>& routes) {
  std::sort(routes.begin(), routes.end(),
            [](const Route& a, const Route& b) { return route_key(a) < route_key(b); });
}

Result<void> check_desired_route(const Route& route, int table) {
  const auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument, "route " + route.to_string() + ": " + why);
  };
  if (route.table != table) {
    return bad("is for table " + std::to_string(route.table) + ", not " + std::to_string(table));
  }
  if (route.protocol != kRouteProtocol) {
    return bad("clusterwire only installs routes of its own protocol " +
               std::to_string(kRouteProtocol));
  }
  if (route.device.empty() && !route.gateway) return bad("needs a device or a gateway");
  if (!route.device.empty()) {
    if (auto name = check_link_name(route.device); !name) return bad(name.error().message());
  }
  const net::Family family = route.destination.family();
  if (route.gateway && route.gateway->family() != family) {
    return bad("the gateway's family differs");
  }
  if (route.source && route.source->family() != family) return bad("the source's family differs");
  return ok_result();
}

// Whether the kernel's `current` route is what `desired` asks for.
bool satisfies(const Route& current, const Route& desired) {
  return current.destination == desired.destination &&
         (desired.device.empty() || current.device == desired.device) &&
         current.gateway == desired.gateway && current.source == desired.source &&
         current.table == desired.table && effective_metric(current) == effective_metric(desired);
}

}  // namespace

// --- values --------------------------------------------------------------------------------

Result<InterfaceAddress> InterfaceAddress::parse(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument,
                 "invalid interface address \"" + std::string(text) + "\": " + why);
  };
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return bad("missing \"/<length>\"");
  auto address = net::IpAddress::parse(text.substr(0, slash));
  if (!address) return bad(address.error().message());
  const std::string_view digits = text.substr(slash + 1);
  int length = -1;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), length);
  if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() ||
      (digits.size() > 1 && digits[0] == '0')) {
    return bad("the length is not a decimal number");
  }
  if (length < 0 || length > net::bit_width(address->family())) {
    return bad("the length is out of range");
  }
  return InterfaceAddress{*address, length};
}

std::string InterfaceAddress::to_string() const {
  return address.to_string() + "/" + std::to_string(prefix_length);
}

Result<net::Prefix> InterfaceAddress::subnet() const {
  const net::Family family = address.family();
  return net::Prefix::make(
      net::IpAddress::from_bits(family, address.bits() & net::network_mask(family, prefix_length)),
      prefix_length);
}

std::string Route::to_string() const {
  std::string text = destination.to_string();
  if (gateway) text += " via " + gateway->to_string();
  if (!device.empty()) text += " dev " + device;
  if (source) text += " src " + source->to_string();
  if (table != RT_TABLE_MAIN) text += " table " + std::to_string(table);
  if (metric != 0) text += " metric " + std::to_string(metric);
  if (protocol != kRouteProtocol) text += " proto " + std::to_string(protocol);
  return text;
}

// --- the decision --------------------------------------------------------------------------

Result<RouteDiff> plan_routes(const std::vector<Route>& current, const std::vector<Route>& desired,
                              int table) {
  if (auto t = check_table(table); !t) return t.error();
  std::map<net::Prefix, Route> wanted;
  for (const Route& route : desired) {
    if (auto ok = check_desired_route(route, table); !ok) return ok.error();
    Route normal = route;
    normal.metric = effective_metric(route);
    const auto [it, inserted] = wanted.emplace(route.destination, normal);
    if (!inserted && !(it->second == normal)) {
      return Error(ErrorCode::kInvalidArgument,
                   "two different routes to " + route.destination.to_string() + ": " +
                       it->second.to_string() + " and " + normal.to_string());
    }
  }

  std::map<net::Prefix, std::vector<Route>> present;
  for (const Route& route : current) present[route.destination].push_back(route);

  RouteDiff diff;
  for (auto& [destination, routes] : present) {
    const auto want = wanted.find(destination);
    if (want == wanted.end()) {
      diff.removed.insert(diff.removed.end(), routes.begin(), routes.end());
      continue;
    }
    // Several of ours to one destination (metrics differ) can only come from outside
    // clusterwire; keep the one that fits, else change the one a replace can reach.
    auto keep = std::find_if(routes.begin(), routes.end(),
                             [&](const Route& r) { return satisfies(r, want->second); });
    if (keep == routes.end()) {
      keep = std::find_if(routes.begin(), routes.end(), [&](const Route& r) {
        return effective_metric(r) == want->second.metric;
      });
      if (keep == routes.end()) keep = routes.begin();
      diff.changed.push_back(RouteChange{*keep, want->second});
    }
    for (auto r = routes.begin(); r != routes.end(); ++r) {
      if (r != keep) diff.removed.push_back(*r);
    }
    wanted.erase(want);
  }
  for (auto& [destination, route] : wanted) diff.added.push_back(route);

  sort_routes(diff.added);
  sort_routes(diff.removed);
  std::sort(diff.changed.begin(), diff.changed.end(),
            [](const RouteChange& a, const RouteChange& b) {
              return route_key(a.after) < route_key(b.after);
            });
  return diff;
}

// --- messages ------------------------------------------------------------------------------

Request build_new_link(const std::string& name, const std::string& kind) {
  Request request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  request.put_header<ifinfomsg>().ifi_family = AF_UNSPEC;
  request.put_string(IFLA_IFNAME, name);
  nlattr* info = request.begin_nested(IFLA_LINKINFO);
  request.put_string(IFLA_INFO_KIND, kind);
  request.end_nested(info);
  return request;
}

Request build_address(std::uint16_t type, int ifindex, const InterfaceAddress& address) {
  const std::uint16_t flags = type == RTM_NEWADDR ? NLM_F_CREATE | NLM_F_REPLACE : 0;
  Request request(type, flags);
  auto& header = request.put_header<ifaddrmsg>();
  header.ifa_family = address_family(address.address.family());
  header.ifa_prefixlen = static_cast<std::uint8_t>(address.prefix_length);
  header.ifa_scope = RT_SCOPE_UNIVERSE;
  header.ifa_index = static_cast<std::uint32_t>(ifindex);
  // Both, as iproute2 sends them: IFA_LOCAL is the address itself, IFA_ADDRESS the peer's
  // on a point-to-point link and the same address everywhere else.
  const auto bytes = address_bytes(address.address);
  request.put_bytes(IFA_LOCAL, bytes);
  request.put_bytes(IFA_ADDRESS, bytes);
  return request;
}

Request build_route(std::uint16_t type, std::uint16_t flags, const Route& route, int ifindex,
                    std::uint8_t protocol) {
  const bool remove = type == RTM_DELROUTE;
  const auto table = static_cast<std::uint32_t>(route.table);
  Request request(type, flags);
  auto& header = request.put_header<rtmsg>();
  header.rtm_family = address_family(route.destination.family());
  header.rtm_dst_len = static_cast<std::uint8_t>(route.destination.length());
  // Tables past 255 only fit the attribute; rtm_table then says "see RTA_TABLE".
  header.rtm_table = static_cast<std::uint8_t>(table < 256 ? table : RT_TABLE_UNSPEC);
  header.rtm_protocol = protocol;
  // RT_SCOPE_NOWHERE on a delete matches any scope; a route without a gateway is on-link.
  header.rtm_scope = remove ? RT_SCOPE_NOWHERE : route.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  header.rtm_type = RTN_UNICAST;
  request.put_u32(RTA_TABLE, table);
  request.put_bytes(RTA_DST, address_bytes(route.destination.address()));
  if (!remove) {
    if (ifindex > 0) request.put_u32(RTA_OIF, static_cast<std::uint32_t>(ifindex));
    if (route.gateway) request.put_bytes(RTA_GATEWAY, address_bytes(*route.gateway));
    if (route.source) request.put_bytes(RTA_PREFSRC, address_bytes(*route.source));
  }
  if (route.metric != 0) request.put_u32(RTA_PRIORITY, route.metric);
  return request;
}

// --- Rtnetlink: links ----------------------------------------------------------------------

Result<Rtnetlink> Rtnetlink::open(std::chrono::milliseconds timeout) {
  auto socket = Socket::open(NETLINK_ROUTE, timeout);
  if (!socket) return socket.error();
  // Lets the kernel filter dumps by link, table and protocol (Linux 4.20+). Everything read
  // is filtered here as well, so an older kernel only costs a longer dump.
  (void)socket->set_option(NETLINK_GET_STRICT_CHK, 1);
  return Rtnetlink(std::move(socket).value());
}

Result<LinkInfo> Rtnetlink::get_link(const std::string& name) {
  const std::string context = "reading link \"" + name + "\"";
  if (auto ok = check_link_name(name); !ok) return ok.error();
  Request request(RTM_GETLINK, 0);
  request.put_header<ifinfomsg>().ifi_family = AF_UNSPEC;
  request.put_string(IFLA_IFNAME, name);
  auto replies = socket_.request(request);
  if (!replies) return replies.error().with_context(context);
  for (const Reply& reply : *replies) {
    if (auto link = parse_link(reply)) return *link;
  }
  return Error(ErrorCode::kInternal, context + ": the kernel's answer describes no link");
}

Result<std::vector<LinkInfo>> Rtnetlink::list_links() {
  Request request(RTM_GETLINK, NLM_F_DUMP);
  request.put_header<ifinfomsg>().ifi_family = AF_UNSPEC;
  auto replies = socket_.request(request);
  if (!replies) return replies.error().with_context("listing links");
  std::vector<LinkInfo> links;
  for (const Reply& reply : *replies) {
    if (auto link = parse_link(reply)) links.push_back(std::move(*link));
  }
  std::sort(links.begin(), links.end(),
            [](const LinkInfo& a, const LinkInfo& b) { return a.index < b.index; });
  return links;
}

Result<void> Rtnetlink::create_link(const std::string& name, const std::string& kind) {
  const std::string context = "creating link \"" + name + "\" of kind \"" + kind + "\"";
  if (auto ok = check_link_name(name); !ok) return ok.error();
  if (kind.empty() || std::any_of(kind.begin(), kind.end(), [](char c) {
        return std::isspace(static_cast<unsigned char>(c)) != 0 || c == '\0';
      })) {
    return Error(ErrorCode::kInvalidArgument, context + ": invalid kind");
  }
  Request request = build_new_link(name, kind);
  auto replies = socket_.request(request);
  if (replies) return ok_result();
  const Error& error = replies.error();
  // The kernel answers EOPNOTSUPP for a kind it has no driver for (after trying to load
  // "rtnl-link-<kind>"): say which module is missing rather than "Operation not supported".
  if (error.reason() == "EOPNOTSUPP") {
    std::string why =
        ": the kernel has no \"" + kind + "\" link type (its module is not loaded or not built";
    if (kind == "wireguard") {
      why += "; the userspace backend, wireguard-go, works without the wireguard module";
    }
    return Error(ErrorCode::kInvalidArgument, context + why + "): " + error.message(), 0,
                 error.reason());
  }
  return error.with_context(context);
}

Result<void> Rtnetlink::set_mtu(const std::string& name, std::uint32_t mtu) {
  if (auto ok = check_link_name(name); !ok) return ok.error();
  Request request(RTM_SETLINK, 0);
  request.put_header<ifinfomsg>().ifi_family = AF_UNSPEC;
  request.put_string(IFLA_IFNAME, name);
  request.put_u32(IFLA_MTU, mtu);
  return run(socket_, request,
             "setting the MTU of link \"" + name + "\" to " + std::to_string(mtu));
}

Result<void> Rtnetlink::set_up(const std::string& name, bool up) {
  if (auto ok = check_link_name(name); !ok) return ok.error();
  Request request(RTM_SETLINK, 0);
  auto& header = request.put_header<ifinfomsg>();
  header.ifi_family = AF_UNSPEC;
  header.ifi_change = IFF_UP;  // only this flag changes
  header.ifi_flags = up ? IFF_UP : 0;
  request.put_string(IFLA_IFNAME, name);
  return run(socket_, request,
             std::string(up ? "bringing up" : "bringing down") + " link \"" + name + "\"");
}

Result<void> Rtnetlink::set_ipv4_conf(const std::string& name, int key, std::uint32_t value) {
  if (auto ok = check_link_name(name); !ok) return ok.error();
  Request request(RTM_SETLINK, 0);
  request.put_header<ifinfomsg>().ifi_family = AF_UNSPEC;
  request.put_string(IFLA_IFNAME, name);
  nlattr* spec = request.begin_nested(IFLA_AF_SPEC);
  nlattr* inet = request.begin_nested(AF_INET);
  nlattr* conf = request.begin_nested(IFLA_INET_CONF);
  request.put_u32(static_cast<std::uint16_t>(key), value);  // the attribute type is the setting's index
  request.end_nested(conf);
  request.end_nested(inet);
  request.end_nested(spec);
  return run(socket_, request,
             "setting IPv4 setting " + std::to_string(key) + " of link \"" + name + "\" to " + std::to_string(value));
}

Result<void> Rtnetlink::delete_link(const std::string& name) {
  if (auto ok = check_link_name(name); !ok) return ok.error();
  Request request(RTM_DELLINK, 0);
  request.put_header<ifinfomsg>().ifi_family = AF_UNSPEC;
  request.put_string(IFLA_IFNAME, name);
  return run(socket_, request, "deleting link \"" + name + "\"");
}

// --- Rtnetlink: policy rules ---------------------------------------------------------------

Result<std::vector<IifRule>> Rtnetlink::list_iif_rules() {
  std::vector<IifRule> out;
  for (int af : {AF_INET, AF_INET6}) {
    Request request(RTM_GETRULE, NLM_F_DUMP);
    request.put_header<fib_rule_hdr>().family = static_cast<std::uint8_t>(af);
    auto replies = socket_.request(request);
    if (!replies) return replies.error().with_context("listing policy rules");
    for (const Reply& reply : *replies) {
      const auto h = reply.family_header<fib_rule_hdr>();
      if (reply.type() != RTM_NEWRULE || !h || h->family != af || h->action != FR_ACT_TO_TBL) continue;
      const AttributeList attributes = reply.attributes(sizeof(fib_rule_hdr));
      IifRule rule;
      rule.family = af == AF_INET ? net::Family::kIPv4 : net::Family::kIPv6;
      rule.table = h->table;
      if (const auto t = attributes.find(FRA_TABLE); t && t->u32()) rule.table = static_cast<int>(*t->u32());
      if (const auto prio = attributes.find(FRA_PRIORITY); prio && prio->u32()) rule.priority = *prio->u32();
      const auto iif = attributes.find(FRA_IIFNAME);
      if (!iif) continue;
      rule.iif = std::string(iif->string());
      out.push_back(rule);
    }
  }
  return out;
}

Result<bool> Rtnetlink::set_iif_rule(const IifRule& rule, bool present) {
  const std::string context = std::string(present ? "adding" : "removing") + " the rule \"iif " + rule.iif +
                              " lookup " + std::to_string(rule.table) + "\" (priority " +
                              std::to_string(rule.priority) + ")";
  if (auto ok = check_link_name(rule.iif); !ok) return ok.error().with_context(context);
  auto rules = list_iif_rules();
  if (!rules) return rules.error().with_context(context);
  const bool there = std::find(rules->begin(), rules->end(), rule) != rules->end();
  if (there == present) return false;
  Request request(present ? RTM_NEWRULE : RTM_DELRULE, present ? NLM_F_CREATE | NLM_F_EXCL : 0);
  auto& header = request.put_header<fib_rule_hdr>();
  header.family = address_family(rule.family);
  header.action = FR_ACT_TO_TBL;
  const auto table = static_cast<std::uint32_t>(rule.table);
  header.table = static_cast<std::uint8_t>(table < 256 ? table : RT_TABLE_UNSPEC);
  request.put_u32(FRA_TABLE, table);
  request.put_u32(FRA_PRIORITY, rule.priority);
  request.put_string(FRA_IIFNAME, rule.iif);
  if (present) request.put_u8(FRA_PROTOCOL, kRouteProtocol);
  if (auto r = run(socket_, request, context); !r) return r.error();
  return true;
}

// --- Rtnetlink: addresses ------------------------------------------------------------------

Result<std::vector<InterfaceAddress>> Rtnetlink::list_addresses(int ifindex) {
  Request request(RTM_GETADDR, NLM_F_DUMP);
  auto& header = request.put_header<ifaddrmsg>();
  header.ifa_family = AF_UNSPEC;
  header.ifa_index = static_cast<std::uint32_t>(ifindex);  // a filter under strict checking
  auto replies = socket_.request(request);
  if (!replies) return replies.error();
  std::vector<InterfaceAddress> addresses;
  for (const Reply& reply : *replies) {
    const auto h = reply.family_header<ifaddrmsg>();
    if (reply.type() != RTM_NEWADDR || !h || h->ifa_index != static_cast<std::uint32_t>(ifindex)) {
      continue;
    }
    if (h->ifa_family != AF_INET && h->ifa_family != AF_INET6) continue;
    const AttributeList attributes = reply.attributes(sizeof(ifaddrmsg));
    // IFA_LOCAL is the address itself; only IPv6 without a peer leaves it out.
    auto address = address_attribute(attributes, IFA_LOCAL, h->ifa_family);
    if (!address) address = address_attribute(attributes, IFA_ADDRESS, h->ifa_family);
    if (address) addresses.push_back(InterfaceAddress{*address, h->ifa_prefixlen});
  }
  std::sort(addresses.begin(), addresses.end());
  return addresses;
}

Result<std::vector<InterfaceAddress>> Rtnetlink::list_addresses(const std::string& ifname) {
  const std::string context = "listing the addresses of link \"" + ifname + "\"";
  auto link = get_link(ifname);
  if (!link) return link.error().with_context(context);
  auto addresses = list_addresses(link->index);
  if (!addresses) return addresses.error().with_context(context);
  return addresses;
}

Result<AddressDiff> Rtnetlink::set_addresses(const std::string& ifname,
                                             const std::vector<InterfaceAddress>& desired) {
  const std::string context = "setting the addresses of link \"" + ifname + "\"";
  std::vector<InterfaceAddress> wanted = desired;
  for (const InterfaceAddress& a : wanted) {
    if (a.prefix_length < 1 || a.prefix_length > net::bit_width(a.address.family())) {
      return Error(ErrorCode::kInvalidArgument,
                   context + ": invalid prefix length in " + a.to_string());
    }
  }
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());

  auto link = get_link(ifname);
  if (!link) return link.error().with_context(context);
  auto current = list_addresses(link->index);
  if (!current) return current.error().with_context(context);

  AddressDiff diff;
  // Removals first: removing an IPv4 primary address also removes the secondaries in its
  // subnet (unless promote_secondaries is set), which may be desired ones. So the adds are
  // computed from the table as it is after the removals.
  for (const InterfaceAddress& a : *current) {
    if (std::binary_search(wanted.begin(), wanted.end(), a) || is_ipv6_link_local(a.address)) {
      continue;
    }
    Request request = build_address(RTM_DELADDR, link->index, a);
    auto replies = socket_.request(request);
    if (!replies && replies.error().code() != ErrorCode::kNotFound) {
      return replies.error().with_context(context + ": removing " + a.to_string());
    }
    diff.removed.push_back(a);
  }
  if (!diff.removed.empty()) {
    current = list_addresses(link->index);
    if (!current) return current.error().with_context(context);
  }
  for (const InterfaceAddress& a : wanted) {
    if (std::binary_search(current->begin(), current->end(), a)) continue;
    Request request = build_address(RTM_NEWADDR, link->index, a);
    if (auto ok = run(socket_, request, context + ": adding " + a.to_string()); !ok) {
      return ok.error();
    }
    diff.added.push_back(a);
  }
  return diff;
}

// --- Rtnetlink: routes ---------------------------------------------------------------------

Result<std::vector<Route>> Rtnetlink::dump_routes(int table, bool only_ours,
                                                  const std::vector<LinkInfo>& links) {
  Request request(RTM_GETROUTE, NLM_F_DUMP);
  auto& header = request.put_header<rtmsg>();
  // AF_UNSPEC: both families in one dump, and no ENOENT for a table IPv4 has not created yet.
  header.rtm_family = AF_UNSPEC;
  const auto wanted_table = static_cast<std::uint32_t>(table);
  header.rtm_table = static_cast<std::uint8_t>(wanted_table < 256 ? wanted_table : RT_TABLE_UNSPEC);
  header.rtm_protocol = only_ours ? kRouteProtocol : RTPROT_UNSPEC;  // strict-check filters
  request.put_u32(RTA_TABLE, wanted_table);
  auto replies = socket_.request(request);
  if (!replies) return replies.error();

  std::vector<Route> routes;
  for (const Reply& reply : *replies) {
    const auto h = reply.family_header<rtmsg>();
    if (reply.type() != RTM_NEWROUTE || !h) continue;
    if (h->rtm_family != AF_INET && h->rtm_family != AF_INET6) continue;
    // Only plain unicast routes are clusterwire's kind; cached clones (IPv6 exceptions) and
    // source-specific or TOS routes are not routes it makes or can express.
    if (h->rtm_type != RTN_UNICAST || (h->rtm_flags & RTM_F_CLONED) != 0) continue;
    if (h->rtm_src_len != 0 || h->rtm_tos != 0) continue;
    if (only_ours && h->rtm_protocol != kRouteProtocol) continue;
    const AttributeList attributes = reply.attributes(sizeof(rtmsg));
    std::uint32_t route_table = h->rtm_table;
    if (const auto t = attributes.find(RTA_TABLE); t && t->u32()) route_table = *t->u32();
    if (route_table != wanted_table) continue;

    auto destination = address_attribute(attributes, RTA_DST, h->rtm_family);
    if (!destination) {  // the default route carries no RTA_DST
      destination = net::IpAddress::from_bits(
          h->rtm_family == AF_INET ? net::Family::kIPv4 : net::Family::kIPv6, 0);
    }
    auto prefix = net::Prefix::make(*destination, h->rtm_dst_len);
    if (!prefix) continue;  // the kernel never stores host bits; skip rather than guess
    Route route{.destination = *prefix};
    route.table = static_cast<int>(route_table);
    route.protocol = h->rtm_protocol;
    route.gateway = address_attribute(attributes, RTA_GATEWAY, h->rtm_family);
    route.source = address_attribute(attributes, RTA_PREFSRC, h->rtm_family);
    if (const auto oif = attributes.find(RTA_OIF); oif && oif->u32()) {
      route.device = index_to_name(links, static_cast<int>(*oif->u32()));
    }
    if (const auto priority = attributes.find(RTA_PRIORITY); priority && priority->u32()) {
      route.metric = *priority->u32();
    }
    routes.push_back(std::move(route));
  }
  sort_routes(routes);
  return routes;
}

Result<std::vector<Route>> Rtnetlink::list_routes(int table, bool only_ours) {
  const std::string context = "listing the routes of table " + std::to_string(table);
  if (auto t = check_table(table); !t) return t.error().with_context(context);
  auto links = list_links();
  if (!links) return links.error().with_context(context);
  auto routes = dump_routes(table, only_ours, *links);
  if (!routes) return routes.error().with_context(context);
  return routes;
}

Result<RouteDiff> Rtnetlink::set_routes(const std::vector<Route>& desired, int table) {
  const std::string context = "setting the routes of table " + std::to_string(table);
  if (auto t = check_table(table); !t) return t.error().with_context(context);
  auto links = list_links();
  if (!links) return links.error().with_context(context);
  auto current = dump_routes(table, true, *links);
  if (!current) return current.error().with_context(context);
  auto plan = plan_routes(*current, desired, table);
  if (!plan) return plan.error().with_context(context);

  // Decide everything before acting: a missing link fails the pass with nothing changed.
  const auto ifindex = [&](const Route& route) -> Result<int> {
    if (route.device.empty()) return 0;
    if (auto index = name_to_index(*links, route.device)) return *index;
    return Error(ErrorCode::kNotFound, context + ": route " + route.to_string() + ": link \"" +
                                           route.device + "\" not found");
  };
  for (const Route& route : plan->added) {
    if (auto index = ifindex(route); !index) return index.error();
  }
  for (const RouteChange& change : plan->changed) {
    if (auto index = ifindex(change.after); !index) return index.error();
  }

  const auto add = [&](const Route& route) -> Result<void> {
    Request request = build_route(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, route,
                                  ifindex(route).value(), kRouteProtocol);
    auto replies = socket_.request(request);
    if (replies) return ok_result();
    if (replies.error().code() == ErrorCode::kAlreadyExists) {
      return replies.error().with_context(
          context + ": adding route " + route.to_string() +
          ": a route of another protocol holds this "
          "destination and metric, and clusterwire leaves routes it does not own alone");
    }
    return replies.error().with_context(context + ": adding route " + route.to_string());
  };
  const auto remove = [&](const Route& route) -> Result<void> {
    // Deleted by destination, table, metric and our protocol: the kernel matches the protocol,
    // so this cannot take out someone else's route to the same destination.
    Request request = build_route(RTM_DELROUTE, 0, route, 0, kRouteProtocol);
    auto replies = socket_.request(request);
    if (replies || replies.error().code() == ErrorCode::kNotFound) {
      return ok_result();  // or gone already
    }
    return replies.error().with_context(context + ": removing route " + route.to_string());
  };

  for (const Route& route : plan->added) {
    if (auto ok = add(route); !ok) return ok.error();
  }
  for (const RouteChange& change : plan->changed) {
    if (effective_metric(change.before) == effective_metric(change.after)) {
      Request request = build_route(RTM_NEWROUTE, NLM_F_REPLACE, change.after,
                                    ifindex(change.after).value(), kRouteProtocol);
      if (auto ok = run(socket_, request,
                        context + ": replacing route " + change.before.to_string() + " with " +
                            change.after.to_string());
          !ok) {
        return ok.error();
      }
    } else {
      // The metric is part of a kernel route's identity: a replace would add a second route.
      // Add the new one before removing the old, so the destination stays reachable.
      if (auto ok = add(change.after); !ok) return ok.error();
      if (auto ok = remove(change.before); !ok) return ok.error();
    }
  }
  for (const Route& route : plan->removed) {
    if (auto ok = remove(route); !ok) return ok.error();
  }
  return plan;
}

}  // namespace cw::netlink
