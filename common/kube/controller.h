// The reconcile loop: workers take keys from a WorkQueue and call a Reconciler on each, then
// decide from the outcome whether, and when, the key comes back. It follows controller-runtime
// (pkg/internal/controller/controller.go, reconcileHandler), in this order:
//   - an error that retrying cannot fix (is_terminal) is dropped: forget, no retry;
//   - any other error: add_rate_limited, so the key is retried with backoff;
//   - success with requeue_after > 0: forget, then add_after(requeue_after) (it wins over
//     requeue, as in controller-runtime);
//   - success with requeue: add_rate_limited;
//   - plain success: forget.
// A reconciler that throws is an error (kInternal, retried), never the end of its worker:
// exceptions do not cross this boundary.
//
// Reconcilers are level-triggered: a key says which object to look at, not what changed, so
// a key processed once after several adds has seen them all. An object that no longer exists
// is the reconciler's to handle (usually a success), not an error.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "common/base/clock.h"
#include "common/base/result.h"
#include "common/kube/workqueue.h"

namespace cw::kube {

struct ReconcileResult {
  bool requeue = false;  // look again, rate-limited as a failure would be
  std::optional<std::chrono::milliseconds> requeue_after;  // look again then; <= 0: not set
};

// Called with a key from the queue, on a worker thread; never with the same key on two
// threads at once.
using Reconciler = std::function<Result<ReconcileResult>(const std::string& key)>;

// After every reconcile: the key, how long the reconciler took on the controller's clock, and
// what it returned (an exception appears as its kInternal error). Called on the worker
// thread, after the key's next step is decided and before the key is released, so calls for
// one key never overlap and arrive in order. It must not throw: a metrics hook that does is a
// bug, and aborts the program with its message.
using ReconcileObserver = std::function<void(const std::string& key, Clock::Duration took,
                                             const Result<ReconcileResult>& result)>;

struct ControllerOptions {
  std::string name;  // in error messages
  int workers = 1;   // at least 1
  RateLimiterOptions rate_limiter;
  ReconcileObserver on_reconciled;  // optional
};

// Errors that retrying the same key cannot fix, so the controller drops them instead of
// retrying forever: kInvalidArgument (the object itself is wrong) and kPermissionDenied (our
// credentials are not allowed; fixing RBAC does not change the key, and the fix or the next
// change of the object enqueues it again). The controller does not log: it reports the drop
// through on_reconciled and ControllerStats::terminal_errors, and the caller logs.
bool is_terminal(const Error& error);

struct ControllerStats {
  std::uint64_t reconciles = 0;       // reconciler calls finished, whatever the outcome
  std::uint64_t errors = 0;           // of those, the ones that failed (all kinds below too)
  std::uint64_t terminal_errors = 0;  // failed with is_terminal(): dropped, not retried
  std::uint64_t exceptions = 0;       // the reconciler threw
  std::vector<std::string> in_flight; // keys whose reconciler is running now, sorted
};

// Thread-safe: enqueue(), stats() and queue() from any thread; start() and stop() may race
// each other safely. `clock` must outlive the controller.
class Controller {
 public:
  Controller(ControllerOptions options, Reconciler reconciler, const Clock& clock);
  ~Controller();  // stop()
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Keys may be enqueued before start(); they wait for the workers. Ignored after stop().
  void enqueue(const std::string& key);

  // Starts options.workers threads. kInvalidArgument for workers < 1, a missing reconciler,
  // or a controller already started or stopped (a stopped one cannot start again: make a new
  // one); kExhausted if a thread cannot be created, and then the controller is stopped.
  Result<void> start();
  // Shuts the queue down (queued and delayed keys are dropped), lets running reconciles
  // finish, and joins the workers. Idempotent. Calling it from a reconciler or the observer
  // would wait for itself, so that aborts.
  void stop();

  WorkQueue& queue() { return queue_; }
  const std::string& name() const { return options_.name; }
  ControllerStats stats() const;

 private:
  enum class State { kNew, kRunning, kStopped };

  void run_worker();
  void process(const std::string& key);
  Result<ReconcileResult> call_reconciler(const std::string& key, bool& threw);
  bool on_worker_thread() const;

  ControllerOptions options_;
  Reconciler reconciler_;
  const Clock& clock_;
  WorkQueue queue_;

  std::mutex lifecycle_mu_;  // held through start() and stop(), joins included
  State state_ = State::kNew;
  std::vector<std::thread> workers_;

  mutable std::mutex stats_mu_;
  ControllerStats counts_;  // in_flight is filled from in_flight_ on the way out
  std::set<std::string> in_flight_;
  std::unordered_set<std::thread::id> worker_ids_;  // registered by each worker as it starts
};

}  // namespace cw::kube
