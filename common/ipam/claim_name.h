// A CIDRClaim is named after its block, so that the API server's name uniqueness makes a
// claim atomic (docs/api.md): 10.64.0.0/16 ↔ "10-64-0-0-16"; fd00:c1::/56 ↔
// "fd00-c1-0-0-0-0-0-0-56" (all eight groups, lower-case hex without leading zeros).
#pragma once

#include <string>

#include "common/base/result.h"
#include "common/net/prefix.h"

namespace cw::ipam {

std::string claim_name(const net::Prefix& block);
// The block a claim name stands for; kInvalidArgument for a name no block produces.
Result<net::Prefix> block_from_claim_name(const std::string& name);

}  // namespace cw::ipam
