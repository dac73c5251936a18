// IPv4 and IPv6 addresses as values: parsed strictly, formatted canonically (RFC 5952 for
// IPv6), ordered IPv4 before IPv6 and then numerically, so sorted output is stable.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/result.h"

namespace cw::net {

// 128-bit arithmetic for address math. __extension__ keeps -Wpedantic quiet: GCC and Clang
// both provide the type on every platform clusterwire targets.
__extension__ using Uint128 = unsigned __int128;

enum class Family : std::uint8_t { kIPv4 = 4, kIPv6 = 6 };

// Address width in bits: 32 or 128.
constexpr int bit_width(Family family) { return family == Family::kIPv4 ? 32 : 128; }
const char* to_string(Family family);  // "IPv4" / "IPv6"
// Decimal text of a 128-bit count ("65536").
std::string format_count(Uint128 value);

class IpAddress {
 public:
  // Dotted quad for IPv4 (no leading zeros, no shorthand), any RFC 4291 text form for IPv6.
  // Surrounding white space, zones ("%eth0") and prefixes are errors.
  static Result<IpAddress> parse(std::string_view text);
  // The address whose numeric value is `bits`; for IPv4 only the low 32 bits are used.
  static IpAddress from_bits(Family family, Uint128 bits);

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::kIPv4; }
  // Numeric value, most significant bit first: IPv4 in the low 32 bits.
  Uint128 bits() const { return bits_; }
  std::string to_string() const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
  friend std::strong_ordering operator<=>(const IpAddress& a, const IpAddress& b) {
    if (a.family_ != b.family_) return a.family_ <=> b.family_;
    return a.bits_ <=> b.bits_;
  }

 private:
  IpAddress(Family family, Uint128 bits) : family_(family), bits_(bits) {}

  Family family_ = Family::kIPv4;
  Uint128 bits_ = 0;
};

}  // namespace cw::net
