#include "common/wireguard/uapi.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "common/wireguard/uapi_control.h"

namespace cw::wg {
namespace {

Key filled_key(std::uint8_t byte) {
  std::array<std::uint8_t, kKeyLength> bytes{};
  bytes.fill(byte);
  return Key(bytes);
}
std::string hex_of(std::uint8_t byte) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string two{kHex[byte >> 4], kHex[byte & 0xf]};
  std::string out;
  for (std::size_t i = 0; i < kKeyLength; ++i) {
    out += two;
  }
  return out;
}
net::Prefix prefix(std::string_view text) {
  return net::Prefix::parse(text).value();
}
Endpoint endpoint(std::string_view text) {
  return Endpoint::parse(text).value();
}
Key b64(std::string_view text) {
  return Key::from_base64(text).value();
}

// ---- Replies captured from the real wireguard-go ----
// wireguard-go v0.0.20220316 (Debian 12), two instances in network namespaces joined by a
// veth pair, configured with `wg set` and the raw protocol, after a ping through the tunnel.
// The keys are throwaway keys made for the capture.

// Side A: the tunnel's peer (B), and a second peer with an IPv6 endpoint, a preshared key and
// keepalive; wireguard-go lists allowed IPs in insertion order and peers in map order.
constexpr std::string_view kCaptureTwoPeers =
    "private_key=b0c5d50cc3d1ca28af31d10f0c156efcf98f2fc72f9119a82e696b220ae42344\n"
    "listen_port=51820\n"
    "public_key=b719eb72619e332e62e7b8d03cec12f5f80b7f110f96376fde91eeac56d4b138\n"
    "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n"
    "protocol_version=1\n"
    "endpoint=10.123.0.2:51820\n"
    "last_handshake_time_sec=1795254327\n"
    "last_handshake_time_nsec=811616560\n"
    "tx_bytes=92\n"
    "rx_bytes=180\n"
    "persistent_keepalive_interval=0\n"
    "allowed_ip=10.124.0.2/32\n"
    "public_key=264d18a268e51fe1137811d3825f80feec867f6f58c008488008f33f1089114e\n"
    "preshared_key=264d18a268e51fe1137811d3825f80feec867f6f58c008488008f33f1089114e\n"
    "protocol_version=1\n"
    "endpoint=[2001:db8::1]:51820\n"
    "last_handshake_time_sec=0\n"
    "last_handshake_time_nsec=0\n"
    "tx_bytes=148\n"
    "rx_bytes=0\n"
    "persistent_keepalive_interval=25\n"
    "allowed_ip=fd00::/64\n"
    "allowed_ip=10.98.0.0/16\n"
    "allowed_ip=10.97.0.0/16\n"
    "allowed_ip=fd00:1::/64\n"
    "errno=0\n"
    "\n";
// `wg show` for the same device: its public key and the first peer's, in base64.
constexpr std::string_view kCaptureTwoPeersPublicKey =
    "pazMV/yvz8gMcq15MSR16Cy84q53t6lA/Pzf42FWdiI=";
constexpr std::string_view kCaptureTwoPeersPeerB = "txnrcmGeMy5i57jQPOwS9fgLfxEPljdv3pHurFbUsTg=";

// Side B, a moment later.
constexpr std::string_view kCaptureOtherSide =
    "private_key=b8099eada24d3014d8c92e66a317cc4bdf863999f50ca0e03b5a6f5eb6b64d4f\n"
    "listen_port=51820\n"
    "public_key=a5accc57fcafcfc80c72ad79312475e82cbce2ae77b7a940fcfcdfe361567622\n"
    "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n"
    "protocol_version=1\n"
    "endpoint=10.123.0.1:51820\n"
    "last_handshake_time_sec=1795254327\n"
    "last_handshake_time_nsec=811470683\n"
    "tx_bytes=656\n"
    "rx_bytes=624\n"
    "persistent_keepalive_interval=0\n"
    "allowed_ip=10.124.0.1/32\n"
    "errno=0\n"
    "\n";

// A wireguard-go that has just started: it picks a random port and has no key.
constexpr std::string_view kCaptureFresh = "listen_port=40908\nerrno=0\n\n";
// Its answer to a set=1 with a key it does not know, or an allowed_ip of "bogus".
constexpr std::string_view kCaptureSetRefused = "errno=-22\n\n";

// ---- encode_set ----

struct EncodeCase {
  std::string name;
  DeviceUpdate update;
  std::string expected;
  friend void PrintTo(const EncodeCase& c, std::ostream* os) { *os << c.name; }
};

PeerUpdate peer_update(std::uint8_t key_byte) {
  PeerUpdate p;
  p.peer.public_key = filled_key(key_byte);
  return p;
}

std::vector<EncodeCase> encode_cases() {
  std::vector<EncodeCase> cases;
  cases.push_back({"Empty", {}, "set=1\n\n"});
  {
    DeviceUpdate u;
    u.private_key = filled_key(0x11);
    u.listen_port = 51820;
    u.fwmark = 0x1234;
    cases.push_back(
        {"DeviceFields", u,
         "set=1\nprivate_key=" + hex_of(0x11) + "\nlisten_port=51820\nfwmark=4660\n\n"});
  }
  {
    DeviceUpdate u;  // 0 is meaningful: a random port, no mark
    u.listen_port = 0;
    u.fwmark = 0;
    cases.push_back({"ZeroPortAndMarkAreSent", u, "set=1\nlisten_port=0\nfwmark=0\n\n"});
  }
  {
    DeviceUpdate u;
    u.replace_peers = true;
    PeerUpdate p = peer_update(0x22);
    p.peer.preshared_key = filled_key(0x33);
    p.peer.endpoint = endpoint("192.0.2.1:51820");
    p.peer.persistent_keepalive = 25;
    p.peer.allowed_ips = {prefix("10.1.0.0/16"), prefix("fd00::/64"), prefix("10.0.0.0/8")};
    p.set_preshared_key = p.set_endpoint = p.set_keepalive = p.replace_allowed_ips = true;
    u.peers.push_back(p);
    cases.push_back({"ReplacePeersWithEveryPeerField", u,
                     "set=1\nreplace_peers=true\npublic_key=" + hex_of(0x22) +
                         "\npreshared_key=" + hex_of(0x33) +
                         "\nendpoint=192.0.2.1:51820\npersistent_keepalive_interval=25\n"
                         "replace_allowed_ips=true\nallowed_ip=10.1.0.0/16\nallowed_ip=fd00::/64\n"
                         "allowed_ip=10.0.0.0/8\n\n"});
  }
  {
    DeviceUpdate u;
    PeerUpdate p = peer_update(0x22);
    p.remove = true;
    p.update_only = p.set_preshared_key = p.set_endpoint = p.replace_allowed_ips = true;
    p.peer.endpoint = endpoint("192.0.2.1:1");
    p.peer.allowed_ips = {prefix("10.0.0.0/8")};
    u.peers.push_back(p);
    cases.push_back({"RemoveSendsNothingElseForThatPeer", u,
                     "set=1\npublic_key=" + hex_of(0x22) + "\nremove=true\n\n"});
  }
  {
    DeviceUpdate u;
    PeerUpdate p = peer_update(0x22);
    p.update_only = p.set_keepalive = true;
    p.peer.allowed_ips = {prefix("10.9.0.0/16")};
    u.peers.push_back(p);
    cases.push_back({"UpdateOnlyComesRightAfterPublicKey", u,
                     "set=1\npublic_key=" + hex_of(0x22) +
                         "\nupdate_only=true\npersistent_keepalive_interval=0\n"
                         "allowed_ip=10.9.0.0/16\n\n"});
  }
  {
    DeviceUpdate u;
    PeerUpdate p = peer_update(0x22);
    p.set_preshared_key = true;  // with no key: clear it
    u.peers.push_back(p);
    cases.push_back(
        {"ClearingAPresharedKeySendsZeros", u,
         "set=1\npublic_key=" + hex_of(0x22) + "\npreshared_key=" + hex_of(0) + "\n\n"});
  }
  {
    DeviceUpdate u;
    PeerUpdate p = peer_update(0x22);
    p.peer.preshared_key = filled_key(0x33);
    p.peer.endpoint = endpoint("192.0.2.1:51820");
    p.peer.persistent_keepalive = 25;
    p.peer.allowed_ips = {prefix("10.0.0.0/8")};
    u.peers.push_back(p);
    cases.push_back({"FieldsWithoutTheirFlagsAreNotSent", u,
                     "set=1\npublic_key=" + hex_of(0x22) + "\nallowed_ip=10.0.0.0/8\n\n"});
  }
  {
    DeviceUpdate u;
    PeerUpdate p = peer_update(0x22);
    p.set_endpoint = true;
    p.peer.endpoint = endpoint("[2001:DB8::1]:51820");
    u.peers.push_back(p);
    cases.push_back({"Ipv6EndpointInBrackets", u,
                     "set=1\npublic_key=" + hex_of(0x22) + "\nendpoint=[2001:db8::1]:51820\n\n"});
  }
  {
    DeviceUpdate u;
    u.peers.push_back(peer_update(0x44));
    u.peers.push_back(peer_update(0x22));
    cases.push_back(
        {"PeersInTheOrderGiven", u,
         "set=1\npublic_key=" + hex_of(0x44) + "\npublic_key=" + hex_of(0x22) + "\n\n"});
  }
  return cases;
}

class EncodeSetTest : public testing::TestWithParam<EncodeCase> {};

TEST_P(EncodeSetTest, WritesTheRequest) {
  EXPECT_EQ(encode_set(GetParam().update), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(Table, EncodeSetTest, testing::ValuesIn(encode_cases()),
                         [](const auto& test) { return test.param.name; });

TEST(EncodeSetTest, WipeOverwritesTheWholeBuffer) {
  DeviceUpdate u;
  u.private_key = filled_key(0x5a);
  std::string request = encode_set(u);
  ASSERT_NE(request.find(hex_of(0x5a)), std::string::npos);
  const char* storage = request.data();
  const std::size_t capacity = request.capacity();
  wipe(request);
  EXPECT_TRUE(request.empty());
  ASSERT_EQ(request.data(), storage);  // no reallocation: the bytes checked are the key's
  for (std::size_t i = 0; i < capacity; ++i) {
    ASSERT_EQ(storage[i], '\0') << "byte " << i;
  }
}

TEST(CheckEncodableTest, RefusesWhatUapiCannotSay) {
  DeviceUpdate u;
  PeerUpdate p = peer_update(0x22);
  EXPECT_TRUE(check_encodable(u).ok());
  p.set_endpoint = true;
  u.peers = {p};
  auto r = check_encodable(u);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("cannot clear"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find(filled_key(0x22).to_base64()), std::string::npos);

  u.peers[0].peer.endpoint = Endpoint{net::IpAddress::parse("192.0.2.1").value(), 0};
  EXPECT_FALSE(check_encodable(u).ok());

  u.peers[0].remove = true;  // a removed peer's other fields are not sent
  EXPECT_TRUE(check_encodable(u).ok());
}

// ---- parse_get ----

TEST(ParseGetTest, RealReplyWithTwoPeers) {
  auto d = parse_get(kCaptureTwoPeers);
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->name, "");
  ASSERT_TRUE(d->private_key.has_value());
  EXPECT_EQ(d->private_key->to_hex(),
            "b0c5d50cc3d1ca28af31d10f0c156efcf98f2fc72f9119a82e696b220ae42344");
  ASSERT_TRUE(d->public_key.has_value());
  EXPECT_EQ(d->public_key->to_base64(), kCaptureTwoPeersPublicKey);  // as `wg show` said
  EXPECT_EQ(d->listen_port, 51820);
  EXPECT_EQ(d->fwmark, 0U);
  ASSERT_EQ(d->peers.size(), 2U);

  // Sorted by public key: 264d... before b719...
  const Peer& second = d->peers[0];
  EXPECT_EQ(second.public_key.to_hex(),
            "264d18a268e51fe1137811d3825f80feec867f6f58c008488008f33f1089114e");
  ASSERT_TRUE(second.preshared_key.has_value());
  EXPECT_EQ(*second.preshared_key, second.public_key);
  EXPECT_EQ(second.endpoint, endpoint("[2001:db8::1]:51820"));
  EXPECT_FALSE(second.last_handshake.has_value());
  EXPECT_EQ(second.tx_bytes, 148U);
  EXPECT_EQ(second.rx_bytes, 0U);
  EXPECT_EQ(second.persistent_keepalive, 25);
  EXPECT_EQ(second.allowed_ips,
            (std::vector<net::Prefix>{prefix("10.97.0.0/16"), prefix("10.98.0.0/16"),
                                      prefix("fd00::/64"), prefix("fd00:1::/64")}));

  const Peer& tunnel = d->peers[1];
  EXPECT_EQ(tunnel.public_key, b64(kCaptureTwoPeersPeerB));
  EXPECT_FALSE(tunnel.preshared_key.has_value());  // zeros: none
  EXPECT_EQ(tunnel.endpoint, endpoint("10.123.0.2:51820"));
  ASSERT_TRUE(tunnel.last_handshake.has_value());
  EXPECT_EQ(tunnel.last_handshake->time_since_epoch(),
            std::chrono::seconds(1795254327) + std::chrono::nanoseconds(811616560));
  EXPECT_EQ(tunnel.tx_bytes, 92U);
  EXPECT_EQ(tunnel.rx_bytes, 180U);
  EXPECT_EQ(tunnel.persistent_keepalive, 0);
  EXPECT_EQ(tunnel.allowed_ips, std::vector<net::Prefix>{prefix("10.124.0.2/32")});
}

TEST(ParseGetTest, RealReplyFromTheOtherSideNamesSideAAsItsPeer) {
  auto a = parse_get(kCaptureTwoPeers);
  auto b = parse_get(kCaptureOtherSide);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(b->peers.size(), 1U);
  EXPECT_EQ(b->peers[0].public_key, *a->public_key);
  EXPECT_EQ(*b->public_key, a->peers[1].public_key);
  EXPECT_EQ(b->peers[0].rx_bytes, 624U);
}

TEST(ParseGetTest, RealReplyOfAFreshDevice) {
  auto d = parse_get(kCaptureFresh);
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_FALSE(d->private_key.has_value());
  EXPECT_FALSE(d->public_key.has_value());
  EXPECT_EQ(d->listen_port, 40908);
  EXPECT_TRUE(d->peers.empty());
}

TEST(ParseGetTest, UnknownKeysAreIgnoredAtEitherLevel) {
  const std::string reply =
      "jc=4\nfuture_device_key=x=y\nlisten_port=7\npublic_key=" + hex_of(0x22) +
      "\nfuture_peer_key=\nallowed_ip=10.0.0.0/8\nerrno=0\n\n";
  auto d = parse_get(reply);
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->listen_port, 7);
  ASSERT_EQ(d->peers.size(), 1U);
  EXPECT_EQ(d->peers[0].allowed_ips.size(), 1U);
}

TEST(ParseGetTest, ZeroKeysMeanNone) {
  auto d = parse_get("private_key=" + hex_of(0) + "\npublic_key=" + hex_of(0x22) +
                     "\npreshared_key=" + hex_of(0) + "\nerrno=0\n\n");
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_FALSE(d->private_key.has_value());
  EXPECT_FALSE(d->public_key.has_value());
  EXPECT_FALSE(d->peers[0].preshared_key.has_value());
}

TEST(ParseGetTest, EveryTruncationOfARealReplyIsUnavailableNeverACrash) {
  for (const std::string_view capture : {kCaptureTwoPeers, kCaptureOtherSide, kCaptureFresh}) {
    for (std::size_t n = 0; n < capture.size(); ++n) {
      auto d = parse_get(capture.substr(0, n));
      ASSERT_FALSE(d.ok()) << n;
      EXPECT_EQ(d.error().code(), ErrorCode::kUnavailable) << n << ": " << d.error().message();
    }
  }
}

TEST(ParseGetTest, EverySingleByteCorruptionOfARealReplyIsHandled) {
  // Whatever the byte becomes, the parser answers (a value or an error) without crashing or
  // reading out of bounds; run under CW_SANITIZE to make the latter visible.
  const std::string original(kCaptureTwoPeers);
  std::size_t errors = 0;
  for (std::size_t i = 0; i < original.size(); ++i) {
    for (const char c : {'\n', '=', '\0', '-', '0', 'f', 'g', '/', ':', '\xff'}) {
      std::string mutated = original;
      mutated[i] = c;
      auto d = parse_get(mutated);
      if (!d.ok()) {
        ++errors;
        EXPECT_FALSE(d.error().message().empty());
      }
    }
  }
  EXPECT_GT(errors, original.size());  // most corruptions are caught
}

struct GarbageCase {
  std::string name;
  std::string reply;
  ErrorCode code;
  std::string message;  // a part of the message
  friend void PrintTo(const GarbageCase& c, std::ostream* os) { *os << c.name; }
};

std::vector<GarbageCase> garbage_cases() {
  const std::string peer = "public_key=" + hex_of(0x22) + "\n";
  const auto line = [](const std::string& text) { return text + "\nerrno=0\n\n"; };
  using E = ErrorCode;
  return {
      {"Empty", "", E::kUnavailable, "without its closing blank line"},
      {"NoBlankLine", "errno=0\n", E::kUnavailable, "without its closing blank line"},
      {"CutMidLine", "listen_port=51", E::kUnavailable, "truncated"},
      {"OnlyABlankLine", "\n", E::kUnavailable, "without errno"},
      {"NoErrnoLine", "listen_port=1\n\n", E::kUnavailable, "does not end with errno="},
      {"TrailingData", "errno=0\n\nlisten_port=1\n", E::kInvalidArgument, "follow its closing"},
      {"TwoReplies", "errno=0\n\nerrno=0\n\n", E::kInvalidArgument, "follow its closing"},
      {"ErrnoEinval", "errno=-22\n\n", E::kInvalidArgument, "EINVAL"},
      {"ErrnoPositive", "errno=22\n\n", E::kInvalidArgument, "EINVAL"},
      {"ErrnoAddressInUse", "errno=-98\n\n", E::kConflict, "EADDRINUSE"},
      {"ErrnoIo", "errno=-5\n\n", E::kUnavailable, "EIO"},
      {"ErrnoUnknownToWireguardGo", "errno=-55\n\n", E::kInternal, "ENOANO"},
      {"ErrnoNotANumber", "errno=abc\n\n", E::kInvalidArgument, "not an integer"},
      {"ErrnoEmpty", "errno=\n\n", E::kInvalidArgument, "not an integer"},
      {"ErrnoHuge", "errno=99999999999\n\n", E::kInvalidArgument, "not an integer"},
      {"ErrnoSpace", "errno= 0\n\n", E::kInvalidArgument, "not an integer"},
      {"ErrnoInTheMiddle", "errno=0\nlisten_port=1\nerrno=0\n\n", E::kInvalidArgument,
       "line 1: errno= before the end"},
      {"ErrnoWinsOverGarbage", "garbage\nerrno=-22\n\n", E::kInvalidArgument, "EINVAL"},
      {"LineWithoutEquals", line("garbage"), E::kInvalidArgument,
       "line 1 (7 bytes) is not key=value"},
      {"EmptyKey", line("=5"), E::kInvalidArgument, "line 1 (2 bytes) is not key=value"},
      {"EmptyLineInside", "listen_port=1\n\nerrno=0\n\n", E::kInvalidArgument,
       "follow its closing"},
      {"PrivateKeyNotHex", line("private_key=" + std::string(64, 'z')), E::kInvalidArgument,
       "line 1: private_key: a WireGuard key in hex must be 64 hex digits"},
      {"PrivateKeyShort", line("private_key=" + hex_of(0x11).substr(1)), E::kInvalidArgument,
       "64 hex digits"},
      {"PrivateKeyTwice", line("private_key=" + hex_of(0x11) + "\nprivate_key=" + hex_of(0x11)),
       E::kInvalidArgument, "line 2: private_key given twice"},
      {"ListenPortTooBig", line("listen_port=65536"), E::kInvalidArgument,
       "listen_port=\"65536\" is not a number from 0 to 65535"},
      {"ListenPortNegative", line("listen_port=-1"), E::kInvalidArgument, "not a number"},
      {"ListenPortPlus", line("listen_port=+1"), E::kInvalidArgument, "not a number"},
      {"ListenPortSpace", line("listen_port= 1"), E::kInvalidArgument, "not a number"},
      {"ListenPortSuffix", line("listen_port=1x"), E::kInvalidArgument, "not a number"},
      {"ListenPortEmpty", line("listen_port="), E::kInvalidArgument, "not a number"},
      {"ListenPortCarriageReturn", "listen_port=1\r\nerrno=0\n\n", E::kInvalidArgument,
       "listen_port=\"1\\x0d\""},
      {"ListenPortNul", std::string("listen_port=1") + '\0' + "\nerrno=0\n\n", E::kInvalidArgument,
       "listen_port=\"1\\x00\""},
      {"ListenPortTwice", line("listen_port=1\nlisten_port=2"), E::kInvalidArgument, "given twice"},
      {"FwmarkTooBig", line("fwmark=4294967296"), E::kInvalidArgument, "0 to 4294967295"},
      {"PeerKeyBeforeAnyPeer", line("endpoint=192.0.2.1:1"), E::kInvalidArgument,
       "endpoint before any public_key"},
      {"DeviceKeyInsideAPeer", line(peer + "listen_port=1"), E::kInvalidArgument,
       "line 2: listen_port inside the section of peer"},
      {"PublicKeyNotHex", line("public_key=xyz"), E::kInvalidArgument,
       "public_key: a WireGuard key"},
      {"PresharedKeyNotHex", line(peer + "preshared_key=0"), E::kInvalidArgument,
       "line 2: preshared_key: a WireGuard key"},
      {"ProtocolVersion2", line(peer + "protocol_version=2"), E::kInvalidArgument,
       "protocol_version=\"2\" is not supported"},
      {"EndpointGarbage", line(peer + "endpoint=nowhere"), E::kInvalidArgument, "invalid endpoint"},
      {"EndpointPortZero", line(peer + "endpoint=192.0.2.1:0"), E::kInvalidArgument, "1-65535"},
      {"EndpointTwice", line(peer + "endpoint=192.0.2.1:1\nendpoint=192.0.2.1:2"),
       E::kInvalidArgument, "endpoint given twice"},
      {"AllowedIpHostBits", line(peer + "allowed_ip=10.0.0.1/8"), E::kInvalidArgument,
       "10.0.0.1/8"},
      {"AllowedIpTooLong", line(peer + "allowed_ip=10.0.0.0/33"), E::kInvalidArgument,
       "10.0.0.0/33"},
      {"AllowedIpNoLength", line(peer + "allowed_ip=10.0.0.0"), E::kInvalidArgument, "10.0.0.0"},
      {"AllowedIpTwice", line(peer + "allowed_ip=10.0.0.0/8\nallowed_ip=10.0.0.0/8"),
       E::kInvalidArgument, "allowed_ip 10.0.0.0/8 is listed twice"},
      {"KeepaliveTooBig", line(peer + "persistent_keepalive_interval=65536"), E::kInvalidArgument,
       "0 to 65535"},
      {"HandshakeNanosecondsTooBig", line(peer + "last_handshake_time_nsec=1000000000"),
       E::kInvalidArgument, "not below 10^9"},
      {"HandshakeSecondsPastSystemClock",
       line(peer + "last_handshake_time_sec=18446744073709551615"), E::kInvalidArgument,
       "out of range"},
      {"HandshakeSecondsOverflow", line(peer + "last_handshake_time_sec=18446744073709551616"),
       E::kInvalidArgument, "not a number"},
      {"RxBytesOverflow", line(peer + "rx_bytes=18446744073709551616"), E::kInvalidArgument,
       "rx_bytes"},
      {"TxBytesNegative", line(peer + "tx_bytes=-1"), E::kInvalidArgument, "tx_bytes"},
      {"PeerTwice", line(peer + peer.substr(0, peer.size() - 1)), E::kInvalidArgument,
       "is listed twice"},
  };
}

class ParseGetGarbageTest : public testing::TestWithParam<GarbageCase> {};

TEST_P(ParseGetGarbageTest, IsAClearError) {
  auto d = parse_get(GetParam().reply);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code(), GetParam().code) << d.error().message();
  EXPECT_NE(d.error().message().find(GetParam().message), std::string::npos) << d.error().message();
}

