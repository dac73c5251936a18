// The DeviceControl of userspace WireGuard: the UAPI text protocol (uapi.h) over the unix
// socket <socket_dir>/<ifname>.sock that wireguard-go creates for each device it runs.
//
// One connection per call, each read and write under the call's deadline, so a daemon that
// hangs costs a caller at most `timeout`. Thread-safe: calls share nothing but the options.
// Buffers that held private or preshared keys (requests, get replies) are wiped once used,
// and keys never appear in an Error.
//
// Errors: kNotFound when there is no socket, or nothing listens on it (a daemon that died
// without cleaning up); kPermissionDenied when the socket may not be opened (they belong to
// the user running wireguard-go, usually root, mode 0700); kUnavailable for time-outs and
// broken connections; kInvalidArgument for names that cannot be interfaces, updates UAPI
// cannot express, values the daemon refused, and replies that make no sense; set() refused
// with EADDRINUSE (listen_port taken) is kConflict.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "common/wireguard/device.h"
#include "common/wireguard/uapi.h"

namespace cw::wg {

struct UapiControlOptions {
  std::string socket_dir = "/var/run/wireguard";
  std::chrono::milliseconds timeout{std::chrono::seconds(5)};  // per call: connect, write, read
  std::size_t max_reply_bytes = kMaxUapiReplyBytes;
};

// list() names the devices whose <name>.sock is a socket in the directory (sorted; a missing
// directory is no devices). It does not probe them: a stale socket is listed, and get() on it
// is kNotFound.
std::unique_ptr<DeviceControl> make_uapi_control(std::string socket_dir = "/var/run/wireguard");
std::unique_ptr<DeviceControl> make_uapi_control(UapiControlOptions options);

}  // namespace cw::wg
