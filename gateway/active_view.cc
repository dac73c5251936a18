#include "gateway/active_view.h"

#include <algorithm>
#include <set>

namespace cw::gateway {

bool ActiveView::heard(const std::string& cluster, const Heartbeat& beacon, TimePoint now) {
  auto& claims = claims_[cluster];
  auto winner = [&]() -> std::string {
    const std::pair<const std::string, Claim>* best = nullptr;
    for (const auto& c : claims) {
      if (!best || c.second.epoch > best->second.epoch) best = &c;
    }
    return best ? best->first : "";
  };
  const std::string before = winner();
  auto it = claims.find(beacon.node);
  if (beacon.active) {
    claims[beacon.node] = {beacon.epoch, now};
  } else if (it != claims.end() && beacon.epoch >= it->second.epoch) {
    claims.erase(it);
  }
  // A claim below an epoch that someone has since reached is over, whoever said so.
  std::int64_t newest = beacon.epoch;
  for (const auto& c : claims) newest = std::max(newest, c.second.epoch);
  std::erase_if(claims, [&](const auto& c) { return c.second.epoch < newest; });
  return winner() != before;
}

std::optional<std::string> ActiveView::active(const std::string& cluster, const std::vector<std::string>& candidates,
                                              const std::string& hint) const {
  if (candidates.empty()) return std::nullopt;
  const std::set<std::string> known(candidates.begin(), candidates.end());
  if (auto it = claims_.find(cluster); it != claims_.end()) {
    const std::pair<const std::string, Claim>* best = nullptr;
    for (const auto& c : it->second) {
      if (!known.count(c.first)) continue;
      // Equal epochs (two holders of one Lease generation cannot both have written it, but a
      // beacon can be stale): the most recently heard.
      if (!best || c.second.epoch > best->second.epoch ||
          (c.second.epoch == best->second.epoch && c.second.heard_at > best->second.heard_at)) {
        best = &c;
      }
    }
    if (best) return best->first;
  }
  if (known.count(hint)) return hint;
  return *known.begin();
}

void ActiveView::retain(const std::vector<std::string>& clusters) {
  const std::set<std::string> keep(clusters.begin(), clusters.end());
  std::erase_if(claims_, [&](const auto& c) { return !keep.count(c.first); });
}

std::map<std::string, ActiveView::Claim> ActiveView::claims(const std::string& cluster) const {
  auto it = claims_.find(cluster);
  return it == claims_.end() ? std::map<std::string, Claim>{} : it->second;
}

}  // namespace cw::gateway
