// The node agent's ingress enforcer (node-agent/ingress_sync.h) against a lab API server in
// this process, with the CRDs from crds/: two nodes' enforcers over one cluster's objects,
// each writing its own entry of a policy's status. The kernel's side is a recording stand-in
// here (the table itself is tested against nf_tables in ingress_table_test.cc).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <set>
#include <thread>

#include "common/base/clock.h"
#include "common/kube/client.h"
#include "common/yaml/to_json.h"
#include "lab/apiserver/api_server.h"
#include "node-agent/ingress_sync.h"

namespace cw::agent {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
namespace kres = kube::resources;

// Counts the transactions it is given and accepts them all.
class RecordingNftables final : public netfilter::Nftables {
 public:
  Result<void> run(const std::string&) override {
    ++runs;
    return ok_result();
  }
  Result<json> list_table(const std::string&, const std::string&) override {
    return Error(ErrorCode::kNotFound, "no table");
  }
  std::atomic<int> runs{0};
};

json pod(const std::string& name, const std::string& node, const std::string& app, const std::string& ip) {
  return {{"apiVersion", "v1"}, {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "shop"}, {"labels", {{"app", app}}}}},
          {"spec", {{"nodeName", node}, {"containers", {{{"name", "c"}, {"image", "busybox"}}}}}},
          {"status", {{"phase", "Running"}, {"podIP", ip}, {"podIPs", {{{"ip", ip}}}}}}};
}

class IngressEnforcerTest : public testing::Test {
 protected:
  void SetUp() override {
    server_ = lab::ApiServer::start({}).value();
    kube::ClusterConnection c;
    c.server = server_->url();
    c.ca_pem = server_->ca_pem();
    c.token = "lab-admin-token";
    api_ = kube::Client::create(c).value();
    for (const auto& entry : std::filesystem::directory_iterator(std::string(CW_SOURCE_DIR) + "/crds")) {
      for (const auto& doc : yaml_file_to_json(entry.path()).value()) {
        ASSERT_TRUE(api_->create(kres::kCustomResourceDefinitions, "", doc).ok()) << entry.path();
      }
    }
    ASSERT_TRUE(api_->create(kres::kNamespaces, "", {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "shop"}}}}).ok());
    ASSERT_TRUE(api_->create(kres::kPods, "shop", pod("web-1", "n1", "web", "10.1.1.2")).ok());
    ASSERT_TRUE(api_->create(kres::kPods, "shop", pod("web-2", "n2", "web", "10.1.2.2")).ok());
    ASSERT_TRUE(api_->create(kres::kPods, "shop", pod("db-1", "n2", "db", "10.1.2.3")).ok());
    for (const char* node : {"n1", "n2"}) {
      auto nft = std::make_unique<RecordingNftables>();
      enforcers_.push_back(IngressEnforcer::start(*api_, *nft, clock_, log::Logger(), node, 10min, [] {}));
      nfts_.push_back(std::move(nft));
    }
  }
  void TearDown() override {
    for (auto& e : enforcers_) e->stop();
  }

  // Passes on both nodes, as their agents would run them, until `done` holds (5 s at most).
  bool passes_until(const std::function<bool()>& done) {
    const std::vector<PeeredCluster> peers = {{"c2", IngressPosture::kNone, {net::Prefix::parse("10.2.0.0/16").value()}}};
    const auto end = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < end) {
      for (std::size_t i = 0; i < enforcers_.size(); ++i) {
        if (!enforcers_[i]->synced()) continue;
        auto r = enforcers_[i]->apply({net::Prefix::parse(i == 0 ? "10.1.1.0/24" : "10.1.2.0/24").value()}, peers, nodes_);
        EXPECT_TRUE(r.ok()) << r.error().message();
      }
      if (done()) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
  // Both caches full and a first pass done on each node (its whole-table write).
  bool ready() {
    const auto end = std::chrono::steady_clock::now() + 5s;
    while (!(enforcers_[0]->synced() && enforcers_[1]->synced())) {
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(10ms);
    }
    return passes_until([] { return true; });
  }
  json policy(const std::string& name) {
    auto r = api_->get(kClusterSetIngressPolicies, "shop", name);
    return r ? *r : json();
  }

  std::set<std::string> nodes_ = {"n1", "n2", "n3"};  // the cluster's Nodes
  SystemClock clock_;
  std::unique_ptr<lab::ApiServer> server_;
  std::unique_ptr<kube::Client> api_;
  std::vector<std::unique_ptr<RecordingNftables>> nfts_;
  std::vector<std::unique_ptr<IngressEnforcer>> enforcers_;
};

