// Choosing the WireGuard backend: the kernel's when it has WireGuard, else userspace
// (wireguard-go over its UAPI socket), or the one named with --backend.
#pragma once

#include <memory>
#include <string>

#include "common/base/result.h"
#include "common/wireguard/device.h"

namespace cw::agent {

// `name`: "auto", "kernel" or "uapi". kNotFound for "kernel" on a kernel without WireGuard.
Result<std::unique_ptr<wg::DeviceControl>> choose_backend(const std::string& name, const std::string& uapi_socket_dir);

}  // namespace cw::agent
