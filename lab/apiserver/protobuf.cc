#include "lab/apiserver/protobuf.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

namespace cw::lab {
namespace {

using nlohmann::json;

// One message's fields: (number, wire type, varint value or bytes).
struct Field {
  std::uint32_t number = 0;
  int wire = 0;
  std::uint64_t varint = 0;
  std::string_view bytes;
};

std::optional<std::uint64_t> read_varint(std::string_view& in) {
  std::uint64_t v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const auto b = static_cast<std::uint8_t>(in.front());
    in.remove_prefix(1);
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
  return std::nullopt;
}

// Calls `f` for each field; false on malformed input (truncated, or a group/fixed type
// these messages never carry).
bool for_each_field(std::string_view in, const std::function<void(const Field&)>& f) {
  while (!in.empty()) {
    auto key = read_varint(in);
    if (!key) return false;
    Field field;
    field.number = static_cast<std::uint32_t>(*key >> 3);
    field.wire = static_cast<int>(*key & 7);
    if (field.wire == 0) {
      auto v = read_varint(in);
      if (!v) return false;
      field.varint = *v;
    } else if (field.wire == 2) {
      auto len = read_varint(in);
      if (!len || *len > in.size()) return false;
      field.bytes = in.substr(0, *len);
      in.remove_prefix(*len);
    } else if (field.wire == 1 && in.size() >= 8) {
      in.remove_prefix(8);
    } else if (field.wire == 5 && in.size() >= 4) {
      in.remove_prefix(4);
    } else {
      return false;
    }
    f(field);
  }
  return true;
}

// k8s.io/api/authorization/v1 ResourceAttributes and NonResourceAttributes.
json resource_attributes(std::string_view in) {
  static const char* names[] = {"", "namespace", "verb", "group", "version", "resource", "subresource", "name"};
  json out = json::object();
  for_each_field(in, [&](const Field& f) {
    if (f.wire == 2 && f.number >= 1 && f.number <= 7) out[names[f.number]] = std::string(f.bytes);
  });
  return out;
}

json non_resource_attributes(std::string_view in) {
  json out = json::object();
  for_each_field(in, [&](const Field& f) {
    if (f.wire == 2 && f.number == 1) out["path"] = std::string(f.bytes);
    if (f.wire == 2 && f.number == 2) out["verb"] = std::string(f.bytes);
  });
  return out;
}

// SelfSubjectAccessReviewSpec {resourceAttributes=1, nonResourceAttributes=2};
// SubjectAccessReviewSpec adds user=3, groups=4, uid=6.
json access_review_spec(std::string_view in) {
  json out = json::object();
  for_each_field(in, [&](const Field& f) {
    if (f.wire != 2) return;
    switch (f.number) {
      case 1: out["resourceAttributes"] = resource_attributes(f.bytes); break;
      case 2: out["nonResourceAttributes"] = non_resource_attributes(f.bytes); break;
      case 3: out["user"] = std::string(f.bytes); break;
      case 4: out["groups"].push_back(std::string(f.bytes)); break;
      case 6: out["uid"] = std::string(f.bytes); break;
      default: break;
    }
  });
  return out;
}

// k8s.io/api/authentication/v1 TokenRequestSpec {audiences=1, boundObjectRef=3, expirationSeconds=4}.
json token_request_spec(std::string_view in) {
  json out = json::object();
  for_each_field(in, [&](const Field& f) {
    if (f.number == 1 && f.wire == 2) out["audiences"].push_back(std::string(f.bytes));
    if (f.number == 4 && f.wire == 0) out["expirationSeconds"] = static_cast<std::int64_t>(f.varint);
  });
  return out;
}

}  // namespace

Result<json> decode_protobuf_body(const std::string& body) {
  static const std::string_view kMagic("k8s\0", 4);
  std::string_view in(body);
  if (in.substr(0, 4) != kMagic) return Error(ErrorCode::kInvalidArgument, "a protobuf body without the k8s envelope");
  in.remove_prefix(4);
  std::string api_version, kind;
  std::string_view raw;
  const bool ok = for_each_field(in, [&](const Field& f) {
    if (f.number == 1 && f.wire == 2) {  // TypeMeta {apiVersion=1, kind=2}
      for_each_field(f.bytes, [&](const Field& t) {
        if (t.number == 1 && t.wire == 2) api_version = std::string(t.bytes);
        if (t.number == 2 && t.wire == 2) kind = std::string(t.bytes);
      });
    }
    if (f.number == 2 && f.wire == 2) raw = f.bytes;
  });
  if (!ok) return Error(ErrorCode::kInvalidArgument, "a malformed protobuf body");
  const bool review = api_version == "authorization.k8s.io/v1" && (kind == "SelfSubjectAccessReview" || kind == "SubjectAccessReview");
  const bool token = api_version == "authentication.k8s.io/v1" && kind == "TokenRequest";
  if (!review && !token) {
    return Error(ErrorCode::kInvalidArgument, "the lab API server speaks JSON only (got application/vnd.kubernetes.protobuf for " +
                                                  (kind.empty() ? std::string("an object") : api_version + " " + kind) +
                                                  "); use a manifest with -f");
  }
  json out{{"apiVersion", api_version}, {"kind", kind}, {"metadata", json::object()}, {"spec", json::object()}};
  const bool parsed = for_each_field(raw, [&](const Field& f) {  // {metadata=1, spec=2, status=3}
    if (f.number == 2 && f.wire == 2) out["spec"] = review ? access_review_spec(f.bytes) : token_request_spec(f.bytes);
  });
  if (!parsed) return Error(ErrorCode::kInvalidArgument, "a malformed protobuf " + kind);
  return out;
}

}  // namespace cw::lab
