// plan_routes(): the decision set_routes() acts on, without a kernel. Routes are written as
// `ip route` prints them, so a failing case reads like the table it describes.
#include "common/netlink/rtnetlink.h"

#include <gtest/gtest.h>

#include <sstream>

namespace cw::netlink {
namespace {

// "10.1.0.0/16 via 10.0.0.2 dev cw0 src 10.0.0.1 table 7 metric 10 proto 4": the subset of
// `ip route` syntax Route::to_string() prints.
Route route(const std::string& text) {
  std::istringstream in(text);
  std::string dst;
  in >> dst;
  Route r{.destination = net::Prefix::parse(dst).value()};
  for (std::string key, value; in >> key >> value;) {
    if (key == "via") r.gateway = net::IpAddress::parse(value).value();
    if (key == "dev") r.device = value;
    if (key == "src") r.source = net::IpAddress::parse(value).value();
    if (key == "table") r.table = std::stoi(value);
    if (key == "metric") r.metric = static_cast<std::uint32_t>(std::stoul(value));
    if (key == "proto") r.protocol = static_cast<std::uint8_t>(std::stoi(value));
  }
  return r;
}

std::vector<Route> routes(const std::vector<std::string>& texts) {
  std::vector<Route> out;
  for (const auto& t : texts) out.push_back(route(t));
  return out;
}

std::vector<std::string> texts(const std::vector<Route>& rs) {
  std::vector<std::string> out;
  for (const auto& r : rs) out.push_back(r.to_string());
  return out;
}

struct PlanCase {
  std::string name;
  std::vector<std::string> current;
  std::vector<std::string> desired;
  std::vector<std::string> added;
  std::vector<std::string> changed;  // "before -> after"
  std::vector<std::string> removed;
  std::string error;  // a piece of the message when planning must fail
  friend void PrintTo(const PlanCase& c, std::ostream* os) { *os << c.name; }
};

class PlanRoutesTest : public testing::TestWithParam<PlanCase> {};

TEST_P(PlanRoutesTest, Plans) {
  const PlanCase& c = GetParam();
  auto diff = plan_routes(routes(c.current), routes(c.desired), RT_TABLE_MAIN);
  if (!c.error.empty()) {
    ASSERT_FALSE(diff.ok()) << "expected an error containing: " << c.error;
    EXPECT_EQ(diff.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(diff.error().message().find(c.error), std::string::npos) << diff.error().message();
    return;
  }
  ASSERT_TRUE(diff.ok()) << diff.error().message();
  EXPECT_EQ(texts(diff->added), c.added);
  std::vector<std::string> changed;
  for (const auto& ch : diff->changed) {
    changed.push_back(ch.before.to_string() + " -> " + ch.after.to_string());
  }
  EXPECT_EQ(changed, c.changed);
  EXPECT_EQ(texts(diff->removed), c.removed);
  EXPECT_EQ(diff->unchanged(), c.added.empty() && c.changed.empty() && c.removed.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Table, PlanRoutesTest,
    testing::Values(
        PlanCase{.name = "NothingAndNothing"},
        PlanCase{.name = "WhatIsThereStays",
                 .current = {"10.1.0.0/16 dev cw0", "fd01::/64 dev cw0 metric 1024"},
                 .desired = {"fd01::/64 dev cw0", "10.1.0.0/16 dev cw0"}},
        PlanCase{.name = "MissingRoutesAreAddedInOrder",
                 .desired = {"10.2.0.0/16 dev cw0", "10.1.0.0/16 via 10.0.0.2 dev cw0 metric 5"},
                 .added = {"10.1.0.0/16 via 10.0.0.2 dev cw0 metric 5", "10.2.0.0/16 dev cw0"}},
        PlanCase{.name = "RoutesNoLongerDesiredAreRemoved",
                 .current = {"10.1.0.0/16 dev cw0", "10.2.0.0/16 dev cw0"},
                 .desired = {"10.1.0.0/16 dev cw0"},
                 .removed = {"10.2.0.0/16 dev cw0"}},
        PlanCase{
            .name = "ANewGatewayIsAChange",
            .current = {"10.1.0.0/16 via 10.0.0.2 dev cw0"},
            .desired = {"10.1.0.0/16 via 10.0.0.3 dev cw0"},
            .changed = {"10.1.0.0/16 via 10.0.0.2 dev cw0 -> 10.1.0.0/16 via 10.0.0.3 dev cw0"}},
        PlanCase{.name = "ANewDeviceIsAChange",
                 .current = {"10.1.0.0/16 dev cw0"},
                 .desired = {"10.1.0.0/16 dev cw1"},
                 .changed = {"10.1.0.0/16 dev cw0 -> 10.1.0.0/16 dev cw1"}},
        PlanCase{.name = "ANewMetricIsAChange",
                 .current = {"10.1.0.0/16 dev cw0 metric 10"},
                 .desired = {"10.1.0.0/16 dev cw0 metric 20"},
                 .changed = {"10.1.0.0/16 dev cw0 metric 10 -> 10.1.0.0/16 dev cw0 metric 20"}},
        PlanCase{.name = "ANewSourceIsAChange",
                 .current = {"10.1.0.0/16 dev cw0"},
                 .desired = {"10.1.0.0/16 dev cw0 src 10.0.0.1"},
                 .changed = {"10.1.0.0/16 dev cw0 -> 10.1.0.0/16 dev cw0 src 10.0.0.1"}},
        PlanCase{.name = "IPv6MetricZeroIsTheKernels1024",
                 .current = {"fd01::/64 dev cw0 metric 1024"},
                 .desired = {"fd01::/64 dev cw0 metric 0"}},
        PlanCase{.name = "IPv6NewRoutesAreReportedWithTheMetricTheKernelWillHave",
                 .desired = {"fd01::/64 dev cw0"},
                 .added = {"fd01::/64 dev cw0 metric 1024"}},
        PlanCase{.name = "IPv4MetricZeroStaysZero",
                 .current = {"10.1.0.0/16 dev cw0 metric 1024"},
                 .desired = {"10.1.0.0/16 dev cw0"},
                 .changed = {"10.1.0.0/16 dev cw0 metric 1024 -> 10.1.0.0/16 dev cw0"}},
        PlanCase{.name = "ADesiredRouteWithoutDeviceMatchesAnyDevice",
                 .current = {"10.1.0.0/16 via 10.0.0.2 dev cw0"},
                 .desired = {"10.1.0.0/16 via 10.0.0.2"}},
        PlanCase{.name = "IdenticalDuplicatesAreOneRoute",
                 .desired = {"10.1.0.0/16 dev cw0", "10.1.0.0/16 dev cw0"},
                 .added = {"10.1.0.0/16 dev cw0"}},
        PlanCase{.name = "OfTwoCurrentRoutesToOneDestinationTheFittingOneStays",
                 .current = {"10.1.0.0/16 dev cw0 metric 10", "10.1.0.0/16 dev cw0 metric 20"},
                 .desired = {"10.1.0.0/16 dev cw0 metric 20"},
                 .removed = {"10.1.0.0/16 dev cw0 metric 10"}},
        PlanCase{.name = "OfTwoCurrentRoutesNeitherFitsTheSameMetricIsChanged",
                 .current = {"10.1.0.0/16 dev cw0 metric 10", "10.1.0.0/16 dev cw0 metric 20"},
                 .desired = {"10.1.0.0/16 dev cw1 metric 20"},
                 .changed = {"10.1.0.0/16 dev cw0 metric 20 -> 10.1.0.0/16 dev cw1 metric 20"},
                 .removed = {"10.1.0.0/16 dev cw0 metric 10"}},
        PlanCase{.name = "TwoDifferentRoutesToOneDestination",
                 .desired = {"10.1.0.0/16 dev cw0", "10.1.0.0/16 dev cw1"},
                 .error = "two different routes to 10.1.0.0/16"},
        PlanCase{.name = "ARouteForAnotherTable",
                 .desired = {"10.1.0.0/16 dev cw0 table 7"},
                 .error = "is for table 7, not 254"},
        PlanCase{.name = "ARouteOfAnotherProtocol",
                 .desired = {"10.1.0.0/16 dev cw0 proto 4"},
                 .error = "only installs routes of its own protocol"},
        PlanCase{.name = "NeitherDeviceNorGateway",
                 .desired = {"10.1.0.0/16"},
                 .error = "needs a device or a gateway"},
        PlanCase{.name = "AGatewayOfTheOtherFamily",
                 .desired = {"fd01::/64 via 10.0.0.2 dev cw0"},
                 .error = "the gateway's family differs"},
        PlanCase{.name = "ASourceOfTheOtherFamily",
                 .desired = {"10.1.0.0/16 dev cw0 src fd00::1"},
                 .error = "the source's family differs"},
        PlanCase{.name = "AnInvalidDeviceName",
                 .desired = {"10.1.0.0/16 dev a-name-far-too-long"},
                 .error = "is not a network interface name: 1 to 15 characters"}),
    [](const testing::TestParamInfo<PlanCase>& param) { return param.param.name; });

TEST(PlanRoutesTableTest, TableZeroIsRefused) {
  auto diff = plan_routes({}, {}, 0);
  ASSERT_FALSE(diff.ok());
  EXPECT_EQ(diff.error().code(), ErrorCode::kInvalidArgument);
}

TEST(PlanRoutesTableTest, RoutesOfOtherTablesAreComparedInTheirTable) {
  auto diff = plan_routes(routes({"10.1.0.0/16 dev cw0 table 1000"}),
                          routes({"10.1.0.0/16 dev cw0 table 1000"}), 1000);
  ASSERT_TRUE(diff.ok()) << diff.error().message();
  EXPECT_TRUE(diff->unchanged());
}

struct AddressCase {
  std::string text;
  bool ok;
  std::string subnet;
  friend void PrintTo(const AddressCase& c, std::ostream* os) { *os << c.text; }
};

class InterfaceAddressTest : public testing::TestWithParam<AddressCase> {};

TEST_P(InterfaceAddressTest, Parses) {
  auto a = InterfaceAddress::parse(GetParam().text);
  ASSERT_EQ(a.ok(), GetParam().ok) << (a.ok() ? a->to_string() : a.error().message());
  if (!a.ok()) return;
  EXPECT_EQ(a->to_string(), GetParam().text);
  EXPECT_EQ(a->subnet().value().to_string(), GetParam().subnet);
}

INSTANTIATE_TEST_SUITE_P(
    Table, InterfaceAddressTest,
    testing::Values(AddressCase{"10.0.0.1/24", true, "10.0.0.0/24"},
                    AddressCase{"10.0.0.1/32", true, "10.0.0.1/32"},
                    AddressCase{"2001:db8::1/64", true, "2001:db8::/64"},
                    AddressCase{"10.0.0.1", false, ""}, AddressCase{"10.0.0.1/33", false, ""},
                    AddressCase{"10.0.0.1/024", false, ""}, AddressCase{"10.0.0.1/-1", false, ""},
                    AddressCase{"10.0.0.1/", false, ""}, AddressCase{"/24", false, ""},
                    AddressCase{"2001:db8::1/129", false, ""}));

}  // namespace
}  // namespace cw::netlink
