#include "gateway/active_view.h"

#include <gtest/gtest.h>

namespace cw::gateway {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string> kCandidates = {"gw-a", "gw-b"};

TEST(ActiveViewTest, WithoutBeaconsTheHintThenTheFirstCandidate) {
  ActiveView v;
  EXPECT_EQ(v.active("c1", kCandidates, "gw-b"), "gw-b");
  EXPECT_EQ(v.active("c1", kCandidates, "gone"), "gw-a");
  EXPECT_EQ(v.active("c1", {}, "gw-b"), std::nullopt);
}

TEST(ActiveViewTest, TheHighestEpochWins) {
  ActiveView v;
  TimePoint t{};
  EXPECT_TRUE(v.heard("c1", {"gw-a", true, 1, 1}, t));
  EXPECT_EQ(v.active("c1", kCandidates, "gw-b"), "gw-a") << "a beacon beats the hint";
  EXPECT_FALSE(v.heard("c1", {"gw-a", true, 1, 1}, t + 1s)) << "the same claim again changes nothing";
  // gw-a died; gw-b took over with epoch 2. gw-a's stale claim does not win.
  EXPECT_TRUE(v.heard("c1", {"gw-b", true, 2, 1}, t + 2s));
  EXPECT_EQ(v.active("c1", kCandidates, ""), "gw-b");
  // A late beacon of gw-a's old epoch (delayed, or gw-a has not seen the takeover yet).
  EXPECT_FALSE(v.heard("c1", {"gw-a", true, 1, 1}, t + 3s));
  EXPECT_EQ(v.active("c1", kCandidates, ""), "gw-b");
}

TEST(ActiveViewTest, StepDownWithdrawsTheClaim) {
  ActiveView v;
  TimePoint t{};
  v.heard("c1", {"gw-b", true, 5, 1}, t);
  EXPECT_TRUE(v.heard("c1", {"gw-b", false, 5, 0}, t + 1s));
  EXPECT_EQ(v.active("c1", kCandidates, "gw-a"), "gw-a");
  // An older "not active" does not withdraw a newer claim.
  v.heard("c1", {"gw-b", true, 6, 1}, t + 2s);
  EXPECT_FALSE(v.heard("c1", {"gw-b", false, 5, 0}, t + 3s));
  EXPECT_EQ(v.active("c1", kCandidates, "gw-a"), "gw-b");
}

TEST(ActiveViewTest, AClaimByANonCandidateIsIgnored) {
  ActiveView v;
  v.heard("c1", {"gw-z", true, 9, 1}, TimePoint{});
  EXPECT_EQ(v.active("c1", kCandidates, "gw-b"), "gw-b");
}

TEST(ActiveViewTest, ClustersAreSeparateAndForgotten) {
  ActiveView v;
  v.heard("c1", {"gw-b", true, 1, 1}, TimePoint{});
  EXPECT_EQ(v.active("c2", kCandidates, ""), "gw-a");
  v.retain({"c2"});
  EXPECT_TRUE(v.claims("c1").empty());
}

}  // namespace
}  // namespace cw::gateway
