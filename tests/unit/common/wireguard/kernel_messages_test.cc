// The kernel backend's messages without a kernel: WG_CMD_SET_DEVICE requests byte for byte,
// their splitting over several messages, and WG_CMD_GET_DEVICE replies spread over several
// messages, well formed and not. Expected bytes are assembled here from the constants and
// structs of <linux/wireguard.h>, <linux/netlink.h> and <netinet/in.h> by a writer (and read
// by a walker) that share nothing with libmnl or common/netlink.
#include "common/wireguard/kernel_control.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/wireguard.h>
#include <netinet/in.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

namespace cw::wg {
namespace {

constexpr std::uint16_t kFamily = 0x1a;  // any id: the messages carry what they are given

using Bytes = std::vector<std::uint8_t>;

Key filled_key(std::uint8_t byte) {
  std::array<std::uint8_t, kKeyLength> bytes{};
  bytes.fill(byte);
  return Key(bytes);
}
// Distinct keys for peer `i`, ordered as i is.
Key numbered_key(std::uint32_t i) {
  std::array<std::uint8_t, kKeyLength> bytes{};
  bytes[0] = 0x80;
  bytes[1] = static_cast<std::uint8_t>(i >> 16);
  bytes[2] = static_cast<std::uint8_t>(i >> 8);
  bytes[3] = static_cast<std::uint8_t>(i);
  return Key(bytes);
}
Bytes key_bytes(const Key& key) { return Bytes(key.bytes().begin(), key.bytes().end()); }
net::Prefix prefix(std::string_view text) { return net::Prefix::parse(text).value(); }
Endpoint endpoint(std::string_view text) { return Endpoint::parse(text).value(); }

// ---- An independent writer of netlink attributes and generic netlink messages ----

class Attrs {
 public:
  Attrs& raw(std::uint16_t type, const void* data, std::size_t length) {
    nlattr a{};
    a.nla_len = static_cast<std::uint16_t>(sizeof a + length);
    a.nla_type = type;
    append(&a, sizeof a);
    append(data, length);
    while (bytes_.size() % 4 != 0) bytes_.push_back(0);
    return *this;
  }
  Attrs& bytes(std::uint16_t type, const Bytes& value) {
    return raw(type, value.data(), value.size());
  }
  Attrs& u8(std::uint16_t type, std::uint8_t v) { return raw(type, &v, sizeof v); }
  Attrs& u16(std::uint16_t type, std::uint16_t v) { return raw(type, &v, sizeof v); }
  Attrs& u32(std::uint16_t type, std::uint32_t v) { return raw(type, &v, sizeof v); }
  Attrs& u64(std::uint16_t type, std::uint64_t v) { return raw(type, &v, sizeof v); }
  Attrs& string(std::uint16_t type, const std::string& v) {
    return raw(type, v.c_str(), v.size() + 1);
  }
  Attrs& nested(std::uint16_t type, const Attrs& members) {
    return raw(static_cast<std::uint16_t>(type | NLA_F_NESTED), members.bytes_.data(),
               members.bytes_.size());
  }
  Attrs& append(const Attrs& more) {
    bytes_.insert(bytes_.end(), more.bytes_.begin(), more.bytes_.end());
    return *this;
  }
  const Bytes& data() const { return bytes_; }

 private:
  void append(const void* data, std::size_t length) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + length);
  }
  Bytes bytes_;
};

Bytes genl_message(std::uint16_t flags, std::uint8_t cmd, const Attrs& attrs) {
  nlmsghdr h{};
  genlmsghdr g{};
  g.cmd = cmd;
  g.version = WG_GENL_VERSION;
  h.nlmsg_len = static_cast<std::uint32_t>(sizeof h + sizeof g + attrs.data().size());
  h.nlmsg_type = kFamily;
  h.nlmsg_flags = flags;
  Bytes out(sizeof h + sizeof g);
  std::memcpy(out.data(), &h, sizeof h);
  std::memcpy(out.data() + sizeof h, &g, sizeof g);
  out.insert(out.end(), attrs.data().begin(), attrs.data().end());
  return out;
}

Bytes sockaddr4(const char* address, std::uint16_t port) {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(port);
  inet_pton(AF_INET, address, &in.sin_addr);
  const auto* p = reinterpret_cast<const std::uint8_t*>(&in);
  return Bytes(p, p + sizeof in);
}
Bytes sockaddr6(const char* address, std::uint16_t port) {
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(port);
  inet_pton(AF_INET6, address, &in6.sin6_addr);
  const auto* p = reinterpret_cast<const std::uint8_t*>(&in6);
  return Bytes(p, p + sizeof in6);
}
Attrs allowed_ip(int family, const char* address, std::uint8_t cidr) {
  Bytes raw(family == AF_INET ? 4 : 16);
  inet_pton(family, address, raw.data());
  Attrs a;
  a.u16(WGALLOWEDIP_A_FAMILY, static_cast<std::uint16_t>(family));
  a.bytes(WGALLOWEDIP_A_IPADDR, raw);
  a.u8(WGALLOWEDIP_A_CIDR_MASK, cidr);
  return a;
}

// ---- An independent reader of what build_set_device made ----

struct Attr {
  std::uint16_t type;  // without NLA_F_NESTED
  bool nested;
  Bytes payload;
};

std::vector<Attr> walk(const std::uint8_t* p, std::size_t n) {
  std::vector<Attr> out;
  std::size_t at = 0;
  while (at + sizeof(nlattr) <= n) {
    nlattr a;
    std::memcpy(&a, p + at, sizeof a);
    EXPECT_GE(a.nla_len, sizeof a);
    EXPECT_LE(at + a.nla_len, n);
    if (a.nla_len < sizeof a || at + a.nla_len > n) break;
    out.push_back({static_cast<std::uint16_t>(a.nla_type & NLA_TYPE_MASK),
                   (a.nla_type & NLA_F_NESTED) != 0,
                   Bytes(p + at + sizeof a, p + at + a.nla_len)});
    at += (a.nla_len + 3U) & ~3U;
  }
  EXPECT_EQ(at, n) << "attributes must fill their container exactly";
  return out;
}
std::vector<Attr> walk(const Bytes& b) { return walk(b.data(), b.size()); }
const Attr* find(const std::vector<Attr>& attrs, std::uint16_t type) {
  for (const auto& a : attrs) {
    if (a.type == type) return &a;
  }
  return nullptr;
}
std::uint32_t as_u32(const Attr& a) {
  std::uint32_t v = 0;
  EXPECT_EQ(a.payload.size(), sizeof v);
  std::memcpy(&v, a.payload.data(), std::min(sizeof v, a.payload.size()));
  return v;
}

