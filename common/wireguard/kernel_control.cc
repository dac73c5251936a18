#include "common/wireguard/kernel_control.h"

#include "common/net/interface_name.h"

#include <linux/wireguard.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <utility>

#include "common/netlink/rtnetlink.h"

namespace cw::wg {
namespace {

using netlink::Attribute;
using netlink::AttributeList;
using netlink::Reply;
using netlink::Request;

// NLA_HDRLEN as a size (the macro is an int).
constexpr std::size_t kAttributeHeader = (sizeof(nlattr) + 3U) & ~std::size_t{3};

Result<void> check_name(const std::string& name) { return net::check_interface_name(name); }

// The same refusals as the UAPI backend's, so that an update means the same on both.
Result<void> check_update(const DeviceUpdate& update) {
  for (const PeerUpdate& p : update.peers) {
    if (p.remove || !p.set_endpoint) continue;
    const std::string peer = "peer " + p.peer.public_key.to_base64();
    if (!p.peer.endpoint) {
      return Error(ErrorCode::kInvalidArgument,
                   peer + ": an endpoint cannot be cleared, only replaced (WireGuard has no "
                          "way to forget one)");
    }
    if (p.peer.endpoint->port == 0) {
      return Error(ErrorCode::kInvalidArgument, peer + ": an endpoint needs a port other than 0");
    }
  }
  return ok_result();
}

Error invalid_reply(const std::string& what) {
  return Error(ErrorCode::kInvalidArgument, "a malformed WG_CMD_GET_DEVICE reply: " + what);
}

// --- addresses in kernel layouts -----------------------------------------------------------

// The address in network byte order: 4 or 16 bytes.
std::vector<std::uint8_t> address_bytes(const net::IpAddress& address) {
  const std::size_t n = address.is_v4() ? 4 : 16;
  std::vector<std::uint8_t> out(n);
  net::Uint128 bits = address.bits();
  for (std::size_t i = n; i-- > 0;) {
    out[i] = static_cast<std::uint8_t>(bits & 0xff);
    bits >>= 8;
  }
  return out;
}

net::IpAddress address_from_bytes(const std::uint8_t* bytes, std::size_t n) {
  net::Uint128 bits = 0;
  for (std::size_t i = 0; i < n; ++i) bits = (bits << 8) | bytes[i];
  return net::IpAddress::from_bits(n == 4 ? net::Family::kIPv4 : net::Family::kIPv6, bits);
}

bool put_endpoint(Request& m, const Endpoint& endpoint) {
  const auto bytes = address_bytes(endpoint.address);
  if (endpoint.address.is_v4()) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(endpoint.port);
    std::memcpy(&in.sin_addr, bytes.data(), bytes.size());
    return m.put_bytes(WGPEER_A_ENDPOINT, {reinterpret_cast<const std::uint8_t*>(&in), sizeof in});
  }
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(endpoint.port);
  std::memcpy(&in6.sin6_addr, bytes.data(), bytes.size());
  return m.put_bytes(WGPEER_A_ENDPOINT, {reinterpret_cast<const std::uint8_t*>(&in6), sizeof in6});
}

// --- SET messages --------------------------------------------------------------------------

void wipe_request(Request& m) {
  // The whole buffer, not just size(): a cancelled peer's preshared key lies past the end.
  sodium_memzero(m.header(), m.capacity());
}

// begin_nested, but only when its header fits: a failed begin_nested marks the message
// overflowed with no nest to cancel that would clear the mark again.
nlattr* try_begin_nested(Request& m, std::uint16_t type) {
  if (m.capacity() - m.size() < kAttributeHeader) return nullptr;
  return m.begin_nested(type);
}

bool put_key(Request& m, std::uint16_t type, const Key& key) {
  return m.put_bytes(type, key.bytes());
}

bool put_device_fields(Request& m, const DeviceUpdate& update) {
  bool fits = true;
  if (update.private_key) fits = fits && put_key(m, WGDEVICE_A_PRIVATE_KEY, *update.private_key);
  if (update.listen_port) fits = fits && m.put_u16(WGDEVICE_A_LISTEN_PORT, *update.listen_port);
  if (update.fwmark) fits = fits && m.put_u32(WGDEVICE_A_FWMARK, *update.fwmark);
  if (update.replace_peers) fits = fits && m.put_u32(WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS);
  return fits;
}

// Everything of a peer but its allowed IPs; a continuation (`continued`) repeats only what
// identifies the peer and the flags that must hold for every part of it.
bool put_peer_fields(Request& m, const PeerUpdate& p, bool continued) {
  if (!put_key(m, WGPEER_A_PUBLIC_KEY, p.peer.public_key)) return false;
  if (p.remove) return m.put_u32(WGPEER_A_FLAGS, WGPEER_F_REMOVE_ME);
  std::uint32_t flags = 0;
  if (p.update_only) flags |= WGPEER_F_UPDATE_ONLY;
  if (!continued) {
    if (p.replace_allowed_ips) flags |= WGPEER_F_REPLACE_ALLOWEDIPS;
    if (p.set_preshared_key) {
      // An all-zero key is how the kernel is told to drop the preshared key.
      static constexpr std::array<std::uint8_t, kKeyLength> kNoKey{};
      const bool fits = p.peer.preshared_key
                            ? put_key(m, WGPEER_A_PRESHARED_KEY, *p.peer.preshared_key)
                            : m.put_bytes(WGPEER_A_PRESHARED_KEY, kNoKey);
      if (!fits) return false;
    }
    if (p.set_endpoint && !put_endpoint(m, *p.peer.endpoint)) return false;
    if (p.set_keepalive &&
        !m.put_u16(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, p.peer.persistent_keepalive)) {
      return false;
    }
  }
  return flags == 0 || m.put_u32(WGPEER_A_FLAGS, flags);
}

// One allowed IP as its own nest, removed again when it does not fit whole.
bool put_allowed_ip(Request& m, const net::Prefix& prefix) {
  nlattr* nest = try_begin_nested(m, 0);
  if (nest == nullptr) return false;
  const auto bytes = address_bytes(prefix.address());
  const bool fits =
      m.put_u16(WGALLOWEDIP_A_FAMILY, prefix.address().is_v4() ? AF_INET : AF_INET6) &&
      m.put_bytes(WGALLOWEDIP_A_IPADDR, bytes) &&
      m.put_u8(WGALLOWEDIP_A_CIDR_MASK, static_cast<std::uint8_t>(prefix.length()));
  if (!fits) {
    m.cancel_nested(nest);
    return false;
  }
  m.end_nested(nest);
  return true;
}

// --- GET replies ---------------------------------------------------------------------------

Result<Key> read_key(const Attribute& a, const char* what) {
  if (a.payload().size() != kKeyLength) {
    return invalid_reply(std::string(what) + " of " + std::to_string(a.payload().size()) +
                         " bytes, not " + std::to_string(kKeyLength));
  }
  std::array<std::uint8_t, kKeyLength> bytes{};
  std::memcpy(bytes.data(), a.payload().data(), kKeyLength);
  Key key(bytes);
  sodium_memzero(bytes.data(), bytes.size());
  return key;
}

template <typename T>
Result<T> read_number(const Attribute& a, std::optional<T> value, const char* what) {
  if (!value) {
    return invalid_reply(std::string(what) + " of " + std::to_string(a.payload().size()) +
                         " bytes, not " + std::to_string(sizeof(T)));
  }
  return *value;
}

Result<Endpoint> read_endpoint(const Attribute& a) {
  const auto p = a.payload();
  sa_family_t family = AF_UNSPEC;
  if (p.size() >= sizeof family) std::memcpy(&family, p.data(), sizeof family);
  if (family == AF_INET && p.size() == sizeof(sockaddr_in)) {
    sockaddr_in in;
    std::memcpy(&in, p.data(), sizeof in);
    return Endpoint{address_from_bytes(reinterpret_cast<const std::uint8_t*>(&in.sin_addr), 4),
                    ntohs(in.sin_port)};
  }
  if (family == AF_INET6 && p.size() == sizeof(sockaddr_in6)) {
    sockaddr_in6 in6;
    std::memcpy(&in6, p.data(), sizeof in6);
    return Endpoint{
        address_from_bytes(reinterpret_cast<const std::uint8_t*>(&in6.sin6_addr), 16),
        ntohs(in6.sin6_port)};
  }
  return invalid_reply("an endpoint of address family " + std::to_string(family) + " in " +
                       std::to_string(p.size()) + " bytes");
}

// A struct __kernel_timespec; zero means no handshake yet.
Result<std::optional<std::chrono::system_clock::time_point>> read_handshake(const Attribute& a) {
  struct {
    std::int64_t seconds;
    std::int64_t nanoseconds;
  } t{};
  if (a.payload().size() != sizeof t) {
    return invalid_reply("a handshake time of " + std::to_string(a.payload().size()) +
                         " bytes, not " + std::to_string(sizeof t));
  }
  std::memcpy(&t, a.payload().data(), sizeof t);
  if (t.seconds == 0 && t.nanoseconds == 0) {
    return std::optional<std::chrono::system_clock::time_point>();
  }
  // Past 2^33 s (year 2242) the nanoseconds of a time_point would overflow.
  if (t.seconds < 0 || t.seconds >= (std::int64_t{1} << 33) || t.nanoseconds < 0 ||
      t.nanoseconds >= 1'000'000'000) {
    return invalid_reply("an impossible handshake time");
  }
  const auto since_epoch =
      std::chrono::seconds(t.seconds) + std::chrono::nanoseconds(t.nanoseconds);
  return std::optional(std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(since_epoch)));
}

