#include "common/kube/workqueue.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <functional>
#include <random>
#include <thread>
#include <vector>

namespace cw::kube {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Real time, only to bound a wait for other threads: queue time is the FakeClock's.
bool eventually(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

// Everything the queue hands out right now, each marked done.
std::vector<std::string> drain(WorkQueue& q) {
  std::vector<std::string> keys;
  while (q.length() > 0) {
    keys.push_back(q.get().value());
    q.done(keys.back());
  }
  return keys;
}

using Keys = std::vector<std::string>;

TEST(WorkQueueTest, AKeyWaitingIsHeldOnce) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add("ns/a");
  q.add("ns/b");
  q.add("ns/a");
  q.add("ns/b");
  EXPECT_EQ(q.length(), 2U);
  EXPECT_EQ(drain(q), (Keys{"ns/a", "ns/b"}));
  q.add("ns/a");  // done: a later add queues it again
  EXPECT_EQ(drain(q), (Keys{"ns/a"}));
}

TEST(WorkQueueTest, AnAddWhileProcessingQueuesTheKeyAgainOnDone) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add("ns/a");
  ASSERT_EQ(q.get(), "ns/a");
  q.add("ns/a");
  q.add("ns/a");
  EXPECT_EQ(q.length(), 0U);  // not handed out twice at once
  q.add("ns/b");
  EXPECT_EQ(q.get(), "ns/b");
  q.done("ns/b");
  q.done("ns/a");
  EXPECT_EQ(q.length(), 1U);  // once, however many adds came in meanwhile
  EXPECT_EQ(q.get(), "ns/a");
  q.done("ns/a");
  EXPECT_EQ(q.length(), 0U);  // nothing new came in this time
}

TEST(WorkQueueTest, DoneOnAKeyNotHandedOutIsIgnored) {
  FakeClock clock;
  WorkQueue q(clock);
  q.done("ns/never");
  q.add("ns/a");
  q.done("ns/a");  // queued, not processing: must not be queued a second time
  EXPECT_EQ(drain(q), (Keys{"ns/a"}));
}

TEST(WorkQueueTest, AddAfterWaitsForTheClockAndKeepsReadyOrder) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add_after("ns/c", milliseconds(30));
  q.add_after("ns/a", milliseconds(10));
  q.add_after("ns/b", milliseconds(20));
  q.add_after("ns/b2", milliseconds(20));  // same time as b: the order of asking
  EXPECT_EQ(q.length(), 0U);
  clock.advance(milliseconds(9));
  EXPECT_EQ(q.length(), 0U);
  clock.advance(milliseconds(1));
  EXPECT_EQ(q.length(), 1U);
  clock.advance(seconds(1));
  EXPECT_EQ(drain(q), (Keys{"ns/a", "ns/b", "ns/b2", "ns/c"}));
}

TEST(WorkQueueTest, AKeyThatCameDueQueuesAheadOfALaterAdd) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add_after("ns/due", milliseconds(10));
  clock.advance(milliseconds(10));
  q.add("ns/now");
  EXPECT_EQ(drain(q), (Keys{"ns/due", "ns/now"}));
}

TEST(WorkQueueTest, TheEarlierOfTwoAddAftersWins) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add_after("ns/a", seconds(10));
  q.add_after("ns/a", seconds(2));   // moves it forward
  q.add_after("ns/a", seconds(60));  // does not move it back
  clock.advance(seconds(2));
  EXPECT_EQ(drain(q), (Keys{"ns/a"}));
  clock.advance(seconds(100));
  EXPECT_EQ(q.length(), 0U);  // one delayed add, fired once
}

TEST(WorkQueueTest, AddMakesAWaitingKeyReadyNowAndTheDelayedAddStillFires) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add_after("ns/a", seconds(30));
  q.add("ns/a");
  EXPECT_EQ(drain(q), (Keys{"ns/a"}));
  clock.advance(seconds(29));
  EXPECT_EQ(q.length(), 0U);
  clock.advance(seconds(1));
  EXPECT_EQ(drain(q), (Keys{"ns/a"}));
}

TEST(WorkQueueTest, ADelayOfZeroOrLessIsAPlainAdd) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add_after("ns/a", Clock::Duration::zero());
  q.add_after("ns/b", milliseconds(-5));
  EXPECT_EQ(drain(q), (Keys{"ns/a", "ns/b"}));
}

