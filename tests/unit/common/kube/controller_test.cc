#include "common/kube/controller.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

namespace cw::kube {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Real time, only to bound a wait for the workers' threads: controller time is the FakeClock's.
bool eventually(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

// Long enough for an idle worker to notice a FakeClock advance (its waits poll every 2 ms):
// what has not happened by then was not going to.
void settle() { std::this_thread::sleep_for(milliseconds(6)); }

using Step = std::function<Result<ReconcileResult>()>;

Step fail(ErrorCode code) {
  return [code]() -> Result<ReconcileResult> { return Error(code, "scripted failure"); };
}
Step succeed(ReconcileResult r = {}) {
  return [r]() -> Result<ReconcileResult> { return r; };
}

// A controller whose reconciler plays a script of outcomes, one per call (then successes),
// and records when, on the FakeClock, each call came; the observer records every outcome.
class ControllerTest : public testing::Test {
 protected:
  void make(std::vector<Step> script, ControllerOptions options = {.name = "test"}) {
    script_ = std::move(script);
    options.on_reconciled = [this](const std::string& key, Clock::Duration took,
                                   const Result<ReconcileResult>& result) {
      std::lock_guard lock(mu_);
      observed_.push_back({key, took, result.ok() ? "ok" : result.error().message(),
                           result.ok() ? std::nullopt : std::optional(result.error().code())});
      ++finished_;
    };
    controller_ = std::make_unique<Controller>(
        std::move(options),
        [this](const std::string&) -> Result<ReconcileResult> {
          std::size_t n = 0;
          {
            std::lock_guard lock(mu_);
            n = calls_.size();
            calls_.push_back(clock_.now());
          }
          return n < script_.size() ? script_[n]() : ReconcileResult{};
        },
        clock_);
  }

  int calls() {
    std::lock_guard lock(mu_);
    return static_cast<int>(calls_.size());
  }
  // Time between successive calls of the reconciler.
  std::vector<Clock::Duration> gaps() {
    std::lock_guard lock(mu_);
    std::vector<Clock::Duration> out;
    for (std::size_t i = 1; i < calls_.size(); ++i) out.push_back(calls_[i] - calls_[i - 1]);
    return out;
  }
  // Waits for the n-th reconcile to be finished, its next step taken.
  void await_finished(int n) {
    ASSERT_TRUE(eventually([&] { return finished_.load() >= n; })) << "reconcile " << n;
  }

  struct Outcome {
    std::string key;
    Clock::Duration took;
    std::string message;
    std::optional<ErrorCode> code;
  };
  std::vector<Outcome> observed() {
    std::lock_guard lock(mu_);
    return observed_;
  }

  FakeClock clock_;
  std::mutex mu_;
  std::vector<Step> script_;
  std::vector<Clock::TimePoint> calls_;
  std::vector<Outcome> observed_;
  std::atomic<int> finished_{0};
  std::unique_ptr<Controller> controller_;  // last: stopped before what its threads use
};

TEST_F(ControllerTest, ErrorsAreRetriedWithBackoffUntilSuccess) {
  make({fail(ErrorCode::kUnavailable), fail(ErrorCode::kConflict), fail(ErrorCode::kUnavailable)});
  controller_->enqueue("ns/a");  // before start: it waits for the workers
  ASSERT_TRUE(controller_->start().ok());
  await_finished(1);
  EXPECT_EQ(controller_->queue().num_requeues("ns/a"), 1);

  clock_.advance(milliseconds(4));
  settle();
  EXPECT_EQ(calls(), 1);  // not before its 5 ms
  clock_.advance(milliseconds(1));
  await_finished(2);
  clock_.advance(milliseconds(10));
  await_finished(3);
  clock_.advance(milliseconds(20));
  await_finished(4);

  EXPECT_EQ(gaps(), (std::vector<Clock::Duration>{milliseconds(5), milliseconds(10),
                                                  milliseconds(20)}));
  EXPECT_EQ(controller_->queue().num_requeues("ns/a"), 0);  // success forgets
  clock_.advance(seconds(2000));
  settle();
  EXPECT_EQ(calls(), 4);
  const ControllerStats stats = controller_->stats();
  EXPECT_EQ(stats.reconciles, 4U);
  EXPECT_EQ(stats.errors, 3U);
  EXPECT_EQ(stats.terminal_errors, 0U);
  EXPECT_EQ(stats.exceptions, 0U);
}

struct ErrorCase {
  ErrorCode code;
  bool retried;
  friend void PrintTo(const ErrorCase& c, std::ostream* os) { *os << to_string(c.code); }
};

class ControllerErrorTest : public ControllerTest,
                            public testing::WithParamInterface<ErrorCase> {};

TEST_P(ControllerErrorTest, OnlyTerminalErrorsAreDropped) {
  make({fail(GetParam().code)});
  ASSERT_TRUE(controller_->start().ok());
  controller_->enqueue("ns/a");
  await_finished(1);
  EXPECT_EQ(is_terminal(Error(GetParam().code, "")), !GetParam().retried);
  EXPECT_EQ(controller_->queue().num_requeues("ns/a"), GetParam().retried ? 1 : 0);
  EXPECT_EQ(controller_->stats().terminal_errors, GetParam().retried ? 0U : 1U);
  EXPECT_EQ(controller_->stats().errors, 1U);
  clock_.advance(milliseconds(5));
  if (GetParam().retried) {
    await_finished(2);
  } else {
    clock_.advance(seconds(2000));
    settle();
    EXPECT_EQ(calls(), 1);
    EXPECT_EQ(controller_->queue().length(), 0U);
    controller_->enqueue("ns/a");  // dropped this time, not for good: a new event is heard
    await_finished(2);
  }
  EXPECT_EQ(observed()[0].code, GetParam().code);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ControllerErrorTest,
    testing::Values(ErrorCase{ErrorCode::kInvalidArgument, false},
                    ErrorCase{ErrorCode::kPermissionDenied, false},
                    ErrorCase{ErrorCode::kNotFound, true},
                    ErrorCase{ErrorCode::kAlreadyExists, true},
                    ErrorCase{ErrorCode::kConflict, true},
                    ErrorCase{ErrorCode::kExhausted, true},
                    ErrorCase{ErrorCode::kUnavailable, true},
                    ErrorCase{ErrorCode::kGone, true},
                    ErrorCase{ErrorCode::kInternal, true}));

TEST_F(ControllerTest, RequeueAfterIsHonouredAndForgetsFailures) {
  make({fail(ErrorCode::kUnavailable), succeed({.requeue_after = seconds(30)})});
  ASSERT_TRUE(controller_->start().ok());
  controller_->enqueue("ns/a");
  await_finished(1);
  clock_.advance(milliseconds(5));
  await_finished(2);
  EXPECT_EQ(controller_->queue().num_requeues("ns/a"), 0);

  clock_.advance(seconds(30) - milliseconds(1));
  settle();
  EXPECT_EQ(calls(), 2);
  clock_.advance(milliseconds(1));
  await_finished(3);
  EXPECT_EQ(gaps(), (std::vector<Clock::Duration>{milliseconds(5), seconds(30)}));
  EXPECT_EQ(controller_->stats().errors, 1U);
}

TEST_F(ControllerTest, RequeueIsRateLimitedAndRequeueAfterWinsOverIt) {
  make({succeed({.requeue = true}), succeed({.requeue = true}),
        succeed({.requeue = true, .requeue_after = seconds(1)})});
  ASSERT_TRUE(controller_->start().ok());
  controller_->enqueue("ns/a");
  await_finished(1);
  EXPECT_EQ(controller_->queue().num_requeues("ns/a"), 1);
  clock_.advance(milliseconds(5));
  await_finished(2);
  EXPECT_EQ(controller_->queue().num_requeues("ns/a"), 2);
  clock_.advance(milliseconds(10));
  await_finished(3);
  EXPECT_EQ(controller_->queue().num_requeues("ns/a"), 0);  // requeue_after forgets
  clock_.advance(seconds(1));
  await_finished(4);
  EXPECT_EQ(gaps(),
            (std::vector<Clock::Duration>{milliseconds(5), milliseconds(10), seconds(1)}));
  EXPECT_EQ(controller_->stats().errors, 0U);
}

TEST_F(ControllerTest, ARequeueAfterOfZeroIsAPlainSuccess) {
  make({succeed({.requeue_after = milliseconds(0)})});
  ASSERT_TRUE(controller_->start().ok());
  controller_->enqueue("ns/a");
  await_finished(1);
  clock_.advance(seconds(2000));
  settle();
  EXPECT_EQ(calls(), 1);
}

TEST_F(ControllerTest, AThrowingReconcilerIsAnErrorAndItsWorkerLivesOn) {
  make({[]() -> Result<ReconcileResult> { throw std::runtime_error("boom"); },
        []() -> Result<ReconcileResult> { throw 42; }},
       {.name = "bomb", .workers = 1});
  ASSERT_TRUE(controller_->start().ok());
  controller_->enqueue("ns/a");
  await_finished(1);
  clock_.advance(milliseconds(5));
  await_finished(2);
  clock_.advance(milliseconds(10));
  await_finished(3);
  controller_->enqueue("ns/b");  // the single worker is still there
  await_finished(4);

  const auto seen = observed();
  ASSERT_EQ(seen.size(), 4U);
  EXPECT_EQ(seen[0].code, ErrorCode::kInternal);
  EXPECT_EQ(seen[0].message, "controller \"bomb\": reconciling \"ns/a\" threw: boom");
  EXPECT_EQ(seen[1].code, ErrorCode::kInternal);
  EXPECT_EQ(seen[1].message, "controller \"bomb\": reconciling \"ns/a\" threw an exception "
                             "not derived from std::exception");
  EXPECT_EQ(seen[2].message, "ok");
  EXPECT_EQ(seen[3].key, "ns/b");
  EXPECT_EQ(gaps()[1], milliseconds(10));  // retried with backoff, like any error
  EXPECT_EQ(controller_->stats().exceptions, 2U);
  EXPECT_EQ(controller_->stats().errors, 2U);
}

TEST_F(ControllerTest, StatsShowKeysInFlightAndTheObserverTimesOnTheClock) {
  std::atomic<bool> release{false};
  make({[&]() -> Result<ReconcileResult> {
    clock_.advance(milliseconds(7));
    while (!release) std::this_thread::sleep_for(milliseconds(1));
    return ReconcileResult{};
  }});
  ASSERT_TRUE(controller_->start().ok());
  controller_->enqueue("ns/a");
  ASSERT_TRUE(eventually([&] { return !controller_->stats().in_flight.empty(); }));
  EXPECT_EQ(controller_->stats().in_flight, (std::vector<std::string>{"ns/a"}));
  release = true;
  await_finished(1);
  EXPECT_TRUE(controller_->stats().in_flight.empty());
  EXPECT_EQ(observed()[0].took, milliseconds(7));
  EXPECT_EQ(controller_->stats().reconciles, 1U);
}

TEST_F(ControllerTest, StopWaitsForRunningReconcilesAndDropsTheQueuedKeys) {
  std::atomic<bool> release{false};
  make({[&]() -> Result<ReconcileResult> {
         while (!release) std::this_thread::sleep_for(milliseconds(1));
         return ReconcileResult{};
       }},
       {.name = "test", .workers = 1});
  ASSERT_TRUE(controller_->start().ok());
  controller_->enqueue("ns/a");
  ASSERT_TRUE(eventually([&] { return calls() == 1; }));
  controller_->enqueue("ns/b");  // behind a, on the only worker

  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    controller_->stop();
    stopped = true;
  });
  settle();
  EXPECT_FALSE(stopped);  // a is still being reconciled
  release = true;
  stopper.join();
  EXPECT_EQ(calls(), 1);  // b was dropped
  EXPECT_EQ(finished_, 1);