Result<net::Prefix> read_allowed_ip(const AttributeList& members) {
  if (!members.well_formed()) return invalid_reply("a truncated allowed IP");
  std::optional<std::uint16_t> family;
  std::optional<Attribute> address;
  std::optional<std::uint8_t> cidr;
  for (const Attribute& a : members) {
    switch (a.type()) {
      case WGALLOWEDIP_A_FAMILY: {
        auto v = read_number(a, a.u16(), "an allowed IP's family");
        if (!v) return v.error();
        family = *v;
        break;
      }
      case WGALLOWEDIP_A_IPADDR: address = a; break;
      case WGALLOWEDIP_A_CIDR_MASK: {
        auto v = read_number(a, a.u8(), "an allowed IP's prefix length");
        if (!v) return v.error();
        cidr = *v;
        break;
      }
      default: break;
    }
  }
  if (!family || !address || !cidr) return invalid_reply("an allowed IP lacks a field");
  const std::size_t size = *family == AF_INET ? 4 : *family == AF_INET6 ? 16 : 0;
  if (size == 0 || address->payload().size() != size) {
    return invalid_reply("an allowed IP of family " + std::to_string(*family) + " with " +
                         std::to_string(address->payload().size()) + " address bytes");
  }
  const net::IpAddress ip = address_from_bytes(address->payload().data(), size);
  if (*cidr > net::bit_width(ip.family())) {
    return invalid_reply("an allowed IP " + ip.to_string() + "/" + std::to_string(*cidr));
  }
  // The kernel masks what it reports; a host bit left set would mean the same block to it.
  const net::IpAddress network = net::IpAddress::from_bits(
      ip.family(), ip.bits() & net::network_mask(ip.family(), *cidr));
  return net::Prefix::make(network, *cidr);
}