struct Message {
  nlmsghdr header;
  genlmsghdr genl;
  std::vector<Attr> attrs;
};
Message decode(const netlink::Request& request) {
  const auto bytes = request.bytes();
  Message m{};
  EXPECT_GE(bytes.size(), sizeof m.header + sizeof m.genl);
  std::memcpy(&m.header, bytes.data(), sizeof m.header);
  std::memcpy(&m.genl, bytes.data() + sizeof m.header, sizeof m.genl);
  EXPECT_EQ(m.header.nlmsg_len, bytes.size());
  const std::size_t start = sizeof m.header + sizeof m.genl;
  m.attrs = walk(bytes.data() + start, bytes.size() - start);
  return m;
}

Bytes wire(const netlink::Request& request) {
  return Bytes(request.bytes().begin(), request.bytes().end());
}

// ---- SET: one message, byte for byte ----

struct SetCase {
  std::string name;
  DeviceUpdate update;
  Attrs expected;  // after WGDEVICE_A_IFNAME
  friend void PrintTo(const SetCase& c, std::ostream* os) { *os << c.name; }
};

std::vector<SetCase> set_cases() {
  std::vector<SetCase> cases;
  {
    SetCase c{.name = "NothingButTheName", .update = {}, .expected = {}};
    cases.push_back(c);
  }
  {
    SetCase c{.name = "DeviceFields", .update = {}, .expected = {}};
    c.update.private_key = filled_key(0x11);
    c.update.listen_port = 51820;
    c.update.fwmark = 0x77;
    c.update.replace_peers = true;
    c.expected.bytes(WGDEVICE_A_PRIVATE_KEY, key_bytes(filled_key(0x11)))
        .u16(WGDEVICE_A_LISTEN_PORT, 51820)
        .u32(WGDEVICE_A_FWMARK, 0x77)
        .u32(WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS);
    cases.push_back(c);
  }
  {
    SetCase c{.name = "PeerWithEveryField", .update = {}, .expected = {}};
    PeerUpdate p;
    p.peer.public_key = filled_key(0x22);
    p.peer.preshared_key = filled_key(0x33);
    p.peer.endpoint = endpoint("10.0.0.2:51820");
    p.peer.persistent_keepalive = 25;
    p.peer.allowed_ips = {prefix("10.1.0.0/16"), prefix("fd00:1::/64")};
    p.replace_allowed_ips = p.update_only = p.set_preshared_key = p.set_endpoint =
        p.set_keepalive = true;
    c.update.peers.push_back(p);
    Attrs ips;
    ips.nested(0, allowed_ip(AF_INET, "10.1.0.0", 16))
        .nested(0, allowed_ip(AF_INET6, "fd00:1::", 64));
    Attrs peer;
    peer.bytes(WGPEER_A_PUBLIC_KEY, key_bytes(filled_key(0x22)))
        .bytes(WGPEER_A_PRESHARED_KEY, key_bytes(filled_key(0x33)))
        .bytes(WGPEER_A_ENDPOINT, sockaddr4("10.0.0.2", 51820))
        .u16(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 25)
        .u32(WGPEER_A_FLAGS, WGPEER_F_REPLACE_ALLOWEDIPS | WGPEER_F_UPDATE_ONLY)
        .nested(WGPEER_A_ALLOWEDIPS, ips);
    c.expected.nested(WGDEVICE_A_PEERS, Attrs().nested(0, peer));
    cases.push_back(c);
  }
  {
    SetCase c{.name = "RemovedPeerCarriesOnlyItsKey", .update = {}, .expected = {}};
    PeerUpdate p;
    p.peer.public_key = filled_key(0x22);
    p.peer.preshared_key = filled_key(0x33);
    p.peer.allowed_ips = {prefix("10.1.0.0/16")};
    p.remove = p.set_preshared_key = p.replace_allowed_ips = true;
    c.update.peers.push_back(p);
    Attrs peer;
    peer.bytes(WGPEER_A_PUBLIC_KEY, key_bytes(filled_key(0x22)))
        .u32(WGPEER_A_FLAGS, WGPEER_F_REMOVE_ME);
    c.expected.nested(WGDEVICE_A_PEERS, Attrs().nested(0, peer));
    cases.push_back(c);
  }
  {
    SetCase c{.name = "ClearedPresharedKeyIPv6EndpointNoFlags", .update = {}, .expected = {}};
    PeerUpdate p;
    p.peer.public_key = filled_key(0x22);
    p.peer.endpoint = endpoint("[fd00::2]:51821");
    p.peer.allowed_ips = {prefix("fd00::2/128")};
    p.set_preshared_key = p.set_endpoint = true;  // no key: clear it
    c.update.peers.push_back(p);
    Attrs peer;
    peer.bytes(WGPEER_A_PUBLIC_KEY, key_bytes(filled_key(0x22)))
        .bytes(WGPEER_A_PRESHARED_KEY, Bytes(kKeyLength, 0))
        .bytes(WGPEER_A_ENDPOINT, sockaddr6("fd00::2", 51821))
        .nested(WGPEER_A_ALLOWEDIPS,
                Attrs().nested(0, allowed_ip(AF_INET6, "fd00::2", 128)));
    c.expected.nested(WGDEVICE_A_PEERS, Attrs().nested(0, peer));
    cases.push_back(c);
  }
  {
    SetCase c{.name = "KeepaliveOffAndNoAllowedIPs", .update = {}, .expected = {}};
    PeerUpdate p;
    p.peer.public_key = filled_key(0x22);
    p.set_keepalive = true;  // persistent_keepalive 0: off
    p.replace_allowed_ips = true;  // and none: clear them
    c.update.peers.push_back(p);
    Attrs peer;
    peer.bytes(WGPEER_A_PUBLIC_KEY, key_bytes(filled_key(0x22)))
        .u16(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 0)
        .u32(WGPEER_A_FLAGS, WGPEER_F_REPLACE_ALLOWEDIPS);
    c.expected.nested(WGDEVICE_A_PEERS, Attrs().nested(0, peer));
    cases.push_back(c);
  }
  return cases;
}

