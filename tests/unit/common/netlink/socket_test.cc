// The parts of the netlink socket layer that need no kernel: reading attributes without
// trusting their lengths, building messages within a fixed capacity, errno mapping.
#include "common/netlink/socket.h"

#include <gtest/gtest.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <cerrno>
#include <cstring>

namespace cw::netlink {
namespace {

// Raw attribute bytes: a header with `length` (which may lie) and the payload.
void raw(std::vector<std::uint8_t>& out, std::uint16_t length, std::uint16_t type,
         std::vector<std::uint8_t> payload) {
  const nlattr a{length, type};
  const auto* p = reinterpret_cast<const std::uint8_t*>(&a);
  out.insert(out.end(), p, p + sizeof a);
  out.insert(out.end(), payload.begin(), payload.end());
  while (out.size() % 4 != 0) out.push_back(0);
}

std::vector<std::uint8_t> u32_bytes(std::uint32_t v) {
  std::vector<std::uint8_t> b(4);
  std::memcpy(b.data(), &v, 4);
  return b;
}

TEST(AttributeListTest, ReadsTypedValuesStringsAndNestedLists) {
  std::vector<std::uint8_t> inner;
  raw(inner, 8, 1, u32_bytes(42));
  std::vector<std::uint8_t> bytes;
  raw(bytes, 8, 3, u32_bytes(1400));
  raw(bytes, 4 + 6, 4, {'d', 'u', 'm', 'm', 'y', 0});
  raw(bytes, static_cast<std::uint16_t>(4 + inner.size()), 5 | NLA_F_NESTED, inner);

  const AttributeList list(bytes);
  EXPECT_TRUE(list.well_formed());
  std::vector<std::uint16_t> types;
  for (const Attribute& a : list) types.push_back(a.type());
  EXPECT_EQ(types, (std::vector<std::uint16_t>{3, 4, 5}));  // NLA_F_NESTED masked off

  EXPECT_EQ(list.find(3)->u32(), 1400U);
  EXPECT_EQ(list.find(3)->u16(), std::nullopt);  // wrong size: not a u16
  EXPECT_EQ(list.find(3)->u64(), std::nullopt);
  EXPECT_EQ(list.find(4)->string(), "dummy");
  EXPECT_EQ(list.find(5)->nested().find(1)->u32(), 42U);
  EXPECT_FALSE(list.find(9).has_value());
}

TEST(AttributeListTest, StopsAtALengthThatRunsPastTheEnd) {
  std::vector<std::uint8_t> bytes;
  raw(bytes, 8, 1, u32_bytes(7));
  raw(bytes, 200, 2, u32_bytes(8));  // claims 200 bytes, has 8
  const AttributeList list(bytes);
  int seen = 0;
  for (const Attribute& a : list) {
    EXPECT_EQ(a.type(), 1);
    ++seen;
  }
  EXPECT_EQ(seen, 1);
  EXPECT_FALSE(list.well_formed());
  EXPECT_FALSE(list.find(2).has_value());
}

TEST(AttributeListTest, StopsAtALengthShorterThanTheHeader) {
  std::vector<std::uint8_t> bytes;
  raw(bytes, 2, 1, {});
  const AttributeList list(bytes);
  EXPECT_EQ(list.begin(), list.end());
  EXPECT_FALSE(list.well_formed());
  EXPECT_TRUE(AttributeList().well_formed());
  const std::vector<std::uint8_t> three_bytes = {1, 2, 3};
  EXPECT_FALSE(AttributeList(three_bytes).well_formed());
}

TEST(AttributeListTest, AStringWithoutTerminatorEndsAtThePayload) {
  std::vector<std::uint8_t> bytes;
  raw(bytes, 4 + 3, 1, {'a', 'b', 'c'});
  EXPECT_EQ(AttributeList(bytes).find(1)->string(), "abc");
}

TEST(ReplyTest, ReadsTheFamilyHeaderAndAttributesAfterIt) {
  Request built(RTM_NEWLINK, 0);
  built.put_header<ifinfomsg>().ifi_index = 9;
  built.put_u32(IFLA_MTU, 1420);
  const Reply reply(std::vector<std::uint8_t>(built.bytes().begin(), built.bytes().end()));
  EXPECT_EQ(reply.type(), RTM_NEWLINK);
  EXPECT_EQ(reply.family_header<ifinfomsg>()->ifi_index, 9);
  EXPECT_EQ(reply.attributes(sizeof(ifinfomsg)).find(IFLA_MTU)->u32(), 1420U);
  // A family header longer than the message: no header, no attributes, no crash.
  struct Big {
    char bytes[40];
  };
  EXPECT_FALSE(reply.family_header<Big>().has_value());
  EXPECT_EQ(reply.attributes(400).begin(), reply.attributes(400).end());
}

TEST(RequestTest, AnAttributeThatDoesNotFitMarksTheMessageOverflowed) {
  Request request(RTM_NEWLINK, 0, Request::kMinCapacity);
  request.put_header<ifinfomsg>();
  int fitted = 0;
  while (request.put_u32(1, 0)) ++fitted;
  EXPECT_EQ(fitted, static_cast<int>((Request::kMinCapacity - 16 - 16) / 8));
  EXPECT_TRUE(request.overflowed());
  EXPECT_LE(request.size(), request.capacity());
}

TEST(RequestTest, CancellingTheNestThatOverflowedRestoresTheMessage) {
  Request request(RTM_NEWLINK, 0, Request::kMinCapacity);
  request.put_u32(1, 1);
  const std::size_t before = request.size();
  nlattr* nest = request.begin_nested(2);
  ASSERT_NE(nest, nullptr);
  while (request.put_u64(3, 0)) {
  }
  ASSERT_TRUE(request.overflowed());
  request.cancel_nested(nest);
  EXPECT_FALSE(request.overflowed());
  EXPECT_EQ(request.size(), before);
  EXPECT_TRUE(request.put_u32(4, 4));  // and it can be filled again
}

TEST(RequestTest, CancellingALaterNestKeepsAnEarlierOverflow) {
  Request request(RTM_NEWLINK, 0, Request::kMinCapacity);
  EXPECT_FALSE(request.put_bytes(1, std::vector<std::uint8_t>(Request::kMinCapacity, 0)));
  nlattr* nest = request.begin_nested(2);
  request.cancel_nested(nest);
  EXPECT_TRUE(request.overflowed());
}

TEST(RequestDeathTest, AFamilyHeaderAfterAttributesIsAProgrammingMistake) {
  Request request(RTM_NEWLINK, 0);
  request.put_u32(1, 1);
  EXPECT_DEATH(request.put_header<ifinfomsg>(), "family header after attributes");
}

TEST(ErrnoTest, KernelErrorsMapToCodesThatSayWhetherRetryingHelps) {
  struct Case {
    int error;
    ErrorCode code;
  };
  for (const Case& c :
       {Case{ENOENT, ErrorCode::kNotFound}, Case{ENODEV, ErrorCode::kNotFound},
        Case{ESRCH, ErrorCode::kNotFound}, Case{EEXIST, ErrorCode::kAlreadyExists},
        Case{EPERM, ErrorCode::kPermissionDenied}, Case{EACCES, ErrorCode::kPermissionDenied},
        Case{EINVAL, ErrorCode::kInvalidArgument}, Case{EOPNOTSUPP, ErrorCode::kInvalidArgument},
        Case{ERANGE, ErrorCode::kInvalidArgument}, Case{EBUSY, ErrorCode::kConflict},
        Case{ENOBUFS, ErrorCode::kUnavailable}, Case{ENETUNREACH, ErrorCode::kUnavailable}}) {
    SCOPED_TRACE(strerrorname_np(c.error));
    EXPECT_EQ(error_code_for_errno(c.error), c.code);
  }
  const Error e = errno_error(ENODEV, "no such link");
  EXPECT_EQ(e.message(), "No such device (ENODEV): no such link");
  EXPECT_EQ(e.reason(), "ENODEV");
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_EQ(errno_error(EEXIST).message(), "File exists (EEXIST)");
}

}  // namespace
}  // namespace cw::netlink
