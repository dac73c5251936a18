// The text protocol of userspace WireGuard implementations (wireguard-go, boringtun), as pure
// functions: a DeviceUpdate into a set=1 request, and a get=1 or set=1 reply into a Device or
// an Error. No I/O here: uapi_control.h carries these over the unix socket.
// Protocol: https://www.wireguard.com/xplatform/#configuration-protocol
//
// Replies are untrusted input. A reply cut short (no errno line, no closing blank line) is
// kUnavailable, as a broken connection is; a reply that says something impossible (a bad key,
// a number out of range, a line that is not key=value) is kInvalidArgument naming the line.
// Keys the parser does not know are ignored, as wireguard-tools does, so that newer daemons
// with extra fields still parse. Secret values are never repeated in a message.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/result.h"
#include "common/wireguard/device.h"

namespace cw::wg {

// A reply larger than this is refused rather than buffered. A device with a million /32
// allowed IPs answers about 25 MiB, so this bounds memory without limiting real devices.
constexpr std::size_t kMaxUapiReplyBytes = std::size_t{64} << 20;

// The whole set=1 request for `update`, closing blank line included. Flags map one to one onto
// protocol keys: replace_peers, remove (and nothing else for that peer), update_only,
// preshared_key (64 zeros when clearing it), endpoint, persistent_keepalive_interval,
// replace_allowed_ips; allowed IPs are sent in the order given. The text holds private and
// preshared keys when the update sets them: the caller wipes it with wipe() after use. It is
// built in one allocation so that no copy of a key is left behind in freed memory.
std::string encode_set(const DeviceUpdate& update);

// What encode_set cannot express, as kInvalidArgument naming the peer: an endpoint cannot be
// cleared through UAPI (set_endpoint without one), and port 0 is not an endpoint.
Result<void> check_encodable(const DeviceUpdate& update);

// A whole get=1 reply, from its first line to its closing blank line, nothing after it.
// Peers come back sorted by public key and their allowed IPs sorted. The device's public key is
// derived from its private key (the protocol does not send it); name is left empty.
Result<Device> parse_get(std::string_view reply);

// A whole set=1 reply ("errno=0\n\n" when it was applied). A non-zero errno is an Error that
// says lines before the refused one were applied: wireguard-go applies a request line by line.
Result<void> parse_set_reply(std::string_view reply);

// The Error for a non-zero errno answered to `operation` ("get", "set"). wireguard-go sends it
// negated (errno=-22); either sign is accepted. EINVAL and EPROTO are kInvalidArgument,
// EADDRINUSE kConflict, EIO kUnavailable, EACCES/EPERM kPermissionDenied, ENOENT/ENODEV
// kNotFound, others kInternal.
Error uapi_errno_error(long long value, std::string_view operation);

// Where the first reply in `buffer` ends: the index just past its closing blank line, or
// nullopt while it is incomplete. Replies never contain an empty line before their end.
std::optional<std::size_t> reply_length(std::string_view buffer);

// Overwrites all of the string's storage, spare capacity included, then empties it.
void wipe(std::string& secret);

}  // namespace cw::wg