TEST(WorkQueueTest, AnAbsurdDelaySaturatesInsteadOfOverflowing) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add_after("ns/a", Clock::Duration::max());
  clock.advance(std::chrono::hours(24 * 365));
  EXPECT_EQ(q.length(), 0U);
}

TEST(WorkQueueTest, AKeyComingDueWhileProcessedIsQueuedOnDone) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add("ns/a");
  ASSERT_EQ(q.get(), "ns/a");
  q.add_after("ns/a", milliseconds(5));
  clock.advance(milliseconds(5));
  EXPECT_EQ(q.length(), 0U);
  q.done("ns/a");
  EXPECT_EQ(drain(q), (Keys{"ns/a"}));
}

TEST(WorkQueueTest, GetBlocksUntilADelayedKeyIsDueOnTheClock) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add_after("ns/a", seconds(5));
  std::atomic<bool> got{false};
  std::optional<std::string> key;
  std::thread worker([&] {
    key = q.get();
    got = true;
  });
  std::this_thread::sleep_for(milliseconds(5));
  EXPECT_FALSE(got);
  clock.advance(seconds(5));  // no real five seconds: the FakeClock's waiters poll
  worker.join();
  EXPECT_EQ(key, "ns/a");
}

TEST(WorkQueueTest, ShutdownWakesEveryGetAndDropsWhatIsQueued) {
  FakeClock clock;
  WorkQueue q(clock);
  std::vector<std::thread> workers;
  std::atomic<int> woken{0};
  for (int i = 0; i < 3; ++i) {
    workers.emplace_back([&] {
      if (!q.get().has_value()) ++woken;
    });
  }
  std::this_thread::sleep_for(milliseconds(2));
  q.add_after("ns/later", seconds(1));
  EXPECT_FALSE(q.shutting_down());
  q.shutdown();
  for (auto& w : workers) w.join();
  EXPECT_EQ(woken, 3);
  EXPECT_TRUE(q.shutting_down());

  q.add("ns/a");
  q.add_after("ns/b", milliseconds(1));
  q.add_rate_limited("ns/c");
  clock.advance(seconds(5));
  EXPECT_EQ(q.length(), 0U);
  EXPECT_EQ(q.get(), std::nullopt);
  q.shutdown();  // idempotent
}

TEST(WorkQueueTest, GetAfterShutdownReturnsNulloptEvenWithKeysQueued) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add("ns/a");
  q.add("ns/b");
  ASSERT_EQ(q.get(), "ns/a");
  q.add("ns/a");
  q.shutdown();
  EXPECT_EQ(q.get(), std::nullopt);
  q.done("ns/a");  // allowed, but nothing is queued again
  EXPECT_EQ(q.length(), 0U);
  EXPECT_EQ(q.get(), std::nullopt);
}

TEST(WorkQueueTest, AddRateLimitedWaitsTheBackoffAndForgetResetsIt) {
  FakeClock clock;
  WorkQueue q(clock);
  q.add_rate_limited("ns/a");
  EXPECT_EQ(q.num_requeues("ns/a"), 1);
  clock.advance(milliseconds(4));
  EXPECT_EQ(q.length(), 0U);
  clock.advance(milliseconds(1));
  EXPECT_EQ(drain(q), (Keys{"ns/a"}));

  q.add_rate_limited("ns/a");
  EXPECT_EQ(q.num_requeues("ns/a"), 2);
  clock.advance(milliseconds(9));
  EXPECT_EQ(q.length(), 0U);
  clock.advance(milliseconds(1));
  EXPECT_EQ(drain(q), (Keys{"ns/a"}));

  q.forget("ns/a");
  EXPECT_EQ(q.num_requeues("ns/a"), 0);
  q.add_rate_limited("ns/a");
  clock.advance(milliseconds(5));
  EXPECT_EQ(drain(q), (Keys{"ns/a"}));
}

