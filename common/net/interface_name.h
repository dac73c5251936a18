// Network interface names as Linux allows them (the kernel's dev_valid_name()), plus no
// control characters, since a name ends up in messages, netlink requests and socket paths.
// Checked before anything is sent, so that a bad name is a clear error rather than an EINVAL.
#pragma once

#include <string>

#include "common/base/result.h"

namespace cw::net {

// 1-15 bytes, not "." or "..", no '/', ':', white space or control characters.
Result<void> check_interface_name(const std::string& name);

}  // namespace cw::net
