#include "common/wireguard/device.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace cw::wg {
namespace {

// `wg pubkey` from wireguard-tools, for the real answer; empty if it is not installed.
std::string wg_pubkey(const std::string& private_b64) {
  const std::string cmd = "printf '%s' '" + private_b64 + "' | wg pubkey 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "";
  char buf[128] = {};
  const std::size_t n = fread(buf, 1, sizeof buf - 1, p);
  pclose(p);
  std::string out(buf, n);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

TEST(KeyTest, GeneratedKeysAreClampedAndTheirPublicKeyMatchesWg) {
  auto priv = generate_private_key().value();
  EXPECT_EQ(priv.bytes()[0] & 7, 0);
  EXPECT_EQ(priv.bytes()[31] & 128, 0);
  EXPECT_EQ(priv.bytes()[31] & 64, 64);
  const auto pub = public_key_of(priv).value();
  const std::string expected = wg_pubkey(priv.to_base64());
  if (expected.empty()) GTEST_SKIP() << "wg (wireguard-tools) is not installed: scripts/deps.sh installs it";
  EXPECT_EQ(pub.to_base64(), expected);
}

TEST(KeyTest, Base64AndHexRoundTrip) {
  auto k = Key::from_base64("9YtV7g8b1oV6YQe0fM0cZ3y8Jm3x7b2KZ0v5yq3u8Xo=").value();
  EXPECT_EQ(k.to_base64(), "9YtV7g8b1oV6YQe0fM0cZ3y8Jm3x7b2KZ0v5yq3u8Xo=");
  EXPECT_EQ(Key::from_hex(k.to_hex()).value(), k);
  EXPECT_EQ(k.to_hex().size(), 64U);
  EXPECT_FALSE(k.is_zero());
  EXPECT_TRUE(Key().is_zero());
}

TEST(KeyTest, MalformedKeysAreClearErrorsThatDoNotEchoTheKey) {
  for (const char* bad : {"", "short=", "9YtV7g8b1oV6YQe0fM0cZ3y8Jm3x7b2KZ0v5yq3u8Xo", "9YtV7g8b1oV6YQe0fM0cZ3y8Jm3x7b2KZ0v5yq3u8X!=",
                          "9YtV7g8b1oV6YQe0fM0cZ3y8Jm3x7b2KZ0v5yq3u8Xo==",
                          "9YtV7g8b1oV6YQe0fM0cZ3y8Jm3x7b2KZ0v5yq3u8Xb=" /* not canonical */}) {
    auto r = Key::from_base64(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().message().find("9YtV"), std::string::npos);
  }
  EXPECT_FALSE(Key::from_hex("zz").ok());
  EXPECT_FALSE(Key::from_hex(std::string(64, 'g')).ok());
}

struct EndpointCase {
  std::string text;
  bool ok;
  std::string canonical;
  friend void PrintTo(const EndpointCase& c, std::ostream* os) { *os << c.text; }
};

class EndpointTest : public testing::TestWithParam<EndpointCase> {};

TEST_P(EndpointTest, Parses) {
  auto e = Endpoint::parse(GetParam().text);
  ASSERT_EQ(e.ok(), GetParam().ok) << (e.ok() ? e->to_string() : e.error().message());
  if (e.ok()) {
    EXPECT_EQ(e->to_string(), GetParam().canonical);
  }
}

INSTANTIATE_TEST_SUITE_P(Table, EndpointTest,
                         testing::Values(EndpointCase{"192.0.2.1:51820", true, "192.0.2.1:51820"},
                                         EndpointCase{"[2001:DB8::1]:51820", true, "[2001:db8::1]:51820"},
                                         EndpointCase{"2001:db8::1:51820", false, ""},
                                         EndpointCase{"192.0.2.1", false, ""},
                                         EndpointCase{"192.0.2.1:0", false, ""},
                                         EndpointCase{"192.0.2.1:65536", false, ""},
                                         EndpointCase{"host.example:51820", false, ""},
                                         EndpointCase{"[::1]51820", false, ""}));

TEST(PeerTest, SameConfigIgnoresOrderAndStatistics) {
  Peer a{Key::from_base64("9YtV7g8b1oV6YQe0fM0cZ3y8Jm3x7b2KZ0v5yq3u8Xo=").value(), std::nullopt, std::nullopt,
         {net::Prefix::parse("10.0.1.0/24").value(), net::Prefix::parse("10.0.0.0/24").value()}, 25, std::nullopt, 0, 0};
  Peer b = a;
  std::swap(b.allowed_ips[0], b.allowed_ips[1]);
  b.rx_bytes = 1000;
  EXPECT_TRUE(same_config(a, b));
  b.persistent_keepalive = 0;
  EXPECT_FALSE(same_config(a, b));
}

}  // namespace
}  // namespace cw::wg
