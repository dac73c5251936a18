// The work queue between watch events and reconcilers: object keys ("namespace/name") in,
// one worker per key at a time out, with delayed and rate-limited re-adds for retries.
//
// It follows client-go's util/workqueue (queue.go, delaying_queue.go, rate_limiting_queue.go,
// default_rate_limiters.go), because controllers written against that model rely on its
// guarantees:
//   - a key waiting in the queue is held once, however often it is added;
//   - a key handed out by get() is not handed out again until done(); an add() meanwhile marks
//     it dirty, and done() queues it again, so the change that came in during processing is
//     not lost and one key is never processed twice at the same time;
//   - keys come out in the order they became ready.
// One deliberate difference: shutdown() drops the keys still queued, and get() returns
// nullopt at once, where client-go's Get goes on handing out queued keys until the queue is
// empty. Our reconcilers have no cancellation context, so draining could run a long backlog
// of full reconciles on the way out; a level-triggered controller lists everything again when
// it restarts, so nothing is lost by dropping them.
//
// All time is the injected Clock's: delays pass when the clock says so, and get() waits with
// Clock::wait_until, so tests on a FakeClock do not sleep.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "common/base/clock.h"

namespace cw::kube {

// client-go's DefaultControllerRateLimiter, with the numbers as settings. Every value is
// accepted and has a defined meaning, so a queue can be built from any options.
struct RateLimiterOptions {
  // Per key: base_delay * 2^(failures so far), never more than max_delay (client-go's
  // ItemExponentialFailureRateLimiter: 5 ms, 1000 s). base_delay <= 0: no per-key backoff.
  Clock::Duration base_delay = std::chrono::milliseconds(5);
  Clock::Duration max_delay = std::chrono::seconds(1000);
  // Over all keys: a token bucket refilled at `qps` tokens a second, holding at most `burst`
  // (client-go's BucketRateLimiter: 10 qps, burst 100). qps <= 0: no overall limit.
  // burst < 1 counts as 1.
  double qps = 10;
  int burst = 100;
};

// How long a failed key waits before its next try: the larger of its own exponential backoff
// and the delay the shared token bucket imposes. Each when() counts a failure of the key and
// takes a token, as client-go's MaxOfRateLimiter does.
// Not thread-safe: WorkQueue calls it under its own lock. `clock` must outlive it.
class RateLimiter {
 public:
  RateLimiter(const Clock& clock, RateLimiterOptions options);

  Clock::Duration when(const std::string& key);
  // Clears the key's failures: its next when() is base_delay again. The bucket is shared, so
  // it is not refunded.
  void forget(const std::string& key);
  // Failures counted since the last forget().
  int num_requeues(const std::string& key) const;

 private:
  Clock::Duration backoff(int failures) const;
  Clock::Duration take_token();

  const Clock& clock_;
  RateLimiterOptions options_;
  std::unordered_map<std::string, int> failures_;
  double tokens_;  // may go below zero: reservations made ahead of the refill
  Clock::TimePoint refilled_at_;
};

// Thread-safe: any number of threads may add, and any number may get()/done() as workers.
// `clock` must outlive the queue.
class WorkQueue {
 public:
  explicit WorkQueue(const Clock& clock, RateLimiterOptions rate_limiter = {});
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Makes `key` ready now (see the de-duplication rules above). A pending add_after() of the
  // same key is left in place and still fires, as in client-go: whoever asked for the later
  // look had a reason the add does not know about, and an extra reconcile is harmless.
  void add(const std::string& key);
  // Adds `key` once `delay` has passed on the clock. If it is already waiting, the earlier of
  // the two times wins: a shorter delay moves it forward, a longer one changes nothing.
  // delay <= 0 is add().
  void add_after(const std::string& key, Clock::Duration delay);
  // add_after() with the rate limiter's delay for `key`; counts a failure of the key.
  void add_rate_limited(const std::string& key);
  // Stops counting failures of `key` (call it when the key was processed successfully). It
  // does not remove the key from the queue.
  void forget(const std::string& key);
  int num_requeues(const std::string& key) const;

  // Blocks until a key is ready, and hands it to the caller, who must call done(key) when
  // finished with it. nullopt once the queue is shut down (at once, even if keys were queued).
  std::optional<std::string> get();
  // Ends the processing of a key from get(); queues it again if it was added meanwhile.
  // A key that is not being processed is ignored.
  void done(const std::string& key);

  // Wakes every get() with nullopt; later adds are ignored; queued and delayed keys are
  // dropped. Keys being processed may still be done(). Idempotent.
  void shutdown();
  bool shutting_down() const;

  // Keys ready to be handed out (not those waiting for a delay, nor those being processed).
  // Not const: it first moves keys whose delay has passed into the queue.
  std::size_t length();

 private:
  void add_locked(const std::string& key);
  void add_after_locked(const std::string& key, Clock::Duration delay);
  void promote_due_locked();

  const Clock& clock_;
  mutable std::mutex mu_;
  std::condition_variable ready_;  // a key was queued, a delay changed, or shutdown
  RateLimiter limiter_;
  bool shutting_down_ = false;

  std::deque<std::string> queue_;              // ready keys in order; each is in dirty_
  std::unordered_set<std::string> dirty_;      // keys that need processing
  std::unordered_set<std::string> processing_; // keys handed out and not yet done()

  // Keys waiting for a delay, by ready time; the sequence number keeps equal times in the
  // order they were asked for.
  using WaitSlot = std::pair<Clock::TimePoint, std::uint64_t>;
  std::map<WaitSlot, std::string> waiting_;
  std::unordered_map<std::string, WaitSlot> waiting_slot_;
  std::uint64_t next_sequence_ = 0;
};

}  // namespace cw::kube