// The invariant that matters: with 4 workers taking keys as fast as they can, adders on other
// threads, and workers adding the key they hold, no key is ever held by two workers, and each
// key's last add is followed by a processing of it.
TEST(WorkQueueTest, FourWorkersNeverHoldOneKeyAtOnceAndNoAddIsLost) {
  constexpr int kKeys = 8;
  FakeClock clock;
  WorkQueue q(clock);
  std::array<std::atomic<int>, kKeys> holders{};
  std::array<std::atomic<int>, kKeys> generation{};  // bumped before every add
  std::array<std::atomic<int>, kKeys> processed{};   // latest generation seen by a worker
  std::atomic<bool> overlap{false};
  std::atomic<int> handed_out{0};
  auto key_of = [](int i) { return "ns/k" + std::to_string(i); };
  auto index_of = [](const std::string& key) { return std::stoi(key.substr(4)); };

  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&, w] {
      std::mt19937 rng(static_cast<unsigned>(w));
      while (auto key = q.get()) {
        const int i = index_of(*key);
        if (holders[static_cast<std::size_t>(i)].fetch_add(1) != 0) overlap = true;
        const int seen = generation[static_cast<std::size_t>(i)].load();
        auto& latest = processed[static_cast<std::size_t>(i)];
        int before = latest.load();
        while (before < seen && !latest.compare_exchange_weak(before, seen)) {
        }
        if (rng() % 4 == 0) q.add(*key);  // dirty while held
        std::this_thread::yield();
        holders[static_cast<std::size_t>(i)].fetch_sub(1);
        ++handed_out;
        q.done(*key);
      }
    });
  }
  std::vector<std::thread> adders;
  for (int a = 0; a < 2; ++a) {
    adders.emplace_back([&, a] {
      std::mt19937 rng(static_cast<unsigned>(100 + a));
      for (int n = 0; n < 20000; ++n) {
        const int i = static_cast<int>(rng() % kKeys);
        ++generation[static_cast<std::size_t>(i)];
        q.add(key_of(i));
      }
    });
  }
  for (auto& a : adders) a.join();
  EXPECT_TRUE(eventually([&] {
    for (std::size_t i = 0; i < kKeys; ++i) {
      if (processed[i].load() != generation[i].load()) return false;
    }
    return true;
  }));
  q.shutdown();
  for (auto& w : workers) w.join();
  EXPECT_FALSE(overlap);
  // Every key was handed out at least once. How many more times depends on scheduling: on a
  // loaded machine the adders can finish before any worker runs, and the queue rightly
  // coalesces 40,000 adds into one hand-out per key.
  EXPECT_GE(handed_out, kKeys);
}

TEST(RateLimiterTest, DefaultsAreClientGos) {
  const RateLimiterOptions defaults;
  EXPECT_EQ(defaults.base_delay, milliseconds(5));
  EXPECT_EQ(defaults.max_delay, seconds(1000));
  EXPECT_EQ(defaults.qps, 10.0);
  EXPECT_EQ(defaults.burst, 100);
}

struct BackoffCase {
  std::string name;
  RateLimiterOptions options;
  std::vector<Clock::Duration> delays;  // of successive failures of one key
  friend void PrintTo(const BackoffCase& c, std::ostream* os) { *os << c.name; }
};

class RateLimiterBackoffTest : public testing::TestWithParam<BackoffCase> {};

TEST_P(RateLimiterBackoffTest, DoublesPerFailureUpToTheCap) {
  FakeClock clock;
  RateLimiter limiter(clock, GetParam().options);
  for (std::size_t i = 0; i < GetParam().delays.size(); ++i) {
    EXPECT_EQ(limiter.when("ns/a"), GetParam().delays[i]) << "failure " << i + 1;
    EXPECT_EQ(limiter.num_requeues("ns/a"), static_cast<int>(i + 1));
  }
}

Clock::Duration ms(std::int64_t n) { return milliseconds(n); }

INSTANTIATE_TEST_SUITE_P(
    Table, RateLimiterBackoffTest,
    testing::Values(
        // 5 ms * 2^17 = 655.36 s is the last step below 1000 s; 2^18 would be 1310.72 s.
        BackoffCase{"client-go defaults",
                    {.qps = 0},
                    {ms(5), ms(10), ms(20), ms(40), ms(80), ms(160), ms(320), ms(640), ms(1280),
                     ms(2560), ms(5120), ms(10240), ms(20480), ms(40960), ms(81920), ms(163840),
                     ms(327680), ms(655360), seconds(1000), seconds(1000)}},
        BackoffCase{"base 1 s, cap 3 s",
                    {.base_delay = seconds(1), .max_delay = seconds(3), .qps = 0},
                    {seconds(1), seconds(2), seconds(3), seconds(3)}},
        BackoffCase{"cap below the base",
                    {.base_delay = seconds(2), .max_delay = seconds(1), .qps = 0},
                    {seconds(1), seconds(1)}},
        BackoffCase{"no per-key backoff",
                    {.base_delay = Clock::Duration::zero(), .qps = 0},
                    {ms(0), ms(0), ms(0)}}));

