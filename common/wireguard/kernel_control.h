// The DeviceControl of the kernel's WireGuard: the generic netlink family "wireguard"
// (<linux/wireguard.h>), as wireguard-tools' ipc-linux.h speaks it, over the netlink Socket.
//
// Namespaces: the control's sockets are opened by make_kernel_control() and belong to the
// network namespace the calling thread was in then, for their whole life; it sees and
// configures the WireGuard devices of that namespace only. (A device's UDP socket stays in
// the namespace the device was created in, wherever the device is moved to later.)
//
// Threading: thread-safe; calls are serialised on the control's one pair of sockets.
//
// Secrets: set() puts private and preshared keys into message buffers that are wiped once
// sent; get() wipes the replies it parsed. Keys never appear in an Error.
//
// Errors: kNotFound when the device does not exist or the kernel has no wireguard module;
// kInvalidArgument for names that cannot be interfaces, a link that is not a WireGuard
// device, updates the kernel cannot express or refused, and replies that make no sense;
// kPermissionDenied without CAP_NET_ADMIN; kConflict when the listen port is taken;
// kUnavailable when the kernel does not answer.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/base/result.h"
#include "common/netlink/socket.h"
#include "common/wireguard/device.h"

namespace cw::wg {

struct KernelControlOptions {
  std::chrono::milliseconds timeout = netlink::Socket::kDefaultTimeout;  // per kernel answer
  // The size of each WG_CMD_SET_DEVICE message; longer updates are split over several.
  std::size_t message_capacity = netlink::Request::kDefaultCapacity;
};

// kNotFound ("the kernel has no wireguard module: use the UAPI backend (wireguard-go)") when
// the family is not registered. Also fails when netlink sockets cannot be opened.
Result<std::unique_ptr<DeviceControl>> make_kernel_control(KernelControlOptions options = {});

// The messages the control sends and the parser of what it reads, exposed so that their bytes
// can be checked without a kernel.

// WG_CMD_SET_DEVICE messages, which may hold private and preshared keys: every buffer is
// wiped, spare capacity included, by wipe() and by the destructor. Move-only.
class SetDeviceMessages {
 public:
  SetDeviceMessages() = default;
  SetDeviceMessages(SetDeviceMessages&&) noexcept = default;
  SetDeviceMessages& operator=(SetDeviceMessages&& other) noexcept;
  SetDeviceMessages(const SetDeviceMessages&) = delete;
  SetDeviceMessages& operator=(const SetDeviceMessages&) = delete;
  ~SetDeviceMessages() { wipe(); }

  std::vector<netlink::Request>& messages() { return messages_; }
  const std::vector<netlink::Request>& messages() const { return messages_; }
  void wipe();

 private:
  std::vector<netlink::Request> messages_;
};

// The WG_CMD_SET_DEVICE messages that apply `update` to device `name`, in sending order, each
// at most `capacity` bytes. As wireguard-tools splits them: only the first carries the device
// fields (private key, listen port, fwmark) and WGDEVICE_F_REPLACE_PEERS; a peer whose allowed
// IPs do not fit is continued in the next message under the same public key, with its
// WGPEER_F_UPDATE_ONLY but without WGPEER_F_REPLACE_ALLOWEDIPS (which would drop the part
// already sent) and without its other fields. A peer marked remove carries only its key.
//
// The kernel applies each message on its own: if a later one is refused, the earlier ones
// stay applied, and with replace_peers the device then holds only part of the peers.
//
// kInvalidArgument for an invalid name, an endpoint to clear or with port 0 (the kernel has no
// way to clear one, as UAPI has not), or a peer that does not fit in one message even alone.
Result<SetDeviceMessages> build_set_device(
    std::uint16_t family_id, const std::string& name, const DeviceUpdate& update,
    std::size_t capacity = netlink::Request::kDefaultCapacity);

// The WG_CMD_GET_DEVICE dump request for device `name`.
Result<netlink::Request> build_get_device(std::uint16_t family_id, const std::string& name);

// The device in the replies of one WG_CMD_GET_DEVICE dump. The kernel spreads a device over as
// many messages as it needs: the first carries the device's fields, and a peer whose allowed
// IPs run over is repeated at the start of the next message with only its public key and the
// rest of its allowed IPs. Fragments with the same public key are one peer, as wireguard-tools
// coalesces them. Peers come back sorted by public key, allowed IPs sorted; a zero preshared
// key or handshake time reads as none. Unknown attributes are ignored (newer kernels add
// some); known ones of the wrong size, truncated attribute lists, a peer without a public key
// and impossible allowed IPs are kInvalidArgument. `name` is left empty.
Result<Device> parse_get_device(std::span<const netlink::Reply> replies);

}  // namespace cw::wg
