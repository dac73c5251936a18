// The lab's worlds and faults (cli/lab/world.h): what up and impair write, without a machine.
#include "cli/lab/world.h"

#include <gtest/gtest.h>

namespace cw::lab {
namespace {

LabLayout lab3x3() { return make_layout("cwt", 3, 3).value(); }

std::map<std::string, std::string> blocks(const ClusterLayout& c) {
  std::map<std::string, std::string> out;
  for (const auto& n : c.nodes) out[n.node_name] = "10.24" + std::to_string(c.index) + "." + std::to_string(n.index) + ".0/24";
  return out;
}

TEST(LabWorldTest, ParsesTheThreeWorlds) {
  for (const char* name : {"bird", "vxlan", "clusterwire"}) EXPECT_STREQ(cni_name(parse_cni(name).value()), name);
  EXPECT_FALSE(parse_cni("calico").ok());
}

TEST(LabWorldTest, ClusterRangeIsTheSlash16HoldingTheBlock) {
  EXPECT_EQ(cluster_range_of("10.241.3.0/24").value(), "10.241.0.0/16");
  EXPECT_EQ(cluster_range_of("10.240.0.0/24").value(), "10.240.0.0/16");
  EXPECT_EQ(cluster_range_of("fd10:240:1:3::/64").value(), "fd10:240:1::/48");
  EXPECT_FALSE(cluster_range_of("not a block").ok());
}

struct BridgeCase {
  Cni cni;
  int underlay_mtu;
  bool ip_masq;
  int pod_mtu;
};

TEST(LabWorldTest, PodsGetTheirWorldsMtuAndMasquerade) {
  for (const auto& c : {BridgeCase{Cni::kBird, 1500, true, 1500}, BridgeCase{Cni::kBird, 1400, true, 1400},
                        BridgeCase{Cni::kVxlan, 1500, false, 1450}, BridgeCase{Cni::kClusterwire, 1500, false, 1420},
                        BridgeCase{Cni::kClusterwire, 1400, false, 1320}}) {
    const auto j = bridge_config(c.cni, "10.241.1.0/24", c.underlay_mtu, "/x");
    EXPECT_EQ(j["type"], "bridge");
    EXPECT_EQ(j["ipMasq"], c.ip_masq) << cni_name(c.cni);
    EXPECT_EQ(j["mtu"], c.pod_mtu) << cni_name(c.cni) << " " << c.underlay_mtu;
    EXPECT_EQ(j["ipam"]["ranges"][0][0]["subnet"], "10.241.1.0/24");
    EXPECT_EQ(j["hairpinMode"], true);  // a pod reaching a Service whose endpoint is itself
  }
}

TEST(LabWorldTest, BirdPeersWithEveryOtherNodeOfItsClusterOnly) {
  const auto lab = lab3x3();
  const auto& c2 = lab.clusters[1];
  const std::string conf = bird_config(c2, c2.nodes[1], blocks(c2));
  EXPECT_NE(conf.find("router id 192.168.77.22;"), std::string::npos) << conf;
  EXPECT_NE(conf.find("route 10.242.2.0/24 blackhole;"), std::string::npos) << conf;  // its own block
  EXPECT_NE(conf.find("neighbor 192.168.77.21 as 64512;"), std::string::npos) << conf;
  EXPECT_NE(conf.find("neighbor 192.168.77.23 as 64512;"), std::string::npos) << conf;
  EXPECT_EQ(conf.find("neighbor 192.168.77.22 "), std::string::npos) << conf;  // not itself
  EXPECT_EQ(conf.find("192.168.77.1"), std::string::npos) << conf;             // no other cluster
  EXPECT_NE(conf.find("if source = RTS_BGP then accept"), std::string::npos) << conf;  // only learned routes to the kernel
}

TEST(LabWorldTest, VxlanHasAnFdbEntryAndANeighbourAndRoutePerFamilyForEveryOtherNode) {
  const auto lab = lab3x3();
  const auto& c1 = lab.clusters[0];
  const auto cmds = vxlan_commands(c1, c1.nodes[0], blocks(c1), 1400);
  ASSERT_EQ(cmds.size(), 3U + 2U * 3U);  // link, mtu, address; then fdb, neighbour, route per other node
  EXPECT_EQ(cmds[0][3], "flannel.1");
  EXPECT_EQ(cmds[1], (std::vector<std::string>{"ip", "link", "set", "flannel.1", "mtu", "1350", "up"}));
  EXPECT_EQ(cmds[2], (std::vector<std::string>{"ip", "addr", "add", "10.241.1.0/32", "dev", "flannel.1"}));
  EXPECT_EQ(cmds.back(), (std::vector<std::string>{"ip", "route", "replace", "10.241.3.0/24", "via", "10.241.3.0", "dev",
                                                   "flannel.1", "onlink"}));
  EXPECT_EQ(cmds[cmds.size() - 3],
            (std::vector<std::string>{"bridge", "fdb", "append", vtep_mac(c1.nodes[2]), "dev", "flannel.1", "dst", "192.168.77.13"}));
  EXPECT_NE(vtep_mac(c1.nodes[0]), vtep_mac(lab.clusters[1].nodes[0]));

  // Dual-stack: the IPv6 block rides the same device, with its own VTEP address, neighbour and route.
  std::map<std::string, std::string> dual;
  for (const auto& [node, block] : blocks(c1)) dual[node] = block + ",fd10:240:1:" + node.substr(node.size() - 1) + "::/64";
  const auto cmds6 = vxlan_commands(c1, c1.nodes[0], dual, 1400);
  ASSERT_EQ(cmds6.size(), 4U + 2U * 5U);
  EXPECT_EQ(cmds6[3], (std::vector<std::string>{"ip", "addr", "add", "fd10:240:1:1::/128", "dev", "flannel.1"}));
  EXPECT_EQ(cmds6.back(), (std::vector<std::string>{"ip", "route", "replace", "fd10:240:1:3::/64", "via", "fd10:240:1:3::", "dev",
                                                    "flannel.1", "onlink"}));
}

TEST(LabWorldTest, FamilyBlocksComeFromTheAnnotation) {
  EXPECT_EQ(family_block("10.240.0.0/24,fd10:240::/64", false), "10.240.0.0/24");
  EXPECT_EQ(family_block("10.240.0.0/24,fd10:240::/64", true), "fd10:240::/64");
  EXPECT_EQ(family_block("fd10:240::/64", false), "");
  EXPECT_EQ(family_block("", true), "");
}

TEST(LabWorldTest, DualStackPodsGetARangeAndADefaultRoutePerFamily) {
  const auto j = bridge_config(Cni::kBird, "10.241.1.0/24,fd10:240:1:1::/64", 1500, "/x");
  ASSERT_EQ(j["ipam"]["ranges"].size(), 2U);
  EXPECT_EQ(j["ipam"]["ranges"][1][0]["subnet"], "fd10:240:1:1::/64");
  EXPECT_EQ(j["ipam"]["routes"], nlohmann::json::array({{{"dst", "0.0.0.0/0"}}, {{"dst", "::/0"}}}));
}

TEST(LabWorldTest, BirdCarriesIpv6BlocksOverIpv6Sessions) {
  const auto lab = lab3x3();
  const auto& c2 = lab.clusters[1];
  std::map<std::string, std::string> dual;
  for (const auto& [node, block] : blocks(c2)) dual[node] = block + ",fd10:240:2:" + node.substr(node.size() - 1) + "::/64";
  const std::string conf = bird_config(c2, c2.nodes[1], dual);
  EXPECT_NE(conf.find("route fd10:240:2:2::/64 blackhole;"), std::string::npos) << conf;
  EXPECT_NE(conf.find("local fd00:77::22 as 64512;"), std::string::npos) << conf;
  EXPECT_NE(conf.find("protocol bgp n1v6 from mesh6 { neighbor fd00:77::21 as 64512; }"), std::string::npos) << conf;
  EXPECT_NE(conf.find("protocol kernel kernel_v6"), std::string::npos) << conf;
  EXPECT_NE(conf.find("protocol bgp n3 from mesh { neighbor 192.168.77.23 as 64512; }"), std::string::npos) << conf;
}

TEST(LabWorldTest, FlannelMasqueradesWhatLeavesTheClusterButNotWhatArrivesForItsPods) {
  const std::string rules = flannel_masquerade_rules("10.241.0.0/16", "10.241.1.0/24");
  EXPECT_NE(rules.find("-A FLANNEL-POSTRTG -s 10.241.0.0/16 -d 10.241.0.0/16"), std::string::npos);
  EXPECT_NE(rules.find("-A FLANNEL-POSTRTG ! -s 10.241.0.0/16 -d 10.241.1.0/24 -m comment --comment \"flanneld masq\" -j RETURN"),
            std::string::npos);
  EXPECT_NE(rules.find("-s 10.241.0.0/16 ! -d 224.0.0.0/4 -m comment --comment \"flanneld masq\" -j MASQUERADE --random-fully"),
            std::string::npos);
  EXPECT_EQ(rules.rfind("COMMIT\n"), rules.size() - 7);
}

TEST(LabFaultTest, ImpairmentsHaveOneSpellingEach) {
  const auto lab = lab3x3();
  EXPECT_EQ(parse_impairment(lab, {"drop-icmp-frag"}).value(), "drop-icmp-frag");
  EXPECT_EQ(parse_impairment(lab, {"partition", "c3", "1"}).value(), "partition c1 c3");
  EXPECT_EQ(parse_impairment(lab, {"masquerade", "2"}).value(), "masquerade c2");
  EXPECT_EQ(parse_impairment(lab, {"snat", "c3"}).value(), "snat c3");
  EXPECT_EQ(parse_impairment(lab, {"mtu-black-hole", "c2", "c1"}).value(), "mtu-black-hole c1 c2");
  EXPECT_EQ(parse_impairment(lab, {"loss", "c2", "c1", "05"}).value(), "loss c1 c2 5");
  for (const auto& bad : std::vector<std::vector<std::string>>{{},
                                                               {"partition", "c1", "c1"},
                                                               {"partition", "c1", "c9"},
                                                               {"masquerade"},
                                                               {"flood"},
                                                               {"drop-icmp-frag", "x"},
                                                               {"snat"},
                                                               {"mtu-black-hole", "c1", "c1"},
                                                               {"loss", "c1", "c2", "0"},
                                                               {"loss", "c1", "c2", "100"},
                                                               {"loss", "c1", "c2", "5%"}}) {
    EXPECT_FALSE(parse_impairment(lab, bad).ok()) << (bad.empty() ? "(none)" : bad[0]);
  }
}

TEST(LabFaultTest, TheUnderlayTableHoldsExactlyTheActiveFaults) {
  const auto lab = lab3x3();
  const std::string none = underlay_impairment_rules(lab, {"masquerade c1"});
  EXPECT_EQ(none.find("drop"), std::string::npos) << none;  // masquerade lives on the nodes
  EXPECT_EQ(none.rfind("add table bridge cwlab_impair\ndelete table bridge cwlab_impair\n", 0), 0U);
  const std::string both = underlay_impairment_rules(lab, {"drop-icmp-frag", "partition c1 c3"});
  EXPECT_NE(both.find("icmp type destination-unreachable icmp code frag-needed counter drop"), std::string::npos) << both;
  EXPECT_NE(both.find("icmpv6 type packet-too-big counter drop"), std::string::npos) << both;
  EXPECT_NE(both.find("ip saddr { 192.168.77.11, 192.168.77.12, 192.168.77.13 } ip daddr { 192.168.77.31, "
                      "192.168.77.32, 192.168.77.33 } udp dport 51820 counter drop"),
            std::string::npos) << both;
  EXPECT_NE(both.find("ip saddr { 192.168.77.31, 192.168.77.32, 192.168.77.33 } ip daddr { 192.168.77.11"),
            std::string::npos) << both;
  EXPECT_EQ(both.find("192.168.77.2"), std::string::npos) << both;  // c2 is not partitioned
}

TEST(LabFaultTest, AnMtuBlackHoleDropsFramesAHundredBytesBelowTheLinksSilently) {
  const std::string rules = underlay_impairment_rules(lab3x3(), {"mtu-black-hole c1 c2"}, 1400);
  EXPECT_NE(rules.find("ip saddr { 192.168.77.11, 192.168.77.12, 192.168.77.13 } ip daddr { 192.168.77.21, "
                       "192.168.77.22, 192.168.77.23 } meta length > 1300 counter drop"),
            std::string::npos) << rules;
  EXPECT_EQ(rules.find("icmp"), std::string::npos) << rules;
}

TEST(LabFaultTest, LossDropsThatShareOfTheWireGuardPacketsEachWay) {
  const std::string rules = underlay_impairment_rules(lab3x3(), {"loss c1 c3 5"});
  EXPECT_NE(rules.find("ip daddr { 192.168.77.31, 192.168.77.32, 192.168.77.33 } udp dport 51820 numgen random mod 100 < 5 "
                       "counter drop"),
            std::string::npos) << rules;
  EXPECT_NE(rules.find("ip saddr { 192.168.77.31, 192.168.77.32, 192.168.77.33 } ip daddr { 192.168.77.11"),
            std::string::npos) << rules;
}

TEST(LabFaultTest, SnatRunsBeforeClusterwiresExemptionAndStaysInTheBlock) {
  const std::string on = snat_rules("cwabcdefc1n1", "10.241.1.0/24");
  EXPECT_NE(on.find("type nat hook postrouting priority srcnat - 50;"), std::string::npos) << on;
  EXPECT_NE(on.find("oifname \"cwabcdefc1n1\" ip saddr 10.241.1.0/24 counter snat to 10.241.1.250"), std::string::npos)
      << on;
  const std::string off = snat_rules("cwabcdefc1n1", "");
  EXPECT_EQ(off, "add table ip cwlab_snat\ndelete table ip cwlab_snat\n");
}

TEST(LabFaultTest, TheMasqueradeIsTheCnisRuleInIptablesLegacy) {
  EXPECT_EQ(masquerade_rule("-A", "10.241.1.0/24", "10.241.0.0/16"),
            (std::vector<std::string>{"iptables-legacy", "-t", "nat", "-A", "POSTROUTING", "-s", "10.241.1.0/24", "!", "-d",
                                      "10.241.0.0/16", "-m", "comment", "--comment", "cwlab impair masquerade", "-j",
                                      "MASQUERADE"}));
}

}  // namespace
}  // namespace cw::lab
