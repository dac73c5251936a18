#include "common/ipam/plan.h"

#include <gtest/gtest.h>

namespace cw::ipam {
namespace {

using net::Prefix;

Prefix P(const std::string& t) { return Prefix::parse(t).value(); }

ClusterSetSpec v4_spec(std::vector<std::string> pools, int cluster_len, int node_len) {
  FamilyPools fp;
  for (const auto& p : pools) fp.pools.push_back(P(p));
  fp.cluster_prefix_length = cluster_len;
  fp.node_prefix_length = node_len;
  return ClusterSetSpec{fp, std::nullopt};
}

ClusterInput cluster(std::string id, std::vector<std::string> pods = {},
                     std::vector<std::string> svcs = {}, int nodes = 0) {
  ClusterInput c{std::move(id), {}, {}, {}};
  for (const auto& p : pods) c.pod_cidrs.push_back(P(p));
  for (const auto& s : svcs) c.service_cidrs.push_back(P(s));
  for (int i = 1; i <= nodes; ++i) c.nodes.push_back("node-" + std::to_string(i));
  return c;
}

std::vector<std::string> blocks(const ClusterPlan& c) {
  std::vector<std::string> out;
  for (const auto& b : c.pod_blocks) out.push_back(b.cidr.to_string() + " " + to_string(b.source));
  return out;
}

TEST(ClusterSetValidateTest, AcceptsAGoodDualStackSpec) {
  auto spec = v4_spec({"10.64.0.0/12"}, 16, 24);
  spec.ipv6 = FamilyPools{{P("fd00::/48")}, 56, 64};
  EXPECT_TRUE(validate(spec).empty());
}

struct SpecCase {
  std::string name;
  ClusterSetSpec spec;
  std::string field;
  std::string says;
  friend void PrintTo(const SpecCase& c, std::ostream* os) { *os << c.name; }
};

class ClusterSetRejectsTest : public testing::TestWithParam<SpecCase> {};

TEST_P(ClusterSetRejectsTest, NamesTheField) {
  auto errors = validate(GetParam().spec);
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].field, GetParam().field);
  EXPECT_NE(errors[0].message.find(GetParam().says), std::string::npos) << errors[0].message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ClusterSetRejectsTest,
    testing::Values(
        SpecCase{"NoFamily", ClusterSetSpec{}, "", "neither ipv4 nor ipv6"},
        SpecCase{"NoPools", v4_spec({}, 16, 24), "ipv4.pools", "at least one"},
        SpecCase{"NodeShorterThanCluster", v4_spec({"10.0.0.0/8"}, 16, 12),
                 "ipv4.nodePrefixLength", "between clusterPrefixLength (16) and 32"},
        SpecCase{"ClusterTooLong", v4_spec({"10.0.0.0/8"}, 40, 40), "ipv4.clusterPrefixLength",
                 "must be 1-32"},
        SpecCase{"PoolSmallerThanBlock", v4_spec({"10.0.0.0/20"}, 16, 24), "ipv4.pools[0]",
                 "smaller than one cluster block (/16)"},
        SpecCase{"PoolsOverlap", v4_spec({"10.0.0.0/8", "10.1.0.0/16"}, 16, 24),
                 "ipv4.pools[1]", "overlaps ipv4.pools[0] 10.0.0.0/8"},
        SpecCase{"WrongFamily", v4_spec({"fd00::/48"}, 16, 24), "ipv4.pools[0]",
                 "is not an IPv4 prefix"}),
    [](const auto& param_info) { return param_info.param.name; });

TEST(ClustersValidateTest, RejectsBadAndDuplicateIdsAndNodes) {
  auto dup_node = cluster("c");
  dup_node.nodes = {"n1", "n1"};
  auto errors = validate(std::vector<ClusterInput>{
      cluster("east"), cluster("east"), cluster("East_1"),
      cluster("d", {"10.0.0.0/16", "10.1.0.0/16"}), dup_node});
  ASSERT_EQ(errors.size(), 4U);
  EXPECT_EQ(errors[0].field, "clusters[1].id");
  EXPECT_NE(errors[0].message.find("used twice"), std::string::npos);
  EXPECT_EQ(errors[1].field, "clusters[2].id");
  EXPECT_EQ(errors[2].field, "clusters[3].podCIDRs[1]");
  EXPECT_NE(errors[2].message.find("more than one IPv4"), std::string::npos);
  EXPECT_EQ(errors[3].field, "clusters[4].nodes[1]");
}