TEST(RateLimiterTest, ThousandsOfFailuresStayAtTheCap) {
  FakeClock clock;
  RateLimiter limiter(clock, {.qps = 0});
  for (int i = 0; i < 5000; ++i) {
    const Clock::Duration d = limiter.when("ns/a");
    ASSERT_GT(d, Clock::Duration::zero()) << i;
    ASSERT_LE(d, seconds(1000)) << i;
  }
  EXPECT_EQ(limiter.when("ns/a"), seconds(1000));
  EXPECT_EQ(limiter.num_requeues("ns/a"), 5001);
}

TEST(RateLimiterTest, ForgetStartsAKeyAgainAndKeysCountApart) {
  FakeClock clock;
  RateLimiter limiter(clock, {.qps = 0});
  EXPECT_EQ(limiter.when("ns/a"), ms(5));
  EXPECT_EQ(limiter.when("ns/a"), ms(10));
  EXPECT_EQ(limiter.when("ns/a"), ms(20));
  EXPECT_EQ(limiter.when("ns/b"), ms(5));
  EXPECT_EQ(limiter.num_requeues("ns/a"), 3);
  EXPECT_EQ(limiter.num_requeues("ns/b"), 1);
  limiter.forget("ns/a");
  EXPECT_EQ(limiter.num_requeues("ns/a"), 0);
  EXPECT_EQ(limiter.when("ns/a"), ms(5));
  EXPECT_EQ(limiter.when("ns/b"), ms(10));
  EXPECT_EQ(limiter.num_requeues("ns/never"), 0);
}

TEST(RateLimiterTest, TheBucketAllowsABurstThenOneTokenPerIntervalAndRefills) {
  FakeClock clock;
  RateLimiter limiter(clock, {.base_delay = Clock::Duration::zero(), .qps = 10, .burst = 3});
  EXPECT_EQ(limiter.when("ns/a"), ms(0));
  EXPECT_EQ(limiter.when("ns/b"), ms(0));
  EXPECT_EQ(limiter.when("ns/c"), ms(0));
  EXPECT_EQ(limiter.when("ns/d"), ms(100));  // reserved ahead: tokens go below zero
  EXPECT_EQ(limiter.when("ns/e"), ms(200));
  clock.advance(ms(250));                    // -2 + 2.5 tokens: half a token
  EXPECT_EQ(limiter.when("ns/f"), ms(50));
  EXPECT_EQ(limiter.when("ns/g"), ms(150));
  clock.advance(seconds(60));                // refills up to the burst, no further
  EXPECT_EQ(limiter.when("ns/a"), ms(0));
  EXPECT_EQ(limiter.when("ns/a"), ms(0));
  EXPECT_EQ(limiter.when("ns/a"), ms(0));
  EXPECT_EQ(limiter.when("ns/a"), ms(100));
}

TEST(RateLimiterTest, TheDelayIsTheLargerOfBackoffAndBucket) {
  FakeClock clock;
  RateLimiter limiter(clock, {});  // client-go's: 5 ms doubling, 10 qps, burst 100
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(limiter.when("ns/k" + std::to_string(i)), ms(5)) << i;  // the bucket allows
  }
  EXPECT_EQ(limiter.when("ns/k100"), ms(100));  // the bucket is empty: it is the larger
  clock.advance(seconds(20));
  for (int i = 0; i < 12; ++i) (void)limiter.when("ns/hot");  // 12 tokens, plenty left
  EXPECT_EQ(limiter.when("ns/hot"), ms(5 << 12));             // backoff is the larger
}

TEST(RateLimiterTest, ABurstBelowOneCountsAsOne) {
  FakeClock clock;
  RateLimiter limiter(clock, {.base_delay = Clock::Duration::zero(), .qps = 2, .burst = 0});
  EXPECT_EQ(limiter.when("ns/a"), ms(0));
  EXPECT_EQ(limiter.when("ns/b"), ms(500));
}

}  // namespace
}  // namespace cw::kube
