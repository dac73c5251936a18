// The smallest DeviceUpdate that turns the device as read back into the desired one:
// nothing at all when they match (rewriting a WireGuard configuration interrupts
// connections, as Kilo notes), otherwise one entry per peer that is new, changed or gone.
// Never replace_peers: that would re-create every peer and drop every handshake.
#pragma once

#include <vector>

#include "common/wireguard/device.h"

namespace cw::agent {

struct DesiredDevice {
  wg::Key private_key;
  std::uint16_t listen_port = 0;
  std::uint32_t fwmark = 0;
  std::vector<wg::Peer> peers;
};

struct DeviceDiff {
  wg::DeviceUpdate update;
  std::size_t added = 0;
  std::size_t changed = 0;
  std::size_t removed = 0;
  bool empty() const;
};

DeviceDiff diff_device(const DesiredDevice& desired, const wg::Device& current);

}  // namespace cw::agent
