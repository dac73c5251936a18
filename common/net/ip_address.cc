#include "common/net/ip_address.h"

#include <arpa/inet.h>

#include <array>

namespace cw::net {

const char* to_string(Family family) { return family == Family::kIPv4 ? "IPv4" : "IPv6"; }

std::string format_count(Uint128 value) {
  if (value == 0) return "0";
  std::string out;
  while (value != 0) {
    out.insert(out.begin(), static_cast<char>('0' + static_cast<int>(value % 10)));
    value /= 10;
  }
  return out;
}

Result<IpAddress> IpAddress::parse(std::string_view text) {
  // inet_pton needs a NUL-terminated string and stops at nothing else, so an embedded NUL
  // or a text longer than any address is refused before it gets there.
  constexpr std::size_t kMaxText = 45;  // INET6_ADDRSTRLEN - 1
  if (text.empty() || text.size() > kMaxText || text.find('\0') != std::string_view::npos) {
    return Error(ErrorCode::kInvalidArgument,
                 "\"" + std::string(text) + "\" is not an IPv4 or IPv6 address");
  }
  const std::string s(text);
  if (s.find(':') == std::string::npos) {
    std::array<unsigned char, 4> raw{};
    if (inet_pton(AF_INET, s.c_str(), raw.data()) == 1) {
      Uint128 bits = 0;
      for (unsigned char byte : raw) bits = (bits << 8) | byte;
      return IpAddress(Family::kIPv4, bits);
    }
  } else {
    std::array<unsigned char, 16> raw{};
    if (inet_pton(AF_INET6, s.c_str(), raw.data()) == 1) {
      Uint128 bits = 0;
      for (unsigned char byte : raw) bits = (bits << 8) | byte;
      return IpAddress(Family::kIPv6, bits);
    }
  }
  return Error(ErrorCode::kInvalidArgument, "\"" + s + "\" is not an IPv4 or IPv6 address");
}

IpAddress IpAddress::from_bits(Family family, Uint128 bits) {
  if (family == Family::kIPv4) bits &= 0xffffffffU;
  return IpAddress(family, bits);
}

std::string IpAddress::to_string() const {
  // glibc's inet_ntop writes RFC 5952 text for IPv6: lower case, the longest run of two or
  // more zero groups compressed (the first when tied), no leading zeros.
  char out[INET6_ADDRSTRLEN] = {};
  if (is_v4()) {
    std::array<unsigned char, 4> raw{};
    for (int i = 3; i >= 0; --i) raw[static_cast<std::size_t>(3 - i)] =
        static_cast<unsigned char>(bits_ >> (8 * i));
    inet_ntop(AF_INET, raw.data(), out, sizeof out);
  } else {
    std::array<unsigned char, 16> raw{};
    for (int i = 15; i >= 0; --i) raw[static_cast<std::size_t>(15 - i)] =
        static_cast<unsigned char>(bits_ >> (8 * i));
    inet_ntop(AF_INET6, raw.data(), out, sizeof out);
  }
  return out;
}

}  // namespace cw::net
