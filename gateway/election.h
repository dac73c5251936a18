// Which gateway candidate of a cluster is active (docs/gateway.md, "Election").
//
// A Lease in the local API decides: its holder is the active gateway, and the Lease's
// leaseTransitions is the holder's epoch. What this adds to plain Lease leader election is a
// health trigger. Candidates tell each other every `heartbeat_interval`, over the underlay,
// that they are alive, whether they hold the Lease, and their score: how many remote clusters
// they can forward to, as their own datapath probes see it. Then:
//
//   - a standby takes the Lease over at once (a write guarded by the Lease's resourceVersion)
//     when the holder has been silent for `dead_after`, or has scored lower than this standby
//     for `unhealthy_after`; it does not wait for the Lease to run out;
//   - the holder releases the Lease when a standby has scored higher for `unhealthy_after`:
//     it steps down when it cannot forward and another can;
//   - scores are compared only once the holder has held the Lease for `score_grace`: a new
//     holder's probes need a few seconds to be answered (no epoch is spent at start-up on
//     whichever candidate's probes came back first);
//   - a Lease nobody renewed for `lease_duration` (by this candidate's clock, counted from
//     when it last saw the Lease change, as client-go does) is free, and so is an empty one;
//     a free Lease goes to the candidate with the best score (ties: whoever writes first),
//     and not before this candidate has been listening for two heartbeat intervals, so that
//     it knows the others' scores;
//   - a node that is no longer a candidate (unlabelled) never acquires, and releases a Lease
//     it holds.
//
// Split brain: two candidates can both believe they are active for a moment (the old holder
// has not yet seen the takeover, or the two cannot hear each other). The epoch settles it
// everywhere: remote clusters follow the claim with the highest epoch (active_view.h), and a
// holder that hears another candidate claim a higher epoch stops claiming at once.
//
// This class is pure: the caller reads and writes the Lease and sends and receives the
// heartbeats, and feeds what happened in with the time it happened.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/base/result.h"

namespace cw::gateway {

using TimePoint = std::chrono::steady_clock::time_point;

struct Settings {
  std::chrono::milliseconds lease_duration{10000};
  std::chrono::milliseconds renew_interval{2000};
  std::chrono::milliseconds heartbeat_interval{100};
  std::chrono::milliseconds dead_after{400};        // a holder silent this long is taken over
  std::chrono::milliseconds unhealthy_after{1000};  // a lower score held this long is taken over
  std::chrono::milliseconds score_grace{3000};      // a new holder's scores count after this
  bool health_trigger = true;                       // false: the Lease alone (expiry), for comparison
};

// kInvalidArgument naming the bad setting.
Result<void> validate(const Settings& settings);

// The Lease as read from the API; nullopt when it does not exist.
struct LeaseRecord {
  std::string holder;             // spec.holderIdentity; "" when released
  std::int64_t transitions = 0;   // spec.leaseTransitions: the epoch
  std::string version;            // metadata.resourceVersion
};

// What a candidate tells the others (and remote clusters, through the tunnel).
struct Heartbeat {
  std::string node;
  bool active = false;       // holds the Lease, as it last saw it
  std::int64_t epoch = 0;    // the Lease's transitions it last saw
  int score = 0;             // remote clusters it can forward to
  friend bool operator==(const Heartbeat&, const Heartbeat&) = default;
};

enum class Action {
  kNone,
  kAcquire,   // the Lease is free (missing, empty or expired): take it, epoch + 1
  kRenew,     // ours: refresh renewTime
  kTakeOver,  // another holds it but is dead or cannot forward: take it, epoch + 1
  kRelease,   // ours, but we should not hold it: empty holderIdentity
};
const char* to_string(Action action);

struct Decision {
  Action action = Action::kNone;
  std::string reason;  // for the log, when action != kNone
};

class Election {
 public:
  Election(std::string self, Settings settings);

  // Whether this node may be active (labelled clusterwire.io/gateway=true and ready).
  void set_candidate(bool candidate);
  // How many remote clusters this node can forward to now.
  void set_score(int score, TimePoint now);
  // The Lease as read at `now` (from an informer or after a write).
  void observe_lease(const std::optional<LeaseRecord>& lease, TimePoint now);
  // A heartbeat from another candidate of this cluster.
  void heard(const Heartbeat& heartbeat, TimePoint now);
  // A write of ours (acquire, renew, take-over) succeeded at `now`.
  void wrote(TimePoint now);

  // What to do now. The caller performs it (a failed write is simply tried again on the
  // next call), then calls observe_lease with what it read back.
  Decision decide(TimePoint now) const;
  // When decide() could next return something else without new input.
  TimePoint next_check(TimePoint now) const;

  // True when this node holds the Lease as last seen and no candidate claims a higher epoch.
  bool active() const;
  std::int64_t epoch() const { return lease_ ? lease_->transitions : 0; }
  const std::string& holder() const;  // "" when none
  // The Lease as last observed: a write must be guarded by its version.
  const std::optional<LeaseRecord>& lease() const { return lease_; }
  Heartbeat heartbeat() const;

  struct PeerView {
    Heartbeat last;
    TimePoint heard_at;
  };
  const std::map<std::string, PeerView>& peers() const { return peers_; }

 private:
  bool alive(const PeerView& peer, TimePoint now) const { return now - peer.heard_at < settings_.dead_after; }
  void update_comparisons(TimePoint now);

  std::string self_;
  Settings settings_;
  bool candidate_ = false;
  int score_ = 0;
  std::optional<LeaseRecord> lease_;
  TimePoint lease_changed_at_{};
  std::optional<TimePoint> listening_since_;  // the first observe_lease
  TimePoint holder_since_{};  // when the current holder was first seen holding
  TimePoint last_write_{};
  std::map<std::string, PeerView> peers_;
  // Since when the holder (another) has scored lower than us, and since when some standby
  // has scored higher than us; nullopt while not so.
  std::optional<TimePoint> holder_worse_since_;
  std::optional<TimePoint> standby_better_since_;
  std::string better_standby_;
};

}  // namespace cw::gateway
