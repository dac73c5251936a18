// Operators against lab API servers (one per member cluster, one broker) with the real CRDs
// from crds/: the whole claim → advertise → peer cycle, concurrency, conflicts, bad input.
#include "operator/operator.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <thread>

#include "common/wireguard/device.h"
#include "common/yaml/to_json.h"
#include "lab/apiserver/api_server.h"
#include "operator/model.h"

namespace cw::op {
namespace {

using namespace std::chrono_literals;
namespace kres = kube::resources;
namespace ores = resources;

bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds within = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return cond();
}

// One lab API server with the CRDs installed, and a client for it.
struct Api {
  std::unique_ptr<lab::ApiServer> server;
  std::unique_ptr<kube::Client> client;

  Api() {
    server = lab::ApiServer::start({}).value();
    kube::ClusterConnection c;
    c.server = server->url();
    c.ca_pem = server->ca_pem();
    c.token = "lab-admin-token";
    client = kube::Client::create(c).value();
    for (const auto& entry : std::filesystem::directory_iterator(std::string(CW_SOURCE_DIR) + "/crds")) {
      for (const auto& doc : yaml_file_to_json(entry.path()).value()) {
        auto r = client->create(kres::kCustomResourceDefinitions, "", doc);
        EXPECT_TRUE(r.ok()) << entry.path() << ": " << r.error().message();
      }
    }
  }

  void node(const std::string& name, int i) {
    json n{{"apiVersion", "v1"}, {"kind", "Node"},
           {"metadata", {{"name", name},
                         {"annotations", {{"clusterwire.io/public-key",
                                           wg::public_key_of(wg::generate_private_key().value()).value().to_base64()},
                                          {"clusterwire.io/endpoint", "192.0.2." + std::to_string(i + 1) + ":51820"}}}}},
           {"spec", json::object()}};
    ASSERT_TRUE(client->create(kres::kNodes, "", n).ok());
  }

  void peering(const std::string& remote) {
    json p{{"apiVersion", "clusterwire.io/v1alpha1"}, {"kind", "ClusterPeering"},
           {"metadata", {{"name", remote}}}, {"spec", {{"remoteClusterID", remote}}}};
    auto r = client->create(ores::kClusterPeerings, "", p);
    ASSERT_TRUE(r.ok()) << r.error().message();
  }

