#include "node-agent/device_diff.h"

#include <algorithm>
#include <map>

namespace cw::agent {

bool DeviceDiff::empty() const {
  return update.peers.empty() && !update.private_key && !update.listen_port && !update.fwmark;
}

DeviceDiff diff_device(const DesiredDevice& desired, const wg::Device& current) {
  DeviceDiff d;
  if (!current.private_key || !(*current.private_key == desired.private_key)) d.update.private_key = desired.private_key;
  if (current.listen_port != desired.listen_port) d.update.listen_port = desired.listen_port;
  if (current.fwmark != desired.fwmark) d.update.fwmark = desired.fwmark;

  std::map<wg::Key, const wg::Peer*> have;
  for (const auto& p : current.peers) have[p.public_key] = &p;
  std::map<wg::Key, const wg::Peer*> want;
  for (const auto& p : desired.peers) want[p.public_key] = &p;

  for (const auto& [key, peer] : want) {
    auto it = have.find(key);
    if (it == have.end()) {
      // A new peer starts with no preshared key and no keepalive: say only what differs from
      // that (1,000 zero keys are 64 KiB of request for nothing).
      d.update.peers.push_back({.peer = *peer, .replace_allowed_ips = true,
                                .set_preshared_key = peer->preshared_key.has_value(),
                                .set_endpoint = peer->endpoint.has_value(),
                                .set_keepalive = peer->persistent_keepalive != 0});
      ++d.added;
      continue;
    }
    // A peer wanted without an endpoint (a gateway behind NAT) keeps the one WireGuard
    // learned from its handshakes: that is the discovered endpoint, never cleared.
    wg::Peer compared = *peer;
    if (!compared.endpoint) compared.endpoint = it->second->endpoint;
    if (wg::same_config(compared, *it->second)) continue;
    // Only the fields that differ: an unchanged endpoint is not rewritten (wireguard-go
    // and the kernel keep a roaming endpoint otherwise).
    wg::PeerUpdate u{.peer = *peer, .update_only = true};
    auto sorted = [](std::vector<net::Prefix> v) {
      std::sort(v.begin(), v.end());
      return v;
    };
    u.replace_allowed_ips = sorted(peer->allowed_ips) != sorted(it->second->allowed_ips);
    u.set_endpoint = peer->endpoint.has_value() && peer->endpoint != it->second->endpoint;
    u.set_keepalive = peer->persistent_keepalive != it->second->persistent_keepalive;
    u.set_preshared_key = peer->preshared_key != it->second->preshared_key;
    d.update.peers.push_back(std::move(u));
    ++d.changed;
  }
  for (const auto& [key, peer] : have) {
    if (want.count(key)) continue;
    wg::PeerUpdate u;
    u.peer.public_key = key;
    u.remove = true;
    d.update.peers.push_back(std::move(u));
    ++d.removed;
  }
  return d;
}

}  // namespace cw::agent
