// rtnetlink against the real kernel. Every test first moves its thread into a network
// namespace of its own (unshare(CLONE_NEWNET)): nothing here can touch the host's links or
// routes, and whatever a test leaves behind vanishes with the namespace when the test ends
// or crashes. Without root (or where unshare is refused) each test is skipped, saying why.
#include "common/netlink/rtnetlink.h"

#include <gtest/gtest.h>
#include <linux/if.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace cw::netlink {
namespace {

net::Prefix prefix(const char* text) { return net::Prefix::parse(text).value(); }
InterfaceAddress address(const char* text) { return InterfaceAddress::parse(text).value(); }

std::vector<std::string> texts(const std::vector<Route>& routes) {
  std::vector<std::string> out;
  for (const auto& r : routes) out.push_back(r.to_string());
  return out;
}

// The output of a shell command run in this thread's namespace (children inherit it).
std::string run(const std::string& command) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return "";
  std::string out;
  char buf[4096];
  for (std::size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  pclose(p);
  return out;
}

bool have_ip_tool() { return access("/usr/sbin/ip", X_OK) == 0 || access("/sbin/ip", X_OK) == 0; }

class RtnetlinkTest : public testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "rtnetlink integration tests need root to create a private network namespace "
                      "(unshare(CLONE_NEWNET)); run them as root";
    }
    if (unshare(CLONE_NEWNET) != 0) {
      GTEST_SKIP() << "unshare(CLONE_NEWNET) failed: " << std::strerror(errno)
                   << " (a container without CAP_SYS_ADMIN?); not running rtnetlink tests against "
                      "the current namespace";
    }
    auto nl = Rtnetlink::open();
    ASSERT_TRUE(nl.ok()) << nl.error().message();
    nl_.emplace(std::move(nl).value());
    // The guard that this really is a fresh namespace: nothing but a loopback that is down.
    auto links = nl_->list_links();
    ASSERT_TRUE(links.ok()) << links.error().message();
    ASSERT_EQ(links->size(), 1U);
    ASSERT_EQ(links->front().name, "lo");
    // Some kernels lack the dummy driver (this machine's: CONFIG_DUMMY unset, no modules).
    // ifb is another up, carrier-on, NOARP pseudo-device and behaves the same here.
    for (const char* kind : {"dummy", "ifb"}) {
      if (nl_->create_link("cw-probe", kind).ok()) {
        kind_ = kind;
        ASSERT_TRUE(nl_->delete_link("cw-probe").ok());
        break;
      }
    }
    if (kind_.empty()) GTEST_SKIP() << "this kernel can create neither dummy nor ifb links";
  }

  // A pseudo link that is up, with `addresses`.
  void make_link(const std::string& name, const std::vector<InterfaceAddress>& addresses = {}) {
    auto created = nl_->create_link(name, kind_);
    ASSERT_TRUE(created.ok()) << created.error().message();
    auto up = nl_->set_up(name);
    ASSERT_TRUE(up.ok()) << up.error().message();
    if (!addresses.empty()) {
      auto diff = nl_->set_addresses(name, addresses);
      ASSERT_TRUE(diff.ok()) << diff.error().message();
    }
  }

  Result<RouteDiff> set(const std::vector<std::string>& routes, int table = RT_TABLE_MAIN) {
    std::vector<Route> desired;
    for (const auto& text : routes) desired.push_back(parse(text, table));
    return nl_->set_routes(desired, table);
  }

  // "10.1.0.0/16 via 10.0.0.2 dev cw0 src 10.0.0.1 metric 10".
  static Route parse(const std::string& text, int table) {
    std::istringstream in(text);
    std::string dst;
    in >> dst;
    Route r{.destination = net::Prefix::parse(dst).value(), .table = table};
    for (std::string key, value; in >> key >> value;) {
      if (key == "via") r.gateway = net::IpAddress::parse(value).value();
      if (key == "dev") r.device = value;
      if (key == "src") r.source = net::IpAddress::parse(value).value();
      if (key == "metric") r.metric = static_cast<std::uint32_t>(std::stoul(value));
    }
    return r;
  }

  std::vector<std::string> ours(int table = RT_TABLE_MAIN) {
    auto routes = nl_->list_routes(table, true);
    EXPECT_TRUE(routes.ok()) << routes.error().message();
    return routes.ok() ? texts(*routes) : std::vector<std::string>{};
  }

  std::optional<Rtnetlink> nl_;
  std::string kind_;  // "dummy", or "ifb" where the kernel has no dummy driver
};

