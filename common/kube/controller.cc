#include "common/kube/controller.h"

#include <exception>
#include <system_error>
#include <utility>

namespace cw::kube {

bool is_terminal(const Error& error) {
  return error.code() == ErrorCode::kInvalidArgument ||
         error.code() == ErrorCode::kPermissionDenied;
}

Controller::Controller(ControllerOptions options, Reconciler reconciler, const Clock& clock)
    : options_(std::move(options)),
      reconciler_(std::move(reconciler)),
      clock_(clock),
      queue_(clock, options_.rate_limiter) {}

Controller::~Controller() { stop(); }

void Controller::enqueue(const std::string& key) { queue_.add(key); }

Result<void> Controller::start() {
  const std::string who = "controller \"" + options_.name + "\"";
  std::lock_guard lock(lifecycle_mu_);
  if (state_ == State::kRunning) {
    return Error(ErrorCode::kInvalidArgument, who + " is already running");
  }
  if (state_ == State::kStopped) {
    return Error(ErrorCode::kInvalidArgument, who + " was stopped and cannot start again");
  }
  if (options_.workers < 1) {
    return Error(ErrorCode::kInvalidArgument,
                 who + ": workers must be at least 1, not " + std::to_string(options_.workers));
  }
  if (!reconciler_) return Error(ErrorCode::kInvalidArgument, who + " has no reconciler");

  state_ = State::kRunning;
  try {
    for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { run_worker(); });
  } catch (const std::system_error& e) {
    const std::string which = std::to_string(workers_.size() + 1);
    queue_.shutdown();
    for (auto& worker : workers_) worker.join();
    workers_.clear();
    state_ = State::kStopped;
    return Error(ErrorCode::kExhausted, who + ": starting worker " + which + ": " + e.what());
  }
  return ok_result();
}

void Controller::stop() {
  if (on_worker_thread()) {
    die_on_misuse("Controller::stop() from its own worker",
                  "controller \"" + options_.name + "\" would wait for itself");
  }
  std::lock_guard lock(lifecycle_mu_);
  queue_.shutdown();
  for (auto& worker : workers_) worker.join();
  workers_.clear();
  state_ = State::kStopped;
}

ControllerStats Controller::stats() const {
  std::lock_guard lock(stats_mu_);
  ControllerStats stats = counts_;
  stats.in_flight.assign(in_flight_.begin(), in_flight_.end());
  return stats;
}

void Controller::run_worker() {
  {
    std::lock_guard lock(stats_mu_);
    worker_ids_.insert(std::this_thread::get_id());
  }
  while (std::optional<std::string> key = queue_.get()) {
    process(*key);
    queue_.done(*key);
  }
  // Thread ids are reused once a thread ends: an id left behind could name a stranger.
  std::lock_guard lock(stats_mu_);
  worker_ids_.erase(std::this_thread::get_id());
}

void Controller::process(const std::string& key) {
  {
    std::lock_guard lock(stats_mu_);
    in_flight_.insert(key);
  }
  const Clock::TimePoint started = clock_.now();
  bool threw = false;
  const Result<ReconcileResult> result = call_reconciler(key, threw);
  const Clock::Duration took = clock_.now() - started;

  // The queue steps of controller-runtime's reconcileHandler, in its order.
  bool terminal = false;
  if (!result.ok()) {
    terminal = is_terminal(result.error());
    if (terminal) {
      queue_.forget(key);
    } else {
      queue_.add_rate_limited(key);
    }
  } else if (result->requeue_after && *result->requeue_after > std::chrono::milliseconds::zero()) {
    queue_.forget(key);
    queue_.add_after(key, *result->requeue_after);
  } else if (result->requeue) {
    queue_.add_rate_limited(key);
  } else {
    queue_.forget(key);
  }

  {
    std::lock_guard lock(stats_mu_);
    in_flight_.erase(key);
    ++counts_.reconciles;
    if (!result.ok()) ++counts_.errors;
    if (terminal) ++counts_.terminal_errors;
    if (threw) ++counts_.exceptions;
  }

  if (options_.on_reconciled) {
    try {
      options_.on_reconciled(key, took, result);
    } catch (const std::exception& e) {
      die_on_misuse("on_reconciled threw", e.what());
    } catch (...) {
      die_on_misuse("on_reconciled threw", "an exception not derived from std::exception");
    }
  }
}

Result<ReconcileResult> Controller::call_reconciler(const std::string& key, bool& threw) {
  try {
    return reconciler_(key);
  } catch (const std::exception& e) {
    threw = true;
    return Error(ErrorCode::kInternal, "controller \"" + options_.name + "\": reconciling \"" +
                                           key + "\" threw: " + e.what());
  } catch (...) {
    threw = true;
    return Error(ErrorCode::kInternal,
                 "controller \"" + options_.name + "\": reconciling \"" + key +
                     "\" threw an exception not derived from std::exception");
  }
}

bool Controller::on_worker_thread() const {
  std::lock_guard lock(stats_mu_);
  return worker_ids_.count(std::this_thread::get_id()) != 0;
}

}  // namespace cw::kube