// One peer as one message carries it, with which fields it carried.
struct PeerFragment {
  Peer peer;
  bool has_key = false, has_preshared_key = false, has_endpoint = false, has_keepalive = false,
       has_handshake = false, has_rx = false, has_tx = false;
};

Result<PeerFragment> read_peer(const AttributeList& members) {
  if (!members.well_formed()) return invalid_reply("a truncated peer");
  PeerFragment f;
  Peer& peer = f.peer;
  for (const Attribute& a : members) {
    switch (a.type()) {
      case WGPEER_A_PUBLIC_KEY: {
        auto key = read_key(a, "a peer's public key");
        if (!key) return key.error();
        peer.public_key = *key;
        f.has_key = true;
        break;
      }
      case WGPEER_A_PRESHARED_KEY: {
        auto key = read_key(a, "a preshared key");
        if (!key) return key.error();
        if (!key->is_zero()) peer.preshared_key = *key;
        f.has_preshared_key = true;
        break;
      }
      case WGPEER_A_ENDPOINT: {
        auto endpoint = read_endpoint(a);
        if (!endpoint) return endpoint.error();
        peer.endpoint = *endpoint;
        f.has_endpoint = true;
        break;
      }
      case WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL: {
        auto v = read_number(a, a.u16(), "a keepalive interval");
        if (!v) return v.error();
        peer.persistent_keepalive = *v;
        f.has_keepalive = true;
        break;
      }
      case WGPEER_A_LAST_HANDSHAKE_TIME: {
        auto t = read_handshake(a);
        if (!t) return t.error();
        peer.last_handshake = *t;
        f.has_handshake = true;
        break;
      }
      case WGPEER_A_RX_BYTES: {
        auto v = read_number(a, a.u64(), "a received byte count");
        if (!v) return v.error();
        peer.rx_bytes = *v;
        f.has_rx = true;
        break;
      }
      case WGPEER_A_TX_BYTES: {
        auto v = read_number(a, a.u64(), "a sent byte count");
        if (!v) return v.error();
        peer.tx_bytes = *v;
        f.has_tx = true;
        break;
      }
      case WGPEER_A_ALLOWEDIPS: {
        const AttributeList list = a.nested();
        if (!list.well_formed()) return invalid_reply("a truncated list of allowed IPs");
        for (const Attribute& entry : list) {
          auto prefix = read_allowed_ip(entry.nested());
          if (!prefix) return prefix.error();
          peer.allowed_ips.push_back(*prefix);
        }
        break;
      }
      default: break;  // WGPEER_A_FLAGS, WGPEER_A_PROTOCOL_VERSION and what newer kernels add
    }
  }
  if (!f.has_key) return invalid_reply("a peer without a public key");
  return f;
}

