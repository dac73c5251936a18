#include "common/kube/leader_election.h"

#include <ctime>

namespace cw::kube {

std::string micro_time(std::chrono::system_clock::time_point t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%s.%06lldZ", buf, static_cast<long long>(us % 1000000));
  return out;
}

namespace {

using std::chrono::milliseconds;

// The part of a Lease's spec whose change means the holder is alive.
std::string record_of(const json& lease) {
  const json spec = lease.value("spec", json::object());
  return spec.value("holderIdentity", "") + "|" + spec.value("renewTime", "") + "|" +
         std::to_string(spec.value("leaseTransitions", 0));
}

}  // namespace

Result<void> validate(const LeaderElectionConfig& c) {
  if (c.lease_namespace.empty() || c.lease_name.empty() || c.identity.empty()) {
    return Error(ErrorCode::kInvalidArgument, "leader election needs a lease namespace, name and identity");
  }
  if (!(c.retry_period < c.renew_deadline && c.renew_deadline < c.lease_duration)) {
    return Error(ErrorCode::kInvalidArgument,
                 "leader election needs retry period < renew deadline < lease duration");
  }
  return ok_result();
}

LeaderElector::LeaderElector(Client& client, LeaderElectionConfig config, Clock& clock)
    : client_(client), config_(std::move(config)), clock_(clock) {}

LeaderElector::~LeaderElector() { stop(true); }

void LeaderElector::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void LeaderElector::stop(bool release_lease) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (leading_) {
    if (release_lease) release();
    set_leading(false);
  }
}

std::string LeaderElector::holder() const {
  std::lock_guard lock(mu_);
  return holder_;
}

void LeaderElector::sleep_for(milliseconds d) {
  std::unique_lock lock(mu_);
  const auto deadline = clock_.now() + d;
  while (!stopping_ && clock_.now() < deadline) clock_.wait_until(cv_, lock, deadline);
}

void LeaderElector::set_leading(bool leading) {
  if (leading_.exchange(leading) == leading) return;
  if (leading && config_.on_started_leading) config_.on_started_leading();
  if (!leading && config_.on_stopped_leading) config_.on_stopped_leading();
}

void LeaderElector::run() {
  Clock::TimePoint last_renewal{};
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    const bool ok = try_acquire_or_renew();
    const auto now = clock_.now();
    if (ok) {
      last_renewal = now;
      set_leading(true);
    } else if (leading_ && now - last_renewal >= config_.renew_deadline) {
      set_leading(false);  // could not renew in time: someone else may take over soon
    }
    sleep_for(config_.retry_period);
  }
}

bool LeaderElector::try_acquire_or_renew() {
  const auto& leases = resources::kLeases;
  const auto now_wall = micro_time(clock_.wall_now());
  const int duration_s = static_cast<int>(
      std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(config_.lease_duration).count()));
  auto current = client_.get(leases, config_.lease_namespace, config_.lease_name);
  if (!current) {
    if (current.error().code() != ErrorCode::kNotFound) return false;
    json lease{{"apiVersion", "coordination.k8s.io/v1"},
               {"kind", "Lease"},
               {"metadata", {{"name", config_.lease_name}, {"namespace", config_.lease_namespace}}},
               {"spec",
                {{"holderIdentity", config_.identity},
                 {"leaseDurationSeconds", duration_s},
                 {"acquireTime", now_wall},
                 {"renewTime", now_wall},
                 {"leaseTransitions", 0}}}};
    auto created = client_.create(leases, config_.lease_namespace, lease);
    if (!created) return false;  // someone else created it first
    {
      std::lock_guard lock(mu_);
      observed_record_ = record_of(*created);
      observed_at_ = clock_.now();
    }
    note_holder(config_.identity);
    return true;
  }

  json lease = *current;
  const json spec = lease.value("spec", json::object());
  const std::string holder = spec.value("holderIdentity", "");
  note_holder(holder);
  {
    std::lock_guard lock(mu_);
    const std::string record = record_of(lease);
    if (record != observed_record_) {
      observed_record_ = record;
      observed_at_ = clock_.now();
    }
    const bool held_by_other = !holder.empty() && holder != config_.identity;
    const auto their_duration = std::chrono::seconds(spec.value("leaseDurationSeconds", duration_s));
    if (held_by_other && clock_.now() < observed_at_ + std::max<Clock::Duration>(their_duration, config_.lease_duration)) {
      return false;  // a live leader
    }
  }
  json& s = lease["spec"];
  if (holder != config_.identity) {
    s["acquireTime"] = now_wall;
    s["leaseTransitions"] = spec.value("leaseTransitions", 0) + (holder.empty() ? 0 : 1);
  }
  s["holderIdentity"] = config_.identity;
  s["leaseDurationSeconds"] = duration_s;
  s["renewTime"] = now_wall;
  auto updated = client_.update(leases, config_.lease_namespace, lease);  // CAS on resourceVersion
  if (!updated) return false;
  {
    std::lock_guard lock(mu_);
    observed_record_ = record_of(*updated);
    observed_at_ = clock_.now();
  }
  note_holder(config_.identity);
  return true;
}

void LeaderElector::note_holder(const std::string& holder) {
  {
    std::lock_guard lock(mu_);
    if (holder == holder_) return;
    holder_ = holder;
  }
  if (config_.on_new_leader) config_.on_new_leader(holder);  // outside the lock
}

void LeaderElector::release() {
  auto current = client_.get(resources::kLeases, config_.lease_namespace, config_.lease_name);
  if (!current || (*current)["spec"].value("holderIdentity", "") != config_.identity) return;
  json lease = *current;
  lease["spec"]["holderIdentity"] = "";
  lease["spec"]["leaseDurationSeconds"] = 1;
  lease["spec"]["renewTime"] = micro_time(clock_.wall_now());
  (void)client_.update(resources::kLeases, config_.lease_namespace, lease);
}

}  // namespace cw::kube