TEST_F(RtnetlinkTest, LinksAreCreatedConfiguredListedAndDeleted) {
  std::printf("note: the test links are of kind \"%s\"\n", kind_.c_str());
  auto created = nl_->create_link("cw-d0", kind_);
  ASSERT_TRUE(created.ok()) << created.error().message();
  auto link = nl_->get_link("cw-d0");
  ASSERT_TRUE(link.ok()) << link.error().message();
  EXPECT_EQ(link->name, "cw-d0");
  EXPECT_EQ(link->kind, kind_);
  EXPECT_GT(link->index, 1);
  EXPECT_FALSE(link->up);

  ASSERT_TRUE(nl_->set_mtu("cw-d0", 1420).ok());
  ASSERT_TRUE(nl_->set_up("cw-d0").ok());
  link = nl_->get_link("cw-d0");
  EXPECT_EQ(link->mtu, 1420U);
  EXPECT_TRUE(link->up);
  EXPECT_NE(link->flags & IFF_UP, 0U);
  ASSERT_TRUE(nl_->set_up("cw-d0", false).ok());
  EXPECT_FALSE(nl_->get_link("cw-d0")->up);

  auto again = nl_->create_link("cw-d0", kind_);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists) << again.error().message();

  auto links = nl_->list_links();
  ASSERT_TRUE(links.ok());
  ASSERT_EQ(links->size(), 2U);
  EXPECT_EQ((*links)[0].name, "lo");
  EXPECT_EQ((*links)[0].kind, "");
  EXPECT_EQ((*links)[1], *nl_->get_link("cw-d0"));

  ASSERT_TRUE(nl_->delete_link("cw-d0").ok());
  EXPECT_EQ(nl_->get_link("cw-d0").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(nl_->delete_link("cw-d0").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(nl_->set_mtu("cw-d0", 1400).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(nl_->set_up("cw-d0").error().code(), ErrorCode::kNotFound);
}

TEST_F(RtnetlinkTest, BadNamesAndKindsAreRefusedBeforeTheKernelSeesThem) {
  for (const char* name : {"", "a/b", "a:b", "a b", "sixteen-chars-xx", "."}) {
    auto r = nl_->create_link(name, kind_);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << r.error().message();
  }
  auto unknown = nl_->create_link("cw-x0", "no-such-kind");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), ErrorCode::kInvalidArgument) << unknown.error().message();
  EXPECT_NE(unknown.error().message().find("no \"no-such-kind\" link type"), std::string::npos)
      << unknown.error().message();
}