// Folds a fragment into the peer it continues: allowed IPs add up, carried fields win.
void merge(Peer& into, PeerFragment&& f) {
  Peer& from = f.peer;
  if (f.has_preshared_key) into.preshared_key = from.preshared_key;
  if (f.has_endpoint) into.endpoint = from.endpoint;
  if (f.has_keepalive) into.persistent_keepalive = from.persistent_keepalive;
  if (f.has_handshake) into.last_handshake = from.last_handshake;
  if (f.has_rx) into.rx_bytes = from.rx_bytes;
  if (f.has_tx) into.tx_bytes = from.tx_bytes;
  into.allowed_ips.insert(into.allowed_ips.end(), from.allowed_ips.begin(),
                          from.allowed_ips.end());
}

// --- the control ---------------------------------------------------------------------------

Error no_module() {
  return Error(ErrorCode::kNotFound,
               "the kernel has no wireguard module: use the UAPI backend (wireguard-go)");
}

// A kernel error about device `name`, with the code DeviceControl promises.
Error device_error(const Error& e, const std::string& context, const std::string& name) {
  const std::string& errno_name = e.reason();
  ErrorCode code = e.code();
  std::string why;
  if (errno_name == "ENODEV") {
    code = ErrorCode::kNotFound;
    why = "no such device " + name + ": ";
  } else if (errno_name == "EOPNOTSUPP") {
    code = ErrorCode::kInvalidArgument;
    why = name + " is not a WireGuard device: ";
  } else if (errno_name == "EADDRINUSE") {
    code = ErrorCode::kConflict;
    why = "the listen port is taken: ";
  } else if (errno_name == "EPERM" || errno_name == "EACCES") {
    why = "WireGuard's netlink commands need CAP_NET_ADMIN: ";
  }
  return Error(code, context + ": " + why + e.message(), 0, errno_name);
}

class KernelControl final : public DeviceControl {
 public:
  KernelControl(netlink::Socket genl, std::uint16_t family, netlink::Rtnetlink route,
                KernelControlOptions options)
      : genl_(std::move(genl)), family_(family), route_(std::move(route)), options_(options) {}

  const char* backend() const override { return "kernel"; }

  Result<Device> get(const std::string& name) override {
    const std::string context = "reading WireGuard device " + name;
    std::lock_guard lock(mutex_);
    auto request = build_get_device(family_, name);
    if (!request) return request.error();
    auto replies = exchange(*request);
    if (!replies) return device_error(replies.error(), context, name);
    // The replies hold the private and preshared keys.
    struct WipeOnExit {
      std::vector<Reply>& replies;
      ~WipeOnExit() {
        for (const Reply& r : replies) {
          // Reply only hands out a const view of the bytes it owns; they are not const.
          sodium_memzero(const_cast<std::uint8_t*>(r.bytes().data()), r.bytes().size());
        }
      }
    } wipe{*replies};
    auto device = parse_get_device(*replies);
    if (!device) return device.error().with_context(context);
    device->name = name;
    return device;
  }

  Result<void> set(const std::string& name, const DeviceUpdate& update) override {
    const std::string context = "configuring WireGuard device " + name;
    std::lock_guard lock(mutex_);
    auto messages = build_set_device(family_, name, update, options_.message_capacity);
    if (!messages) return messages.error().with_context(context);
    auto& list = messages->messages();
    for (std::size_t i = 0; i < list.size(); ++i) {
      auto sent = exchange(list[i]);
      if (sent) continue;
      Error error = device_error(sent.error(), context, name);
      if (i > 0) {
        // The kernel applied the earlier messages; the next pass has to finish the job.
        error = error.with_context(std::to_string(i) + " of " + std::to_string(list.size()) +
                                   " messages were applied before the kernel refused one");
      }
      return error;
    }
    return ok_result();
  }