TEST_F(IngressEnforcerTest, EachNodeWritesItsOwnEntryEvenWhenTheTableDoesNotChange) {
  // A policy naming a cluster that is not peered adds no element to either node's table: the
  // passes that see it change nothing in the kernel, and must still say so in the status.
  json p = {{"apiVersion", "clusterwire.io/v1alpha1"}, {"kind", "ClusterSetIngressPolicy"},
            {"metadata", {{"name", "web-from-c9"}, {"namespace", "shop"}}},
            {"spec", {{"podSelector", {{"matchLabels", {{"app", "web"}}}}}, {"from", {{{"clusters", {"c9"}}}}}}}};
  ASSERT_TRUE(ready());
  ASSERT_TRUE(api_->create(kClusterSetIngressPolicies, "shop", p).ok());
  const json both = json::parse(R"({"selectedPods":2,"nodes":[
      {"node":"n1","selectedPods":1,"problems":["cluster c9 is not a Connected peer of this cluster"]},
      {"node":"n2","selectedPods":1,"problems":["cluster c9 is not a Connected peer of this cluster"]}]})");
  ASSERT_TRUE(passes_until([&] { return policy("web-from-c9")["status"] == both; }))
      << policy("web-from-c9")["status"].dump();

  // Passes with nothing new write nothing, to the kernel or the API, and keep both entries.
  std::this_thread::sleep_for(200ms);  // the events of the status writes come back
  passes_until([] { return true; });
  const std::string rv = policy("web-from-c9")["metadata"]["resourceVersion"];
  const int runs = nfts_[0]->runs + nfts_[1]->runs;
  for (int i = 0; i < 5; ++i) passes_until([] { return true; });
  EXPECT_EQ(policy("web-from-c9")["metadata"]["resourceVersion"], rv);
  EXPECT_EQ(policy("web-from-c9")["status"], both);
  EXPECT_EQ(nfts_[0]->runs + nfts_[1]->runs, runs);

  // A third node's agent writes its entry (a change of status only): n1 and n2 leave it, and
  // their own entries, as they are.
  json with_n3 = policy("web-from-c9");
  with_n3["status"]["nodes"].push_back({{"node", "n3"}, {"selectedPods", 4}});
  with_n3["status"]["selectedPods"] = 6;
  ASSERT_TRUE(api_->update_status(kClusterSetIngressPolicies, "shop", with_n3).ok());
  std::this_thread::sleep_for(200ms);
  for (int i = 0; i < 3; ++i) passes_until([] { return true; });
  EXPECT_EQ(policy("web-from-c9")["status"], with_n3["status"]);

  // n2's web pod becomes a db pod: n2's entry goes, the others stay, the sum follows.
  ASSERT_TRUE(api_->merge_patch(kres::kPods, "shop", "web-2", {{"metadata", {{"labels", {{"app", "db"}}}}}}).ok());
  const json one = json::parse(R"({"selectedPods":5,"nodes":[
      {"node":"n1","selectedPods":1,"problems":["cluster c9 is not a Connected peer of this cluster"]},
      {"node":"n3","selectedPods":4}]})");
  EXPECT_TRUE(passes_until([&] { return policy("web-from-c9")["status"] == one; })) << policy("web-from-c9")["status"].dump();

  // Node n3 is deleted: its entry is pruned by the nodes that remain.
  nodes_.erase("n3");
  const json n1_only = json::parse(R"({"selectedPods":1,"nodes":[
      {"node":"n1","selectedPods":1,"problems":["cluster c9 is not a Connected peer of this cluster"]}]})");
  EXPECT_TRUE(passes_until([&] { return policy("web-from-c9")["status"] == n1_only; })) << policy("web-from-c9")["status"].dump();
}

TEST_F(IngressEnforcerTest, APolicyChangeIsOneElementUpdateAndItsStatusFollows) {
  ASSERT_TRUE(ready());
  const int runs = nfts_[1]->runs;
  json p = {{"apiVersion", "clusterwire.io/v1alpha1"}, {"kind", "ClusterSetIngressPolicy"},
            {"metadata", {{"name", "db-from-c2"}, {"namespace", "shop"}}},
            {"spec", {{"podSelector", {{"matchLabels", {{"app", "db"}}}}},
                      {"from", {{{"clusters", {"c2"}}, {"ports", {{{"port", 5432}}}}}}}}}};
  ASSERT_TRUE(api_->create(kClusterSetIngressPolicies, "shop", p).ok());
  const json n2_only = json::parse(R"({"selectedPods":1,"nodes":[{"node":"n2","selectedPods":1}]})");
  ASSERT_TRUE(passes_until([&] { return policy("db-from-c2")["status"] == n2_only; })) << policy("db-from-c2")["status"].dump();
  EXPECT_EQ(nfts_[1]->runs, runs + 1) << "n2's table took the policy in one transaction";
}

}  // namespace
}  // namespace cw::agent
