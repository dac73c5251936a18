// The node's WireGuard private key on the host (DESIGN.md "Flows" 3): created once, mode
// 0600 in a 0700 directory, and read back on every start so the node keeps its identity.
// The key never leaves the node: only its public key is published.
#pragma once

#include <string>

#include "common/base/result.h"
#include "common/wireguard/device.h"

namespace cw::agent {

// Loads the key at `path`, or creates it (and its directory) if there is none. A file that
// exists but does not hold a key is an error, never overwritten: replacing it would change
// the node's identity under every peer's feet. A file others can read is tightened to 0600.
Result<wg::Key> load_or_create_private_key(const std::string& path);

}  // namespace cw::agent
