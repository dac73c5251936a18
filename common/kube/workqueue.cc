#include "common/kube/workqueue.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace cw::kube {
namespace {

// How long get() sleeps when no key is due at all: it is woken by the add that ends the wait,
// so this only bounds a wait on a clock that does not poll.
constexpr auto kIdleWait = std::chrono::hours(1);

// now + delay, saturating instead of overflowing for absurd delays.
Clock::TimePoint after(Clock::TimePoint now, Clock::Duration delay) {
  if (delay > Clock::TimePoint::max() - now) return Clock::TimePoint::max();
  return now + delay;
}

}  // namespace

RateLimiter::RateLimiter(const Clock& clock, RateLimiterOptions options)
    : clock_(clock),
      options_(options),
      tokens_(static_cast<double>(std::max(options.burst, 1))),
      refilled_at_(clock.now()) {
  options_.burst = std::max(options_.burst, 1);
}

Clock::Duration RateLimiter::when(const std::string& key) {
  int& failures = failures_[key];
  const Clock::Duration own = backoff(failures);
  if (failures < std::numeric_limits<int>::max()) ++failures;
  return std::max(own, take_token());
}

void RateLimiter::forget(const std::string& key) { failures_.erase(key); }

int RateLimiter::num_requeues(const std::string& key) const {
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

Clock::Duration RateLimiter::backoff(int failures) const {
  if (options_.base_delay <= Clock::Duration::zero()) return Clock::Duration::zero();
  // In floating point, as client-go does, so 2^failures cannot overflow: past the cap (or
  // past what a Duration holds) it is simply the cap.
  const double delay =
      static_cast<double>(options_.base_delay.count()) * std::exp2(static_cast<double>(failures));
  if (delay >= static_cast<double>(options_.max_delay.count())) return options_.max_delay;
  return Clock::Duration(static_cast<Clock::Duration::rep>(delay));
}

// golang.org/x/time/rate's Reserve().Delay(): the token is taken now even if the bucket is
// empty, and the caller waits until the refill would have produced it.
Clock::Duration RateLimiter::take_token() {
  if (options_.qps <= 0) return Clock::Duration::zero();
  const Clock::TimePoint now = clock_.now();
  if (now > refilled_at_) {
    const double elapsed = std::chrono::duration<double>(now - refilled_at_).count();
    tokens_ = std::min(static_cast<double>(options_.burst), tokens_ + elapsed * options_.qps);
    refilled_at_ = now;
  }
  tokens_ -= 1;
  if (tokens_ >= 0) return Clock::Duration::zero();
  const std::chrono::duration<double> wait(-tokens_ / options_.qps);
  return std::chrono::round<Clock::Duration>(wait);
}

WorkQueue::WorkQueue(const Clock& clock, RateLimiterOptions rate_limiter)
    : clock_(clock), limiter_(clock, rate_limiter) {}

void WorkQueue::add(const std::string& key) {
  std::lock_guard lock(mu_);
  if (shutting_down_) return;
  promote_due_locked();
  add_locked(key);
}

void WorkQueue::add_after(const std::string& key, Clock::Duration delay) {
  std::lock_guard lock(mu_);
  if (shutting_down_) return;
  promote_due_locked();
  add_after_locked(key, delay);
}

void WorkQueue::add_rate_limited(const std::string& key) {
  std::lock_guard lock(mu_);
  if (shutting_down_) return;
  promote_due_locked();
  add_after_locked(key, limiter_.when(key));
}

void WorkQueue::forget(const std::string& key) {
  std::lock_guard lock(mu_);
  limiter_.forget(key);
}

int WorkQueue::num_requeues(const std::string& key) const {
  std::lock_guard lock(mu_);
  return limiter_.num_requeues(key);
}

std::optional<std::string> WorkQueue::get() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (shutting_down_) return std::nullopt;
    promote_due_locked();
    if (!queue_.empty()) break;
    const Clock::TimePoint deadline =
        waiting_.empty() ? after(clock_.now(), kIdleWait) : waiting_.begin()->first.first;
    clock_.wait_until(ready_, lock, deadline);
  }
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  dirty_.erase(key);
  processing_.insert(key);
  return key;
}

void WorkQueue::done(const std::string& key) {
  std::lock_guard lock(mu_);
  if (processing_.erase(key) == 0 || shutting_down_) return;
  if (dirty_.count(key) != 0) {
    queue_.push_back(key);
    ready_.notify_one();
  }
}

void WorkQueue::shutdown() {
  std::lock_guard lock(mu_);
  shutting_down_ = true;
  queue_.clear();
  dirty_.clear();
  waiting_.clear();
  waiting_slot_.clear();
  ready_.notify_all();
}

bool WorkQueue::shutting_down() const {
  std::lock_guard lock(mu_);
  return shutting_down_;
}

std::size_t WorkQueue::length() {
  std::lock_guard lock(mu_);
  promote_due_locked();
  return queue_.size();
}

void WorkQueue::add_locked(const std::string& key) {
  if (!dirty_.insert(key).second) return;  // already queued, or already due again after done()
  if (processing_.count(key) != 0) return;  // done() queues it
  queue_.push_back(key);
  ready_.notify_one();
}

void WorkQueue::add_after_locked(const std::string& key, Clock::Duration delay) {
  if (delay <= Clock::Duration::zero()) {
    add_locked(key);
    return;
  }
  const WaitSlot slot{after(clock_.now(), delay), next_sequence_++};
  auto [it, inserted] = waiting_slot_.try_emplace(key, slot);
  if (!inserted) {
    if (slot.first >= it->second.first) return;  // the earlier time wins
    waiting_.erase(it->second);
    it->second = slot;
  }
  waiting_.emplace(slot, key);
  // Every getter re-reads its deadline: this key may be due before the one it sleeps for.
  ready_.notify_all();
}

// Keys become ready lazily, at the start of every operation, rather than on a timer thread:
// since every add promotes first, a key that came due before an add still queues ahead of it,
// in the order of the ready times, as client-go's waiting loop would have queued it.
void WorkQueue::promote_due_locked() {
  if (waiting_.empty()) return;
  const Clock::TimePoint now = clock_.now();
  while (!waiting_.empty() && waiting_.begin()->first.first <= now) {
    auto node = waiting_.extract(waiting_.begin());
    waiting_slot_.erase(node.mapped());
    add_locked(node.mapped());
  }
}

}  // namespace cw::kube
