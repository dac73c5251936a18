#include "common/net/prefix.h"

#include <charconv>

namespace cw::net {
namespace {

Error invalid(std::string_view text, const std::string& why) {
  return Error(ErrorCode::kInvalidArgument,
               "invalid prefix \"" + std::string(text) + "\": " + why);
}

Uint128 all_ones(Family family) {
  return family == Family::kIPv6 ? ~Uint128{0} : Uint128{0xffffffffU};
}

Uint128 host_mask(Family family, int length) {
  return all_ones(family) & ~network_mask(family, length);
}

}  // namespace

Uint128 network_mask(Family family, int length) {
  const int width = bit_width(family);
  const Uint128 all = all_ones(family);
  if (length <= 0) return 0;
  if (length >= width) return all;
  return all & ~((Uint128{1} << (width - length)) - 1);
}

Result<Prefix> Prefix::parse(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return invalid(text, "missing \"/<length>\"");
  const std::string_view addr_text = text.substr(0, slash);
  const std::string_view len_text = text.substr(slash + 1);

  auto address = IpAddress::parse(addr_text);
  if (!address) return invalid(text, address.error().message());

  // Decimal digits only: no sign, no white space, no leading zeros ("/08"), as Go's
  // netip.ParsePrefix, which is what Kubernetes validates CIDRs with.
  int length = -1;
  const bool digits_only =
      !len_text.empty() && len_text.size() <= 3 &&
      len_text.find_first_not_of("0123456789") == std::string_view::npos &&
      !(len_text.size() > 1 && len_text[0] == '0');
  if (digits_only) {
    std::from_chars(len_text.data(), len_text.data() + len_text.size(), length);
  }
  if (!digits_only) {
    return invalid(text, "\"" + std::string(len_text) + "\" is not a prefix length");
  }
  return checked(*address, length, text);
}

Result<Prefix> Prefix::make(const IpAddress& address, int length) {
  return checked(address, length, address.to_string() + "/" + std::to_string(length));
}

Result<Prefix> Prefix::checked(const IpAddress& address, int length, std::string_view text) {
  const int width = bit_width(address.family());
  if (length < 0 || length > width) {
    return invalid(text, "length " + std::to_string(length) + " is out of range for " +
                             net::to_string(address.family()) + " (0-" +
                             std::to_string(width) + ")");
  }
  if ((address.bits() & host_mask(address.family(), length)) != 0) {
    const IpAddress network =
        IpAddress::from_bits(address.family(), address.bits() & network_mask(address.family(), length));
    return invalid(text, "host bits are set (the block is " + network.to_string() + "/" +
                             std::to_string(length) + ")");
  }
  return Prefix(address, length);
}

std::string Prefix::to_string() const {
  return address_.to_string() + "/" + std::to_string(length_);
}

IpAddress Prefix::last() const {
  return IpAddress::from_bits(family(), address_.bits() | host_mask(family(), length_));
}

bool Prefix::contains(const IpAddress& address) const {
  return address.family() == family() &&
         (address.bits() & network_mask(family(), length_)) == address_.bits();
}

bool Prefix::contains(const Prefix& other) const {
  return other.family() == family() && other.length_ >= length_ && contains(other.address_);
}

bool Prefix::overlaps(const Prefix& other) const {
  return contains(other) || other.contains(*this);
}

std::pair<Prefix, Prefix> Prefix::halves() const {
  const int width = bit_width(family());
  if (length_ >= width) die_on_misuse("Prefix::halves", "no halves of " + to_string());
  const Uint128 upper_bit = Uint128{1} << (width - length_ - 1);
  return {Prefix(address_, length_ + 1),
          Prefix(IpAddress::from_bits(family(), address_.bits() | upper_bit), length_ + 1)};
}

Uint128 Prefix::subprefix_count(int new_length) const {
  if (new_length < length_ || new_length > bit_width(family())) return 0;
  const int extra = new_length - length_;
  return extra >= 127 ? Uint128{1} << 127 : Uint128{1} << extra;
}

Result<Prefix> Prefix::subprefix(int new_length, Uint128 index) const {
  const Uint128 count = subprefix_count(new_length);
  if (count == 0) {
    return invalid(to_string(), "no sub-prefixes of length " + std::to_string(new_length));
  }
  if (new_length - length_ < 127 && index >= count) {
    return invalid(to_string(), "sub-prefix index is past the end");
  }
  const int shift = bit_width(family()) - new_length;
  const Uint128 offset = shift >= 128 ? 0 : index << shift;
  return Prefix(IpAddress::from_bits(family(), address_.bits() | offset), new_length);
}

Result<std::vector<Prefix>> Prefix::split(int new_length) const {
  const Uint128 count = subprefix_count(new_length);
  if (count == 0) {
    return invalid(to_string(), "cannot split into /" + std::to_string(new_length) +
                                    " (length must be " + std::to_string(length_) + "-" +
                                    std::to_string(bit_width(family())) + ")");
  }
  if (count > kMaxSplit) {
    return invalid(to_string(), "splitting into /" + std::to_string(new_length) +
                                    " makes more than " + std::to_string(kMaxSplit) +
                                    " prefixes");
  }
  std::vector<Prefix> out;
  out.reserve(static_cast<std::size_t>(count));
  for (Uint128 i = 0; i < count; ++i) out.push_back(subprefix(new_length, i).value());
  return out;
}

std::optional<Prefix> intersection(const Prefix& a, const Prefix& b) {
  if (a.contains(b)) return b;
  if (b.contains(a)) return a;
  return std::nullopt;
}

}  // namespace cw::net
