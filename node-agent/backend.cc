#include "node-agent/backend.h"

#include "common/wireguard/kernel_control.h"
#include "common/wireguard/uapi_control.h"

namespace cw::agent {

Result<std::unique_ptr<wg::DeviceControl>> choose_backend(const std::string& name, const std::string& uapi_socket_dir) {
  if (name == "uapi") return wg::make_uapi_control(uapi_socket_dir);
  auto kernel = wg::make_kernel_control();
  if (kernel) return std::move(*kernel);
  if (name == "kernel" || kernel.error().code() != ErrorCode::kNotFound) return kernel.error();
  return wg::make_uapi_control(uapi_socket_dir);  // auto, and the kernel has no WireGuard
}

}  // namespace cw::agent