class SetMessageTest : public testing::TestWithParam<SetCase> {};

TEST_P(SetMessageTest, MatchesTheUapiHeader) {
  const SetCase& c = GetParam();
  auto built = build_set_device(kFamily, "cwk0", c.update);
  ASSERT_TRUE(built.ok()) << built.error().message();
  ASSERT_EQ(built->messages().size(), 1U);
  Attrs expected;
  expected.string(WGDEVICE_A_IFNAME, "cwk0").append(c.expected);
  const Bytes want = genl_message(NLM_F_REQUEST, WG_CMD_SET_DEVICE, expected);
  EXPECT_EQ(wire(built->messages()[0]), want);
  EXPECT_FALSE(built->messages()[0].overflowed());
}

INSTANTIATE_TEST_SUITE_P(Table, SetMessageTest, testing::ValuesIn(set_cases()),
                         [](const testing::TestParamInfo<SetCase>& c) { return c.param.name; });

TEST(SetMessageTest, TheSmallestMessageSpelledOutInHex) {
  if constexpr (std::endian::native != std::endian::little) {
    GTEST_SKIP() << "the literal is little-endian";
  }
  auto built = build_set_device(kFamily, "cwk0", DeviceUpdate{});
  ASSERT_TRUE(built.ok());
  const Bytes expected = {
      0x20, 0x00, 0x00, 0x00,  // nlmsg_len 32
      0x1a, 0x00,              // nlmsg_type: the family id
      0x01, 0x00,              // NLM_F_REQUEST (Socket::request adds NLM_F_ACK)
      0x00, 0x00, 0x00, 0x00,  // sequence (set when sent)
      0x00, 0x00, 0x00, 0x00,  // port id
      0x01, 0x01, 0x00, 0x00,  // WG_CMD_SET_DEVICE, WG_GENL_VERSION, reserved
      0x09, 0x00, 0x02, 0x00,  // nla_len 9, WGDEVICE_A_IFNAME
      'c',  'w',  'k',  '0',  0x00, 0x00, 0x00, 0x00,  // "cwk0\0" and padding
  };
  EXPECT_EQ(wire(built->messages()[0]), expected);
}

TEST(SetMessageTest, RefusesWhatTheKernelCannotBeTold) {
  PeerUpdate clear_endpoint;
  clear_endpoint.peer.public_key = filled_key(0x22);
  clear_endpoint.set_endpoint = true;
  DeviceUpdate update;
  update.peers.push_back(clear_endpoint);
  auto r = build_set_device(kFamily, "cwk0", update);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("cannot be cleared"), std::string::npos);

  update.peers[0].peer.endpoint = endpoint("10.0.0.1:1");
  update.peers[0].peer.endpoint->port = 0;
  r = build_set_device(kFamily, "cwk0", update);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("port"), std::string::npos);

  for (const std::string name : {"", "sixteen-chars-xx", "a/b", "a b", "a:b", ".", ".."}) {
    auto bad = build_set_device(kFamily, name, DeviceUpdate{});
    ASSERT_FALSE(bad.ok()) << name;
    EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument) << name;
    EXPECT_FALSE(build_get_device(kFamily, name).ok()) << name;
  }
}

TEST(SetMessageTest, WipeClearsEveryBufferWhole) {
  DeviceUpdate update;
  update.private_key = filled_key(0x5a);
  PeerUpdate p;
  p.peer.public_key = filled_key(0x22);
  p.peer.preshared_key = filled_key(0x5b);
  p.set_preshared_key = true;
  update.peers.push_back(p);
  auto built = build_set_device(kFamily, "cwk0", update);
  ASSERT_TRUE(built.ok());
  const netlink::Request& m = built->messages()[0];
  const auto* first = reinterpret_cast<const std::uint8_t*>(m.header());
  const Bytes before(first, first + m.size());
  const Key secret = filled_key(0x5a);
  EXPECT_NE(std::search(before.begin(), before.end(), secret.bytes().begin(), secret.bytes().end()),
            before.end())
      << "the private key is in the message until it is wiped";
  built->wipe();
  for (const netlink::Request& each : built->messages()) {
    const auto* p0 = reinterpret_cast<const std::uint8_t*>(each.header());
    EXPECT_TRUE(std::all_of(p0, p0 + each.capacity(), [](std::uint8_t b) { return b == 0; }));
  }
}

// ---- SET: splitting ----

// What a series of SET messages says, put back together, with checks of the rules each
// message must follow.
struct Reassembled {
  std::size_t messages = 0;
  std::vector<std::pair<std::string, std::string>> peer_ips;  // (key, prefix) in order sent
  std::map<std::string, int> replace_allowed_ips;  // key -> times the flag was sent
  std::map<std::string, int> preshared_keys;       // key -> times sent
  std::map<std::string, int> fragments;            // key -> parts
  std::map<std::string, std::set<std::uint32_t>> flags;  // key -> every flags value sent
};