  controller_->enqueue("ns/c");
  EXPECT_EQ(controller_->queue().length(), 0U);
  auto again = controller_->start();
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message(), "controller \"test\" was stopped and cannot start again");
  controller_->stop();  // idempotent
}

TEST_F(ControllerTest, StartRefusesBadOptionsAndASecondStart) {
  make({}, {.name = "idle", .workers = 0});
  auto none = controller_->start();
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(none.error().message(), "controller \"idle\": workers must be at least 1, not 0");

  FakeClock clock;
  Controller empty({.name = "empty"}, Reconciler(), clock);
  EXPECT_EQ(empty.start().error().message(), "controller \"empty\" has no reconciler");

  make({}, {.name = "twice", .workers = 2});
  ASSERT_TRUE(controller_->start().ok());
  auto second = controller_->start();
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().message(), "controller \"twice\" is already running");
}

// Four workers hammered with the same few keys from two threads: no key is ever reconciled on
// two workers at once, and every key's last enqueue is followed by a reconcile that saw it.
TEST_F(ControllerTest, FourWorkersNeverReconcileOneKeyAtOnce) {
  constexpr std::size_t kKeys = 5;
  std::array<std::atomic<int>, kKeys> running{};
  std::array<std::atomic<int>, kKeys> generation{};  // bumped before every enqueue
  std::array<std::atomic<int>, kKeys> reconciled{};  // latest generation a reconcile saw
  std::atomic<bool> overlap{false};
  std::atomic<int> most_at_once{0};
  std::atomic<int> at_once{0};
  FakeClock clock;
  Controller controller(
      {.name = "hammer", .workers = 4},
      [&](const std::string& key) -> Result<ReconcileResult> {
        const auto i = static_cast<std::size_t>(std::stoi(key.substr(4)));
        if (running[i].fetch_add(1) != 0) overlap = true;
        const int now = ++at_once;
        int most = most_at_once.load();
        while (most < now && !most_at_once.compare_exchange_weak(most, now)) {
        }
        const int seen = generation[i].load();
        int before = reconciled[i].load();
        while (before < seen && !reconciled[i].compare_exchange_weak(before, seen)) {
        }
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        --at_once;
        running[i].fetch_sub(1);
        return ReconcileResult{};
      },
      clock);
  ASSERT_TRUE(controller.start().ok());
  std::vector<std::thread> enqueuers;
  for (int t = 0; t < 2; ++t) {
    enqueuers.emplace_back([&, t] {
      for (int n = 0; n < 3000; ++n) {
        const auto i = static_cast<std::size_t>((n * 7 + t) % static_cast<int>(kKeys));
        ++generation[i];
        controller.enqueue("ns/k" + std::to_string(i));
      }
    });
  }
  for (auto& t : enqueuers) t.join();
  EXPECT_TRUE(eventually([&] {
    for (std::size_t i = 0; i < kKeys; ++i) {
      if (reconciled[i].load() != generation[i].load()) return false;
    }
    return true;
  }));
  controller.stop();
  EXPECT_FALSE(overlap);
  EXPECT_LE(most_at_once, 4);
  EXPECT_GE(controller.stats().reconciles, kKeys);
  EXPECT_EQ(controller.stats().errors, 0U);
}

}  // namespace
}  // namespace cw::kube