INSTANTIATE_TEST_SUITE_P(Table, ParseGetGarbageTest, testing::ValuesIn(garbage_cases()),
                         [](const auto& test) { return test.param.name; });

TEST(ParseGetTest, OversizedRepliesAreRefusedBeforeParsing) {
  std::string huge(kMaxUapiReplyBytes + 1, 'a');
  auto d = parse_get(huge);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(d.error().message().find("64 MiB"), std::string::npos) << d.error().message();
}

TEST(ParseGetTest, SecretValuesAreNeverRepeated) {
  // Almost keys: a wrong digit, one too many, a stray character.
  const std::string secret = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec";
  for (const std::string& value :
       {secret + "g", secret + "00", secret.substr(0, 63) + "\r", secret + "0\x01"}) {
    for (const std::string& reply :
         {"private_key=" + value + "\nerrno=0\n\n",
          "public_key=" + hex_of(0x22) + "\npreshared_key=" + value + "\nerrno=0\n\n",
          "private_key" + value + "\nerrno=0\n\n"}) {
      auto d = parse_get(reply);
      ASSERT_FALSE(d.ok());
      EXPECT_EQ(d.error().message().find("5ec7e7"), std::string::npos) << d.error().message();
    }
  }
}

// ---- parse_set_reply, errno, framing ----