void reassemble_into(Reassembled& r, const SetDeviceMessages& built, std::size_t capacity) {
  r.messages = built.messages().size();
  for (std::size_t i = 0; i < built.messages().size(); ++i) {
    SCOPED_TRACE("message " + std::to_string(i));
    const netlink::Request& request = built.messages()[i];
    EXPECT_FALSE(request.overflowed());
    EXPECT_LE(request.size(), capacity);
    const Message m = decode(request);
    EXPECT_EQ(m.header.nlmsg_type, kFamily);
    EXPECT_EQ(m.genl.cmd, WG_CMD_SET_DEVICE);
    ASSERT_NE(find(m.attrs, WGDEVICE_A_IFNAME), nullptr) << "every message names the device";
    const bool device_fields = find(m.attrs, WGDEVICE_A_PRIVATE_KEY) != nullptr ||
                               find(m.attrs, WGDEVICE_A_FLAGS) != nullptr ||
                               find(m.attrs, WGDEVICE_A_LISTEN_PORT) != nullptr;
    if (i > 0) {
      EXPECT_FALSE(device_fields) << "device fields and REPLACE_PEERS only in the first";
    }
    const Attr* peers = find(m.attrs, WGDEVICE_A_PEERS);
    if (peers == nullptr) continue;
    EXPECT_TRUE(peers->nested);
    for (const Attr& peer_attr : walk(peers->payload)) {
      EXPECT_EQ(peer_attr.type, 0);
      const auto peer = walk(peer_attr.payload);
      const Attr* key = find(peer, WGPEER_A_PUBLIC_KEY);
      ASSERT_NE(key, nullptr);
      std::array<std::uint8_t, kKeyLength> raw{};
      ASSERT_EQ(key->payload.size(), raw.size());
      std::copy(key->payload.begin(), key->payload.end(), raw.begin());
      const std::string k = Key(raw).to_base64();
      ++r.fragments[k];
      const Attr* flags = find(peer, WGPEER_A_FLAGS);
      const std::uint32_t f = flags != nullptr ? as_u32(*flags) : 0;
      r.flags[k].insert(f);
      if ((f & WGPEER_F_REPLACE_ALLOWEDIPS) != 0) ++r.replace_allowed_ips[k];
      if (find(peer, WGPEER_A_PRESHARED_KEY) != nullptr) ++r.preshared_keys[k];
      if (const Attr* ips = find(peer, WGPEER_A_ALLOWEDIPS)) {
        for (const Attr& ip : walk(ips->payload)) {
          const auto fields = walk(ip.payload);
          const Attr* family = find(fields, WGALLOWEDIP_A_FAMILY);
          const Attr* address = find(fields, WGALLOWEDIP_A_IPADDR);
          const Attr* cidr = find(fields, WGALLOWEDIP_A_CIDR_MASK);
          ASSERT_TRUE(family && address && cidr);
          char text[INET6_ADDRSTRLEN] = {};
          std::uint16_t fam = 0;
          std::memcpy(&fam, family->payload.data(), sizeof fam);
          inet_ntop(fam, address->payload.data(), text, sizeof text);
          r.peer_ips.emplace_back(k, std::string(text) + "/" + std::to_string(cidr->payload[0]));
        }
      }
    }
  }
}

Reassembled reassemble(const SetDeviceMessages& built, std::size_t capacity) {
  Reassembled r;
  reassemble_into(r, built, capacity);
  return r;
}

std::string key_string(const Key& key) { return key.to_base64(); }

TEST(SetSplitTest, AThousandPeersWithTwoAllowedIPsEach) {
  DeviceUpdate update;
  update.private_key = filled_key(0x11);
  update.listen_port = 51820;
  update.replace_peers = true;
  std::vector<std::pair<std::string, std::string>> expected;
  for (std::uint32_t i = 0; i < 1000; ++i) {
    PeerUpdate p;
    p.peer.public_key = numbered_key(i);
    const std::string v4 =
        "10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".0/24";
    const std::string v6 = "fd00:" + std::to_string(i) + "::/64";
    p.peer.allowed_ips = {prefix(v4), prefix(v6)};
    p.replace_allowed_ips = true;
    update.peers.push_back(p);
    expected.emplace_back(key_string(p.peer.public_key), prefix(v4).to_string());
    expected.emplace_back(key_string(p.peer.public_key), prefix(v6).to_string());
  }
  constexpr std::size_t kCapacity = netlink::Request::kDefaultCapacity;
  auto built = build_set_device(kFamily, "cwk0", update, kCapacity);
  ASSERT_TRUE(built.ok()) << built.error().message();
  const Reassembled r = reassemble(*built, kCapacity);
  EXPECT_GT(r.messages, 10U);
  EXPECT_EQ(r.peer_ips, expected) << "every allowed IP exactly once, in order";
  ASSERT_EQ(r.replace_allowed_ips.size(), 1000U);
  for (const auto& [key, times] : r.replace_allowed_ips) {
    EXPECT_EQ(times, 1) << "REPLACE_ALLOWEDIPS once per peer, or it drops what came before";
  }
  std::size_t fragments = 0;
  for (const auto& [key, n] : r.fragments) fragments += static_cast<std::size_t>(n);
  // A peer cut in two by a message boundary is sent twice, at most once per boundary.
  EXPECT_LE(fragments, 1000U + r.messages - 1);
  // Messages are filled: all but the last hold at least capacity minus one peer's worth.
  for (std::size_t i = 0; i + 1 < built->messages().size(); ++i) {
    EXPECT_GT(built->messages()[i].size(), kCapacity - 200) << "message " << i;
  }
}

TEST(SetSplitTest, APeerContinuesInTheNextMessageWithoutReplacingItsAllowedIPs) {
  DeviceUpdate update;
  PeerUpdate big;
  big.peer.public_key = filled_key(0x22);
  big.peer.preshared_key = filled_key(0x33);
  big.peer.endpoint = endpoint("[fd00::2]:51820");
  std::vector<std::pair<std::string, std::string>> expected;
  for (int i = 0; i < 1000; ++i) {
    const std::string text = "fd00:" + std::to_string(i) + "::1/128";
    big.peer.allowed_ips.push_back(prefix(text));
    expected.emplace_back(key_string(big.peer.public_key), prefix(text).to_string());
  }
  big.replace_allowed_ips = big.update_only = big.set_preshared_key = big.set_endpoint = true;
  PeerUpdate small;
  small.peer.public_key = filled_key(0x44);
  small.peer.allowed_ips = {prefix("10.9.0.0/16")};
  expected.emplace_back(key_string(small.peer.public_key), "10.9.0.0/16");
  update.peers = {big, small};

  auto built = build_set_device(kFamily, "cwk0", update, 4096);
  ASSERT_TRUE(built.ok()) << built.error().message();
  const Reassembled r = reassemble(*built, 4096);
  EXPECT_GE(r.messages, 10U);  // 40 bytes per IPv6 allowed IP
  EXPECT_EQ(r.peer_ips, expected);
  const std::string k = key_string(big.peer.public_key);
  EXPECT_EQ(r.fragments.at(k), static_cast<int>(r.messages));
  EXPECT_EQ(r.replace_allowed_ips.at(k), 1);
  EXPECT_EQ(r.preshared_keys.at(k), 1) << "the other fields go with the first part only";
  // The first part replaces; every continuation keeps UPDATE_ONLY, so that a peer that did not
  // exist is not created half-way by a continuation.
  EXPECT_EQ(r.flags.at(k), (std::set<std::uint32_t>{
                               WGPEER_F_UPDATE_ONLY,
                               WGPEER_F_UPDATE_ONLY | WGPEER_F_REPLACE_ALLOWEDIPS}));
}