TEST(MakePlanTest, NewClustersGetTheLowestFreeBlocksInInputOrder) {
  auto plan = make_plan(v4_spec({"10.64.0.0/14"}, 16, 24),
                        {cluster("a"), cluster("b", {}, {}, 2), cluster("c")});
  EXPECT_TRUE(plan.conflicts.empty());
  EXPECT_EQ(blocks(plan.clusters[0]), std::vector<std::string>{"10.64.0.0/16 allocated"});
  EXPECT_EQ(blocks(plan.clusters[1]), std::vector<std::string>{"10.65.0.0/16 allocated"});
  EXPECT_EQ(blocks(plan.clusters[2]), std::vector<std::string>{"10.66.0.0/16 allocated"});
  ASSERT_EQ(plan.clusters[1].nodes.size(), 2U);
  EXPECT_EQ(plan.clusters[1].nodes[1].pod_cidrs[0].to_string(), "10.65.1.0/24");
  ASSERT_EQ(plan.usage.size(), 1U);
  EXPECT_EQ(plan.usage[0].total_blocks, net::Uint128{4});
  EXPECT_EQ(plan.usage[0].free_blocks, net::Uint128{1});
}

TEST(MakePlanTest, ExistingBlocksAreAdoptedAndAllocationStepsAroundThem) {
  auto plan = make_plan(v4_spec({"10.64.0.0/14"}, 16, 24),
                        {cluster("new"), cluster("old", {"10.64.0.0/16"})});
  EXPECT_TRUE(plan.conflicts.empty());
  EXPECT_EQ(blocks(plan.clusters[0]), std::vector<std::string>{"10.65.0.0/16 allocated"});
  EXPECT_EQ(blocks(plan.clusters[1]), std::vector<std::string>{"10.64.0.0/16 adopted"});
}

TEST(MakePlanTest, ServiceRangesInThePoolAreNeverHandedOut) {
  auto plan = make_plan(v4_spec({"10.64.0.0/10"}, 12, 24),
                        {cluster("a", {}, {"10.96.0.0/12"}), cluster("b", {}, {"10.96.0.0/16"}),
                         cluster("c"), cluster("d")});
  EXPECT_EQ(blocks(plan.clusters[0]), std::vector<std::string>{"10.64.0.0/12 allocated"});
  EXPECT_EQ(blocks(plan.clusters[1]), std::vector<std::string>{"10.80.0.0/12 allocated"});
  EXPECT_EQ(blocks(plan.clusters[2]), std::vector<std::string>{"10.112.0.0/12 allocated"});
  EXPECT_EQ(plan.clusters[3].pod_blocks.size(), 0U);  // 10.96/12 is services: pool exhausted
  ASSERT_EQ(plan.conflicts.size(), 1U);
  EXPECT_EQ(plan.conflicts[0].cluster, "d");
}

TEST(MakePlanTest, SharedExistingCidrEndsInOneConflictAndNothingElseForTheLoser) {
  auto plan = make_plan(v4_spec({"10.64.0.0/12"}, 16, 24),
                        {cluster("east", {"10.64.0.0/16"}), cluster("west", {"10.64.0.0/16"})});
  ASSERT_EQ(plan.conflicts.size(), 1U);
  EXPECT_EQ(plan.conflicts[0].cluster, "west");
  EXPECT_EQ(plan.conflicts[0].message,
            "pod CIDR 10.64.0.0/16 overlaps east's pod CIDR 10.64.0.0/16; west gets no other "
            "IPv4 block");
  EXPECT_EQ(blocks(plan.clusters[0]), std::vector<std::string>{"10.64.0.0/16 adopted"});
  EXPECT_TRUE(plan.clusters[1].pod_blocks.empty());  // claims nothing else
}

