// Time as a dependency. Code that waits, expires or backs off takes a Clock&, so tests run it
// on a FakeClock and never sleep for real.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace cw {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;

  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
  // Blocks on `cv` (with `lock` held on entry and exit) until `deadline` on this clock, or a
  // notification. Spurious wake-ups are allowed: callers re-check their condition.
  virtual void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                          TimePoint deadline) const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::now();
  }
  void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                  TimePoint deadline) const override {
    cv.wait_until(lock, deadline);
  }
};

// A clock that moves only when told. Waiters are woken on every advance(), and also poll
// every few milliseconds of real time, so that a waiter registered on any condition variable
// notices an advance without the clock having to know it.
class FakeClock final : public Clock {
 public:
  TimePoint now() const override {
    std::lock_guard lock(mu_);
    return now_;
  }
  std::chrono::system_clock::time_point wall_now() const override {
    std::lock_guard lock(mu_);
    return wall_ + (now_ - TimePoint());
  }
  void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                  TimePoint deadline) const override {
    if (now() >= deadline) return;
    cv.wait_for(lock, std::chrono::milliseconds(2));
  }
  void advance(Duration d) {
    std::lock_guard lock(mu_);
    now_ += d;
  }

 private:
  mutable std::mutex mu_;
  TimePoint now_{std::chrono::hours(1)};
  std::chrono::system_clock::time_point wall_{std::chrono::seconds(1'800'000'000)};
};

}  // namespace cw
