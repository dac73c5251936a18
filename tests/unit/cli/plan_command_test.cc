#include "cli/plan_command.h"

#include <gtest/gtest.h>

#include <sstream>

namespace cw::cli {
namespace {

const char* kGood = R"(clusterSet:
  ipv4:
    pools: [10.64.0.0/14]
    clusterPrefixLength: 16
    nodePrefixLength: 24
clusters:
  - id: east
    nodes: 2
  - id: west
    podCIDRs: [10.64.0.0/16]
    nodes: [w1]
)";

TEST(ParsePlanInputTest, ReadsAGoodFile) {
  auto in = parse_plan_input(kGood, "good.yaml");
  ASSERT_TRUE(in.ok()) << in.error().message();
  ASSERT_TRUE(in->spec.ipv4.has_value());
  EXPECT_FALSE(in->spec.ipv6.has_value());
  EXPECT_EQ(in->spec.ipv4->cluster_prefix_length, 16);
  ASSERT_EQ(in->clusters.size(), 2U);
  EXPECT_EQ(in->clusters[0].nodes, (std::vector<std::string>{"node-1", "node-2"}));
  EXPECT_EQ(in->clusters[1].nodes, (std::vector<std::string>{"w1"}));
  EXPECT_EQ(in->clusters[1].pod_cidrs[0].to_string(), "10.64.0.0/16");
}

struct BadFile {
  std::string name;
  std::string text;
  std::string says;  // the whole first error line, or a part of it
  friend void PrintTo(const BadFile& f, std::ostream* os) { *os << f.name; }
};

class ParsePlanInputRejectsTest : public testing::TestWithParam<BadFile> {};

TEST_P(ParsePlanInputRejectsTest, WithLineAndColumn) {
  auto in = parse_plan_input(GetParam().text, "f.yaml");
  ASSERT_FALSE(in.ok());
  EXPECT_EQ(in.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(in.error().message().find(GetParam().says), std::string::npos)
      << in.error().message();
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParsePlanInputRejectsTest,
    testing::Values(
        BadFile{"NotYaml", "clusterSet: [unclosed\n", "f.yaml:2:1: not valid YAML"},
        BadFile{"Empty", "", "f.yaml: the file is empty"},
        BadFile{"NotAMapping", "- a\n- b\n", "f.yaml:1:1: must be a mapping"},
        BadFile{"UnknownTopField", "clusterSet: {}\nclusters: []\nextra: 1\n",
                "f.yaml:3:1: extra: unknown field (known: clusterSet, clusters)"},
        BadFile{"Typo",
                "clusterSet:\n  ipv4:\n    pools: [10.0.0.0/8]\n    clusterPrefixLenght: 16\n"
                "    nodePrefixLength: 24\nclusters: []\n",
                "f.yaml:4:5: clusterSet.ipv4.clusterPrefixLenght: unknown field"},
        BadFile{"HostBits",
                "clusterSet:\n  ipv4:\n    pools: [10.0.0.1/8]\n    clusterPrefixLength: 16\n"
                "    nodePrefixLength: 24\nclusters: []\n",
                "f.yaml:3:13: clusterSet.ipv4.pools[0]: invalid prefix \"10.0.0.1/8\": host bits "
                "are set (the block is 10.0.0.0/8)"},
        BadFile{"LengthNotANumber",
                "clusterSet:\n  ipv4:\n    pools: [10.0.0.0/8]\n    clusterPrefixLength: sixteen\n"
                "    nodePrefixLength: 24\nclusters: []\n",
                "f.yaml:4:26: clusterSet.ipv4.clusterPrefixLength: \"sixteen\" is not a whole "
                "number from 0 to 32"},
        BadFile{"NodeLengthShorter",
                "clusterSet:\n  ipv4:\n    pools: [10.0.0.0/8]\n    clusterPrefixLength: 16\n"
                "    nodePrefixLength: 12\nclusters: []\n",
                "f.yaml:5:23: clusterSet.ipv4.nodePrefixLength: must be between"},
        BadFile{"MissingField",
                "clusterSet:\n  ipv4:\n    pools: [10.0.0.0/8]\n    nodePrefixLength: 24\n"
                "clusters: []\n",
                "f.yaml:3:5: clusterSet.ipv4.clusterPrefixLength: is required"},
        BadFile{"DuplicateCluster",
                "clusterSet:\n  ipv4: {pools: [10.0.0.0/8], clusterPrefixLength: 16, "
                "nodePrefixLength: 24}\nclusters:\n- id: a\n- id: a\n",
                "f.yaml:5:7: clusters[1].id: cluster id \"a\" is used twice"},
        BadFile{"BadNodeCount",
                "clusterSet:\n  ipv4: {pools: [10.0.0.0/8], clusterPrefixLength: 16, "
                "nodePrefixLength: 24}\nclusters:\n- id: a\n  nodes: -3\n",
                "f.yaml:5:10: clusters[0].nodes: \"-3\" is not a whole number"},
        BadFile{"DuplicateKey", "clusterSet: {}\nclusterSet: {}\nclusters: []\n",
                "f.yaml:2:1: clusterSet: appears twice"}),
    [](const auto& param_info) { return param_info.param.name; });

TEST(ParsePlanInputTest, ReportsEveryProblemNotJustTheFirst) {
  auto in = parse_plan_input(
      "clusterSet:\n  ipv4: {pools: [bad], clusterPrefixLength: 99, nodePrefixLength: 24}\n"
      "clusters:\n- id: UPPER\n",
      "f.yaml");
  ASSERT_FALSE(in.ok());
  const auto& m = in.error().message();
  EXPECT_NE(m.find("pools[0]"), std::string::npos) << m;
  EXPECT_NE(m.find("clusterPrefixLength"), std::string::npos) << m;
}

TEST(RenderPlanTest, TextAndJsonCarryTheSameBlocks) {
  auto in = parse_plan_input(kGood, "good.yaml").value();
  auto plan = ipam::make_plan(in.spec, in.clusters);
  std::ostringstream text, json;
  render_plan(plan, in.spec, OutputFormat::kText, text);
  render_plan(plan, in.spec, OutputFormat::kJson, json);
  EXPECT_NE(text.str().find("10.65.0.0/16 (allocated)"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("10.64.0.0/16 (adopted)"), std::string::npos);
  EXPECT_NE(text.str().find("No conflicts."), std::string::npos);
  EXPECT_NE(json.str().find("\"cidr\": \"10.65.0.0/16\""), std::string::npos) << json.str();
  EXPECT_NE(json.str().find("\"source\": \"adopted\""), std::string::npos);
}

}  // namespace
}  // namespace cw::cli