TEST(SetSplitTest, AtTheSmallestCapacityTheDeviceFieldsMayTravelAlone) {
  DeviceUpdate update;
  update.private_key = filled_key(0x11);
  update.listen_port = 1;
  update.fwmark = 2;
  update.replace_peers = true;
  std::vector<std::pair<std::string, std::string>> expected;
  for (std::uint32_t i = 0; i < 5; ++i) {
    PeerUpdate p;
    p.peer.public_key = numbered_key(i);
    p.peer.preshared_key = filled_key(0x33);
    p.peer.endpoint = endpoint("[fd00::2]:51820");
    p.peer.persistent_keepalive = 25;
    p.set_preshared_key = p.set_endpoint = p.set_keepalive = p.replace_allowed_ips = true;
    for (int j = 0; j < 4; ++j) {
      const std::string text = "fd00:" + std::to_string(i) + ":" + std::to_string(j) + "::/64";
      p.peer.allowed_ips.push_back(prefix(text));
      expected.emplace_back(key_string(p.peer.public_key), prefix(text).to_string());
    }
    update.peers.push_back(p);
  }
  constexpr std::size_t kCapacity = netlink::Request::kMinCapacity;
  auto built = build_set_device(kFamily, "cwk0", update, kCapacity);
  ASSERT_TRUE(built.ok()) << built.error().message();
  const Reassembled r = reassemble(*built, kCapacity);
  EXPECT_EQ(r.peer_ips, expected);
  const Message first = decode(built->messages()[0]);
  EXPECT_EQ(find(first.attrs, WGDEVICE_A_PEERS), nullptr)
      << "the first peer does not fit beside the device's fields";
  for (const auto& [key, times] : r.preshared_keys) EXPECT_EQ(times, 1);
}

// ---- GET: replies spread over messages ----

netlink::Reply reply(const Attrs& attrs, std::uint8_t cmd = WG_CMD_GET_DEVICE) {
  return netlink::Reply(genl_message(NLM_F_MULTI, cmd, attrs));
}

Attrs device_fields() {
  Attrs a;
  a.u16(WGDEVICE_A_LISTEN_PORT, 51820)
      .u32(WGDEVICE_A_FWMARK, 0x77)
      .u32(WGDEVICE_A_IFINDEX, 7)
      .string(WGDEVICE_A_IFNAME, "cwk0")
      .bytes(WGDEVICE_A_PRIVATE_KEY, key_bytes(filled_key(0x11)))
      .bytes(WGDEVICE_A_PUBLIC_KEY, key_bytes(filled_key(0x12)));
  return a;
}

Bytes timespec_bytes(std::int64_t seconds, std::int64_t nanoseconds) {
  Bytes out(16);
  std::memcpy(out.data(), &seconds, 8);
  std::memcpy(out.data() + 8, &nanoseconds, 8);
  return out;
}

// A peer as the kernel's get_peer writes it, first part (every field) or continuation
// (`full` false: the public key and allowed IPs only).
Attrs peer_attrs(const Key& key, const Attrs& ips, bool full = true) {
  Attrs a;
  a.bytes(WGPEER_A_PUBLIC_KEY, key_bytes(key));
  if (full) {
    a.bytes(WGPEER_A_PRESHARED_KEY, Bytes(kKeyLength, 0))
        .bytes(WGPEER_A_LAST_HANDSHAKE_TIME, timespec_bytes(1700000000, 5))
        .u16(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 25)
        .u64(WGPEER_A_TX_BYTES, 1000)
        .u64(WGPEER_A_RX_BYTES, 2000)
        .u32(WGPEER_A_PROTOCOL_VERSION, 1)
        .bytes(WGPEER_A_ENDPOINT, sockaddr4("127.0.0.1", 51821));
  }
  a.nested(WGPEER_A_ALLOWEDIPS, ips);
  return a;
}

TEST(GetParseTest, OneMessageSortsPeersAndAllowedIPs) {
  Attrs ips_b;
  ips_b.nested(0, allowed_ip(AF_INET6, "fd00::", 64))
      .nested(0, allowed_ip(AF_INET, "10.2.0.0", 16));
  Attrs peer_a =
      peer_attrs(filled_key(0x21), Attrs().nested(0, allowed_ip(AF_INET, "10.1.0.0", 16)));
  Attrs peer_b;
  peer_b.bytes(WGPEER_A_PUBLIC_KEY, key_bytes(filled_key(0x0b)))
      .bytes(WGPEER_A_PRESHARED_KEY, key_bytes(filled_key(0x33)))
      .bytes(WGPEER_A_LAST_HANDSHAKE_TIME, timespec_bytes(0, 0))
      .u16(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 0)
      .u64(WGPEER_A_TX_BYTES, 0)
      .u64(WGPEER_A_RX_BYTES, 0)
      .bytes(WGPEER_A_ENDPOINT, sockaddr6("fd00::9", 443))
      .nested(WGPEER_A_ALLOWEDIPS, ips_b);
  Attrs top = device_fields();
  top.nested(WGDEVICE_A_PEERS, Attrs().nested(0, peer_a).nested(0, peer_b));
  const std::vector<netlink::Reply> replies = {reply(top)};

  auto device = parse_get_device(replies);
  ASSERT_TRUE(device.ok()) << device.error().message();
  EXPECT_EQ(device->name, "");
  EXPECT_EQ(device->private_key, filled_key(0x11));
  EXPECT_EQ(device->public_key, filled_key(0x12));
  EXPECT_EQ(device->listen_port, 51820);
  EXPECT_EQ(device->fwmark, 0x77U);
  ASSERT_EQ(device->peers.size(), 2U);
  const Peer& b = device->peers[0];  // 0x0b... sorts first
  EXPECT_EQ(b.public_key, filled_key(0x0b));
  EXPECT_EQ(b.preshared_key, filled_key(0x33));
  EXPECT_EQ(b.endpoint, endpoint("[fd00::9]:443"));
  EXPECT_FALSE(b.last_handshake.has_value()) << "zero means never";
  EXPECT_EQ(b.allowed_ips, (std::vector{prefix("10.2.0.0/16"), prefix("fd00::/64")}));
  const Peer& a = device->peers[1];
  EXPECT_FALSE(a.preshared_key.has_value()) << "a zero preshared key means none";
  EXPECT_EQ(a.endpoint, endpoint("127.0.0.1:51821"));
  EXPECT_EQ(a.persistent_keepalive, 25);
  EXPECT_EQ(a.tx_bytes, 1000U);
  EXPECT_EQ(a.rx_bytes, 2000U);
  ASSERT_TRUE(a.last_handshake.has_value());
  EXPECT_EQ(a.last_handshake->time_since_epoch(),
            std::chrono::duration_cast<std::chrono::system_clock::duration>(
                std::chrono::seconds(1700000000) + std::chrono::nanoseconds(5)));
}