  Result<std::vector<std::string>> list() override {
    std::lock_guard lock(mutex_);
    auto links = route_.list_links();
    if (!links) return links.error().with_context("listing WireGuard devices");
    std::vector<std::string> names;
    for (const auto& link : *links) {
      if (link.kind == WG_GENL_NAME) names.push_back(link.name);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  // Sends one message to the family. A family id is only valid while the module stays
  // loaded: when the kernel answers that no such family exists (ENOENT), the module was
  // reloaded or removed, so the id is resolved again and the message, which nothing
  // processed, is sent once more.
  Result<std::vector<Reply>> exchange(Request& m) {
    m.header()->nlmsg_type = family_;
    auto replies = genl_.request(m);
    if (replies || replies.error().reason() != "ENOENT") return replies;
    auto family = netlink::resolve_genl_family(genl_, WG_GENL_NAME);
    if (!family) {
      if (family.error().code() == ErrorCode::kNotFound) return no_module();
      return family.error();
    }
    if (*family == family_) return replies;
    family_ = *family;
    m.header()->nlmsg_type = family_;
    return genl_.request(m);
  }

  std::mutex mutex_;
  netlink::Socket genl_;
  std::uint16_t family_;
  netlink::Rtnetlink route_;
  const KernelControlOptions options_;
};

}  // namespace

SetDeviceMessages& SetDeviceMessages::operator=(SetDeviceMessages&& other) noexcept {
  if (this != &other) {
    wipe();
    messages_ = std::move(other.messages_);
  }
  return *this;
}

void SetDeviceMessages::wipe() {
  for (Request& m : messages_) wipe_request(m);
}

Result<SetDeviceMessages> build_set_device(std::uint16_t family_id, const std::string& name,
                                           const DeviceUpdate& update, std::size_t capacity) {
  if (auto r = check_name(name); !r) return r.error();
  if (auto r = check_update(update); !r) return r.error();
  const std::vector<PeerUpdate>& peers = update.peers;
  static const std::vector<net::Prefix> kNone;

  SetDeviceMessages out;
  auto& messages = out.messages();
  std::size_t peer_index = 0;
  std::size_t sent_ips = 0;  // allowed IPs of peers[peer_index] in earlier messages
  for (bool first = true; first || peer_index < peers.size(); first = false) {
    messages.push_back(
        Request::generic(family_id, WG_CMD_SET_DEVICE, WG_GENL_VERSION, 0, capacity));
    Request& m = messages.back();
    if (!m.put_string(WGDEVICE_A_IFNAME, name) || (first && !put_device_fields(m, update))) {
      return Error(ErrorCode::kInvalidArgument,
                   "a netlink message of " + std::to_string(capacity) +
                       " bytes cannot hold the device's own fields");
    }
    if (peer_index == peers.size()) continue;

    nlattr* peers_nest = try_begin_nested(m, WGDEVICE_A_PEERS);
    bool progress = false;
    while (peers_nest != nullptr && peer_index < peers.size()) {
      const PeerUpdate& p = peers[peer_index];
      const std::vector<net::Prefix>& ips = p.remove ? kNone : p.peer.allowed_ips;
      nlattr* peer_nest = try_begin_nested(m, 0);
      if (peer_nest == nullptr) break;
      if (!put_peer_fields(m, p, sent_ips > 0)) {
        m.cancel_nested(peer_nest);
        break;
      }
      if (!ips.empty()) {
        nlattr* ips_nest = try_begin_nested(m, WGPEER_A_ALLOWEDIPS);
        std::size_t added = 0;
        while (ips_nest != nullptr && sent_ips + added < ips.size() &&
               put_allowed_ip(m, ips[sent_ips + added])) {
          ++added;
        }
        if (added == 0) {
          // Not even one allowed IP: the whole peer (or its next part) goes to the next message.
          m.cancel_nested(peer_nest);
          break;
        }
        m.end_nested(ips_nest);
        sent_ips += added;
        if (sent_ips < ips.size()) {  // the message is full; this peer continues in the next
          m.end_nested(peer_nest);
          progress = true;
          break;
        }
      }
      m.end_nested(peer_nest);
      progress = true;
      ++peer_index;
      sent_ips = 0;
    }
    if (progress) {
      m.end_nested(peers_nest);
    } else {
      m.cancel_nested(peers_nest);
      // The first message may have been filled by the device's fields; a later one had room
      // for nothing but this peer.
      if (!first) {
        return Error(ErrorCode::kInvalidArgument,
                     "peer " + peers[peer_index].peer.public_key.to_base64() +
                         " does not fit in a netlink message of " + std::to_string(capacity) +
                         " bytes");
      }
    }
  }
  return out;
}

Result<Request> build_get_device(std::uint16_t family_id, const std::string& name) {
  if (auto r = check_name(name); !r) return r.error();
  Request request =
      Request::generic(family_id, WG_CMD_GET_DEVICE, WG_GENL_VERSION, NLM_F_DUMP);
  request.put_string(WGDEVICE_A_IFNAME, name);
  return request;
}

Result<Device> parse_get_device(std::span<const Reply> replies) {
  if (replies.empty()) return invalid_reply("no message");
  Device device;
  std::vector<Peer> peers;
  std::map<Key, std::size_t> index;  // public key -> position in peers
  for (std::size_t i = 0; i < replies.size(); ++i) {
    const Reply& reply = replies[i];
    const std::string where = " in message " + std::to_string(i + 1);
    const auto genl = reply.family_header<genlmsghdr>();
    if (!genl) return invalid_reply("no generic netlink header" + where);
    if (genl->cmd != WG_CMD_GET_DEVICE) {
      return invalid_reply("command " + std::to_string(genl->cmd) + where);
    }
    const AttributeList attributes = reply.attributes(GENL_HDRLEN);
    if (!attributes.well_formed()) return invalid_reply("a truncated attribute" + where);
    for (const Attribute& a : attributes) {
      switch (a.type()) {
        case WGDEVICE_A_PRIVATE_KEY: {
          auto key = read_key(a, "the private key");
          if (!key) return key.error();
          if (!key->is_zero()) device.private_key = *key;
          break;
        }
        case WGDEVICE_A_PUBLIC_KEY: {
          auto key = read_key(a, "the public key");
          if (!key) return key.error();
          if (!key->is_zero()) device.public_key = *key;
          break;
        }
        case WGDEVICE_A_LISTEN_PORT: {
          auto v = read_number(a, a.u16(), "the listen port");
          if (!v) return v.error();
          device.listen_port = *v;
          break;
        }
        case WGDEVICE_A_FWMARK: {
          auto v = read_number(a, a.u32(), "the fwmark");
          if (!v) return v.error();
          device.fwmark = *v;
          break;
        }
        case WGDEVICE_A_PEERS: {
          const AttributeList list = a.nested();
          if (!list.well_formed()) return invalid_reply("a truncated list of peers" + where);
          for (const Attribute& entry : list) {
            auto fragment = read_peer(entry.nested());
            if (!fragment) return fragment.error().with_context("message " + std::to_string(i + 1));
            const Key& key = fragment->peer.public_key;
            if (auto it = index.find(key); it != index.end()) {
              merge(peers[it->second], std::move(*fragment));
            } else {
              index.emplace(key, peers.size());
              peers.push_back(std::move(fragment->peer));
            }
          }
          break;
        }
        default: break;  // WGDEVICE_A_IFINDEX, WGDEVICE_A_IFNAME and what newer kernels add
      }
    }
  }
  for (Peer& peer : peers) std::sort(peer.allowed_ips.begin(), peer.allowed_ips.end());
  std::sort(peers.begin(), peers.end(),
            [](const Peer& a, const Peer& b) { return a.public_key < b.public_key; });
  device.peers = std::move(peers);
  return device;
}

Result<std::unique_ptr<DeviceControl>> make_kernel_control(KernelControlOptions options) {
  auto genl = netlink::Socket::open(NETLINK_GENERIC, options.timeout);
  if (!genl) return genl.error().with_context("opening the kernel WireGuard control");
  auto family = netlink::resolve_genl_family(*genl, WG_GENL_NAME);
  if (!family) {
    if (family.error().code() == ErrorCode::kNotFound) return no_module();
    return family.error().with_context("opening the kernel WireGuard control");
  }
  auto route = netlink::Rtnetlink::open(options.timeout);
  if (!route) return route.error().with_context("opening the kernel WireGuard control");
  return std::unique_ptr<DeviceControl>(std::make_unique<KernelControl>(
      std::move(genl).value(), *family, std::move(route).value(), options));
}

}  // namespace cw::wg