TEST(ParseSetReplyTest, RealAnswers) {
  EXPECT_TRUE(parse_set_reply("errno=0\n\n").ok());
  auto refused = parse_set_reply(kCaptureSetRefused);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.error().message().find("errno=-22 (EINVAL: Invalid argument)"),
            std::string::npos)
      << refused.error().message();
  EXPECT_NE(refused.error().message().find("lines before it were applied"), std::string::npos);
}

TEST(ParseSetReplyTest, Garbage) {
  EXPECT_EQ(parse_set_reply("").error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(parse_set_reply("errno=0\n").error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(parse_set_reply("\n").error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(parse_set_reply("errno=zero\n\n").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(parse_set_reply("junk\nerrno=0\n\n").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(parse_set_reply("note=ignored\nerrno=0\n\n").ok());
}

TEST(UapiErrnoErrorTest, MapsCodesAndNamesThem) {
  struct Row {
    long long value;
    ErrorCode code;
    const char* text;
  };
  for (const Row& row :
       {Row{-22, ErrorCode::kInvalidArgument, "EINVAL"},
        Row{-71, ErrorCode::kInvalidArgument, "EPROTO"},
        Row{-98, ErrorCode::kConflict, "EADDRINUSE"}, Row{-5, ErrorCode::kUnavailable, "EIO"},
        Row{-13, ErrorCode::kPermissionDenied, "EACCES"},
        Row{-1, ErrorCode::kPermissionDenied, "EPERM"}, Row{-19, ErrorCode::kNotFound, "ENODEV"},
        Row{-55, ErrorCode::kInternal, "ENOANO"}, Row{-4242, ErrorCode::kInternal, "errno=-4242"},
        Row{LLONG_MIN, ErrorCode::kInternal, "errno=-9223372036854775808"}}) {
    const Error e = uapi_errno_error(row.value, "get");
    EXPECT_EQ(e.code(), row.code) << row.value;
    EXPECT_NE(e.message().find(row.text), std::string::npos) << e.message();
  }
}

TEST(ReplyLengthTest, FindsTheClosingBlankLine) {
  EXPECT_EQ(reply_length(""), std::nullopt);
  EXPECT_EQ(reply_length("errno=0\n"), std::nullopt);
  EXPECT_EQ(reply_length("\n"), 1U);
  EXPECT_EQ(reply_length("errno=0\n\n"), 9U);
  EXPECT_EQ(reply_length("errno=0\n\nerrno=0\n\n"), 9U);
  EXPECT_EQ(reply_length(kCaptureTwoPeers), kCaptureTwoPeers.size());
}

// ---- The control, against a scripted daemon on a unix socket ----

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "cw-uapi-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A stand-in for wireguard-go: listens on <dir>/<name>.sock, serves one connection on its own
// thread in the way `behaviour` says, and records the request it read.
class ScriptedDaemon {
 public:
  enum class Behaviour {
    kAnswer,              // read the request to its end, answer `reply`
    kAnswerAfterOneLine,  // answer after the first line and close, as wireguard-go does on a bad
                          // line
    kSilent,              // read the request, never answer
    kAnswerAndHangUp,     // answer `reply` (a partial one) and close
    kFlood,               // answer an endless line
  };

  ScriptedDaemon(const std::string& dir, const std::string& name, std::string reply,
                 Behaviour behaviour = Behaviour::kAnswer)
      : path_(dir + "/" + name + ".sock"), reply_(std::move(reply)), behaviour_(behaviour) {
    listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof address.sun_path - 1);
    if (listener_ < 0 ||
        ::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener_, 4) != 0) {
      std::abort();
    }
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedDaemon() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
    ::unlink(path_.c_str());
  }
  std::string request() {
    std::lock_guard lock(mu_);
    return request_;
  }

 private:
  // Waits up to 5 s for `fd` to be readable, or for the test to end.
  bool readable(int fd) {
    for (int i = 0; i < 500 && !stop_; ++i) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 10) > 0) return true;
    }
    return false;
  }

  void serve() {
    if (!readable(listener_)) return;
    const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    std::string got;
    char buf[4096];
    while (readable(fd)) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;  // the client shut its side: the request is whole
      got.append(buf, static_cast<std::size_t>(n));
      if (behaviour_ == Behaviour::kAnswerAfterOneLine && got.find('\n') != std::string::npos) {
        break;
      }
    }
    {
      std::lock_guard lock(mu_);
      request_ = got;
    }
    switch (behaviour_) {
      case Behaviour::kAnswer:
      case Behaviour::kAnswerAfterOneLine:
      case Behaviour::kAnswerAndHangUp: write_all(fd, reply_); break;
      case Behaviour::kSilent:
        while (!stop_) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        break;
      case Behaviour::kFlood: {
        const std::string chunk(4096, 'a');
        while (!stop_ && write_all(fd, chunk)) {
        }
        break;
      }
    }
    ::close(fd);
  }

  static bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  std::string path_;
  std::string reply_;
  Behaviour behaviour_;
  int listener_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string request_;
  std::thread thread_;
};

