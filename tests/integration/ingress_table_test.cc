// The ingress policy table against the real kernel's nf_tables, through libnftables: the
// rendered table loads (concatenated interval sets, verdict maps jumping to per-cluster chains),
// a plan of element updates applies on top of it, and the kernel's listing holds what the
// model says. Each test moves its thread into a network namespace of its own
// (unshare(CLONE_NEWNET)), so nothing touches the host's tables; without root it is skipped,
// saying why.
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "common/netfilter/nftables.h"
#include "node-agent/ingress_policy.h"
#include "node-agent/ingress_table.h"

namespace cw::agent {
namespace {

net::IpAddress ip(const char* s) { return net::IpAddress::parse(s).value(); }
net::Prefix prefix(const char* s) { return net::Prefix::parse(s).value(); }

class IngressTableKernelTest : public testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create a private network namespace (unshare(CLONE_NEWNET))";
    if (unshare(CLONE_NEWNET) != 0) GTEST_SKIP() << "unshare(CLONE_NEWNET) failed: " << std::strerror(errno);
    nft_ = netfilter::make_nftables();
  }

  // The elements of one set or map in the kernel's listing, as nft prints them in JSON.
  std::size_t element_count(const std::string& set) {
    auto listing = nft_->list_table("inet", kIngressTable);
    EXPECT_TRUE(listing.ok()) << listing.error().message();
    if (!listing.ok()) return 0;
    for (const auto& item : *listing) {
      for (const char* kind : {"set", "map"}) {
        if (item.contains(kind) && (*item.find(kind))["name"] == set) {
          const auto& s = *item.find(kind);
          return s.contains("elem") ? s["elem"].size() : 0;
        }
      }
    }
    ADD_FAILURE() << "no set " << set;
    return 0;
  }

  std::unique_ptr<netfilter::Nftables> nft_;
};

IngressInput input() {
  IngressInput in;
  in.node_pod_cidrs = {prefix("10.1.0.0/24"), prefix("fd00:1::/64")};
  in.clusters = {{"c2", IngressPosture::kExportedServices, {prefix("10.2.0.0/16"), prefix("fd00:2::/48")}},
                 {"c3", IngressPosture::kNone, {prefix("10.3.0.0/16")}},
                 {"c4", IngressPosture::kAll, {prefix("10.4.0.0/16")}}};
  in.exported = {{ip("10.96.0.10"), kTcp, 80}, {ip("10.1.0.5"), kTcp, 8080}, {ip("fd00:96::10"), kUdp, 53}};
  in.exported_cluster = {{ip("10.1.0.5"), kTcp, 8080}, {ip("10.1.3.5"), kTcp, 8080}, {ip("fd00:1:0:3::5"), kTcp, 8080}};
  in.remote_workloads = {{"c2", "web", ip("10.2.0.7")}};
  in.pods = {{"shop", "api-1", {{"app", "api"}}, {ip("10.1.0.5"), ip("fd00:1::5")}},
             {"shop", "db-1", {{"app", "db"}}, {ip("10.1.0.6")}}};
  in.policies = {
      {"shop", "api", kube::LabelSelector::parse("app=api").value(),
       {{.clusters = {"c3"}, .ports = {{kTcp, 9000, 9100}, {kUdp, 5353, 5353}}},
        {.clusters = {"c2"}, .namespaces = {"web"}, .ports = {{kTcp, 8443, 8443}}}}},
      {"shop", "db", kube::LabelSelector::parse("app=db").value(), {{.all_clusters = true}}},
  };
  return in;
}

TEST_F(IngressTableKernelTest, TheRenderedTableLoadsAndHoldsTheModel) {
  const auto rules = compile_ingress(input());
  auto loaded = nft_->run(render_ingress_table(rules));
  ASSERT_TRUE(loaded.ok()) << loaded.error().message() << "\n" << render_ingress_table(rules);
  EXPECT_EQ(element_count("from_cluster_v4"), 3u);
  EXPECT_EQ(element_count("from_cluster_v6"), 1u);
  EXPECT_EQ(element_count("node_pods_v4"), 1u);
  EXPECT_EQ(element_count("exported_v4"), 2u);
  EXPECT_EQ(element_count("c_c3_ports_v4"), 2u) << "tcp 9000-9100 and udp 5353 to 10.1.0.5";
  EXPECT_EQ(element_count("c_c3_any_v4"), 1u) << "db-1 from every peer but c4 (All)";
  EXPECT_EQ(element_count("c_c2_from_ports_v4"), 1u);
  // Translated here to another node's pod: c2 (ExportedServices) and c3 (None) are judged
  // here, c4 (All) falls through.
  EXPECT_EQ(element_count("relay_from_cluster_v4"), 2u);
  EXPECT_EQ(element_count("relay_from_cluster_v6"), 1u);
  EXPECT_EQ(element_count("exported_cluster_v4"), 2u);
  EXPECT_EQ(element_count("exported_cluster_v6"), 1u);
  // Loading the same table again replaces it, as a restarted agent does.
  ASSERT_TRUE(nft_->run(render_ingress_table(rules)).ok());
  EXPECT_EQ(element_count("exported_v4"), 2u);
}

TEST_F(IngressTableKernelTest, AnElementPlanAppliesOnTopOfTheTable) {
  auto in = input();
  const auto before = compile_ingress(in);
  ASSERT_TRUE(nft_->run(render_ingress_table(before)).ok());
  in.pods.push_back({"shop", "api-2", {{"app", "api"}}, {ip("10.1.0.9")}});
  in.policies[0].from[0].ports = {{kTcp, 9000, 9200}};
  in.exported.pop_back();
  const auto after = compile_ingress(in);
  const std::string plan = plan_ingress_table(after, before);
  ASSERT_EQ(plan.find("table"), std::string::npos) << "element updates only:\n" << plan;
  auto applied = nft_->run(plan);
  ASSERT_TRUE(applied.ok()) << applied.error().message() << "\n" << plan;
  EXPECT_EQ(element_count("c_c3_ports_v4"), 2u) << "tcp 9000-9200 to 10.1.0.5 and 10.1.0.9";
  EXPECT_EQ(element_count("c_c3_ports_v6"), 1u);
  EXPECT_EQ(element_count("exported_v6"), 0u);
  // A refused element (overlapping an existing interval) fails the whole transaction.
  EXPECT_FALSE(nft_->run(std::string("add element inet ") + kIngressTable +
                         " c_c3_ports_v4 { 10.1.0.5 . tcp . 9100-9300 }")
                   .ok());
  EXPECT_EQ(element_count("c_c3_ports_v4"), 2u);
  ASSERT_TRUE(nft_->run(delete_ingress_table()).ok());
  EXPECT_EQ(nft_->list_table("inet", kIngressTable).error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(nft_->run(delete_ingress_table()).ok()) << "deleting what is not there is a no-op";
}

}  // namespace
}  // namespace cw::agent
