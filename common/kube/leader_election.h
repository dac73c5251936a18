// Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules, so that at most
// one replica of a component acts at a time:
//
// - a candidate takes the Lease when nobody holds it, or when the holder's record has not
//   changed for lease_duration *as observed on the candidate's own clock* (no comparison of
//   clocks across machines);
// - the leader renews every retry_period; if no renewal has succeeded for renew_deadline it
//   stops leading at once (renew_deadline < lease_duration, so it steps down before anyone
//   may take over);
// - every write is a compare-and-swap on the Lease's resourceVersion.
//
// Callbacks run on the elector's thread; on_started_leading must return promptly (start
// the work on other threads).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/base/clock.h"
#include "common/kube/client.h"

namespace cw::kube {

// A Kubernetes MicroTime (a Lease's renewTime): RFC 3339 with microseconds, UTC.
std::string micro_time(std::chrono::system_clock::time_point t);


struct LeaderElectionConfig {
  std::string lease_namespace;
  std::string lease_name;
  std::string identity;  // unique per candidate: pod name, or host + pid
  std::chrono::milliseconds lease_duration{std::chrono::seconds(15)};
  std::chrono::milliseconds renew_deadline{std::chrono::seconds(10)};
  std::chrono::milliseconds retry_period{std::chrono::seconds(2)};
  std::function<void()> on_started_leading;
  std::function<void()> on_stopped_leading;
  std::function<void(const std::string& holder)> on_new_leader;  // any change of holder
};

// kInvalidArgument unless retry_period < renew_deadline < lease_duration, and names are set.
Result<void> validate(const LeaderElectionConfig& config);

class LeaderElector {
 public:
  LeaderElector(Client& client, LeaderElectionConfig config, Clock& clock);
  ~LeaderElector();  // stop(true)
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  void start();
  // Stops campaigning. A leader steps down; with `release`, it also clears the Lease so that
  // another candidate takes over at once instead of after lease_duration.
  void stop(bool release = true);

  bool is_leader() const { return leading_.load(); }
  std::string holder() const;  // the last holder observed ("" if none)

 private:
  void run();
  bool try_acquire_or_renew();
  void release();
  void sleep_for(std::chrono::milliseconds d);
  void set_leading(bool leading);
  void note_holder(const std::string& holder);

  Client& client_;
  LeaderElectionConfig config_;
  Clock& clock_;
  std::atomic<bool> leading_{false};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::string observed_record_;  // the holder fields last seen, to notice changes
  Clock::TimePoint observed_at_{};
  std::string holder_;
  std::thread thread_;
};

}  // namespace cw::kube