using Behaviour = ScriptedDaemon::Behaviour;

UapiControlOptions options_for(const TempDir& dir) {
  UapiControlOptions o;
  o.socket_dir = dir.path();
  o.timeout = std::chrono::milliseconds(300);
  return o;
}

TEST(UapiControlTest, GetSendsGetAndParsesTheReply) {
  TempDir dir;
  ScriptedDaemon daemon(dir.path(), "wg7", std::string(kCaptureTwoPeers));
  auto control = make_uapi_control(dir.path());
  EXPECT_STREQ(control->backend(), "uapi");
  auto d = control->get("wg7");
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->name, "wg7");
  EXPECT_EQ(d->peers.size(), 2U);
  EXPECT_EQ(daemon.request(), "get=1\n\n");
}

TEST(UapiControlTest, SetSendsTheEncodedRequest) {
  TempDir dir;
  ScriptedDaemon daemon(dir.path(), "wg7", "errno=0\n\n");
  DeviceUpdate u;
  u.private_key = filled_key(0x11);
  PeerUpdate p = peer_update(0x22);
  p.peer.allowed_ips = {prefix("10.0.0.0/8")};
  u.peers.push_back(p);
  auto r = make_uapi_control(options_for(dir))->set("wg7", u);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(daemon.request(), encode_set(u));
}

