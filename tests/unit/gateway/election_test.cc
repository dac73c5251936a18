// The election with a health trigger, on simulated time: two or three candidates exchanging
// heartbeats and writing one Lease, as the runtime does, with every write guarded by the
// Lease's version (a conflict is a failed write, as the API server's 409).
#include "gateway/election.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>

namespace cw::gateway {
namespace {

using namespace std::chrono_literals;

// One Lease, as the API server holds it.
struct FakeLease {
  std::optional<LeaseRecord> record;
  int version = 0;
  bool api_down = false;

  bool write(const std::optional<LeaseRecord>& read, const std::string& holder, bool new_epoch) {
    if (api_down) return false;
    if (read.has_value() != record.has_value() || (read && read->version != record->version)) return false;  // 409
    LeaseRecord next = record.value_or(LeaseRecord{});
    if (new_epoch) ++next.transitions;
    next.holder = holder;
    next.version = std::to_string(++version);
    record = next;
    return true;
  }
};

// Candidates that run election rounds every 10 ms of simulated time, exchange heartbeats
// every 100 ms (unless silenced or cut apart), and see the Lease at once (a watch).
struct World {
  Settings settings;
  FakeLease lease;
  std::map<std::string, Election> nodes;
  std::map<std::string, int> scores;
  std::set<std::string> dead;
  std::set<std::pair<std::string, std::string>> cut;  // (from, to) heartbeats dropped
  TimePoint now{};
  TimePoint last_heartbeats{};
  std::vector<std::string> log;

  explicit World(std::vector<std::string> names, Settings s = {}) : settings(s) {
    for (const auto& n : names) {
      nodes.emplace(n, Election(n, settings));
      nodes.at(n).set_candidate(true);
      scores[n] = 1;
    }
  }

