#include "node-agent/gateway_role.h"

#include "node-agent/prober.h"

namespace cw::agent {

GatewayRole::GatewayRole(GatewayRoleOptions options, kube::Client& local, Clock& clock, log::Logger logger,
                         std::function<void()> changed, std::function<std::optional<nlohmann::json>()> lease)
    : options_(std::move(options)), local_(local), clock_(clock), log_(std::move(logger)),
      changed_(std::move(changed)), lease_(std::move(lease)) {}

GatewayRole::~GatewayRole() { stop(); }

void GatewayRole::set_prober(Prober* prober) {
  std::lock_guard lock(mu_);
  prober_ = prober;
}

void GatewayRole::stop() {
  std::unique_ptr<gateway::Runner> gone;
  {
    std::lock_guard lock(mu_);
    gone = std::move(runner_);
  }
  gone.reset();  // joins its threads outside the lock: its callbacks take it
}

void GatewayRole::update(bool candidate, const std::vector<net::IpAddress>& other_candidates) {
  std::lock_guard lock(mu_);
  if (!runner_ && candidate) {
    gateway::RunnerOptions o{.cluster_id = message_cluster(),
                             .node_name = options_.node_name,
                             .port = options_.port,
                             .lease_namespace = options_.lease_namespace,
                             .lease_name = options_.lease_name,
                             .settings = options_.settings};
    auto started = gateway::Runner::start(o, local_, clock_, log_.with("component", "gateway"), changed_,
                                          [this](const gateway::Heartbeat& claim) { send_beacons(claim); });
    if (!started) {
      log_.error("cannot run as a gateway candidate", {{"error", started.error().message()}});
      return;
    }
    runner_ = std::move(*started);
    runner_->observe_lease(lease_());
  }
  if (!runner_) return;
  runner_->set_peers(other_candidates);
  runner_->set_candidate(candidate);
}

void GatewayRole::lease_changed() {
  std::lock_guard lock(mu_);
  if (runner_) runner_->observe_lease(lease_());
}

void GatewayRole::set_score(int score) {
  std::lock_guard lock(mu_);
  if (runner_) runner_->set_score(score);
}

std::string GatewayRole::local_active() {
  {
    std::lock_guard lock(mu_);
    if (runner_) return runner_->holder();  // it knows of its own writes before the informer does
  }
  auto lease = lease_();
  return lease ? gateway::lease_record(*lease).value_or(gateway::LeaseRecord{}).holder : "";
}

std::string GatewayRole::remote_active(const std::string& cluster, const std::vector<std::string>& candidates,
                                       const std::string& hint) {
  std::lock_guard lock(mu_);
  return active_view_.active(cluster, candidates, hint).value_or("");
}

void GatewayRole::set_beacon_paths(std::map<net::IpAddress, std::pair<std::string, std::string>> sources,
                                   std::vector<net::IpAddress> targets, const std::vector<std::string>& clusters) {
  std::lock_guard lock(mu_);
  beacon_sources_ = std::move(sources);
  beacon_targets_ = std::move(targets);
  active_view_.retain(clusters);
}

std::optional<std::pair<gateway::Heartbeat, gateway::RunnerStats>> GatewayRole::runner_figures() {
  std::lock_guard lock(mu_);
  if (!runner_) return std::nullopt;
  return std::make_pair(runner_->state(), runner_->stats());
}

// Only its source address says who sent a beacon: that address is in no other peer's allowed
// IPs, so only that candidate's key can have put it in the tunnel.
void GatewayRole::heard_beacon(const gateway::Message& m, const net::IpAddress& from) {
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    auto it = beacon_sources_.find(from);
    if (it == beacon_sources_.end() || it->second.second != m.state.node) return;
    changed = active_view_.heard(it->second.first, m.state, clock_.now());
    if (changed) {
      log_.info("remote gateway claims active", {{"cluster", it->second.first}, {"gateway", m.state.node},
                                                {"epoch", m.state.epoch}});
    }
  }
  if (changed) changed_();
}

void GatewayRole::send_beacons(const gateway::Heartbeat& claim) {
  std::vector<net::IpAddress> to;
  Prober* prober = nullptr;
  {
    std::lock_guard lock(mu_);
    to = beacon_targets_;
    prober = prober_;
  }
  if (prober && !to.empty()) prober->send_beacon({gateway::Kind::kBeacon, message_cluster(), claim}, to);
}

}  // namespace cw::agent
