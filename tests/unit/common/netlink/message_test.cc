// The requests rtnetlink sends, byte for byte. The expected bytes are assembled here from the
// structs and constants of <linux/rtnetlink.h> by a writer that shares nothing with libmnl,
// and one case is spelled out in hex: a wrong attribute type, length or padding shows up
// as the first differing offset.
#include "common/netlink/rtnetlink.h"

#include <gtest/gtest.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <sys/socket.h>

#include <bit>
#include <cstring>

namespace cw::netlink {
namespace {

// Builds a netlink message the way the kernel's documentation describes it.
class Expected {
 public:
  Expected(std::uint16_t type, std::uint16_t flags) : type_(type), flags_(flags) {
    bytes_.resize(sizeof(nlmsghdr));
  }
  template <typename T>
  void header(const T& value) {
    append(&value, sizeof value);
    pad();
  }
  void attribute(std::uint16_t type, const void* data, std::size_t length) {
    const nlattr a{static_cast<std::uint16_t>(sizeof(nlattr) + length), type};
    append(&a, sizeof a);
    append(data, length);
    pad();
  }
  void u32(std::uint16_t type, std::uint32_t value) { attribute(type, &value, sizeof value); }
  void bytes(std::uint16_t type, std::vector<std::uint8_t> value) {
    attribute(type, value.data(), value.size());
  }
  void string(std::uint16_t type, const std::string& value) {
    attribute(type, value.c_str(), value.size() + 1);
  }
  // A nested attribute whose members `inner` wrote (without a message header).
  void nested(std::uint16_t type, const Expected& inner) {
    const std::vector<std::uint8_t> members(inner.bytes_.begin() + sizeof(nlmsghdr),
                                            inner.bytes_.end());
    attribute(static_cast<std::uint16_t>(type | NLA_F_NESTED), members.data(), members.size());
  }

  std::vector<std::uint8_t> done() const {
    std::vector<std::uint8_t> out = bytes_;
    nlmsghdr h{};
    h.nlmsg_len = static_cast<std::uint32_t>(out.size());
    h.nlmsg_type = type_;
    h.nlmsg_flags = flags_;
    std::memcpy(out.data(), &h, sizeof h);
    return out;
  }

 private:
  void append(const void* data, std::size_t length) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + length);
  }
  void pad() {
    while (bytes_.size() % 4 != 0) bytes_.push_back(0);
  }

  std::uint16_t type_;
  std::uint16_t flags_;
  std::vector<std::uint8_t> bytes_;
};

std::vector<std::uint8_t> wire(const Request& request) {
  return std::vector<std::uint8_t>(request.bytes().begin(), request.bytes().end());
}

net::Prefix prefix(const char* text) { return net::Prefix::parse(text).value(); }
net::IpAddress ip(const char* text) { return net::IpAddress::parse(text).value(); }

TEST(RouteMessageTest, NewIPv4RouteWithGatewaySourceAndMetric) {
  const Route route{.destination = prefix("10.1.0.0/16"),
                    .device = "cw0",
                    .gateway = ip("10.0.0.2"),
                    .source = ip("10.0.0.1"),
                    .metric = 10};
  const Request request =
      build_route(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, route, 7, kRouteProtocol);

  Expected e(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL);
  rtmsg r{};
  r.rtm_family = AF_INET;
  r.rtm_dst_len = 16;
  r.rtm_table = RT_TABLE_MAIN;
  r.rtm_protocol = kRouteProtocol;
  r.rtm_scope = RT_SCOPE_UNIVERSE;  // it has a gateway
  r.rtm_type = RTN_UNICAST;
  e.header(r);
  e.u32(RTA_TABLE, RT_TABLE_MAIN);
  e.bytes(RTA_DST, {10, 1, 0, 0});
  e.u32(RTA_OIF, 7);
  e.bytes(RTA_GATEWAY, {10, 0, 0, 2});
  e.bytes(RTA_PREFSRC, {10, 0, 0, 1});
  e.u32(RTA_PRIORITY, 10);
  EXPECT_EQ(wire(request), e.done());
  EXPECT_EQ(request.size(), 16U + 12U + 6U * 8U);
  EXPECT_FALSE(request.overflowed());
}

TEST(RouteMessageTest, TheSameRouteSpelledOutInHex) {
  if constexpr (std::endian::native != std::endian::little) {
    GTEST_SKIP() << "the literal is little-endian";
  }
  const Route route{.destination = prefix("10.1.0.0/16"),
                    .device = "cw0",
                    .gateway = ip("10.0.0.2"),
                    .source = ip("10.0.0.1"),
                    .metric = 10};
  const Request request =
      build_route(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, route, 7, kRouteProtocol);
  const std::vector<std::uint8_t> expected = {
      0x4c, 0x00, 0x00, 0x00,  // nlmsg_len 76
      0x18, 0x00,              // RTM_NEWROUTE (24)
      0x01, 0x06,              // NLM_F_REQUEST | NLM_F_EXCL (0x200) | NLM_F_CREATE (0x400)
      0x00, 0x00, 0x00, 0x00,  // seq (Socket sets it)
      0x00, 0x00, 0x00, 0x00,  // port id
      0x02, 0x10, 0x00, 0x00,  // AF_INET, /16, src_len 0, tos 0
      0xfe, 0x77, 0x00, 0x01,  // table main (254), protocol 119, scope universe, unicast
      0x00, 0x00, 0x00, 0x00,  // rtm_flags
      0x08, 0x00, 0x0f, 0x00, 0xfe, 0x00, 0x00, 0x00,  // RTA_TABLE (15) = 254
      0x08, 0x00, 0x01, 0x00, 0x0a, 0x01, 0x00, 0x00,  // RTA_DST (1) = 10.1.0.0
      0x08, 0x00, 0x04, 0x00, 0x07, 0x00, 0x00, 0x00,  // RTA_OIF (4) = 7
      0x08, 0x00, 0x05, 0x00, 0x0a, 0x00, 0x00, 0x02,  // RTA_GATEWAY (5) = 10.0.0.2
      0x08, 0x00, 0x07, 0x00, 0x0a, 0x00, 0x00, 0x01,  // RTA_PREFSRC (7) = 10.0.0.1
      0x08, 0x00, 0x06, 0x00, 0x0a, 0x00, 0x00, 0x00,  // RTA_PRIORITY (6) = 10
  };
  EXPECT_EQ(wire(request), expected);
}

