#include "common/ipam/claim_name.h"

#include <cstdio>
#include <sstream>
#include <vector>

namespace cw::ipam {

std::string claim_name(const net::Prefix& block) {
  const net::Uint128 bits = block.address().bits();
  std::string out;
  if (block.family() == net::Family::kIPv4) {
    for (int i = 3; i >= 0; --i) out += std::to_string(static_cast<unsigned>((bits >> (8 * i)) & 0xff)) + "-";
  } else {
    char group[8];
    for (int i = 7; i >= 0; --i) {
      std::snprintf(group, sizeof group, "%x", static_cast<unsigned>((bits >> (16 * i)) & 0xffff));
      out += std::string(group) + "-";
    }
  }
  return out + std::to_string(block.length());
}

Result<net::Prefix> block_from_claim_name(const std::string& name) {
  std::vector<std::string> parts;
  std::stringstream ss(name);
  std::string part;
  while (std::getline(ss, part, '-')) parts.push_back(part);
  std::string text;
  if (parts.size() == 5) {
    text = parts[0] + "." + parts[1] + "." + parts[2] + "." + parts[3] + "/" + parts[4];
  } else if (parts.size() == 9) {
    for (int i = 0; i < 8; ++i) text += parts[static_cast<std::size_t>(i)] + (i < 7 ? ":" : "");
    text += "/" + parts[8];
  } else {
    return Error(ErrorCode::kInvalidArgument, "\"" + name + "\" is not a CIDRClaim name");
  }
  auto block = net::Prefix::parse(text);
  // Only the canonical spelling counts: "010-..." or "FD00-..." are not names we make.
  if (!block || claim_name(*block) != name) {
    return Error(ErrorCode::kInvalidArgument, "\"" + name + "\" is not a CIDRClaim name");
  }
  return *block;
}

}  // namespace cw::ipam
