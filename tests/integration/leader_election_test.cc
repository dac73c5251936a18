// Leader election against the lab API server, on the real clock with short periods: one
// leader at a time, takeover after a crash within the lease duration, a leader that cannot
// renew stepping down, and release for a fast handover.
#include "common/kube/leader_election.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "lab/apiserver/api_server.h"

namespace cw::kube {
namespace {

using namespace std::chrono_literals;

class LeaderElectionTest : public testing::Test {
 protected:
  void SetUp() override {
    server_ = lab::ApiServer::start({}).value();
    for (int i = 0; i < 2; ++i) {
      ClusterConnection c;
      c.server = server_->url();
      c.ca_pem = server_->ca_pem();
      c.token = "lab-admin-token";
      clients_.push_back(Client::create(c, {.request_timeout = 500ms}).value());
    }
  }

  LeaderElectionConfig config(const std::string& id) {
    return {.lease_namespace = "default", .lease_name = "operator", .identity = id,
            .lease_duration = 1500ms, .renew_deadline = 1000ms, .retry_period = 100ms};
  }

  // Samples both electors every millisecond; counts moments with two leaders.
  struct Observer {
    std::atomic<bool> stop{false};
    std::atomic<int> overlaps{0};
    std::thread thread;
    Observer(const LeaderElector& a, const LeaderElector& b)
        : thread([this, &a, &b] {
            while (!stop) {
              if (a.is_leader() && b.is_leader()) ++overlaps;
              std::this_thread::sleep_for(1ms);
            }
          }) {}
    ~Observer() { stop = true; thread.join(); }
  };

  static bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds within) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline) {
      if (cond()) return true;
      std::this_thread::sleep_for(5ms);
    }
    return cond();
  }

  SystemClock clock_;
  std::unique_ptr<lab::ApiServer> server_;
  std::vector<std::unique_ptr<Client>> clients_;
};

TEST_F(LeaderElectionTest, ConfigurationIsChecked) {
  auto c = config("a");
  EXPECT_TRUE(validate(c).ok());
  c.renew_deadline = 2s;
  EXPECT_FALSE(validate(c).ok());
  c = config("");
  EXPECT_FALSE(validate(c).ok());
}

TEST_F(LeaderElectionTest, OneLeaderThenTakeoverAfterACrash) {
  LeaderElector a(*clients_[0], config("a"), clock_);
  LeaderElector b(*clients_[1], config("b"), clock_);
  Observer observer(a, b);
  a.start();
  ASSERT_TRUE(wait_for([&] { return a.is_leader(); }, 3s));
  b.start();
  std::this_thread::sleep_for(700ms);  // several retry periods: b must stay a follower
  EXPECT_FALSE(b.is_leader());
  EXPECT_EQ(b.holder(), "a");

  const auto crash = std::chrono::steady_clock::now();
  a.stop(/*release=*/false);  // a crash: the Lease stays with "a"
  ASSERT_TRUE(wait_for([&] { return b.is_leader(); }, 5s));
  const auto took = std::chrono::steady_clock::now() - crash;
  EXPECT_GE(took, 1400ms);  // not before the lease ran out
  EXPECT_LE(took, 1500ms + 2 * 100ms + 300ms);  // lease duration + retry periods + slack
  EXPECT_EQ(observer.overlaps.load(), 0);

  auto lease = clients_[1]->get(resources::kLeases, "default", "operator").value();
  EXPECT_EQ(lease["spec"]["holderIdentity"], "b");
  EXPECT_EQ(lease["spec"]["leaseTransitions"], 1);
}

TEST_F(LeaderElectionTest, ALeaderThatCannotRenewStepsDownBeforeAnotherTakesOver) {
  std::atomic<int> stopped{0};
  auto ca = config("a");
  ca.on_stopped_leading = [&] { ++stopped; };
  LeaderElector a(*clients_[0], ca, clock_);
  LeaderElector b(*clients_[1], config("b"), clock_);
  Observer observer(a, b);
  a.start();
  ASSERT_TRUE(wait_for([&] { return a.is_leader(); }, 3s));
  b.start();
  std::this_thread::sleep_for(300ms);
  // Every lease request now fails for both: a cannot renew, b cannot take over.
  server_->faults().fail_next(1000000, 500, "/apis/coordination.k8s.io");
  ASSERT_TRUE(wait_for([&] { return !a.is_leader(); }, 3s));
  EXPECT_EQ(stopped.load(), 1);
  EXPECT_FALSE(b.is_leader());
  server_->faults().fail_next(0, 0);
  ASSERT_TRUE(wait_for([&] { return a.is_leader() || b.is_leader(); }, 5s));
  EXPECT_EQ(observer.overlaps.load(), 0);
}

TEST_F(LeaderElectionTest, ReleaseHandsOverAtOnce) {
  LeaderElector a(*clients_[0], config("a"), clock_);
  LeaderElector b(*clients_[1], config("b"), clock_);
  a.start();
  ASSERT_TRUE(wait_for([&] { return a.is_leader(); }, 3s));
  b.start();
  std::this_thread::sleep_for(200ms);
  const auto t0 = std::chrono::steady_clock::now();
  a.stop(/*release=*/true);
  ASSERT_TRUE(wait_for([&] { return b.is_leader(); }, 3s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1000ms);  // well under the lease duration
}

}  // namespace
}  // namespace cw::kube
