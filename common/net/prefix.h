// An IP prefix (CIDR block) as a value. Parsing is strict: an address with host bits set,
// a length out of range or anything that is not "<address>/<length>" is an error naming the
// input, never silently normalised, because a mistyped CIDR in a ClusterSet would otherwise
// turn into a different, valid block.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"
#include "common/net/ip_address.h"

namespace cw::net {

class Prefix {
 public:
  static Result<Prefix> parse(std::string_view text);
  // The prefix `address`/`length`; an error if the length is out of range for the family
  // or the address has bits set past the length.
  static Result<Prefix> make(const IpAddress& address, int length);

  const IpAddress& address() const { return address_; }
  Family family() const { return address_.family(); }
  int length() const { return length_; }
  std::string to_string() const;

  // The last address inside the prefix (the broadcast address for IPv4).
  IpAddress last() const;
  bool contains(const IpAddress& address) const;
  bool contains(const Prefix& other) const;  // other lies wholly inside this
  bool overlaps(const Prefix& other) const;  // they share at least one address

  // The two halves one bit longer: {lower, upper}. Precondition: length() < bit_width.
  std::pair<Prefix, Prefix> halves() const;
  // The `index`-th sub-prefix of `new_length`, counting from the lowest address.
  Result<Prefix> subprefix(int new_length, Uint128 index) const;
  // How many sub-prefixes of `new_length` there are, saturating at 2^127 for huge IPv6
  // counts; 0 if new_length is shorter than this prefix or out of range.
  Uint128 subprefix_count(int new_length) const;
  // Every sub-prefix of `new_length`, lowest first. Refused beyond kMaxSplit results.
  static constexpr std::size_t kMaxSplit = std::size_t{1} << 20;
  Result<std::vector<Prefix>> split(int new_length) const;

  friend bool operator==(const Prefix&, const Prefix&) = default;
  // Family, then address, then length: a block sorts just before the blocks inside it.
  friend std::strong_ordering operator<=>(const Prefix& a, const Prefix& b) {
    if (auto c = a.address_ <=> b.address_; c != 0) return c;
    return a.length_ <=> b.length_;
  }

 private:
  Prefix(IpAddress address, int length) : address_(address), length_(length) {}
  // make(), with errors naming `text` as the user wrote it.
  static Result<Prefix> checked(const IpAddress& address, int length, std::string_view text);

  IpAddress address_;
  int length_ = 0;
};

// The addresses both prefixes cover. Prefixes either nest or are disjoint, so this is the
// smaller one when they overlap and nothing otherwise.
std::optional<Prefix> intersection(const Prefix& a, const Prefix& b);

// Mask with the top `length` bits of a `family` address set, in Uint128 bit positions.
Uint128 network_mask(Family family, int length);

}  // namespace cw::net
