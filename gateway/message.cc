#include "gateway/message.h"

#include <algorithm>

namespace cw::gateway {
namespace {

constexpr std::uint8_t kMagic[4] = {'C', 'W', 'G', 'W'};
constexpr std::uint8_t kVersion = 1;
constexpr std::size_t kMaxCluster = 63;
constexpr std::size_t kMaxNode = 253;

Error bad(const std::string& what) { return Error(ErrorCode::kInvalidArgument, "gateway message: " + what); }

// Lower-case letters, digits, '-' and '.', as cluster IDs and node names are.
bool plain_name(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

}  // namespace

std::vector<std::uint8_t> encode(const Message& m) {
  const std::string cluster = m.cluster.substr(0, kMaxCluster);
  const std::string node = m.state.node.substr(0, kMaxNode);
  std::vector<std::uint8_t> out(kMessageHeaderSize);
  std::copy(std::begin(kMagic), std::end(kMagic), out.begin());
  out[4] = kVersion;
  out[5] = static_cast<std::uint8_t>(m.kind);
  out[6] = m.state.active ? 1 : 0;
  const auto epoch = static_cast<std::uint64_t>(m.state.epoch);
  for (std::size_t i = 0; i < 8; ++i) out[8 + i] = static_cast<std::uint8_t>(epoch >> (56 - 8 * i));
  const auto score = static_cast<std::uint16_t>(std::clamp(m.state.score, 0, 65535));
  out[16] = static_cast<std::uint8_t>(score >> 8);
  out[17] = static_cast<std::uint8_t>(score);
  out[18] = static_cast<std::uint8_t>(cluster.size());
  out[19] = static_cast<std::uint8_t>(node.size());
  out.insert(out.end(), cluster.begin(), cluster.end());
  out.insert(out.end(), node.begin(), node.end());
  return out;
}

Result<Message> decode(std::span<const std::uint8_t> in) {
  if (in.size() < kMessageHeaderSize) return bad("shorter than its header");
  if (!std::equal(std::begin(kMagic), std::end(kMagic), in.begin())) return bad("not CWGW");
  if (in[4] != kVersion) return bad("version " + std::to_string(in[4]) + " is not 1");
  Message m;
  if (in[5] != static_cast<std::uint8_t>(Kind::kHeartbeat) && in[5] != static_cast<std::uint8_t>(Kind::kBeacon)) {
    return bad("unknown kind " + std::to_string(in[5]));
  }
  m.kind = static_cast<Kind>(in[5]);
  if ((in[6] & ~1u) != 0 || in[7] != 0) return bad("reserved bits set");
  m.state.active = (in[6] & 1u) != 0;
  std::uint64_t epoch = 0;
  for (std::size_t i = 0; i < 8; ++i) epoch = (epoch << 8) | in[8 + i];
  if (epoch > static_cast<std::uint64_t>(INT64_MAX)) return bad("negative epoch");
  m.state.epoch = static_cast<std::int64_t>(epoch);
  m.state.score = (in[16] << 8) | in[17];
  const std::size_t cluster_len = in[18], node_len = in[19];
  if (cluster_len > kMaxCluster || node_len > kMaxNode) return bad("a name is too long");
  if (in.size() != kMessageHeaderSize + cluster_len + node_len) return bad("its length does not match its names");
  const auto names = in.subspan(kMessageHeaderSize);
  m.cluster.assign(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(cluster_len));
  m.state.node.assign(names.begin() + static_cast<std::ptrdiff_t>(cluster_len), names.end());
  if (!plain_name(m.cluster) || !plain_name(m.state.node)) return bad("a name has characters a name cannot have");
  return m;
}

}  // namespace cw::gateway
