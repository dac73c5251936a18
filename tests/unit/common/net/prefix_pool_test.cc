#include "common/net/prefix_pool.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace cw::net {
namespace {

Prefix P(const std::string& text) { return Prefix::parse(text).value(); }

PrefixPool pool_of(std::vector<std::string> texts) {
  std::vector<Prefix> ps;
  for (const auto& t : texts) ps.push_back(P(t));
  return PrefixPool::create(ps).value();
}

std::string alloc(PrefixPool& pool, Family f, int len, const std::string& holder = "x") {
  auto r = pool.allocate(f, len, holder);
  return r.ok() ? r->to_string() : "error: " + r.error().message();
}

constexpr auto v4 = Family::kIPv4;
constexpr auto v6 = Family::kIPv6;

TEST(PrefixPoolTest, IPv4NodeBlocksInAClusterBlockUntilExhausted) {
  auto pool = pool_of({"10.64.0.0/16"});
  for (int i = 0; i < 256; ++i) {
    EXPECT_EQ(alloc(pool, v4, 24), "10.64." + std::to_string(i) + ".0/24");
  }
  auto more = pool.allocate(v4, 24, "x");
  ASSERT_FALSE(more.ok());
  EXPECT_EQ(more.error().code(), ErrorCode::kExhausted);
  EXPECT_EQ(pool.size(), 256U);
  EXPECT_EQ(pool.free_blocks(v4, 24), Uint128{0});
}

TEST(PrefixPoolTest, IPv6NodeBlocksInA48) {
  auto pool = pool_of({"fd00:c1::/48"});
  EXPECT_EQ(alloc(pool, v6, 64), "fd00:c1::/64");
  EXPECT_EQ(alloc(pool, v6, 64), "fd00:c1:0:1::/64");
  for (int i = 2; i < 65535; ++i) ASSERT_TRUE(pool.allocate(v6, 64, "x").ok());
  EXPECT_EQ(alloc(pool, v6, 64), "fd00:c1:0:ffff::/64");
  EXPECT_EQ(pool.allocate(v6, 64, "x").error().code(), ErrorCode::kExhausted);
}

TEST(PrefixPoolTest, WholeAddressSpaceAndSingleAddresses) {
  auto all4 = pool_of({"0.0.0.0/0"});
  EXPECT_EQ(alloc(all4, v4, 1), "0.0.0.0/1");
  EXPECT_EQ(alloc(all4, v4, 1), "128.0.0.0/1");
  EXPECT_EQ(all4.allocate(v4, 32, "x").error().code(), ErrorCode::kExhausted);

  auto all6 = pool_of({"::/0"});
  EXPECT_EQ(alloc(all6, v6, 128), "::/128");
  EXPECT_EQ(alloc(all6, v6, 0), "error: no free /0 left in IPv6 pools");
  EXPECT_EQ(alloc(all6, v6, 1), "8000::/1");

  auto one = pool_of({"10.0.0.7/32"});
  EXPECT_EQ(alloc(one, v4, 32), "10.0.0.7/32");
  EXPECT_FALSE(one.allocate(v4, 32, "x").ok());

  auto one6 = pool_of({"fd00::1/128"});
  EXPECT_EQ(alloc(one6, v6, 128), "fd00::1/128");
}

TEST(PrefixPoolTest, MixedLengthsTakeTheLowestAlignedFreeBlock) {
  auto pool = pool_of({"10.0.0.0/16"});
  EXPECT_EQ(alloc(pool, v4, 24), "10.0.0.0/24");
  EXPECT_EQ(alloc(pool, v4, 23), "10.0.2.0/23");  // 10.0.0.0/23 is half used
  EXPECT_EQ(alloc(pool, v4, 24), "10.0.1.0/24");  // fills the gap
  EXPECT_EQ(alloc(pool, v4, 22), "10.0.4.0/22");
  EXPECT_EQ(alloc(pool, v4, 26), "10.0.8.0/26");
  EXPECT_EQ(alloc(pool, v4, 17), "10.0.128.0/17");
  EXPECT_EQ(alloc(pool, v4, 17), "error: no free /17 left in IPv4 pools");
}

TEST(PrefixPoolTest, ClaimsTakeExactlyTheGivenBlock) {
  auto pool = pool_of({"10.0.0.0/16"});
  ASSERT_TRUE(pool.claim(P("10.0.1.0/24"), "west").ok());
  EXPECT_EQ(alloc(pool, v4, 24), "10.0.0.0/24");
  EXPECT_EQ(alloc(pool, v4, 24), "10.0.2.0/24");  // skips the claimed block
  EXPECT_EQ(alloc(pool, v4, 23), "10.0.4.0/23");
}

struct ClaimConflictCase {
  std::string claim;
  std::string says;
  friend void PrintTo(const ClaimConflictCase& c, std::ostream* os) { *os << c.claim; }
};

class PrefixPoolClaimConflictTest : public testing::TestWithParam<ClaimConflictCase> {};

TEST_P(PrefixPoolClaimConflictTest, NamesTheOverlappingHolder) {
  auto pool = pool_of({"10.0.0.0/16"});
  ASSERT_TRUE(pool.claim(P("10.0.4.0/24"), "east").ok());
  ASSERT_TRUE(pool.claim(P("10.0.6.0/23"), "west").ok());
  const auto before = pool.allocations();
  auto r = pool.claim(P(GetParam().claim), "intruder");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(r.error().message(), GetParam().says);
  EXPECT_EQ(pool.allocations(), before);  // a refused claim changes nothing
}

INSTANTIATE_TEST_SUITE_P(
    Table, PrefixPoolClaimConflictTest,
    testing::Values(
        ClaimConflictCase{"10.0.4.0/24", "10.0.4.0/24 overlaps 10.0.4.0/24 held by east"},
        ClaimConflictCase{"10.0.4.128/25", "10.0.4.128/25 overlaps 10.0.4.0/24 held by east"},
        ClaimConflictCase{"10.0.7.0/24", "10.0.7.0/24 overlaps 10.0.6.0/23 held by west"},
        ClaimConflictCase{"10.0.4.0/22", "10.0.4.0/22 overlaps 10.0.4.0/24 held by east"},
        ClaimConflictCase{"10.0.0.0/16", "10.0.0.0/16 overlaps 10.0.4.0/24 held by east"},
        ClaimConflictCase{"10.0.0.0/21", "10.0.0.0/21 overlaps 10.0.4.0/24 held by east"}));

TEST(PrefixPoolTest, ClaimOutsideEveryPoolIsRefused) {
  auto pool = pool_of({"10.0.0.0/16"});
  auto r = pool.claim(P("10.1.0.0/24"), "x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(pool.claim(P("10.0.0.0/15"), "x").ok());  // larger than the pool
  EXPECT_FALSE(pool.claim(P("fd00::/64"), "x").ok());
  EXPECT_EQ(pool.size(), 0U);
}

TEST(PrefixPoolTest, ReleaseAndReuse) {
  auto pool = pool_of({"10.0.0.0/16"});
  EXPECT_EQ(alloc(pool, v4, 24), "10.0.0.0/24");
  EXPECT_EQ(alloc(pool, v4, 24), "10.0.1.0/24");
  EXPECT_EQ(alloc(pool, v4, 24), "10.0.2.0/24");
  ASSERT_TRUE(pool.release(P("10.0.1.0/24")).ok());
  EXPECT_EQ(alloc(pool, v4, 24), "10.0.1.0/24");  // the lowest free block again
  for (const char* p : {"10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"}) {
    ASSERT_TRUE(pool.release(P(p)).ok()) << p;
  }
  // Buddies merged all the way up: the whole pool is one free block again.
  EXPECT_EQ(pool.size(), 0U);
  EXPECT_EQ(alloc(pool, v4, 16), "10.0.0.0/16");
}

TEST(PrefixPoolTest, ReleaseRefusesWhatIsNotAnAllocation) {
  auto pool = pool_of({"10.0.0.0/16"});
  ASSERT_TRUE(pool.claim(P("10.0.4.0/22"), "east").ok());
  auto part = pool.release(P("10.0.5.0/24"));
  ASSERT_FALSE(part.ok());
  EXPECT_EQ(part.error().message(),
            "10.0.5.0/24 is not allocated as such; 10.0.4.0/22 held by east overlaps it");
  auto bigger = pool.release(P("10.0.0.0/20"));
  ASSERT_FALSE(bigger.ok());
  EXPECT_NE(bigger.error().message().find("10.0.4.0/22 held by east"), std::string::npos);
  EXPECT_EQ(pool.release(P("10.0.9.0/24")).error().message(), "10.0.9.0/24 is not allocated");
  EXPECT_EQ(pool.release(P("10.9.0.0/24")).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(pool.size(), 1U);
}

TEST(PrefixPoolTest, SeveralPoolsInAddressOrderAndBothFamilies) {
  auto pool = pool_of({"10.2.0.0/16", "fd00::/48", "10.1.0.0/16"});
  EXPECT_EQ(pool.pools().front().to_string(), "10.1.0.0/16");
  EXPECT_EQ(alloc(pool, v4, 17, "a"), "10.1.0.0/17");
  EXPECT_EQ(alloc(pool, v4, 17, "b"), "10.1.128.0/17");
  EXPECT_EQ(alloc(pool, v4, 17, "c"), "10.2.0.0/17");  // first pool full: the next one
  EXPECT_EQ(alloc(pool, v6, 56, "a"), "fd00::/56");
  EXPECT_EQ(pool.free_blocks(v4, 17), Uint128{1});
  EXPECT_EQ(pool.free_blocks(v6, 56), Uint128{255});

  std::vector<std::string> listed;
  for (const auto& a : pool.allocations()) listed.push_back(a.prefix.to_string() + " " + a.holder);
  EXPECT_EQ(listed, (std::vector<std::string>{"10.1.0.0/17 a", "10.1.128.0/17 b",
                                              "10.2.0.0/17 c", "fd00::/56 a"}));
}

TEST(PrefixPoolTest, RequestsNoPoolCanServeAreInvalidNotExhausted) {
  auto pool = pool_of({"10.0.0.0/16"});
  EXPECT_EQ(pool.allocate(v6, 64, "x").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(pool.allocate(v4, 8, "x").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(pool.allocate(v4, 33, "x").error().code(), ErrorCode::kInvalidArgument);
}

TEST(PrefixPoolTest, OverlappingPoolsAreRefused) {
  auto r = PrefixPool::create({P("10.0.0.0/8"), P("10.1.0.0/16")});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "pool 10.1.0.0/16 overlaps pool 10.0.0.0/8");
}

// The pool against a brute-force model: the same random sequence of allocations, claims
// and releases of mixed lengths. The model finds the lowest free block by scanning every
// aligned candidate, so it is slow but obviously right.
TEST(PrefixPoolTest, AgreesWithABruteForceModel) {
  const Prefix root = P("10.0.0.0/20");
  auto pool = PrefixPool::create({root}).value();
  std::set<Prefix> model;
  auto model_free = [&](const Prefix& p) {
    for (const auto& m : model) if (m.overlaps(p)) return false;
    return true;
  };
  std::mt19937 rng(20261121);
  for (int step = 0; step < 4000; ++step) {
    const int len = std::uniform_int_distribution<int>(21, 28)(rng);
    const int op = std::uniform_int_distribution<int>(0, 9)(rng);
    if (op < 5) {  // allocate
      std::optional<Prefix> expected;
      for (const auto& cand : root.split(len).value()) {
        if (model_free(cand)) { expected = cand; break; }
      }
      auto got = pool.allocate(Family::kIPv4, len, "x");
      ASSERT_EQ(got.ok(), expected.has_value()) << "step " << step;
      if (expected) {
        ASSERT_EQ(*got, *expected) << "step " << step;
        model.insert(*expected);
      }
    } else if (op < 7) {  // claim a random block
      const auto count = static_cast<int>(root.subprefix_count(len));
      const auto idx = std::uniform_int_distribution<int>(0, count - 1)(rng);
      const Prefix cand = root.subprefix(len, static_cast<Uint128>(idx)).value();
      const bool free = model_free(cand);
      ASSERT_EQ(pool.claim(cand, "y").ok(), free) << "step " << step << " " << cand.to_string();
      if (free) model.insert(cand);
    } else if (!model.empty()) {  // release a random allocation
      auto it = model.begin();
      std::advance(it, std::uniform_int_distribution<std::size_t>(0, model.size() - 1)(rng));
      ASSERT_TRUE(pool.release(*it).ok());
      model.erase(it);
    }
    ASSERT_EQ(pool.size(), model.size());
  }
  std::vector<Prefix> listed;
  for (const auto& a : pool.allocations()) listed.push_back(a.prefix);
  EXPECT_EQ(listed, std::vector<Prefix>(model.begin(), model.end()));
}

}  // namespace
}  // namespace cw::net