TEST(GetParseTest, ADeviceSpreadOverMessagesWithAPeerContinued) {
  const Key a = filled_key(0x21), b = filled_key(0x22), c = filled_key(0x23);
  Attrs m1 = device_fields();
  m1.nested(WGDEVICE_A_PEERS,
            Attrs()
                .nested(0, peer_attrs(a, Attrs().nested(0, allowed_ip(AF_INET, "10.1.0.0", 16))))
                .nested(0, peer_attrs(b, Attrs()
                                             .nested(0, allowed_ip(AF_INET, "10.2.2.0", 24))
                                             .nested(0, allowed_ip(AF_INET, "10.2.1.0", 24)))));
  // Later messages carry no device fields; b continues with its key and more allowed IPs.
  Attrs m2;
  m2.nested(WGDEVICE_A_PEERS,
            Attrs()
                .nested(0, peer_attrs(b, Attrs().nested(0, allowed_ip(AF_INET, "10.2.0.0", 24)),
                                      false))
                .nested(0, peer_attrs(c, Attrs().nested(0, allowed_ip(AF_INET6, "fd03::", 64)))));
  Attrs m3;
  m3.nested(WGDEVICE_A_PEERS,
            Attrs().nested(
                0, peer_attrs(c, Attrs().nested(0, allowed_ip(AF_INET6, "fd03:1::", 64)), false)));
  const std::vector<netlink::Reply> replies = {reply(m1), reply(m2), reply(m3)};

  auto device = parse_get_device(replies);
  ASSERT_TRUE(device.ok()) << device.error().message();
  EXPECT_EQ(device->listen_port, 51820) << "later messages do not reset the device's fields";
  ASSERT_EQ(device->peers.size(), 3U);
  EXPECT_EQ(device->peers[1].public_key, b);
  EXPECT_EQ(device->peers[1].allowed_ips,
            (std::vector{prefix("10.2.0.0/24"), prefix("10.2.1.0/24"), prefix("10.2.2.0/24")}));
  EXPECT_EQ(device->peers[1].endpoint, endpoint("127.0.0.1:51821"))
      << "a continuation keeps the fields of the first part";
  EXPECT_EQ(device->peers[1].rx_bytes, 2000U);
  EXPECT_TRUE(device->peers[1].last_handshake.has_value());
  EXPECT_EQ(device->peers[2].allowed_ips,
            (std::vector{prefix("fd03::/64"), prefix("fd03:1::/64")}));
}

TEST(GetParseTest, UnknownAttributesAreIgnoredAtEveryLevel) {
  Attrs ip = allowed_ip(AF_INET, "10.1.0.0", 16);
  ip.u32(99, 1);
  Attrs peer = peer_attrs(filled_key(0x21), Attrs().nested(0, ip));
  peer.u32(98, 1).nested(97, Attrs().u8(1, 1));
  Attrs top = device_fields();
  top.u64(96, 1).nested(WGDEVICE_A_PEERS, Attrs().nested(0, peer));
  const std::vector<netlink::Reply> replies = {reply(top)};
  auto device = parse_get_device(replies);
  ASSERT_TRUE(device.ok()) << device.error().message();
  ASSERT_EQ(device->peers.size(), 1U);
  EXPECT_EQ(device->peers[0].allowed_ips, std::vector{prefix("10.1.0.0/16")});
}

TEST(GetParseTest, HostBitsAreMaskedAsTheKernelDoes) {
  Attrs top;
  top.nested(WGDEVICE_A_PEERS,
             Attrs().nested(0, peer_attrs(filled_key(0x21),
                                          Attrs().nested(0, allowed_ip(AF_INET, "10.1.2.3", 16)))));
  const std::vector<netlink::Reply> replies = {reply(top)};
  auto device = parse_get_device(replies);
  ASSERT_TRUE(device.ok()) << device.error().message();
  EXPECT_EQ(device->peers[0].allowed_ips, std::vector{prefix("10.1.0.0/16")});
}

TEST(GetParseTest, ADeviceWithoutKeyOrPeers) {
  Attrs top;
  top.u16(WGDEVICE_A_LISTEN_PORT, 0).u32(WGDEVICE_A_FWMARK, 0).string(WGDEVICE_A_IFNAME, "cwk0");
  const std::vector<netlink::Reply> replies = {reply(top)};
  auto device = parse_get_device(replies);
  ASSERT_TRUE(device.ok()) << device.error().message();
  EXPECT_FALSE(device->private_key.has_value());
  EXPECT_FALSE(device->public_key.has_value());
  EXPECT_TRUE(device->peers.empty());
}

// ---- GET: malformed replies ----

struct GarbageCase {
  std::string name;
  std::vector<Bytes> messages;
  std::string says;  // part of the message
  friend void PrintTo(const GarbageCase& c, std::ostream* os) { *os << c.name; }
};

Bytes get_message(const Attrs& attrs) {
  return genl_message(NLM_F_MULTI, WG_CMD_GET_DEVICE, attrs);
}
Bytes with_peer(const Attrs& peer) {
  return get_message(Attrs().nested(WGDEVICE_A_PEERS, Attrs().nested(0, peer)));
}
Bytes with_allowed_ip(const Attrs& ip) {
  return with_peer(Attrs()
                       .bytes(WGPEER_A_PUBLIC_KEY, key_bytes(filled_key(1)))
                       .nested(WGPEER_A_ALLOWEDIPS, Attrs().nested(0, ip)));
}
Attrs keyed() { return Attrs().bytes(WGPEER_A_PUBLIC_KEY, key_bytes(filled_key(1))); }