TEST(UapiControlTest, RefusedSetIsTheDaemonsErrno) {
  TempDir dir;
  ScriptedDaemon daemon(dir.path(), "wg7", std::string(kCaptureSetRefused));
  auto r = make_uapi_control(options_for(dir))->set("wg7", DeviceUpdate{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("configuring WireGuard device wg7: "), std::string::npos)
      << r.error().message();
}

TEST(UapiControlTest, AnAnswerSentBeforeTheRequestWasReadIsStillRead) {
  // wireguard-go answers at the first bad line and closes without reading the rest; a request
  // larger than the socket buffers then fails to write, but the answer is what matters.
  TempDir dir;
  ScriptedDaemon daemon(dir.path(), "wg7", std::string(kCaptureSetRefused),
                        Behaviour::kAnswerAfterOneLine);
  DeviceUpdate u;
  for (int i = 0; i < 20000; ++i) {
    PeerUpdate p = peer_update(static_cast<std::uint8_t>(i));
    p.peer.allowed_ips = {prefix("10.0.0.0/8")};
    u.peers.push_back(p);
  }
  auto r = make_uapi_control(options_for(dir))->set("wg7", u);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << r.error().message();
  EXPECT_NE(r.error().message().find("EINVAL"), std::string::npos) << r.error().message();
}

TEST(UapiControlTest, MissingAndStaleSocketsAreNotFound) {
  TempDir dir;
  auto control = make_uapi_control(options_for(dir));
  auto missing = control->get("wg7");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message().find(
                "no userspace WireGuard device wg7 (is wireguard-go running?)"),
            std::string::npos)
      << missing.error().message();

  // A socket file nobody listens on: what a daemon that was killed leaves behind.
  const std::string stale = dir.path() + "/wg8.sock";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, stale.c_str(), sizeof address.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ::close(fd);
  auto refused = control->set("wg8", DeviceUpdate{});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(refused.error().message().find("nothing listens"), std::string::npos)
      << refused.error().message();
}

