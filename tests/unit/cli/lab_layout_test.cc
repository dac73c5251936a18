// The lab's names and addresses (cli/lab/layout.h): what up, verify, status and down must
// agree on without a state file, and what keeps two labs (and everything else) apart.
#include "cli/lab/layout.h"
#include "common/net/ip_address.h"

#include <gtest/gtest.h>

#include <set>

namespace cw::lab {
namespace {

TEST(LabNameTest, AcceptsShortLowerCaseNamesWithoutHyphens) {
  for (const char* good : {"cwlab", "a", "cwt12345", "abcdefghijkl"}) EXPECT_TRUE(validate_name(good).ok()) << good;
  for (const char* bad : {"", "Cwlab", "cw-lab", "1lab", "abcdefghijklm", "cw lab", "cw/lab", "cw.lab"}) {
    EXPECT_FALSE(validate_name(bad).ok()) << bad;
  }
}

TEST(LabLayoutTest, NamesAreUniqueAndFitTheKernelsLimit) {
  auto layout = make_layout("abcdefghijkl", kMaxClusters, kMaxNodes);  // the longest name, the largest lab
  ASSERT_TRUE(layout.ok()) << layout.error().message();
  std::set<std::string> netns{layout->underlay_netns}, interfaces, ips, pod_cidrs_seen;
  for (const auto& c : layout->clusters) {
    for (const auto& n : c.nodes) {
      EXPECT_TRUE(netns.insert(n.netns).second) << n.netns;
      EXPECT_TRUE(netns.insert(n.pod_netns).second) << n.pod_netns;
      EXPECT_TRUE(interfaces.insert(n.wg_interface).second) << n.wg_interface;
      EXPECT_TRUE(ips.insert(n.underlay_ip).second) << n.underlay_ip;
      EXPECT_TRUE(ips.insert(n.underlay_ip6).second) << n.underlay_ip6;
      EXPECT_TRUE(net::IpAddress::parse(n.underlay_ip6).ok()) << n.underlay_ip6;
      EXPECT_LE(n.wg_interface.size(), 15U) << n.wg_interface;   // IFNAMSIZ - 1
      EXPECT_LE(n.underlay_veth.size(), 15U) << n.underlay_veth;
      EXPECT_EQ(n.wg_interface.rfind(layout->interface_prefix, 0), 0U) << n.wg_interface;
      EXPECT_TRUE(is_lab_netns(layout->name, n.netns)) << n.netns;
      EXPECT_TRUE(is_lab_socket(layout->name, n.wg_interface + ".sock")) << n.wg_interface;
    }
  }
  EXPECT_EQ(interfaces.size(), static_cast<std::size_t>(kMaxClusters * kMaxNodes));
}

TEST(LabLayoutTest, ServiceRangesAndApiPortsDifferPerCluster) {
  auto layout = make_layout("cwlab", 3, 2);
  ASSERT_TRUE(layout.ok());
  std::set<std::string> services;
  std::set<int> ports;
  for (const auto& c : layout->clusters) {
    EXPECT_TRUE(services.insert(c.service_cidr).second) << c.service_cidr;  // overlapping ones would be a Conflict
    EXPECT_TRUE(ports.insert(c.api_port).second) << c.api_port;
    EXPECT_EQ(&c.dns_node(), &c.nodes.front());
  }
  ASSERT_NE(layout->cluster("c2"), nullptr);
  EXPECT_EQ(layout->cluster("c2")->id, "c2");
  EXPECT_EQ(layout->cluster("2"), layout->cluster("c2"));
  EXPECT_EQ(layout->cluster("c9"), nullptr);
}

TEST(LabLayoutTest, OneLabNeverClaimsAnothersNames) {
  // "cw" is a prefix of "cwlab": neither may take the other's namespaces or sockets.
  auto small = make_layout("cw", 2, 2), big = make_layout("cwlab", 2, 2);
  ASSERT_TRUE(small.ok() && big.ok());
  EXPECT_NE(small->interface_prefix, big->interface_prefix);
  for (const auto& c : big->clusters) {
    for (const auto& n : c.nodes) {
      EXPECT_FALSE(is_lab_netns("cw", n.netns)) << n.netns;
      EXPECT_FALSE(is_lab_socket("cw", n.wg_interface + ".sock")) << n.wg_interface;
    }
  }
  EXPECT_FALSE(is_lab_netns("cwlab", "cwlabx-c1-n1"));
  EXPECT_FALSE(is_lab_netns("cwlab", "other-c1-n1"));
  EXPECT_NE(state_dir_for("cw"), state_dir_for("cwlab"));
  EXPECT_EQ(state_dir_for("cwlab"), big->state_dir);
}

TEST(LabLayoutTest, RefusesSizesOutsideItsLimits) {
  EXPECT_FALSE(make_layout("cwlab", 1, 2).ok());  // a mesh needs two clusters
  EXPECT_FALSE(make_layout("cwlab", kMaxClusters + 1, 2).ok());
  EXPECT_FALSE(make_layout("cwlab", 2, 0).ok());
  EXPECT_FALSE(make_layout("cwlab", 2, kMaxNodes + 1).ok());
  EXPECT_FALSE(make_layout("Bad-Name", 2, 2).ok());
}

}  // namespace
}  // namespace cw::lab
