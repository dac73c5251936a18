// The informer against the lab API server, including its faults: the cache must converge to
// the server's state after dropped watches, server errors and expired history.
#include "common/kube/informer.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "lab/apiserver/api_server.h"

namespace cw::kube {
namespace {

using namespace std::chrono_literals;
namespace res = resources;

class InformerTest : public testing::Test {
 protected:
  void SetUp() override {
    lab::ApiServerOptions o;
    o.bookmark_interval = 50ms;
    o.history_limit = 100;
    server_ = lab::ApiServer::start(o).value();
    ClusterConnection c;
    c.server = server_->url();
    c.ca_pem = server_->ca_pem();
    c.token = "lab-admin-token";
    client_ = Client::create(c).value();
  }

  // Creates or changes a ConfigMap, retrying what the injected faults make fail.
  void put(const std::string& name, const std::string& value) {
    const json cm{{"metadata", {{"name", name}}}, {"data", {{"v", value}}}};
    for (int attempt = 0; attempt < 20; ++attempt) {
      auto r = client_->merge_patch(res::kConfigMaps, "default", name, {{"data", {{"v", value}}}});
      if (!r && r.error().code() == ErrorCode::kNotFound) r = client_->create(res::kConfigMaps, "default", cm);
      if (r) return;
      ASSERT_TRUE(r.error().retryable()) << r.error().message();
    }
    FAIL() << "could not write " << name;
  }

  // name → data.v, as the server has it.
  std::map<std::string, std::string> server_state() {
    std::map<std::string, std::string> out;
    const json list = client_->list(res::kConfigMaps, "default").value();
    for (const auto& i : list["items"]) {
      out[i["metadata"]["name"]] = i["data"].value("v", "");
    }
    return out;
  }

  static std::map<std::string, std::string> cache_state(const Informer& inf) {
    std::map<std::string, std::string> out;
    for (const auto& i : inf.list()) out[i["metadata"]["name"]] = i["data"].value("v", "");
    return out;
  }

  // Waits until the informer's cache equals the server's state.
  bool converges(const Informer& inf, std::chrono::milliseconds within = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline) {
      if (cache_state(inf) == server_state()) return true;
      std::this_thread::sleep_for(20ms);
    }
    std::string diff;
    const auto have = cache_state(inf);
    for (const auto& [k, v] : server_state()) {
      auto it = have.find(k);
      if (it == have.end()) diff += " missing " + k;
      else if (it->second != v) diff += " stale " + k + "=" + it->second + " (server " + v + ")";
    }
    for (const auto& [k, v] : have) {
      if (!server_state().count(k)) diff += " extra " + k;
    }
    ADD_FAILURE() << "cache differs from the server:" << diff << "; rv " << inf.stats().resource_version
                  << ", watches " << inf.stats().watches << ", last error: " << inf.stats().last_error;
    return false;
  }

  InformerOptions options() {
    return {.resource = res::kConfigMaps, .ns = "default", .page_size = 7,
            .initial_backoff = 20ms, .max_backoff = 200ms};
  }

  SystemClock clock_;
  std::unique_ptr<lab::ApiServer> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(InformerTest, SyncsThenFollowsEventsInOrder) {
  for (int i = 0; i < 20; ++i) put("cm-" + std::to_string(i), "0");
  Informer inf(*client_, options(), clock_);
  std::mutex mu;
  std::vector<std::string> seen;
  inf.add_handlers({
      .on_add = [&](const json& o) { std::lock_guard l(mu); seen.push_back("add " + o["metadata"]["name"].get<std::string>()); },
      .on_update = [&](const json&, const json& o) { std::lock_guard l(mu); seen.push_back("update " + o["metadata"]["name"].get<std::string>()); },
      .on_delete = [&](const json& o) { std::lock_guard l(mu); seen.push_back("delete " + o["metadata"]["name"].get<std::string>()); },
  });
  inf.start();
  ASSERT_TRUE(inf.wait_for_sync(10s));
  EXPECT_EQ(inf.size(), 20U);  // over three pages of 7
  {
    std::lock_guard l(mu);
    EXPECT_EQ(seen.size(), 20U);  // handlers for the whole first list ran before "synced"
    seen.clear();
  }
  put("new", "1");
  put("cm-3", "2");
  ASSERT_TRUE(client_->remove(res::kConfigMaps, "default", "cm-4").ok());
  ASSERT_TRUE(converges(inf));
  // The cache is updated before the handlers run (on the dispatcher): wait for them too.
  for (int i = 0; i < 500; ++i) {
    {
      std::lock_guard l(mu);
      if (seen.size() >= 3) break;
    }
    std::this_thread::sleep_for(20ms);
  }
  std::lock_guard l(mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"add new", "update cm-3", "delete cm-4"}));
  EXPECT_EQ(inf.get("default", "cm-3").value()["data"]["v"], "2");
  EXPECT_FALSE(inf.get("default", "cm-4").has_value());
}