TEST(MakePlanTest, SharedServiceRangesAreAWarning) {
  auto plan = make_plan(v4_spec({"10.64.0.0/12"}, 16, 24),
                        {cluster("east", {}, {"10.96.0.0/12"}), cluster("west", {}, {"10.96.0.0/16"})});
  EXPECT_TRUE(plan.conflicts.empty());
  ASSERT_EQ(plan.warnings.size(), 1U);
  EXPECT_EQ(plan.warnings[0], "east and west share service range 10.96.0.0/12: a ClusterPeering between them would report Conflict");
}

TEST(MakePlanTest, PodCidrOverlappingAServiceRangeIsAConflict) {
  auto plan = make_plan(v4_spec({"10.64.0.0/12"}, 16, 24),
                        {cluster("east", {}, {"10.96.0.0/12"}), cluster("west", {"10.100.0.0/16"})});
  ASSERT_EQ(plan.conflicts.size(), 1U);
  EXPECT_NE(plan.conflicts[0].message.find("east's service CIDR 10.96.0.0/12"), std::string::npos);
}

TEST(MakePlanTest, OutsideThePoolIsAdoptedWithAWarning) {
  auto plan = make_plan(v4_spec({"10.64.0.0/12"}, 16, 24), {cluster("edge", {"172.20.0.0/16"}, {}, 1)});
  EXPECT_TRUE(plan.conflicts.empty());
  ASSERT_EQ(plan.warnings.size(), 1U);
  EXPECT_FALSE(plan.clusters[0].pod_blocks[0].in_pool);
  EXPECT_EQ(plan.clusters[0].nodes[0].pod_cidrs[0].to_string(), "172.20.0.0/24");
}

TEST(MakePlanTest, TooManyNodesForTheBlockIsAConflict) {
  auto plan = make_plan(v4_spec({"10.64.0.0/12"}, 22, 24), {cluster("big", {}, {}, 5)});
  ASSERT_EQ(plan.conflicts.size(), 1U);
  EXPECT_EQ(plan.conflicts[0].message,
            "10.64.0.0/22 holds 4 /24 node blocks but the cluster has 5 nodes");
  EXPECT_EQ(plan.clusters[0].nodes[3].pod_cidrs.size(), 1U);
  EXPECT_TRUE(plan.clusters[0].nodes[4].pod_cidrs.empty());
}

TEST(MakePlanTest, DualStackNodesGetOneBlockPerFamily) {
  auto spec = v4_spec({"10.64.0.0/12"}, 16, 24);
  spec.ipv6 = FamilyPools{{P("fd00:c1::/48")}, 56, 64};
  auto plan = make_plan(spec, {cluster("a", {}, {}, 1), cluster("b", {}, {}, 2)});
  EXPECT_TRUE(plan.conflicts.empty());
  EXPECT_EQ(blocks(plan.clusters[1]),
            (std::vector<std::string>{"10.65.0.0/16 allocated", "fd00:c1:0:100::/56 allocated"}));
  const auto& n2 = plan.clusters[1].nodes[1];
  ASSERT_EQ(n2.pod_cidrs.size(), 2U);
  EXPECT_EQ(n2.pod_cidrs[0].to_string(), "10.65.1.0/24");
  EXPECT_EQ(n2.pod_cidrs[1].to_string(), "fd00:c1:0:101::/64");
}

TEST(MakePlanTest, IsDeterministic) {
  auto spec = v4_spec({"10.64.0.0/12"}, 16, 24);
  std::vector<ClusterInput> in{cluster("a", {}, {}, 3), cluster("b", {"10.70.0.0/16"}), cluster("c")};
  auto one = make_plan(spec, in);
  auto two = make_plan(spec, in);
  ASSERT_EQ(one.clusters.size(), two.clusters.size());
  for (std::size_t i = 0; i < one.clusters.size(); ++i) {
    EXPECT_EQ(blocks(one.clusters[i]), blocks(two.clusters[i]));
  }
}

}  // namespace
}  // namespace cw::ipam
