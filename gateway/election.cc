#include "gateway/election.h"

#include <algorithm>

namespace cw::gateway {

Result<void> validate(const Settings& s) {
  auto bad = [](const std::string& what) -> Result<void> { return Error(ErrorCode::kInvalidArgument, what); };
  if (s.heartbeat_interval.count() <= 0) return bad("the heartbeat interval must be positive");
  if (s.dead_after < 2 * s.heartbeat_interval) {
    return bad("dead-after must be at least two heartbeat intervals (one lost heartbeat is not a death)");
  }
  if (s.unhealthy_after.count() <= 0) return bad("unhealthy-after must be positive");
  if (s.score_grace.count() < 0) return bad("the score grace must not be negative");
  if (s.renew_interval.count() <= 0) return bad("the renew interval must be positive");
  if (s.lease_duration <= s.renew_interval) return bad("the lease duration must be longer than the renew interval");
  return {};
}

const char* to_string(Action action) {
  switch (action) {
    case Action::kNone: return "none";
    case Action::kAcquire: return "acquire";
    case Action::kRenew: return "renew";
    case Action::kTakeOver: return "take-over";
    case Action::kRelease: return "release";
  }
  return "?";
}

Election::Election(std::string self, Settings settings) : self_(std::move(self)), settings_(settings) {}

void Election::set_candidate(bool candidate) { candidate_ = candidate; }

void Election::set_score(int score, TimePoint now) {
  score_ = score;
  update_comparisons(now);
}

void Election::observe_lease(const std::optional<LeaseRecord>& lease, TimePoint now) {
  const bool changed = lease.has_value() != lease_.has_value() ||
                       (lease && (lease->version != lease_->version || lease->holder != lease_->holder));
  const std::string old_holder = holder();
  lease_ = lease;
  if (!listening_since_) listening_since_ = now;
  if (changed) lease_changed_at_ = now;
  if (holder() != old_holder) {
    holder_since_ = now;
    holder_worse_since_.reset();
    standby_better_since_.reset();
  }
  update_comparisons(now);
}

void Election::heard(const Heartbeat& heartbeat, TimePoint now) {
  if (heartbeat.node == self_ || heartbeat.node.empty()) return;
  peers_[heartbeat.node] = {heartbeat, now};
  update_comparisons(now);
}

void Election::wrote(TimePoint now) { last_write_ = now; }

const std::string& Election::holder() const {
  static const std::string none;
  return lease_ ? lease_->holder : none;
}

bool Election::active() const {
  if (!lease_ || lease_->holder != self_) return false;
  return std::none_of(peers_.begin(), peers_.end(), [&](const auto& p) {
    return p.second.last.active && p.second.last.epoch > lease_->transitions;
  });
}

Heartbeat Election::heartbeat() const { return {self_, active(), epoch(), score_}; }

void Election::update_comparisons(TimePoint now) {
  const std::string& h = holder();
  // The holder (another) scoring lower than us.
  auto it = h.empty() || h == self_ ? peers_.end() : peers_.find(h);
  if (it != peers_.end() && it->second.heard_at >= holder_since_ && it->second.last.score < score_) {
    if (!holder_worse_since_) holder_worse_since_ = now;
  } else {
    holder_worse_since_.reset();
  }
  // A live standby scoring higher than us, the holder.
  std::string best;
  int best_score = score_;
  if (h == self_) {
    for (const auto& [name, peer] : peers_) {
      if (alive(peer, now) && peer.last.score > best_score) {
        best = name;
        best_score = peer.last.score;
      }
    }
  }
  if (best.empty()) {
    standby_better_since_.reset();
    better_standby_.clear();
  } else if (!standby_better_since_ || best != better_standby_) {
    standby_better_since_ = now;
    better_standby_ = best;
  }
}

Decision Election::decide(TimePoint now) const {
  const std::string& h = holder();
  if (!candidate_) {
    if (h == self_) return {Action::kRelease, "this node is no longer a gateway candidate"};
    return {};
  }
  if (h == self_) {
    if (!active()) return {};  // another claims a newer epoch: the Lease is no longer ours
    if (settings_.health_trigger && standby_better_since_ && now - *standby_better_since_ >= settings_.unhealthy_after &&
        now - holder_since_ >= settings_.score_grace) {
      auto it = peers_.find(better_standby_);
      if (it != peers_.end() && alive(it->second, now)) {
        return {Action::kRelease, better_standby_ + " can forward to " + std::to_string(it->second.last.score) +
                                      " remote cluster(s), this node to " + std::to_string(score_)};
      }
    }
    if (now - last_write_ >= settings_.renew_interval) return {Action::kRenew, "renewing"};
    return {};
  }

  // Someone better that is alive gets a free Lease, or takes over from a dead holder, first.
  const bool better_alive = std::any_of(peers_.begin(), peers_.end(), [&](const auto& p) {
    return p.first != h && alive(p.second, now) && p.second.last.score > score_;
  });
  const bool free = !lease_ || h.empty() || now - lease_changed_at_ >= settings_.lease_duration;
  if (free) {
    if (better_alive || !listening_since_ || now - *listening_since_ < 2 * settings_.heartbeat_interval) return {};
    if (!lease_) return {Action::kAcquire, "no Lease exists yet"};
    if (h.empty()) return {Action::kAcquire, "the Lease is released"};
    return {Action::kAcquire, "the Lease of " + h + " was not renewed for " +
                                  std::to_string(settings_.lease_duration.count()) + " ms"};
  }
  if (!settings_.health_trigger) return {};
  // Silence counts only once the holder was heard since it became holder: a candidate that
  // cannot hear heartbeats at all falls back to the Lease's expiry instead of taking over
  // again and again.
  auto it = peers_.find(h);
  if (it != peers_.end() && it->second.heard_at >= holder_since_ && !alive(it->second, now) && !better_alive) {
    return {Action::kTakeOver, h + " has been silent for " +
                                   std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                      now - it->second.heard_at)
                                                      .count()) +
                                   " ms"};
  }
  if (holder_worse_since_ && now - *holder_worse_since_ >= settings_.unhealthy_after &&
      now - holder_since_ >= settings_.score_grace && score_ > 0 && it != peers_.end() && alive(it->second, now) &&
      !better_alive) {
    return {Action::kTakeOver, h + " can forward to " + std::to_string(it->second.last.score) +
                                   " remote cluster(s), this node to " + std::to_string(score_)};
  }
  return {};
}

TimePoint Election::next_check(TimePoint now) const {
  TimePoint next = now + settings_.heartbeat_interval;
  auto consider = [&](TimePoint t) {
    if (t > now && t < next) next = t;
  };
  const std::string& h = holder();
  if (h == self_) consider(last_write_ + settings_.renew_interval);
  if (lease_) consider(lease_changed_at_ + settings_.lease_duration);
  if (listening_since_) consider(*listening_since_ + 2 * settings_.heartbeat_interval);
  if (auto it = peers_.find(h); it != peers_.end()) consider(it->second.heard_at + settings_.dead_after);
  if (holder_worse_since_) consider(std::max(*holder_worse_since_ + settings_.unhealthy_after, holder_since_ + settings_.score_grace));
  if (standby_better_since_) {
    consider(std::max(*standby_better_since_ + settings_.unhealthy_after, holder_since_ + settings_.score_grace));
  }
  return next;
}

}  // namespace cw::gateway
