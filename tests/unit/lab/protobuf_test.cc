// The protobuf bodies the lab API server reads (kubectl's access reviews and TokenRequests),
// and what it says to anything else, including junk.
#include "lab/apiserver/protobuf.h"

#include <gtest/gtest.h>

#include <random>

namespace cw::lab {
namespace {

std::string varint(std::uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
std::string bytes_field(int number, const std::string& value) {
  return varint(static_cast<std::uint64_t>(number) << 3 | 2) + varint(value.size()) + value;
}
std::string envelope(const std::string& api_version, const std::string& kind, const std::string& raw) {
  return std::string("k8s\0", 4) + bytes_field(1, bytes_field(1, api_version) + bytes_field(2, kind)) + bytes_field(2, raw);
}

TEST(ProtobufBodyTest, ASelfSubjectAccessReviewAsKubectlSendsIt) {
  const std::string attrs = bytes_field(1, "default") + bytes_field(2, "list") + bytes_field(5, "configmaps");
  const auto r = decode_protobuf_body(envelope("authorization.k8s.io/v1", "SelfSubjectAccessReview", bytes_field(2, bytes_field(1, attrs))));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ((*r)["kind"], "SelfSubjectAccessReview");
  EXPECT_EQ((*r)["spec"]["resourceAttributes"],
            nlohmann::json({{"namespace", "default"}, {"verb", "list"}, {"resource", "configmaps"}}));
}

TEST(ProtobufBodyTest, ATokenRequest) {
  const std::string spec = bytes_field(1, "aud-a") + varint(4 << 3) + varint(7200);
  const auto r = decode_protobuf_body(envelope("authentication.k8s.io/v1", "TokenRequest", bytes_field(2, spec)));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ((*r)["spec"]["audiences"], nlohmann::json({"aud-a"}));
  EXPECT_EQ((*r)["spec"]["expirationSeconds"], 7200);
}

TEST(ProtobufBodyTest, OtherKindsAndJunkAreRefusedClearly) {
  auto cm = decode_protobuf_body(envelope("v1", "ConfigMap", ""));
  ASSERT_FALSE(cm.ok());
  EXPECT_NE(cm.error().message().find("speaks JSON only"), std::string::npos);
  EXPECT_NE(cm.error().message().find("v1 ConfigMap"), std::string::npos);
  EXPECT_FALSE(decode_protobuf_body("").ok());
  EXPECT_FALSE(decode_protobuf_body(std::string("k8s\0\x0a\xff", 6)).ok());  // a length past the end
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {  // random bytes after the magic: an error or a decoded object, never a crash
    std::string junk("k8s\0", 4);
    const int n = static_cast<int>(rng() % 64);
    for (int j = 0; j < n; ++j) junk.push_back(static_cast<char>(rng()));
    (void)decode_protobuf_body(junk);
  }
}

}  // namespace
}  // namespace cw::lab