std::vector<GarbageCase> garbage_cases() {
  std::vector<GarbageCase> cases;
  cases.push_back({"NoMessage", {}, "no message"});
  {
    Bytes short_one = get_message(Attrs());
    short_one.resize(sizeof(nlmsghdr) + 2);
    cases.push_back({"ShorterThanItsGenlHeader", {short_one}, "generic netlink header"});
  }
  cases.push_back(
      {"AnotherCommand", {genl_message(NLM_F_MULTI, WG_CMD_SET_DEVICE, Attrs())}, "command 1"});
  cases.push_back(
      {"ShortListenPort", {get_message(Attrs().u8(WGDEVICE_A_LISTEN_PORT, 1))}, "listen port"});
  cases.push_back({"ShortPrivateKey",
                   {get_message(Attrs().bytes(WGDEVICE_A_PRIVATE_KEY, Bytes(31, 1)))},
                   "31 bytes"});
  cases.push_back({"LongFwmark", {get_message(Attrs().u64(WGDEVICE_A_FWMARK, 1))}, "fwmark"});
  {
    Bytes b = get_message(Attrs().u32(WGDEVICE_A_FWMARK, 1));
    b[sizeof(nlmsghdr) + GENL_HDRLEN] = 40;  // nla_len past the end
    cases.push_back({"AttributeRunsPastTheEnd", {b}, "truncated attribute"});
  }
  {
    Bytes b = get_message(Attrs().u32(WGDEVICE_A_FWMARK, 1));
    b[sizeof(nlmsghdr) + GENL_HDRLEN] = 2;  // nla_len shorter than its header
    cases.push_back({"AttributeShorterThanItsHeader", {b}, "truncated attribute"});
  }
  {
    Attrs peers;
    peers.raw(WGDEVICE_A_PEERS | NLA_F_NESTED, "\x20\x00\x00\x00", 4);  // a member of 32 in 4
    cases.push_back({"TruncatedPeerList", {get_message(peers)}, "truncated list of peers"});
  }
  cases.push_back({"TruncatedPeer",
                   {get_message(Attrs().nested(
                       WGDEVICE_A_PEERS, Attrs().raw(NLA_F_NESTED, "\x10\x00\x01\x00", 4)))},
                   "truncated peer"});
  cases.push_back({"PeerWithoutKey",
                   {with_peer(Attrs().u16(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 1))},
                   "without a public key"});
  cases.push_back({"ShortPeerKey",
                   {with_peer(Attrs().bytes(WGPEER_A_PUBLIC_KEY, Bytes(16, 1)))},
                   "16 bytes"});
  cases.push_back({"ShortPresharedKey",
                   {with_peer(keyed().bytes(WGPEER_A_PRESHARED_KEY, Bytes(8, 1)))},
                   "preshared key"});
  cases.push_back({"ShortEndpoint",
                   {with_peer(keyed().bytes(WGPEER_A_ENDPOINT, Bytes(8, 0)))},
                   "endpoint"});
  {
    Bytes e = sockaddr4("10.0.0.1", 1);
    e[0] = 99;
    e[1] = 0;
    cases.push_back(
        {"EndpointOfAnotherFamily", {with_peer(keyed().bytes(WGPEER_A_ENDPOINT, e))}, "family 99"});
  }
  cases.push_back({"IPv4EndpointInIPv6Size",
                   {with_peer(keyed().bytes(WGPEER_A_ENDPOINT, [] {
                     Bytes e = sockaddr6("::1", 1);
                     const sa_family_t v4 = AF_INET;
                     std::memcpy(e.data(), &v4, sizeof v4);
                     return e;
                   }()))},
                   "endpoint"});
  cases.push_back({"ShortHandshakeTime",
                   {with_peer(keyed().bytes(WGPEER_A_LAST_HANDSHAKE_TIME, Bytes(8, 1)))},
                   "handshake"});
  cases.push_back(
      {"NegativeHandshakeTime",
       {with_peer(keyed().bytes(WGPEER_A_LAST_HANDSHAKE_TIME, timespec_bytes(-1, 0)))},
       "impossible handshake"});
  cases.push_back(
      {"HandshakeNanosecondsOverflow",
       {with_peer(keyed().bytes(WGPEER_A_LAST_HANDSHAKE_TIME, timespec_bytes(1, 1000000000)))},
       "impossible handshake"});
  cases.push_back({"HandshakeFarFuture",
                   {with_peer(keyed().bytes(WGPEER_A_LAST_HANDSHAKE_TIME,
                                            timespec_bytes(INT64_MAX, 0)))},
                   "impossible handshake"});
  cases.push_back(
      {"ShortRxBytes", {with_peer(keyed().u32(WGPEER_A_RX_BYTES, 1))}, "received byte count"});
  cases.push_back({"ShortKeepalive",
                   {with_peer(keyed().u32(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 1))},
                   "keepalive"});
  cases.push_back({"TruncatedAllowedIPList",
                   {with_peer(keyed().raw(WGPEER_A_ALLOWEDIPS | NLA_F_NESTED, "\x40\x00", 2))},
                   "truncated list of allowed IPs"});
  cases.push_back({"AllowedIPPrefixTooLong",
                   {with_allowed_ip(allowed_ip(AF_INET, "10.0.0.0", 33))},
                   "10.0.0.0/33"});
  cases.push_back({"AllowedIPv6PrefixTooLong",
                   {with_allowed_ip(allowed_ip(AF_INET6, "fd00::", 129))},
                   "fd00::/129"});
  {
    Attrs ip;
    ip.u16(WGALLOWEDIP_A_FAMILY, AF_INET6).bytes(WGALLOWEDIP_A_IPADDR, Bytes(4, 10)).u8(
        WGALLOWEDIP_A_CIDR_MASK, 8);
    cases.push_back({"AllowedIPFamilyAndSizeDisagree", {with_allowed_ip(ip)}, "4 address bytes"});
  }
  {
    Attrs ip;
    ip.u16(WGALLOWEDIP_A_FAMILY, 7).bytes(WGALLOWEDIP_A_IPADDR, Bytes(4, 10)).u8(
        WGALLOWEDIP_A_CIDR_MASK, 8);
    cases.push_back({"AllowedIPOfUnknownFamily", {with_allowed_ip(ip)}, "family 7"});
  }
  {
    Attrs ip;
    ip.u16(WGALLOWEDIP_A_FAMILY, AF_INET).bytes(WGALLOWEDIP_A_IPADDR, Bytes(4, 10));
    cases.push_back({"AllowedIPWithoutPrefixLength", {with_allowed_ip(ip)}, "lacks a field"});
  }
  {
    Attrs ip;
    ip.u16(WGALLOWEDIP_A_FAMILY, AF_INET).bytes(WGALLOWEDIP_A_IPADDR, Bytes(4, 10)).u16(
        WGALLOWEDIP_A_CIDR_MASK, 8);
    cases.push_back({"AllowedIPPrefixLengthOfTwoBytes", {with_allowed_ip(ip)}, "prefix length"});
  }
  {
    // A good first message does not excuse a bad second one.
    Attrs good = device_fields();
    cases.push_back({"BadSecondMessage",
                     {get_message(good), with_peer(Attrs().u8(WGPEER_A_PUBLIC_KEY, 1))},
                     "message 2"});
  }
  return cases;
}

