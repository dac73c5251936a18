#include "common/ipam/claim_name.h"

#include <gtest/gtest.h>

namespace cw::ipam {
namespace {

struct NameCase {
  std::string block;
  std::string name;
  friend void PrintTo(const NameCase& c, std::ostream* os) { *os << c.block; }
};

class ClaimNameTest : public testing::TestWithParam<NameCase> {};

TEST_P(ClaimNameTest, RoundTrips) {
  const auto block = net::Prefix::parse(GetParam().block).value();
  EXPECT_EQ(claim_name(block), GetParam().name);
  auto back = block_from_claim_name(GetParam().name);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(*back, block);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ClaimNameTest,
    testing::Values(NameCase{"10.64.0.0/16", "10-64-0-0-16"}, NameCase{"0.0.0.0/0", "0-0-0-0-0"},
                    NameCase{"192.168.255.4/30", "192-168-255-4-30"},
                    NameCase{"fd00:c1::/56", "fd00-c1-0-0-0-0-0-0-56"},
                    NameCase{"::/0", "0-0-0-0-0-0-0-0-0"},
                    NameCase{"2001:db8:ffff:1::/64", "2001-db8-ffff-1-0-0-0-0-64"}));

TEST(ClaimNameTest, RefusesNamesNoBlockProduces) {
  for (const char* bad : {"", "10-64-0-0", "10-64-0-1-16", "010-64-0-0-16", "10-64-0-0-33",
                          "FD00-c1-0-0-0-0-0-0-56", "fd00-00c1-0-0-0-0-0-0-56", "east", "a-b-c-d-e"}) {
    EXPECT_FALSE(block_from_claim_name(bad).ok()) << bad;
  }
}

TEST(ClaimNameTest, NamesAreValidKubernetesNames) {
  for (const char* b : {"10.64.0.0/16", "fd00:c1::/56", "::/0"}) {
    const auto n = claim_name(net::Prefix::parse(b).value());
    EXPECT_LE(n.size(), 253U);
    EXPECT_EQ(n.find_first_not_of("abcdef0123456789-"), std::string::npos) << n;
  }
}

}  // namespace
}  // namespace cw::ipam