TEST_F(InformerTest, ConvergesAfterDroppedWatches) {
  Informer inf(*client_, options(), clock_);
  inf.start();
  ASSERT_TRUE(inf.wait_for_sync(10s));
  for (int round = 0; round < 10; ++round) {
    // Wait for the informer to be watching again, so that every round really drops a watch.
    // (Generous: on a loaded 2-core machine a reconnect can take a while.)
    for (int i = 0; i < 5000 && server_->store().watcher_count() == 0; ++i) std::this_thread::sleep_for(2ms);
    ASSERT_EQ(server_->store().watcher_count(), 1U) << "round " << round;
    for (int i = 0; i < 5; ++i) put("cm-" + std::to_string(i), std::to_string(round));
    server_->store().drop_watches();
  }
  ASSERT_TRUE(converges(inf)) << inf.stats().last_error;
  // The cache can be whole before the watch after the last drop has started: wait for it.
  for (int i = 0; i < 5000 && inf.stats().watches < 11; ++i) std::this_thread::sleep_for(2ms);
  EXPECT_GE(inf.stats().watches, 11U);
  EXPECT_EQ(inf.stats().lists, 1U);  // resumed from the last version, never relisted
}

TEST_F(InformerTest, ConvergesThroughServerErrors) {
  put("a", "1");
  server_->faults().fail_next(3, 500, "/api/v1/namespaces/default/configmaps");
  Informer inf(*client_, options(), clock_);
  inf.start();
  ASSERT_TRUE(inf.wait_for_sync(10s));
  EXPECT_GE(inf.stats().errors, 3U);
  put("b", "2");
  server_->faults().fail_next(2, 429);
  server_->store().drop_watches();
  put("c", "3");
  ASSERT_TRUE(converges(inf)) << inf.stats().last_error;
}

TEST_F(InformerTest, TellsWhenItsRequestsStartFailingAndWhenTheyWorkAgain) {
  std::mutex mu;
  std::vector<bool> flips;
  InformerOptions o = options();
  o.initial_backoff = 10ms;
  o.on_connection_change = [&](bool failing) {
    std::lock_guard lock(mu);
    flips.push_back(failing);
  };
  Informer inf(*client_, o, clock_);
  inf.start();
  ASSERT_TRUE(inf.wait_for_sync(10s));
  EXPECT_FALSE(inf.stats().failing);
  server_->faults().fail_next(3, 500, "/api/v1/namespaces/default/configmaps");
  server_->store().drop_watches();  // its next requests meet the three 500s
  for (int i = 0; i < 250; ++i) {
    {
      std::lock_guard lock(mu);
      if (flips.size() >= 2) break;
    }
    std::this_thread::sleep_for(20ms);
  }
  put("after", "1");
  ASSERT_TRUE(converges(inf));
  std::lock_guard lock(mu);
  ASSERT_GE(flips.size(), 2U) << "no failure was reported";
  EXPECT_TRUE(flips.front());
  EXPECT_FALSE(flips.back());  // and it works again
  for (std::size_t i = 1; i < flips.size(); ++i) EXPECT_NE(flips[i], flips[i - 1]) << "only changes are told";
  EXPECT_FALSE(inf.stats().failing);
}

TEST_F(InformerTest, RelistsWhenHistoryExpiresAndReportsWhatChanged) {
  put("keep", "1");
  put("doomed", "1");
  Informer inf(*client_, options(), clock_);
  std::atomic<int> deletes{0};
  inf.add_handlers({.on_delete = [&](const json&) { ++deletes; }});
  inf.start();
  ASSERT_TRUE(inf.wait_for_sync(10s));
  // Changes the informer cannot replay: more than the 100-event history, then an expiry.
  server_->faults().set_latency(0ms);
  ASSERT_TRUE(client_->remove(res::kConfigMaps, "default", "doomed").ok());
  for (int i = 0; i < 150; ++i) put("churn", std::to_string(i));
  server_->store().expire_history();
  put("after", "1");
  ASSERT_TRUE(converges(inf)) << inf.stats().last_error;
  EXPECT_GE(inf.stats().gone + inf.stats().lists, 2U);
  EXPECT_EQ(deletes.load(), 1);
}

TEST_F(InformerTest, ResyncHandsEveryObjectToOnUpdate) {
  put("a", "1");
  put("b", "1");
  FakeClock fake;
  auto o = options();
  o.resync_period = 10min;
  Informer inf(*client_, o, fake);
  std::atomic<int> resyncs{0};
  inf.add_handlers({.on_update = [&](const json& old, const json& now) {
    if (old == now) ++resyncs;
  }});
  inf.start();
  ASSERT_TRUE(inf.wait_for_sync(10s));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(resyncs.load(), 0);
  fake.advance(11min);
  for (int i = 0; i < 200 && resyncs.load() < 2; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(resyncs.load(), 2);
}

TEST_F(InformerTest, StopIsPromptWhileWatching) {
  Informer inf(*client_, options(), clock_);
  inf.start();
  ASSERT_TRUE(inf.wait_for_sync(10s));
  const auto t0 = std::chrono::steady_clock::now();
  inf.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

TEST_F(InformerTest, LabelSelectedInformerSeesObjectsLeaveItsSelection) {
  json labelled{{"metadata", {{"name", "x"}, {"labels", {{"app", "web"}}}}}};
  ASSERT_TRUE(client_->create(res::kConfigMaps, "default", labelled).ok());
  auto o = options();
  o.label_selector = "app=web";
  Informer inf(*client_, o, clock_);
  inf.start();
  ASSERT_TRUE(inf.wait_for_sync(10s));
  EXPECT_EQ(inf.size(), 1U);
  ASSERT_TRUE(client_->merge_patch(res::kConfigMaps, "default", "x",
                                   {{"metadata", {{"labels", {{"app", "db"}}}}}}).ok());
  for (int i = 0; i < 200 && inf.size() != 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(inf.size(), 0U);
}

}  // namespace
}  // namespace cw::kube