TEST(UapiControlTest, PermissionDeniedIsReported) {
  TempDir dir;  // mode 0700
  ScriptedDaemon daemon(dir.path(), "wg7", "errno=0\n\n");
  auto control = make_uapi_control(options_for(dir));
  if (::geteuid() != 0) {
    ASSERT_EQ(::chmod((dir.path() + "/wg7.sock").c_str(), 0), 0);
    auto r = control->get("wg7");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kPermissionDenied) << r.error().message();
    return;
  }
  // Root may open anything: ask as nobody, in a child.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    auto r = control->get("wg7");
    ::_exit(!r.ok() && r.error().code() == ErrorCode::kPermissionDenied &&
                    r.error().message().find("permission denied") != std::string::npos
                ? 0
                : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: could not become nobody; 1: not kPermissionDenied";
}

TEST(UapiControlTest, ASilentDaemonTimesOut) {
  TempDir dir;
  ScriptedDaemon daemon(dir.path(), "wg7", "", Behaviour::kSilent);
  const auto start = std::chrono::steady_clock::now();
  auto d = make_uapi_control(options_for(dir))->get("wg7");
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(d.error().message().find("timed out"), std::string::npos) << d.error().message();
  EXPECT_GE(took, std::chrono::milliseconds(250));
  EXPECT_LT(took, std::chrono::seconds(3));
}