class GetGarbageTest : public testing::TestWithParam<GarbageCase> {};

TEST_P(GetGarbageTest, IsAnErrorNotACrash) {
  const GarbageCase& c = GetParam();
  std::vector<netlink::Reply> replies;
  for (const Bytes& m : c.messages) replies.emplace_back(m);
  auto device = parse_get_device(replies);
  ASSERT_FALSE(device.ok());
  EXPECT_EQ(device.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(device.error().message().find(c.says), std::string::npos) << device.error().message();
  EXPECT_EQ(device.error().message().find(key_string(filled_key(0x11))), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Table, GetGarbageTest, testing::ValuesIn(garbage_cases()),
                         [](const testing::TestParamInfo<GarbageCase>& c) {
                           return c.param.name;
                         });

std::vector<Bytes> a_real_looking_dump() {
  Attrs m1 = device_fields();
  m1.nested(WGDEVICE_A_PEERS,
            Attrs()
                .nested(0, peer_attrs(filled_key(0x21),
                                      Attrs().nested(0, allowed_ip(AF_INET, "10.1.0.0", 16))))
                .nested(0, peer_attrs(filled_key(0x22),
                                      Attrs().nested(0, allowed_ip(AF_INET6, "fd00::", 64)))));
  Attrs m2;
  m2.nested(WGDEVICE_A_PEERS,
            Attrs().nested(0, peer_attrs(filled_key(0x22),
                                         Attrs().nested(0, allowed_ip(AF_INET, "10.2.0.0", 16)),
                                         false)));
  return {get_message(m1), get_message(m2)};
}

TEST(GetParseTest, EveryTruncationIsHandled) {
  const std::vector<Bytes> dump = a_real_looking_dump();
  ASSERT_TRUE(parse_get_device(std::vector<netlink::Reply>{netlink::Reply(dump[0]),
                                                           netlink::Reply(dump[1])})
                  .ok());
  for (std::size_t which = 0; which < dump.size(); ++which) {
    for (std::size_t n = 0; n < dump[which].size(); ++n) {
      std::vector<netlink::Reply> replies;
      for (std::size_t i = 0; i < dump.size(); ++i) {
        Bytes b = dump[i];
        if (i == which) b.resize(n);  // the header's nlmsg_len still claims the whole
        replies.emplace_back(std::move(b));
      }
      auto device = parse_get_device(replies);  // an error or a device, never a crash
      if (!device.ok()) {
        EXPECT_EQ(device.error().code(), ErrorCode::kInvalidArgument);
      }
    }
  }
}

TEST(GetParseTest, EverySingleByteCorruptionIsHandled) {
  const std::vector<Bytes> dump = a_real_looking_dump();
  for (std::size_t at = 0; at < dump[0].size(); ++at) {
    for (const int x : {0x01, 0x80, 0xff}) {
      Bytes b = dump[0];
      b[at] = static_cast<std::uint8_t>(b[at] ^ x);
      const std::vector<netlink::Reply> replies = {netlink::Reply(b), netlink::Reply(dump[1])};
      auto device = parse_get_device(replies);
      if (!device.ok()) {
        EXPECT_EQ(device.error().code(), ErrorCode::kInvalidArgument);
      }
    }
  }
}

// What set() sends reads back the same through the parser: the SET and GET layouts agree on
// peers and allowed IPs (the kernel's dump repeats a SET's nesting).
TEST(GetParseTest, ASplitSetReadsBackAsTheSamePeers) {
  DeviceUpdate update;
  for (std::uint32_t i = 0; i < 300; ++i) {
    PeerUpdate p;
    p.peer.public_key = numbered_key(299 - i);  // unsorted on purpose
    p.peer.allowed_ips = {
        prefix("10.0." + std::to_string(i % 256) + "." + std::to_string(i / 256) + "/32"),
        prefix("fd00::" + std::to_string(i + 1) + "/128")};
    update.peers.push_back(p);
  }
  auto built = build_set_device(kFamily, "cwk0", update, 2048);
  ASSERT_TRUE(built.ok());
  ASSERT_GT(built->messages().size(), 5U);
  std::vector<netlink::Reply> replies;
  for (const auto& m : built->messages()) {
    Bytes b(m.bytes().begin(), m.bytes().end());
    b[sizeof(nlmsghdr)] = WG_CMD_GET_DEVICE;  // the same attributes, as a dump would carry them
    replies.emplace_back(std::move(b));
  }
  auto device = parse_get_device(replies);
  ASSERT_TRUE(device.ok()) << device.error().message();
  ASSERT_EQ(device->peers.size(), 300U);
  for (std::uint32_t i = 0; i < 300; ++i) {
    const PeerUpdate& sent = update.peers[299 - i];
    EXPECT_TRUE(same_config(device->peers[i], sent.peer)) << i;
  }
}

}  // namespace
}  // namespace cw::wg