  void step() {
    now += 10ms;
    for (auto& [name, e] : nodes) {
      if (dead.count(name)) continue;
      e.set_score(scores[name], now);
      e.observe_lease(lease.record, now);
    }
    if (now - last_heartbeats >= settings.heartbeat_interval) {
      last_heartbeats = now;
      for (auto& [from, e] : nodes) {
        if (dead.count(from)) continue;
        for (auto& [to, other] : nodes) {
          if (to != from && !dead.count(to) && !cut.count({from, to})) other.heard(e.heartbeat(), now);
        }
      }
    }
    for (auto& [name, e] : nodes) {
      if (dead.count(name)) continue;
      const Decision d = e.decide(now);
      const auto read = e.lease();  // the write is guarded by what this node saw
      bool ok = false;
      switch (d.action) {
        case Action::kNone: continue;
        case Action::kAcquire:
        case Action::kTakeOver: ok = lease.write(read, name, !read || read->holder != name); break;
        case Action::kRenew: ok = lease.write(read, name, false); break;
        case Action::kRelease: ok = lease.write(read, "", false); break;
      }
      if (ok) {
        e.wrote(now);
        if (d.action != Action::kRenew) log.push_back(name + " " + to_string(d.action) + ": " + d.reason);
      }
      e.observe_lease(lease.record, now);
    }
  }
  void run(std::chrono::milliseconds d) {
    const TimePoint end = now + d;
    while (now < end) step();
  }
  std::string holder() const { return lease.record ? lease.record->holder : ""; }
  std::vector<std::string> claiming() const {
    std::vector<std::string> out;
    for (const auto& [name, e] : nodes) {
      if (!dead.count(name) && e.active()) out.push_back(name);
    }
    return out;
  }
  // Time until `pred` holds, stepping; fails the test after `limit`.
  std::chrono::milliseconds until(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
    const TimePoint start = now;
    while (!pred()) {
      if (now - start > limit) {
        ADD_FAILURE() << "not within " << limit.count() << " ms";
        break;
      }
      step();
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(now - start);
  }
};

TEST(ElectionTest, SettingsAreChecked) {
  EXPECT_TRUE(validate(Settings{}).ok());
  Settings s;
  s.dead_after = s.heartbeat_interval;
  EXPECT_FALSE(validate(s).ok());
  s = {};
  s.lease_duration = s.renew_interval;
  EXPECT_FALSE(validate(s).ok());
}

TEST(ElectionTest, OneCandidateTakesAFreeLeaseAndKeepsIt) {
  World w({"gw-a", "gw-b"});
  w.run(500ms);
  ASSERT_FALSE(w.holder().empty());
  EXPECT_EQ(w.claiming(), std::vector<std::string>{w.holder()});
  EXPECT_EQ(w.lease.record->transitions, 1);
  const std::string first = w.holder();
  w.run(60s);
  EXPECT_EQ(w.holder(), first) << "a healthy holder keeps the Lease";
  EXPECT_EQ(w.lease.record->transitions, 1);
}

TEST(ElectionTest, TheBestScoreGetsAFreeLease) {
  World w({"gw-a", "gw-b"});
  w.scores["gw-a"] = 0;
  w.scores["gw-b"] = 2;
  w.run(300ms);  // heartbeats first, so each knows the other's score
  EXPECT_EQ(w.holder(), "gw-b");
}

TEST(ElectionTest, ADeadHolderIsTakenOverWithinDeadAfterNotTheLease) {
  World w({"gw-a", "gw-b"});
  w.run(1s);
  const std::string old = w.holder();
  const std::string standby = old == "gw-a" ? "gw-b" : "gw-a";
  w.dead.insert(old);
  const auto took = w.until([&] { return w.holder() == standby; }, 5s);
  // Silent for dead_after (400 ms) after its last heartbeat, which was up to 100 ms before.
  EXPECT_LE(took, 500ms);
  EXPECT_GE(took, 300ms);
  EXPECT_EQ(w.lease.record->transitions, 2) << "a new holder is a new epoch";
  EXPECT_EQ(w.claiming(), std::vector<std::string>{standby});
  ASSERT_FALSE(w.log.empty());
  EXPECT_NE(w.log.back().find("silent"), std::string::npos) << w.log.back();
}

TEST(ElectionTest, WithoutTheHealthTriggerOnlyTheLeaseExpiryHandsOver) {
  Settings s;
  s.health_trigger = false;
  World w({"gw-a", "gw-b"}, s);
  w.run(1s);
  const std::string old = w.holder();
  w.dead.insert(old);
  const auto took = w.until([&] { return !w.holder().empty() && w.holder() != old; }, 20s);
  EXPECT_GE(took, s.lease_duration - s.renew_interval);
  EXPECT_LE(took, s.lease_duration + 100ms);
}

TEST(ElectionTest, AHolderThatCannotForwardIsReplacedByOneThatCan) {
  World w({"gw-a", "gw-b"});
  w.run(4s);  // past the new holder's score grace
  const std::string old = w.holder();
  const std::string standby = old == "gw-a" ? "gw-b" : "gw-a";
  w.scores[old] = 0;  // its probes to the remote clusters fail; the standby's are answered
  const auto took = w.until([&] { return w.holder() == standby; }, 5s);
  EXPECT_GE(took, 900ms) << "a score held for unhealthy_after, not one bad moment";
  EXPECT_LE(took, 1200ms);
  EXPECT_EQ(w.claiming(), std::vector<std::string>{standby});
  w.run(30s);
  EXPECT_EQ(w.holder(), standby) << "no flapping back while the old holder cannot forward";
}

TEST(ElectionTest, ANewHolderGetsTimeForItsProbesBeforeScoresCount) {
  // At start-up every score is 0 until probes are answered; the standby's come back first.
  World w({"gw-a", "gw-b"});
  w.scores["gw-a"] = w.scores["gw-b"] = 0;
  w.run(500ms);
  const std::string first = w.holder();
  const std::string other = first == "gw-a" ? "gw-b" : "gw-a";
  w.scores[other] = 1;
  w.run(2s);  // better for 2 s, but the holder has held the Lease for only 2.5 s
  w.scores[first] = 1;
  w.run(10s);
  EXPECT_EQ(w.holder(), first);
  EXPECT_EQ(w.lease.record->transitions, 1) << "no epoch spent on start-up";
}

TEST(ElectionTest, NobodyCanForwardNothingMoves) {
  World w({"gw-a", "gw-b"});
  w.run(1s);
  const std::string old = w.holder();
  w.scores["gw-a"] = w.scores["gw-b"] = 0;  // the remote cluster is down: no one can do better
  w.run(30s);
  EXPECT_EQ(w.holder(), old);
  EXPECT_EQ(w.lease.record->transitions, 1);
}

TEST(ElectionTest, ABriefDipDoesNotMoveTheLease) {
  World w({"gw-a", "gw-b"});
  w.run(1s);
  const std::string old = w.holder();
  w.scores[old] = 0;
  w.run(500ms);
  w.scores[old] = 1;
  w.run(10s);
  EXPECT_EQ(w.holder(), old);
}

TEST(ElectionTest, AnUnlabelledCandidateIsNeverActiveAndReleases) {
  World w({"gw-a", "gw-b"});
  w.nodes.at("gw-b").set_candidate(false);
  w.run(30s);
  EXPECT_EQ(w.holder(), "gw-a");
  w.dead.insert("gw-a");
  w.run(30s);
  EXPECT_EQ(w.holder(), "gw-a") << "a non-candidate never takes over, even from the dead";

  World v({"gw-a", "gw-b"});
  v.run(1s);
  const std::string old = v.holder();
  v.nodes.at(old).set_candidate(false);
  const auto took = v.until([&] { return !v.holder().empty() && v.holder() != old; }, 2s);
  EXPECT_LE(took, 100ms);
}

TEST(ElectionTest, SplitBrainIsSettledByTheEpoch) {
  // The two cannot hear each other at all: the standby never takes over on silence (it never
  // heard the holder as holder), so the Lease alone decides, and only one ever claims.
  World w({"gw-a", "gw-b"});
  w.cut = {{"gw-a", "gw-b"}, {"gw-b", "gw-a"}};
  for (int i = 0; i < 3000; ++i) {
    w.step();
    ASSERT_LE(w.claiming().size(), 1u) << "at " << i * 10 << " ms";
  }
  EXPECT_EQ(w.lease.record->transitions, 1);

  // One-way: the standby stops hearing a live holder and takes over; the old holder sees the
  // new epoch (in the Lease and the new holder's heartbeats) and stops claiming.
  World v({"gw-a", "gw-b"});
  v.run(1s);
  const std::string old = v.holder();
  const std::string other = old == "gw-a" ? "gw-b" : "gw-a";
  v.cut = {{old, other}};
  v.until([&] { return v.holder() == other; }, 2s);
  v.run(20ms);  // the old holder's next look at the Lease
  EXPECT_EQ(v.claiming(), std::vector<std::string>{other});
  v.run(30s);
  EXPECT_EQ(v.holder(), other) << "no ping-pong";
  EXPECT_EQ(v.lease.record->transitions, 2);
}

TEST(ElectionTest, AHolderHearingANewerEpochStopsClaimingBeforeItsLeaseViewCatchesUp) {
  Election e("gw-a", Settings{});
  e.set_candidate(true);
  TimePoint t{};
  e.observe_lease(LeaseRecord{"gw-a", 3, "10"}, t);
  EXPECT_TRUE(e.active());
  e.heard({"gw-b", true, 4, 1}, t + 10ms);
  EXPECT_FALSE(e.active());
  EXPECT_EQ(e.decide(t + 5s).action, Action::kNone) << "it does not renew a Lease that has moved on";
}

TEST(ElectionTest, WhileTheApiIsDownTheHolderStaysAndNobodyTakesOver) {
  World w({"gw-a", "gw-b"});
  w.run(1s);
  const std::string old = w.holder();
  w.lease.api_down = true;
  w.run(30s);
  EXPECT_EQ(w.holder(), old);
  EXPECT_EQ(w.claiming(), std::vector<std::string>{old}) << "the data plane keeps its gateway";
  w.lease.api_down = false;
  w.run(5s);
  EXPECT_EQ(w.holder(), old);
}

TEST(ElectionTest, ThreeCandidatesOneDiesTheBestStandbyTakesOver) {
  World w({"gw-a", "gw-b", "gw-c"});
  w.run(1s);
  const std::string old = w.holder();
  std::vector<std::string> standbys;
  for (const auto& n : {"gw-a", "gw-b", "gw-c"}) {
    if (n != old) standbys.push_back(n);
  }
  w.scores[standbys[0]] = 1;
  w.scores[standbys[1]] = 3;
  w.run(300ms);
  w.dead.insert(old);
  w.until([&] { return w.holder() != old; }, 2s);
  EXPECT_EQ(w.holder(), standbys[1]);
  w.run(5s);
  EXPECT_EQ(w.claiming(), std::vector<std::string>{standbys[1]});
}

TEST(ElectionTest, NextCheckIsNeverLaterThanAHeartbeat) {
  Election e("gw-a", Settings{});
  TimePoint t{};
  EXPECT_EQ(e.next_check(t), t + Settings{}.heartbeat_interval);
}

}  // namespace
}  // namespace cw::gateway