TEST_F(RtnetlinkTest, AWireGuardLinkWithoutTheKernelModuleIsAClearError) {
  auto r = nl_->create_link("cw-wg0", "wireguard");
  if (r.ok()) {
    // A kernel with the module (the VM tests): then the link is real.
    EXPECT_EQ(nl_->get_link("cw-wg0")->kind, "wireguard");
    std::printf("note: this kernel has the wireguard module; the error path was not exercised\n");
    return;
  }
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << r.error().message();
  EXPECT_EQ(r.error().reason(), "EOPNOTSUPP");
  EXPECT_NE(r.error().message().find("wireguard module"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("wireguard-go"), std::string::npos) << r.error().message();
  EXPECT_EQ(nl_->get_link("cw-wg0").error().code(), ErrorCode::kNotFound);
}

TEST_F(RtnetlinkTest, AddressesAreSetIdempotentlyAndLinkLocalOnesAreKept) {
  make_link("cw0");
  auto diff = nl_->set_addresses("cw0", {address("2001:db8::1/64"), address("10.0.0.1/24")});
  ASSERT_TRUE(diff.ok()) << diff.error().message();
  EXPECT_EQ(diff->added,
            (std::vector<InterfaceAddress>{address("10.0.0.1/24"), address("2001:db8::1/64")}));
  EXPECT_TRUE(diff->removed.empty());

  diff = nl_->set_addresses(
      "cw0", {address("10.0.0.1/24"), address("2001:db8::1/64"), address("10.0.0.1/24")});
  ASSERT_TRUE(diff.ok()) << diff.error().message();
  EXPECT_TRUE(diff->unchanged());

  auto listed = nl_->list_addresses("cw0");
  ASSERT_TRUE(listed.ok()) << listed.error().message();
  const auto link_local = std::find_if(
      listed->begin(), listed->end(),
      [](const InterfaceAddress& a) { return a.address.to_string().starts_with("fe80:"); });
  ASSERT_NE(link_local, listed->end())
      << "the kernel gives an up pseudo link an IPv6 link-local address";
  const InterfaceAddress kept = *link_local;

  diff = nl_->set_addresses("cw0", {address("10.0.0.2/24"), address("2001:db8::1/64")});
  ASSERT_TRUE(diff.ok()) << diff.error().message();
  EXPECT_EQ(diff->added, (std::vector<InterfaceAddress>{address("10.0.0.2/24")}));
  EXPECT_EQ(diff->removed, (std::vector<InterfaceAddress>{address("10.0.0.1/24")}));
  listed = nl_->list_addresses("cw0");
  EXPECT_EQ(*listed, (std::vector<InterfaceAddress>{address("10.0.0.2/24"),
                                                    address("2001:db8::1/64"), kept}));

  diff = nl_->set_addresses("cw0", {});
  ASSERT_TRUE(diff.ok()) << diff.error().message();
  EXPECT_EQ(diff->removed.size(), 2U);
  EXPECT_EQ(*nl_->list_addresses("cw0"), std::vector<InterfaceAddress>{kept});

  EXPECT_EQ(nl_->set_addresses("nope0", {}).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(nl_->set_addresses("cw0", {address("10.0.0.1/0")}).error().code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(RtnetlinkTest, RemovingAPrimaryAddressKeepsTheDesiredSecondary) {
  // The kernel deletes an IPv4 primary's secondaries with it; set_addresses must not end up
  // without the one it was asked to keep.
  make_link("cw0", {address("10.0.0.1/24"), address("10.0.0.2/24")});
  auto diff = nl_->set_addresses("cw0", {address("10.0.0.2/24")});
  ASSERT_TRUE(diff.ok()) << diff.error().message();
  EXPECT_EQ(diff->removed, (std::vector<InterfaceAddress>{address("10.0.0.1/24")}));
  auto listed = nl_->list_addresses("cw0");
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(std::binary_search(listed->begin(), listed->end(), address("10.0.0.2/24")));
  EXPECT_FALSE(std::binary_search(listed->begin(), listed->end(), address("10.0.0.1/24")));
  EXPECT_TRUE(nl_->set_addresses("cw0", {address("10.0.0.2/24")})->unchanged());
}

TEST_F(RtnetlinkTest, RoutesAreSetIdempotentlyChangedAndRemoved) {
  make_link("cw0", {address("10.0.0.1/24"), address("fd00::1/64")});
  const std::vector<std::string> desired = {
      "10.1.0.0/16 dev cw0",
      "10.2.0.0/16 via 10.0.0.2 dev cw0 metric 10",
      "10.3.0.0/16 dev cw0 src 10.0.0.1",
      "fd01::/64 dev cw0",
      "fd02::/64 via fd00::2 dev cw0",
  };
  auto diff = set(desired);
  ASSERT_TRUE(diff.ok()) << diff.error().message();
  EXPECT_EQ(diff->added.size(), 5U);
  const std::vector<std::string> installed = {
      "10.1.0.0/16 dev cw0",
      "10.2.0.0/16 via 10.0.0.2 dev cw0 metric 10",
      "10.3.0.0/16 dev cw0 src 10.0.0.1",
      "fd01::/64 dev cw0 metric 1024",
      "fd02::/64 via fd00::2 dev cw0 metric 1024",
  };
  EXPECT_EQ(ours(), installed);
  EXPECT_EQ(texts(diff->added), installed);

  diff = set(desired);
  ASSERT_TRUE(diff.ok()) << diff.error().message();
  EXPECT_TRUE(diff->unchanged()) << "second apply changed " << diff->added.size() << "/"
                                 << diff->changed.size() << "/" << diff->removed.size();

  if (have_ip_tool()) {  // iproute2 sees them as ours too
    const std::string shown = run("ip -4 route show proto 119");
    EXPECT_NE(shown.find("10.2.0.0/16 via 10.0.0.2 dev cw0 metric 10"), std::string::npos) << shown;
    EXPECT_NE(run("ip -6 route show proto 119").find("fd01::/64 dev cw0 metric 1024"),
              std::string::npos);
  }

  // A new metric, a new gateway, a new source: changed, with no second route left behind.
  diff = set({"10.1.0.0/16 dev cw0", "10.2.0.0/16 via 10.0.0.2 dev cw0 metric 20",
              "10.3.0.0/16 dev cw0", "fd01::/64 dev cw0", "fd02::/64 via fd00::3 dev cw0"});
  ASSERT_TRUE(diff.ok()) << diff.error().message();
  EXPECT_TRUE(diff->added.empty());
  EXPECT_TRUE(diff->removed.empty());
  ASSERT_EQ(diff->changed.size(), 3U);
  EXPECT_EQ(diff->changed[0].before.to_string(), "10.2.0.0/16 via 10.0.0.2 dev cw0 metric 10");
  EXPECT_EQ(diff->changed[0].after.to_string(), "10.2.0.0/16 via 10.0.0.2 dev cw0 metric 20");
  EXPECT_EQ(ours(), (std::vector<std::string>{
                        "10.1.0.0/16 dev cw0",
                        "10.2.0.0/16 via 10.0.0.2 dev cw0 metric 20",
                        "10.3.0.0/16 dev cw0",
                        "fd01::/64 dev cw0 metric 1024",
                        "fd02::/64 via fd00::3 dev cw0 metric 1024",
                    }));

  diff = set({"10.2.0.0/16 via 10.0.0.2 dev cw0 metric 20", "fd02::/64 via fd00::3 dev cw0"});
  ASSERT_TRUE(diff.ok()) << diff.error().message();
  EXPECT_EQ(texts(diff->removed),
            (std::vector<std::string>{"10.1.0.0/16 dev cw0", "10.3.0.0/16 dev cw0",
                                      "fd01::/64 dev cw0 metric 1024"}));
  EXPECT_TRUE(set({"10.2.0.0/16 via 10.0.0.2 dev cw0 metric 20", "fd02::/64 via fd00::3 dev cw0"})
                  ->unchanged());

  diff = set({});
  ASSERT_TRUE(diff.ok()) << diff.error().message();
  EXPECT_EQ(diff->removed.size(), 2U);
  EXPECT_TRUE(ours().empty());
}

TEST_F(RtnetlinkTest, RoutesOfOtherProtocolsAreNeverTouched) {
  make_link("cw0", {address("10.0.0.1/24"), address("fd00::1/64")});
  const int cw0 = nl_->get_link("cw0")->index;
  // Someone else's routes: one through rtnetlink as "static", one with iproute2 as "boot".
  for (const char* dst : {"10.9.0.0/16", "fd09::/64"}) {
    Request add =
        build_route(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL,
                    Route{.destination = prefix(dst), .device = "cw0"}, cw0, RTPROT_STATIC);
    auto added = nl_->socket().request(add);
    ASSERT_TRUE(added.ok()) << added.error().message();
  }
  if (have_ip_tool()) {
    ASSERT_EQ(run("ip route add 10.8.0.0/16 dev cw0 proto boot"), "");
  }

  const auto others = [&] {
    auto all = nl_->list_routes(RT_TABLE_MAIN, false);
    EXPECT_TRUE(all.ok()) << all.error().message();
    std::vector<std::string> out;
    for (const Route& r : *all) {
      if (r.protocol != kRouteProtocol) out.push_back(r.to_string());
    }
    return out;
  };
  const std::vector<std::string> before = others();
  EXPECT_NE(std::find(before.begin(), before.end(), "10.9.0.0/16 dev cw0 proto 4"), before.end());
  EXPECT_NE(std::find(before.begin(), before.end(), "fd09::/64 dev cw0 metric 1024 proto 4"),
            before.end());
  // The kernel's own: the subnets of the addresses.
  EXPECT_NE(std::find(before.begin(), before.end(), "10.0.0.0/24 dev cw0 src 10.0.0.1 proto 2"),
            before.end());

  auto diff = set({"10.1.0.0/16 dev cw0", "fd01::/64 dev cw0"});
  ASSERT_TRUE(diff.ok()) << diff.error().message();
  EXPECT_EQ(diff->added.size(), 2U);
  EXPECT_TRUE(diff->removed.empty());
  diff = set({});
  ASSERT_TRUE(diff.ok()) << diff.error().message();
  EXPECT_EQ(diff->removed.size(), 2U);
  EXPECT_EQ(others(), before);

  // Where another protocol's route holds the destination, clusterwire's add is refused
  // rather than replacing it.
  for (const char* route : {"10.9.0.0/16 dev cw0", "fd09::/64 dev cw0"}) {
    diff = set({route});
    ASSERT_FALSE(diff.ok()) << route;
    EXPECT_EQ(diff.error().code(), ErrorCode::kAlreadyExists) << diff.error().message();
    EXPECT_NE(diff.error().message().find("another protocol"), std::string::npos)
        << diff.error().message();
  }
  EXPECT_EQ(others(), before);
  EXPECT_TRUE(ours().empty());
}

TEST_F(RtnetlinkTest, ARouteViaAMissingDeviceFailsAndChangesNothing) {
  make_link("cw0", {address("10.0.0.1/24")});
  auto diff = set({"10.1.0.0/16 dev cw0", "10.3.0.0/16 dev nope0"});
  ASSERT_FALSE(diff.ok());
  EXPECT_EQ(diff.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(diff.error().message().find("link \"nope0\" not found"), std::string::npos)
      << diff.error().message();
  EXPECT_TRUE(ours().empty());
}

TEST_F(RtnetlinkTest, KernelRefusalsCarryTheKernelsReason) {
  make_link("cw0", {address("10.0.0.1/24")});
  // A gateway that is not on the link's subnet.
  auto diff = set({"10.1.0.0/16 via 192.0.2.1 dev cw0"});
  ASSERT_FALSE(diff.ok());
  EXPECT_EQ(diff.error().reason(), "ENETUNREACH") << diff.error().message();
  EXPECT_NE(diff.error().message().find("adding route 10.1.0.0/16 via 192.0.2.1 dev cw0"),
            std::string::npos)
      << diff.error().message();
  // A preferred source the namespace does not have.
  diff = set({"10.1.0.0/16 dev cw0 src 10.0.0.99"});
  ASSERT_FALSE(diff.ok());
  EXPECT_EQ(diff.error().code(), ErrorCode::kInvalidArgument) << diff.error().message();
  // A route through a link that is down.
  make_link("cw1");
  ASSERT_TRUE(nl_->set_up("cw1", false).ok());
  diff = set({"10.4.0.0/16 dev cw1"});
  ASSERT_FALSE(diff.ok());
  EXPECT_EQ(diff.error().reason(), "ENETDOWN") << diff.error().message();
  EXPECT_TRUE(ours().empty());
}

TEST_F(RtnetlinkTest, IifRulesAreAddedOnceAndRemoved) {
  make_link("cw0", {address("10.0.0.1/24")});
  const IifRule v4{net::Family::kIPv4, "cw0", 119, 119};
  const IifRule v6{net::Family::kIPv6, "cw0", 119, 119};
  for (const auto& rule : {v4, v6}) {
    auto added = nl_->set_iif_rule(rule, true);
    ASSERT_TRUE(added.ok()) << added.error().message();
    EXPECT_TRUE(*added);
    EXPECT_FALSE(nl_->set_iif_rule(rule, true).value()) << "idempotent";
  }
  auto rules = nl_->list_iif_rules().value();
  EXPECT_EQ(std::count(rules.begin(), rules.end(), v4), 1);
  EXPECT_EQ(std::count(rules.begin(), rules.end(), v6), 1);
  // The kernel's own rules (local, main, default) are untouched: they have no iif.
  EXPECT_TRUE(nl_->set_iif_rule(v4, false).value());
  EXPECT_FALSE(nl_->set_iif_rule(v4, false).value());
  rules = nl_->list_iif_rules().value();
  EXPECT_EQ(std::count(rules.begin(), rules.end(), v4), 0);
  EXPECT_EQ(std::count(rules.begin(), rules.end(), v6), 1);
  EXPECT_FALSE(nl_->set_iif_rule({net::Family::kIPv4, "bad/name", 119, 119}, true).ok());
}

TEST_F(RtnetlinkTest, RoutesInAnotherTableLeaveTheMainTableAlone) {
  make_link("cw0", {address("10.0.0.1/24"), address("fd00::1/64")});
  constexpr int kTable = 1000;  // past 255: only RTA_TABLE can name it
  auto diff = set({"10.1.0.0/16 dev cw0", "fd01::/64 via fd00::2 dev cw0 metric 5",
                   "0.0.0.0/0 via 10.0.0.2 dev cw0"},
                  kTable);
  ASSERT_TRUE(diff.ok()) << diff.error().message();
  EXPECT_EQ(ours(kTable),
            (std::vector<std::string>{"0.0.0.0/0 via 10.0.0.2 dev cw0 table 1000",
                                      "10.1.0.0/16 dev cw0 table 1000",
                                      "fd01::/64 via fd00::2 dev cw0 table 1000 metric 5"}));
  EXPECT_TRUE(ours().empty());
  EXPECT_TRUE(set({"10.1.0.0/16 dev cw0", "fd01::/64 via fd00::2 dev cw0 metric 5",
                   "0.0.0.0/0 via 10.0.0.2 dev cw0"},
                  kTable)
                  ->unchanged());
  // A table IPv4 never had is an empty list, not an error.
  EXPECT_TRUE(ours(4242).empty());

  std::vector<Route> wrong = {parse("10.1.0.0/16 dev cw0", RT_TABLE_MAIN)};
  EXPECT_EQ(nl_->set_routes(wrong, kTable).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(set({}, kTable).ok());
  EXPECT_TRUE(ours(kTable).empty());
}

TEST_F(RtnetlinkTest, ThousandsOfRoutesComeBackThroughAMultipartDump) {
  make_link("cw0", {address("10.0.0.1/24"), address("fd00::1/64")});
  std::vector<Route> desired;
  for (int i = 0; i < 2000; ++i) {
    const auto v4 = net::IpAddress::from_bits(net::Family::kIPv4,
                                              (net::Uint128{0x0a800000} | (net::Uint128(i) << 8)));
    desired.push_back(Route{.destination = net::Prefix::make(v4, 24).value(), .device = "cw0"});
  }
  for (int i = 0; i < 1000; ++i) {
    const auto v6 = net::IpAddress::from_bits(
        net::Family::kIPv6, (net::Uint128{0xfd10} << 112) | (net::Uint128(i) << 64));
    desired.push_back(Route{.destination = net::Prefix::make(v6, 64).value(), .device = "cw0"});
  }
  auto diff = nl_->set_routes(desired);
  ASSERT_TRUE(diff.ok()) << diff.error().message();
  EXPECT_EQ(diff->added.size(), 3000U);
  auto listed = nl_->list_routes();
  ASSERT_TRUE(listed.ok()) << listed.error().message();
  EXPECT_EQ(listed->size(), 3000U);
  diff = nl_->set_routes(desired);
  ASSERT_TRUE(diff.ok()) << diff.error().message();
  EXPECT_TRUE(diff->unchanged());
}

TEST_F(RtnetlinkTest, GenericNetlinkFamiliesAreResolved) {
  auto socket = Socket::open(NETLINK_GENERIC);
  ASSERT_TRUE(socket.ok()) << socket.error().message();
  auto controller = resolve_genl_family(*socket, "nlctrl");
  ASSERT_TRUE(controller.ok()) << controller.error().message();
  EXPECT_EQ(*controller, GENL_ID_CTRL);

  auto missing = resolve_genl_family(*socket, "cw-no-such");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound) << missing.error().message();
  EXPECT_NE(missing.error().message().find("module"), std::string::npos);

  auto wireguard = resolve_genl_family(*socket, "wireguard");
  if (wireguard.ok()) {
    EXPECT_GT(*wireguard, GENL_ID_CTRL);
  } else {
    EXPECT_EQ(wireguard.error().code(), ErrorCode::kNotFound) << wireguard.error().message();
  }

  EXPECT_EQ(resolve_genl_family(nl_->socket(), "nlctrl").error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(resolve_genl_family(*socket, std::string(GENL_NAMSIZ, 'x')).error().code(),
            ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace cw::netlink