TEST(UapiControlTest, AHangUpMidReplyIsUnavailable) {
  TempDir dir;
  ScriptedDaemon daemon(dir.path(), "wg7", "listen_port=51820\n", Behaviour::kAnswerAndHangUp);
  auto d = make_uapi_control(options_for(dir))->get("wg7");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(d.error().message().find("closed the connection after 18 bytes"), std::string::npos)
      << d.error().message();
}

TEST(UapiControlTest, AnEndlessReplyIsRefusedAtTheLimit) {
  TempDir dir;
  ScriptedDaemon daemon(dir.path(), "wg7", "", Behaviour::kFlood);
  UapiControlOptions o = options_for(dir);
  o.max_reply_bytes = 100000;
  o.timeout = std::chrono::seconds(5);
  auto d = make_uapi_control(o)->get("wg7");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(d.error().message().find("exceeds 100000 bytes"), std::string::npos)
      << d.error().message();
}

TEST(UapiControlTest, NamesThatCannotBeInterfacesAreRefused) {
  TempDir dir;
  auto control = make_uapi_control(options_for(dir));
  for (const std::string& name :
       std::vector<std::string>{"", ".", "..", "a/b", "../wg0", "wg:0", "wg 0", "sixteen-chars-xx",
                                std::string("wg\0", 3), "wg\n"}) {
    auto d = control->get(name);
    ASSERT_FALSE(d.ok()) << name;
    EXPECT_EQ(d.error().code(), ErrorCode::kInvalidArgument) << name;
  }
  EXPECT_EQ(control->get("fifteen-chars-x").error().code(), ErrorCode::kNotFound);
}

TEST(UapiControlTest, ListNamesTheSockets) {
  TempDir dir;
  ScriptedDaemon b(dir.path(), "wg-b", "errno=0\n\n");
  ScriptedDaemon a(dir.path(), "wg-a", "errno=0\n\n");
  std::ofstream(dir.path() + "/file.sock") << "not a socket";
  std::ofstream(dir.path() + "/wg-c.txt") << "not a .sock";
  std::filesystem::create_directory(dir.path() + "/dir.sock");
  auto names = make_uapi_control(options_for(dir))->list();
  ASSERT_TRUE(names.ok()) << names.error().message();
  EXPECT_EQ(*names, (std::vector<std::string>{"wg-a", "wg-b"}));

  auto none = make_uapi_control(dir.path() + "/missing")->list();
  ASSERT_TRUE(none.ok()) << none.error().message();
  EXPECT_TRUE(none->empty());
}

}  // namespace
}  // namespace cw::wg