  std::string phase(const std::string& peering) {
    auto p = client->get(ores::kClusterPeerings, "", peering);
    if (!p || !p->contains("status")) return "";
    return (*p)["status"].value("phase", "");
  }
};

json clusterset(const std::string& pool, int cluster_len, int node_len) {
  return {{"apiVersion", "clusterwire.io/v1alpha1"}, {"kind", "ClusterSet"},
          {"metadata", {{"name", "default"}, {"namespace", "clusterwire-broker"}}},
          {"spec", {{"ipv4", {{"pools", {pool}}, {"clusterPrefixLength", cluster_len}, {"nodePrefixLength", node_len}}}}}};
}

void make_broker(Api& broker, const json& set) {
  ASSERT_TRUE(broker.client->create(kres::kNamespaces, "", {{"metadata", {{"name", "clusterwire-broker"}}}}).ok());
  auto r = broker.client->create(ores::kClusterSets, "clusterwire-broker", set);
  ASSERT_TRUE(r.ok()) << r.error().message();
}

struct Member {
  std::string id;
  Api api;
  std::unique_ptr<Operator> op;
};

OperatorConfig config_for(const std::string& id) {
  OperatorConfig c;
  c.cluster_id = id;
  c.heartbeat_interval = 1s;
  c.resync_period = 2s;
  c.leader_election = true;
  c.lease_duration = 1500ms;
  c.renew_deadline = 1000ms;
  c.retry_period = 100ms;
  return c;
}

class OperatorTest : public testing::Test {
 protected:
  SystemClock clock_;
  log::Logger log_;  // silent
};

TEST_F(OperatorTest, ThreeClustersClaimAdvertiseAndPeer) {
  Api broker;
  make_broker(broker, clusterset("10.64.0.0/12", 16, 24));
  std::vector<std::unique_ptr<Member>> members;
  for (const char* id : {"east", "west", "north"}) {
    auto m = std::make_unique<Member>();
    m->id = id;
    m->api.node(std::string(id) + "-1", 1);
    m->api.node(std::string(id) + "-2", 2);
    auto cfg = config_for(id);
    cfg.service_cidrs = {net::Prefix::parse(std::string("10.") + (m->id == "east" ? "96" : m->id == "west" ? "97" : "98") + ".0.0/16").value()};
    m->op = std::make_unique<Operator>(cfg, *m->api.client, *broker.client, clock_, log_, nullptr);
    ASSERT_TRUE(m->op->start().ok());
    members.push_back(std::move(m));
  }
  for (auto& m : members) {
    ASSERT_TRUE(wait_for([&] { return !m->op->state().pod_blocks.empty() && m->op->state().nodes_with_blocks == 2; }))
        << m->id << ": " << (m->op->state().problems.empty() ? "" : m->op->state().problems.front());
  }
  // Disjoint blocks, nodes inside them, annotated and with spec.podCIDR.
  std::vector<net::Prefix> blocks;
  for (auto& m : members) {
    const auto block = m->op->state().pod_blocks.at(0);
    for (const auto& b : blocks) EXPECT_FALSE(b.overlaps(block)) << b.to_string() << " vs " << block.to_string();
    blocks.push_back(block);
    auto n = m->api.client->get(kres::kNodes, "", m->id + "-1").value();
    const auto cidr = net::Prefix::parse(n["metadata"]["annotations"]["clusterwire.io/pod-cidr"].get<std::string>()).value();
    EXPECT_TRUE(block.contains(cidr));
    EXPECT_EQ(n["spec"]["podCIDR"], cidr.to_string());
  }
  EXPECT_TRUE(wait_for([&] {
    return broker.client->get(ores::kClusterAdvertisements, "clusterwire-broker", "north").ok();
  })) << [&] {
    std::string all;
    for (auto& m : members) {
      for (const auto& p : m->op->state().problems) all += m->id + ": " + p + "\n";
    }
    return all;
  }();

  // east ⇄ west peer; north names east, which does not name north.
  members[0]->api.peering("west");
  members[1]->api.peering("east");
  members[2]->api.peering("east");
  ASSERT_TRUE(wait_for([&] { return members[0]->api.phase("west") == "Connected"; })) << members[0]->api.phase("west");
  ASSERT_TRUE(wait_for([&] { return members[1]->api.phase("east") == "Connected"; })) << members[1]->api.phase("east");
  // Pending, and for the final reason (an earlier Pending may say it waits for east's advertisement).
  ASSERT_TRUE(wait_for([&] {
    auto p = members[2]->api.client->get(ores::kClusterPeerings, "", "east");
    return p && members[2]->api.phase("east") == "Pending" &&
           (*p)["status"]["conditions"][0].value("message", "").find("no ClusterPeering naming north") != std::string::npos;
  })) << members[2]->api.client->get(ores::kClusterPeerings, "", "east").value().dump();

  auto peering = members[0]->api.client->get(ores::kClusterPeerings, "", "west").value();
  EXPECT_EQ(peering["status"]["remote"]["podCIDRs"][0], blocks[1].to_string());
  EXPECT_EQ(peering["status"]["remote"]["nodes"].size(), 2U);
  auto north = members[2]->api.client->get(ores::kClusterPeerings, "", "east").value();
  EXPECT_NE(north["status"]["conditions"][0]["message"].get<std::string>().find("no ClusterPeering naming north"),
            std::string::npos);
  // Transitions are recorded as Events.
  auto events = members[0]->api.client->list(kres::kEvents, "default").value();
  bool connected_event = false;
  for (const auto& e : events["items"]) connected_event |= e.value("reason", "") == "Connected";
  EXPECT_TRUE(connected_event);

  // Kill and restart an operator: its block does not change.
  const auto before = members[1]->op->state().pod_blocks;
  members[1]->op->stop();
  members[1]->op = std::make_unique<Operator>(config_for("west"), *members[1]->api.client, *broker.client, clock_, log_, nullptr);
  ASSERT_TRUE(members[1]->op->start().ok());
  ASSERT_TRUE(wait_for([&] { return !members[1]->op->state().pod_blocks.empty(); }));
  EXPECT_EQ(members[1]->op->state().pod_blocks, before);

  // Leaving releases the claims.
  for (auto& m : members) m->op->stop();
  ASSERT_TRUE(Operator::leave(config_for("north"), *broker.client, log_).ok());
  auto claims = broker.client->list(ores::kCidrClaims, "clusterwire-broker").value();
  for (const auto& c : claims["items"]) EXPECT_NE(c["spec"]["clusterID"], "north");
  EXPECT_FALSE(broker.client->get(ores::kClusterAdvertisements, "clusterwire-broker", "north").ok());
}

TEST_F(OperatorTest, TwentyOperatorsAtOnceGetDisjointBlocksAndKeepThemAcrossRestarts) {
  for (int run = 0; run < 2; ++run) {
    Api broker;
    make_broker(broker, clusterset("10.64.0.0/10", 16, 24));
    std::vector<std::unique_ptr<Member>> members;
    for (int i = 0; i < 20; ++i) {
      auto m = std::make_unique<Member>();
      m->id = "c" + std::to_string(i);
      auto cfg = config_for(m->id);
      cfg.leader_election = false;
      m->op = std::make_unique<Operator>(cfg, *m->api.client, *broker.client, clock_, log_, nullptr);
      members.push_back(std::move(m));
    }
    std::vector<std::thread> starters;
    for (auto& m : members) starters.emplace_back([&m] { ASSERT_TRUE(m->op->start().ok()); });
    for (auto& t : starters) t.join();
    std::map<std::string, net::Prefix> first;
    for (auto& m : members) {
      ASSERT_TRUE(wait_for([&] { return !m->op->state().pod_blocks.empty(); }, 60s)) << m->id;
      first.emplace(m->id, m->op->state().pod_blocks.at(0));
    }
    std::set<net::Prefix> distinct;
    for (const auto& [id, b] : first) distinct.insert(b);
    ASSERT_EQ(distinct.size(), 20U) << "run " << run;
    for (auto a = distinct.begin(); a != distinct.end(); ++a) {
      for (auto b = std::next(a); b != distinct.end(); ++b) EXPECT_FALSE(a->overlaps(*b));
    }
    auto claims = broker.client->list(ores::kCidrClaims, "clusterwire-broker").value();
    EXPECT_EQ(claims["items"].size(), 20U);  // nobody claimed twice

    // Restart every operator with an empty memory: nothing changes.
    for (auto& m : members) m->op->stop();
    for (auto& m : members) {
      auto cfg = config_for(m->id);
      cfg.leader_election = false;
      m->op = std::make_unique<Operator>(cfg, *m->api.client, *broker.client, clock_, log_, nullptr);
      ASSERT_TRUE(m->op->start().ok());
    }
    for (auto& m : members) {
      ASSERT_TRUE(wait_for([&] { return !m->op->state().pod_blocks.empty(); }, 60s));
      EXPECT_EQ(m->op->state().pod_blocks.at(0), first.at(m->id)) << m->id;
    }
    EXPECT_EQ(broker.client->list(ores::kCidrClaims, "clusterwire-broker").value()["items"].size(), 20U);
    for (auto& m : members) m->op->stop();
  }
}

TEST_F(OperatorTest, TwoClustersSharingACidrEndWithOneConflictAndNothingRouted) {
  Api broker;
  make_broker(broker, clusterset("10.64.0.0/12", 16, 24));
  std::vector<std::unique_ptr<Member>> members;
  for (const char* id : {"east", "west"}) {
    auto m = std::make_unique<Member>();
    m->id = id;
    m->api.node(m->id + "-1", 1);
    auto cfg = config_for(id);
    cfg.pod_cidrs = {net::Prefix::parse("10.64.0.0/16").value()};
    m->op = std::make_unique<Operator>(cfg, *m->api.client, *broker.client, clock_, log_, nullptr);
    members.push_back(std::move(m));
  }
  for (auto& m : members) ASSERT_TRUE(m->op->start().ok());
  members[0]->api.peering("west");
  members[1]->api.peering("east");
  // One holds the block, the other (no block) reports why. (Each state is read once: a second
  // read may already be another pass's, and an empty list has no front.)
  ASSERT_TRUE(wait_for([&] {
    const auto a = members[0]->op->state();
    const auto b = members[1]->op->state();
    if (a.pod_blocks.size() + b.pod_blocks.size() != 1) return false;
    return (a.pod_blocks.empty() ? a : b).problems.size() >= 1;
  }));
  const bool first_lost = members[0]->op->state().pod_blocks.empty();
  Member& winner = first_lost ? *members[1] : *members[0];
  Member& loser = first_lost ? *members[0] : *members[1];
  std::string problem;
  ASSERT_TRUE(wait_for([&] {
    const auto st = loser.op->state();
    problem = st.problems.empty() ? "" : st.problems.front();
    return problem.find("claimed by cluster " + winner.id) != std::string::npos;
  })) << problem;
  // Exactly one claim, the winner's; the loser claimed nothing else.
  auto claims = broker.client->list(ores::kCidrClaims, "clusterwire-broker").value();
  ASSERT_EQ(claims["items"].size(), 1U);
  EXPECT_EQ(claims["items"][0]["spec"]["clusterID"], winner.id);
  // No route-worthy status anywhere: neither peering is Connected.
  ASSERT_TRUE(wait_for([&] { return loser.api.phase(winner.id) == "Pending"; })) << loser.api.phase(winner.id);
  ASSERT_TRUE(wait_for([&] { return winner.api.phase(loser.id) == "Pending"; })) << winner.api.phase(loser.id);
  // Pending first says it waits for the broker's objects; once they are read, why: no block.
  std::string status;
  EXPECT_TRUE(wait_for([&] {
    status = loser.api.client->get(ores::kClusterPeerings, "", winner.id).value()["status"].dump();
    return status.find("LocalCIDRReady") != std::string::npos;
  })) << status;
  for (auto& m : members) m->op->stop();
}

TEST_F(OperatorTest, BadInputBecomesAProblemAndTheRestKeepsWorking) {
  Api broker;
  // Invalid: node prefix shorter than the cluster's. The schema cannot see that; we must.
  make_broker(broker, clusterset("10.64.0.0/15", 16, 12));
  Member m;
  m.id = "east";
  m.api.node("east-1", 1);
  m.op = std::make_unique<Operator>(config_for("east"), *m.api.client, *broker.client, clock_, log_, nullptr);
  ASSERT_TRUE(m.op->start().ok());
  m.api.peering("nowhere");
  ASSERT_TRUE(wait_for([&] { return !m.op->state().problems.empty(); }));
  EXPECT_NE(m.op->state().problems.front().find("nodePrefixLength"), std::string::npos) << m.op->state().problems.front();
  EXPECT_EQ(broker.client->list(ores::kCidrClaims, "clusterwire-broker").value()["items"].size(), 0U);
  // The peering still gets a status that says what is wrong.
  ASSERT_TRUE(wait_for([&] { return m.api.phase("nowhere") == "Pending"; }));

  // A node agent (or a person) writing garbage annotations: reported, left out, and the
  // advertisement still goes out once there is a block.
  ASSERT_TRUE(m.api.client->merge_patch(kres::kNodes, "", "east-1",
                                        {{"metadata", {{"annotations", {{"clusterwire.io/public-key", "not-a-key"},
                                                                        {"clusterwire.io/endpoint", "nowhere"}}}}}}).ok());

  // Fixed: the claim follows.
  ASSERT_TRUE(broker.client->merge_patch(ores::kClusterSets, "clusterwire-broker", "default",
                                         {{"spec", {{"ipv4", {{"nodePrefixLength", 24}}}}}}).ok());
  ASSERT_TRUE(wait_for([&] { return !m.op->state().pod_blocks.empty() && m.op->state().advertised; }));
  ASSERT_TRUE(wait_for([&] { return m.op->state().problems.size() == 2; }));
  EXPECT_NE(m.op->state().problems[0].find("is not host:port"), std::string::npos) << m.op->state().problems[0];
  EXPECT_NE(m.op->state().problems[1].find("is not a WireGuard public key"), std::string::npos);
  auto ad = broker.client->get(ores::kClusterAdvertisements, "clusterwire-broker", "east").value();
  EXPECT_FALSE(ad["spec"]["nodes"][0].contains("publicKey"));

  // A second and third cluster: the /15 pool holds two /16s, so the third is told it is full.
  Member w;
  w.id = "west";
  w.op = std::make_unique<Operator>(config_for("west"), *w.api.client, *broker.client, clock_, log_, nullptr);
  ASSERT_TRUE(w.op->start().ok());
  ASSERT_TRUE(wait_for([&] { return !w.op->state().pod_blocks.empty(); }));
  Member n;
  n.id = "north";
  n.op = std::make_unique<Operator>(config_for("north"), *n.api.client, *broker.client, clock_, log_, nullptr);
  ASSERT_TRUE(n.op->start().ok());
  ASSERT_TRUE(wait_for([&] { return !n.op->state().problems.empty(); }));
  EXPECT_NE(n.op->state().problems.front().find("no free /16"), std::string::npos) << n.op->state().problems.front();

  // The peering naming an unknown cluster says so.
  auto p = m.api.client->get(ores::kClusterPeerings, "", "nowhere").value();
  EXPECT_NE(p["status"]["conditions"][0]["message"].get<std::string>().find("no ClusterAdvertisement"), std::string::npos);
  for (auto* x : {&m, &w, &n}) x->op->stop();
}

TEST_F(OperatorTest, AnUnreachableBrokerIsReported) {
  Api local;
  kube::ClusterConnection c;
  c.server = "https://127.0.0.1:1";
  auto dead = kube::Client::create(c, {.request_timeout = 500ms}).value();
  auto cfg = config_for("east");
  cfg.leader_election = false;
  Operator op(cfg, *local.client, *dead, clock_, log_, nullptr);
  ASSERT_TRUE(op.start().ok());
  local.peering("west");
  // The broker cannot be read: said plainly, with the cause (whichever broker informer
  // noticed first), and the peering still gets a status.
  ASSERT_TRUE(wait_for([&] { return !op.state().problems.empty(); }));
  const std::string first = op.state().problems.front();
  EXPECT_NE(first.find("cannot read the broker"), std::string::npos) << first;
  EXPECT_NE(first.find("Connection refused"), std::string::npos) << first;
  ASSERT_TRUE(wait_for([&] { return local.phase("west") == "Pending"; }));
  op.stop();
}

// The broker goes down, then the operator restarts (an upgrade, a new leader): the peering
// keeps its last known remote side and stays Connected, so the node agents keep the tunnel;
// BrokerReachable says why nothing is refreshed.
TEST_F(OperatorTest, ARestartWhileTheBrokerIsDownKeepsAWorkingPeering) {
  Api broker;
  make_broker(broker, clusterset("10.64.0.0/12", 16, 24));
  std::vector<std::unique_ptr<Member>> members;
  for (const char* id : {"east", "west"}) {
    auto m = std::make_unique<Member>();
    m->id = id;
    m->api.node(std::string(id) + "-1", 1);
    m->op = std::make_unique<Operator>(config_for(id), *m->api.client, *broker.client, clock_, log_, nullptr);
    ASSERT_TRUE(m->op->start().ok());
    members.push_back(std::move(m));
  }
  members[0]->api.peering("west");
  members[1]->api.peering("east");
  ASSERT_TRUE(wait_for([&] { return members[0]->api.phase("west") == "Connected"; })) << members[0]->api.phase("west");
  const auto before = members[0]->api.client->get(ores::kClusterPeerings, "", "west").value()["status"]["remote"];

  broker.server->stop();
  members[0]->op->stop();
  members[0]->op = std::make_unique<Operator>(config_for("east"), *members[0]->api.client, *broker.client, clock_, log_, nullptr);
  ASSERT_TRUE(members[0]->op->start().ok());
  auto broker_condition = [&] {
    auto p = members[0]->api.client->get(ores::kClusterPeerings, "", "west").value();
    for (const auto& c : p["status"]["conditions"]) {
      if (c["type"] == "BrokerReachable") return c["status"].get<std::string>() + " " + c.value("message", "");
    }
    return std::string();
  };
  EXPECT_TRUE(wait_for([&] { return broker_condition().rfind("False this operator cannot reach the broker", 0) == 0; }))
      << broker_condition();
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(members[0]->api.phase("west"), "Connected");
  EXPECT_EQ(members[0]->api.client->get(ores::kClusterPeerings, "", "west").value()["status"]["remote"], before);
  for (auto& m : members) m->op->stop();
}

// A peering grown near etcd's 1.5 MiB by a user's annotation: its status no longer fits. The
// operator cannot say so in the status, so it says so in a Warning Event (once), and the
// peering's status is written again once the annotation is gone.
TEST_F(OperatorTest, AStatusTheApiServerRefusesIsReportedAsAnEvent) {
  Api broker;
  make_broker(broker, clusterset("10.64.0.0/12", 16, 24));
  Api local;
  local.node("east-1", 1);
  Operator op(config_for("east"), *local.client, *broker.client, clock_, log_, nullptr);
  ASSERT_TRUE(op.start().ok());
  json peering{{"apiVersion", "clusterwire.io/v1alpha1"},
               {"kind", "ClusterPeering"},
               {"metadata", {{"name", "west"}, {"annotations", {{"example.com/notes", std::string(1572864 - 700, 'n')}}}}},
               {"spec", {{"remoteClusterID", "west"}}}};
  ASSERT_TRUE(local.client->create(ores::kClusterPeerings, "", peering).ok());
  auto refusal = [&] {
    auto events = local.client->list(kres::kEvents, "default").value();
    std::vector<std::string> out;
    for (const auto& e : events["items"]) {
      if (e.value("reason", "") == "StatusNotWritten") out.push_back(e.value("message", ""));
    }
    return out;
  };
  ASSERT_TRUE(wait_for([&] { return !refusal().empty(); })) << "no StatusNotWritten event";
  EXPECT_NE(refusal().front().find("etcdserver: request is too large"), std::string::npos) << refusal().front();
  std::this_thread::sleep_for(1500ms);  // retries meanwhile
  EXPECT_EQ(refusal().size(), 1U) << "reported once per distinct refusal";
  ASSERT_TRUE(local.client->merge_patch(ores::kClusterPeerings, "", "west",
                                        {{"metadata", {{"annotations", {{"example.com/notes", nullptr}}}}}}, false).ok());
  EXPECT_TRUE(wait_for([&] { return !local.phase("west").empty(); })) << "the status is written once it fits";
  op.stop();
}

// Gateway mode (docs/gateway.md): only the labelled candidates are advertised, with their
// public endpoints, the Lease's holder as the hint; a node joining writes nothing to the broker.
TEST_F(OperatorTest, GatewayModeAdvertisesOnlyCandidatesAndANodeJoinWritesNothingToTheBroker) {
  Api broker;
  json set = clusterset("10.64.0.0/12", 16, 24);
  set["spec"]["defaultTopology"] = "gateway";  // the ClusterSet's default, no flag
  make_broker(broker, set);
  Api local;
  for (int i = 0; i < 3; ++i) local.node("east-" + std::to_string(i), i);
  auto label = [&](const std::string& node, const json& labels, const json& annotations) {
    auto n = local.client->get(kres::kNodes, "", node).value();
    n["metadata"]["labels"] = labels;
    for (const auto& [k, v] : annotations.items()) n["metadata"]["annotations"][k] = v;
    ASSERT_TRUE(local.client->update(kres::kNodes, "", n).ok());
  };
  label("east-0", {{"clusterwire.io/gateway", "true"}}, {{"clusterwire.io/public-endpoint", "203.0.113.10:51820"}});
  label("east-1", {{"clusterwire.io/gateway", "true"}}, json::object());  // behind NAT: no endpoint
  label("east-2", {{"clusterwire.io/gateway", "false"}}, json::object());
  json lease{{"apiVersion", "coordination.k8s.io/v1"}, {"kind", "Lease"},
             {"metadata", {{"name", "clusterwire-gateway"}, {"namespace", "kube-system"}}},
             {"spec", {{"holderIdentity", "east-1"}, {"leaseTransitions", 3}}}};
  ASSERT_TRUE(local.client->create(kres::kLeases, "kube-system", lease).ok());

  auto cfg = config_for("east");
  cfg.heartbeat_interval = 60s;  // no heartbeat write during the test: every write is a change
  cfg.gateway_endpoints = {{"east-1", "lb.example.com:4500"}};
  Operator op(cfg, *local.client, *broker.client, clock_, log_, nullptr);
  ASSERT_TRUE(op.start().ok());
  auto ad = [&]() -> json {
    auto a = broker.client->get(ores::kClusterAdvertisements, "clusterwire-broker", "east");
    return a ? *a : json();
  };
  ASSERT_TRUE(wait_for([&] {
    const json a = ad();
    return a.is_object() && a["spec"].value("activeGateway", "") == "east-1" && op.state().nodes_with_blocks == 3;
  })) << ad().dump();
  const json spec = ad()["spec"];
  EXPECT_EQ(spec["topology"], "gateway");
  EXPECT_TRUE(spec["nodes"].empty());
  ASSERT_EQ(spec["gateways"].size(), 2U);
  EXPECT_EQ(spec["gateways"][0]["name"], "east-0");
  EXPECT_EQ(spec["gateways"][0]["endpoint"], "203.0.113.10:51820") << "the public endpoint, not the in-cluster one";
  EXPECT_EQ(spec["gateways"][1]["endpoint"], "lb.example.com:4500") << "the configured endpoint wins";
  EXPECT_EQ(op.state().topology, "gateway");

  // A node joins: it gets its block locally, and the broker sees no write.
  const std::string version = ad()["metadata"]["resourceVersion"];
  local.node("east-3", 3);
  ASSERT_TRUE(wait_for([&] { return op.state().nodes_with_blocks == 4; }));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(ad()["metadata"]["resourceVersion"], version) << "a node join wrote to the broker";

  // The Lease moves: the hint follows.
  auto l = local.client->get(kres::kLeases, "kube-system", "clusterwire-gateway").value();
  l["spec"]["holderIdentity"] = "east-0";
  ASSERT_TRUE(local.client->update(kres::kLeases, "kube-system", l).ok());
  EXPECT_TRUE(wait_for([&] { return ad()["spec"].value("activeGateway", "") == "east-0"; }));

  // Peerings tell the node agents the local topology.
  local.peering("west");
  EXPECT_TRUE(wait_for([&] {
    auto p = local.client->get(ores::kClusterPeerings, "", "west");
    return p && (*p).contains("status") && (*p)["status"].value("localTopology", "") == "gateway";
  }));
  op.stop();
}

}  // namespace
}  // namespace cw::op
