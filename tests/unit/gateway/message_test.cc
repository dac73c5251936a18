#include "gateway/message.h"

#include <gtest/gtest.h>

#include <random>

namespace cw::gateway {
namespace {

TEST(GatewayMessageTest, RoundTrips) {
  for (auto kind : {Kind::kHeartbeat, Kind::kBeacon}) {
    Message m{kind, "c1", {"gw-1.example", true, 123456789012LL, 7}};
    auto back = decode(encode(m));
    ASSERT_TRUE(back.ok()) << back.error().message();
    EXPECT_EQ(*back, m);
  }
}

TEST(GatewayMessageTest, RefusesWhatIsNotOne) {
  auto good = encode({Kind::kBeacon, "c1", {"gw-1", false, 1, 0}});
  auto mutate = [&](std::size_t i, std::uint8_t v) {
    auto b = good;
    b[i] = v;
    return decode(b);
  };
  EXPECT_FALSE(mutate(0, 'X').ok());
  EXPECT_FALSE(mutate(4, 2).ok()) << "version";
  EXPECT_FALSE(mutate(5, 9).ok()) << "kind";
  EXPECT_FALSE(mutate(6, 2).ok()) << "flags";
  EXPECT_FALSE(mutate(8, 0x80).ok()) << "negative epoch";
  EXPECT_FALSE(mutate(18, 3).ok()) << "lengths";
  EXPECT_FALSE(mutate(20, 'C').ok()) << "upper case";
  EXPECT_FALSE(mutate(20, 0).ok()) << "NUL in a name";
  auto shorter = good;
  shorter.pop_back();
  EXPECT_FALSE(decode(shorter).ok());
  EXPECT_FALSE(decode(std::span<const std::uint8_t>(good.data(), 10)).ok());
  auto empty_names = encode({Kind::kBeacon, "", {"", false, 1, 0}});
  EXPECT_FALSE(decode(empty_names).ok());
}

TEST(GatewayMessageTest, RandomBytesNeverCrash) {
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::vector<std::uint8_t> b(rng() % 400);
    for (auto& x : b) x = static_cast<std::uint8_t>(rng());
    if (b.size() >= 4 && i % 2 == 0) std::copy_n("CWGW", 4, b.begin());
    (void)decode(b);
  }
}

}  // namespace
}  // namespace cw::gateway
