// The gateway candidates' messages (docs/gateway.md, "Messages"): one UDP datagram each.
//
//   heartbeat  candidate → the other candidates of its cluster, over the underlay, every
//              heartbeat interval: alive, holds the Lease or not, epoch, score;
//   beacon     candidate → every remote node it peers with, through the tunnel, every second
//              and at once when its state changes: the same fields. A beacon is believed only
//              when it came out of the tunnel from the candidate's own address, which only
//              that candidate's WireGuard key can send from.
//
// Layout (network byte order): "CWGW", version 1, kind, flags (bit 0: active), 1 reserved,
// epoch (int64), score (uint16), cluster ID length, node name length, then the cluster ID and
// the node name.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/base/result.h"
#include "gateway/election.h"

namespace cw::gateway {

constexpr std::uint16_t kDefaultHeartbeatPort = 51822;
constexpr std::size_t kMessageHeaderSize = 20;

enum class Kind : std::uint8_t { kHeartbeat = 1, kBeacon = 2 };

struct Message {
  Kind kind = Kind::kHeartbeat;
  std::string cluster;
  Heartbeat state;
  friend bool operator==(const Message&, const Message&) = default;
};

std::vector<std::uint8_t> encode(const Message& message);
// kInvalidArgument for anything but a well-formed message (lengths, names, kinds, magic).
Result<Message> decode(std::span<const std::uint8_t> bytes);

}  // namespace cw::gateway
