#include "common/net/prefix.h"

#include <gtest/gtest.h>

namespace cw::net {
namespace {

struct ParseCase {
  std::string input;
  std::string canonical;
  friend void PrintTo(const ParseCase& c, std::ostream* os) { *os << '"' << c.input << '"'; }
};

class PrefixParsesTest : public testing::TestWithParam<ParseCase> {};

TEST_P(PrefixParsesTest, FormatsCanonically) {
  auto p = Prefix::parse(GetParam().input);
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->to_string(), GetParam().canonical);
  // Canonical text parses back to the same value.
  EXPECT_EQ(Prefix::parse(p->to_string()).value(), *p);
}

INSTANTIATE_TEST_SUITE_P(
    Valid, PrefixParsesTest,
    testing::Values(ParseCase{"10.0.0.0/8", "10.0.0.0/8"}, ParseCase{"0.0.0.0/0", "0.0.0.0/0"},
                    ParseCase{"192.168.1.7/32", "192.168.1.7/32"},
                    ParseCase{"10.64.0.0/16", "10.64.0.0/16"},
                    ParseCase{"FD00:0:0::/48", "fd00::/48"}, ParseCase{"::/0", "::/0"},
                    ParseCase{"::1/128", "::1/128"},
                    ParseCase{"2001:0db8::/32", "2001:db8::/32"},
                    ParseCase{"2001:db8:0:0:1:0:0:1/128", "2001:db8::1:0:0:1/128"},
                    ParseCase{"2001:db8:0:1:0:0:0:0/64", "2001:db8:0:1::/64"},
                    ParseCase{"fd00:c1:0:100::/56", "fd00:c1:0:100::/56"}));

struct BadCase {
  std::string input;
  std::string says;  // the error must contain this
  friend void PrintTo(const BadCase& c, std::ostream* os) { *os << '"' << c.input << '"'; }
};

class PrefixRejectsTest : public testing::TestWithParam<BadCase> {};

TEST_P(PrefixRejectsTest, WithAMessageNamingTheInput) {
  auto p = Prefix::parse(GetParam().input);
  ASSERT_FALSE(p.ok()) << "accepted " << GetParam().input << " as " << p->to_string();
  EXPECT_EQ(p.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(p.error().message().find("\"" + GetParam().input + "\""), std::string::npos)
      << p.error().message();
  EXPECT_NE(p.error().message().find(GetParam().says), std::string::npos) << p.error().message();
}

INSTANTIATE_TEST_SUITE_P(
    Invalid, PrefixRejectsTest,
    testing::Values(
        BadCase{"10.0.0.1/8", "host bits are set (the block is 10.0.0.0/8)"},
        BadCase{"10.64.1.0/16", "the block is 10.64.0.0/16"},
        BadCase{"fd00::1/64", "the block is fd00::/64"},
        BadCase{"10.0.0.0/33", "length 33 is out of range for IPv4 (0-32)"},
        BadCase{"fd00::/129", "out of range for IPv6 (0-128)"},
        BadCase{"10.0.0.0", "missing \"/<length>\""},
        BadCase{"10.0.0.0/", "is not a prefix length"},
        BadCase{"10.0.0.0/08", "\"08\" is not a prefix length"},
        BadCase{"10.0.0.0/-1", "is not a prefix length"},
        BadCase{"10.0.0.0/+8", "is not a prefix length"},
        BadCase{"10.0.0.0/8 ", "is not a prefix length"},
        BadCase{"10.0.0.0/8/9", "is not a prefix length"},
        BadCase{"10.0.0.0/1000", "is not a prefix length"},
        BadCase{" 10.0.0.0/8", "is not an IPv4 or IPv6 address"},
        BadCase{"10.0.0/8", "is not an IPv4 or IPv6 address"},
        BadCase{"010.0.0.0/8", "is not an IPv4 or IPv6 address"},
        BadCase{"256.0.0.0/8", "is not an IPv4 or IPv6 address"},
        BadCase{"fe80::1%eth0/64", "is not an IPv4 or IPv6 address"},
        BadCase{"fd00:::/64", "is not an IPv4 or IPv6 address"},
        BadCase{"garbage", "missing"},
        BadCase{"", "missing"},
        BadCase{"/8", "is not an IPv4 or IPv6 address"}));

TEST(IpAddressTest, OrdersIPv4BeforeIPv6ThenNumerically) {
  auto a = IpAddress::parse("10.0.0.2").value();
  auto b = IpAddress::parse("10.0.0.10").value();
  auto c = IpAddress::parse("::1").value();
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_EQ(IpAddress::parse("FD00::1").value(), IpAddress::parse("fd00:0::1").value());
}

TEST(IpAddressTest, RejectsEmbeddedNulAndOverlongText) {
  EXPECT_FALSE(IpAddress::parse(std::string("10.0.0.1\0junk", 13)).ok());
  EXPECT_FALSE(IpAddress::parse(std::string(100, '1')).ok());
}

struct RelationCase {
  std::string a, b;
  bool a_contains_b, overlaps;
  friend void PrintTo(const RelationCase& c, std::ostream* os) { *os << c.a << " vs " << c.b; }
};

class PrefixRelationTest : public testing::TestWithParam<RelationCase> {};

TEST_P(PrefixRelationTest, ContainsAndOverlaps) {
  const auto& c = GetParam();
  auto a = Prefix::parse(c.a).value();
  auto b = Prefix::parse(c.b).value();
  EXPECT_EQ(a.contains(b), c.a_contains_b);
  EXPECT_EQ(a.overlaps(b), c.overlaps);
  EXPECT_EQ(b.overlaps(a), c.overlaps);  // symmetric
  EXPECT_EQ(intersection(a, b).has_value(), c.overlaps);
}

INSTANTIATE_TEST_SUITE_P(
    Table, PrefixRelationTest,
    testing::Values(RelationCase{"10.0.0.0/8", "10.1.0.0/16", true, true},
                    RelationCase{"10.1.0.0/16", "10.0.0.0/8", false, true},
                    RelationCase{"10.0.0.0/16", "10.1.0.0/16", false, false},
                    RelationCase{"10.0.0.0/16", "10.0.0.0/16", true, true},
                    RelationCase{"0.0.0.0/0", "255.255.255.255/32", true, true},
                    RelationCase{"::/0", "0.0.0.0/0", false, false},  // families never mix
                    RelationCase{"fd00::/48", "fd00:0:0:ff::/64", true, true},
                    RelationCase{"fd00::/48", "fd00:0:1::/48", false, false},
                    RelationCase{"::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", true, true}));

TEST(PrefixTest, LastAddress) {
  EXPECT_EQ(Prefix::parse("10.0.0.0/8")->last().to_string(), "10.255.255.255");
  EXPECT_EQ(Prefix::parse("0.0.0.0/0")->last().to_string(), "255.255.255.255");
  EXPECT_EQ(Prefix::parse("10.1.2.3/32")->last().to_string(), "10.1.2.3");
  EXPECT_EQ(Prefix::parse("::/0")->last().to_string(), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  EXPECT_EQ(Prefix::parse("fd00::/64")->last().to_string(), "fd00::ffff:ffff:ffff:ffff");
}

TEST(PrefixTest, Halves) {
  auto [lo, hi] = Prefix::parse("10.0.0.0/31")->halves();
  EXPECT_EQ(lo.to_string(), "10.0.0.0/32");
  EXPECT_EQ(hi.to_string(), "10.0.0.1/32");
  auto [lo6, hi6] = Prefix::parse("::/0")->halves();
  EXPECT_EQ(lo6.to_string(), "::/1");
  EXPECT_EQ(hi6.to_string(), "8000::/1");
}

TEST(PrefixTest, SplitsIntoSubPrefixesLowestFirst) {
  auto parts = Prefix::parse("10.64.0.0/16")->split(18);
  ASSERT_TRUE(parts.ok());
  std::vector<std::string> text;
  for (const auto& p : *parts) text.push_back(p.to_string());
  EXPECT_EQ(text, (std::vector<std::string>{"10.64.0.0/18", "10.64.64.0/18", "10.64.128.0/18",
                                            "10.64.192.0/18"}));
  EXPECT_EQ(Prefix::parse("0.0.0.0/0")->split(0)->size(), 1U);
  EXPECT_EQ(Prefix::parse("fd00::/48")->split(64)->size(), 65536U);
  EXPECT_EQ(Prefix::parse("fd00::/48")->split(64)->back().to_string(), "fd00:0:0:ffff::/64");
}

TEST(PrefixTest, SplitRefusesShorterLongerAndHugeResults) {
  EXPECT_FALSE(Prefix::parse("10.0.0.0/16")->split(8).ok());
  EXPECT_FALSE(Prefix::parse("10.0.0.0/16")->split(33).ok());
  auto huge = Prefix::parse("fd00::/48")->split(128);
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.error().message().find("more than"), std::string::npos);
}

TEST(PrefixTest, SubprefixByIndexAndCount) {
  auto p = Prefix::parse("fd00::/48").value();
  EXPECT_EQ(p.subprefix(64, 1)->to_string(), "fd00:0:0:1::/64");
  EXPECT_EQ(p.subprefix_count(64), Uint128{65536});
  EXPECT_EQ(p.subprefix_count(47), Uint128{0});
  EXPECT_FALSE(p.subprefix(64, 65536).ok());
  EXPECT_EQ(Prefix::parse("::/0")->subprefix_count(128), Uint128{1} << 127);  // saturates
  EXPECT_EQ(format_count(Uint128{1} << 64), "18446744073709551616");
}

TEST(PrefixTest, MakeChecksLikeParse) {
  auto a = IpAddress::parse("10.1.0.0").value();
  EXPECT_TRUE(Prefix::make(a, 16).ok());
  EXPECT_FALSE(Prefix::make(a, 8).ok());
  EXPECT_FALSE(Prefix::make(a, 33).ok());
  EXPECT_FALSE(Prefix::make(a, -1).ok());
}

}  // namespace
}  // namespace cw::net