TEST(RouteMessageTest, IPv6OnLinkRouteInATableAbove255) {
  const Route route{.destination = prefix("fd00:1::/64"), .device = "cw0", .table = 1000};
  const Request request = build_route(RTM_NEWROUTE, NLM_F_REPLACE, route, 3, kRouteProtocol);

  Expected e(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_REPLACE);
  rtmsg r{};
  r.rtm_family = AF_INET6;
  r.rtm_dst_len = 64;
  r.rtm_table = RT_TABLE_UNSPEC;  // 1000 does not fit: RTA_TABLE carries it
  r.rtm_protocol = kRouteProtocol;
  r.rtm_scope = RT_SCOPE_LINK;
  r.rtm_type = RTN_UNICAST;
  e.header(r);
  e.u32(RTA_TABLE, 1000);
  e.bytes(RTA_DST, {0xfd, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  e.u32(RTA_OIF, 3);  // metric 0: no RTA_PRIORITY, the kernel picks its default
  EXPECT_EQ(wire(request), e.done());
}

TEST(RouteMessageTest, DeleteNamesOnlyWhatIdentifiesTheRoute) {
  const Route route{.destination = prefix("fd02::/64"),
                    .device = "cw0",
                    .gateway = ip("fd00::2"),
                    .metric = 1024};
  const Request request = build_route(RTM_DELROUTE, 0, route, 3, kRouteProtocol);

  Expected e(RTM_DELROUTE, NLM_F_REQUEST);
  rtmsg r{};
  r.rtm_family = AF_INET6;
  r.rtm_dst_len = 64;
  r.rtm_table = RT_TABLE_MAIN;
  r.rtm_protocol = kRouteProtocol;  // the kernel deletes only a route of this protocol
  r.rtm_scope = RT_SCOPE_NOWHERE;   // any scope
  r.rtm_type = RTN_UNICAST;
  e.header(r);
  e.u32(RTA_TABLE, RT_TABLE_MAIN);
  e.bytes(RTA_DST, {0xfd, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  e.u32(RTA_PRIORITY, 1024);
  EXPECT_EQ(wire(request), e.done());
}

TEST(AddressMessageTest, NewIPv4AndIPv6Addresses) {
  struct Case {
    const char* text;
    std::uint8_t family;
    std::vector<std::uint8_t> bytes;
  };
  for (const Case& c : {Case{"10.0.0.1/24", AF_INET, {10, 0, 0, 1}},
                        Case{"2001:db8::1/64",
                             AF_INET6,
                             {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}}}) {
    SCOPED_TRACE(c.text);
    const auto address = InterfaceAddress::parse(c.text).value();
    const Request request = build_address(RTM_NEWADDR, 5, address);

    Expected e(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE);
    ifaddrmsg a{};
    a.ifa_family = c.family;
    a.ifa_prefixlen = static_cast<std::uint8_t>(address.prefix_length);
    a.ifa_scope = RT_SCOPE_UNIVERSE;
    a.ifa_index = 5;
    e.header(a);
    e.bytes(IFA_LOCAL, c.bytes);
    e.bytes(IFA_ADDRESS, c.bytes);
    EXPECT_EQ(wire(request), e.done());
    EXPECT_EQ(request.size(), 16U + sizeof(ifaddrmsg) + 2 * (4 + c.bytes.size()));
  }
}

TEST(AddressMessageTest, DeleteHasNoCreateFlags) {
  const Request request =
      build_address(RTM_DELADDR, 5, InterfaceAddress::parse("10.0.0.1/24").value());
  EXPECT_EQ(request.header()->nlmsg_type, RTM_DELADDR);
  EXPECT_EQ(request.header()->nlmsg_flags, NLM_F_REQUEST);
}

TEST(LinkMessageTest, NewLinkWithKindInANestedLinkInfo) {
  const Request request = build_new_link("cw0", "dummy");

  Expected e(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL);
  ifinfomsg i{};
  i.ifi_family = AF_UNSPEC;
  e.header(i);
  e.string(IFLA_IFNAME, "cw0");  // 4 + 4 bytes: no padding
  Expected info(0, 0);
  info.string(IFLA_INFO_KIND, "dummy");  // 4 + 6 bytes, padded to 12
  e.nested(IFLA_LINKINFO, info);
  const auto expected = e.done();
  EXPECT_EQ(wire(request), expected);
  EXPECT_EQ(expected.size(), 16U + 16U + 8U + 16U);
}

TEST(GenericMessageTest, GetFamilyCarriesAGenlHeader) {
  Request request = Request::generic(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, 0);
  request.put_string(CTRL_ATTR_FAMILY_NAME, "wireguard");

  Expected e(GENL_ID_CTRL, NLM_F_REQUEST);
  genlmsghdr g{};
  g.cmd = CTRL_CMD_GETFAMILY;
  g.version = 1;
  e.header(g);
  e.string(CTRL_ATTR_FAMILY_NAME, "wireguard");  // 4 + 10 bytes, padded to 16
  EXPECT_EQ(wire(request), e.done());
}

}  // namespace
}  // namespace cw::netlink
