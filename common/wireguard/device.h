// WireGuard devices as values, and the one interface both backends implement: the kernel's
// generic netlink family "wireguard", and the UAPI text protocol of userspace
// implementations (wireguard-go, boringtun). Modelled on wireguard-tools' embeddable library:
// plain structs, explicit flags, and a set call that can state the whole desired list.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"
#include "common/net/prefix.h"

namespace cw::wg {

constexpr std::size_t kKeyLength = 32;

// A Curve25519 key: public, private or preshared. Private and preshared keys are secrets:
// their bytes are wiped when the Key is destroyed or overwritten, and they are never logged
// (to_base64() is for the public keys one publishes and for writing key files).
class Key {
 public:
  Key() = default;
  explicit Key(const std::array<std::uint8_t, kKeyLength>& bytes) : bytes_(bytes) {}
  Key(const Key& other) = default;
  Key& operator=(const Key& other);
  ~Key();

  static Result<Key> from_base64(std::string_view text);  // 44 characters, '=' at the end
  static Result<Key> from_hex(std::string_view text);     // 64 hex digits (UAPI)
  std::string to_base64() const;
  std::string to_hex() const;
  const std::array<std::uint8_t, kKeyLength>& bytes() const { return bytes_; }
  bool is_zero() const;

  friend bool operator==(const Key& a, const Key& b);  // constant time
  friend bool operator<(const Key& a, const Key& b) { return a.bytes_ < b.bytes_; }

 private:
  std::array<std::uint8_t, kKeyLength> bytes_{};
};

// A new private key: 32 random bytes clamped for X25519 (libsodium).
Result<Key> generate_private_key();
// The public key of a private key (X25519 base-point multiplication).
Result<Key> public_key_of(const Key& private_key);

// "host:port" with an IPv4 or IPv6 address ([v6]:port), as WireGuard endpoints are.
struct Endpoint {
  net::IpAddress address;
  std::uint16_t port = 0;

  static Result<Endpoint> parse(std::string_view text);
  std::string to_string() const;
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

struct Peer {
  Key public_key;
  std::optional<Key> preshared_key;
  std::optional<Endpoint> endpoint;
  std::vector<net::Prefix> allowed_ips;  // sorted when compared
  std::uint16_t persistent_keepalive = 0;  // seconds, 0 = off

  // Read back only (ignored by set):
  std::optional<std::chrono::system_clock::time_point> last_handshake;
  std::uint64_t rx_bytes = 0;
  std::uint64_t tx_bytes = 0;
};

struct Device {
  std::string name;
  std::optional<Key> private_key;
  std::optional<Key> public_key;  // read back only
  std::uint16_t listen_port = 0;
  std::uint32_t fwmark = 0;
  std::vector<Peer> peers;  // sorted by public key when read back
};

// One change to a device. Each field is applied only when its flag is set, as in the
// embeddable library; peers not listed are untouched unless replace_peers is set.
struct PeerUpdate {
  Peer peer;
  bool remove = false;                // remove this peer (only public_key is read)
  bool update_only = false;           // do not create it if absent
  bool replace_allowed_ips = false;   // the list states all of them (else: added)
  bool set_preshared_key = false;     // peer.preshared_key, or clear it when nullopt
  bool set_endpoint = false;
  bool set_keepalive = false;
};

struct DeviceUpdate {
  std::optional<Key> private_key;
  std::optional<std::uint16_t> listen_port;
  std::optional<std::uint32_t> fwmark;
  bool replace_peers = false;  // peers not listed are removed
  std::vector<PeerUpdate> peers;
};

// Control of WireGuard devices. Errors: kNotFound (no such device), kPermissionDenied,
// kInvalidArgument (the kernel or UAPI refused the values), kUnavailable (talking to it failed).
class DeviceControl {
 public:
  virtual ~DeviceControl() = default;
  virtual const char* backend() const = 0;  // "kernel" or "uapi"
  virtual Result<Device> get(const std::string& name) = 0;
  virtual Result<void> set(const std::string& name, const DeviceUpdate& update) = 0;
  // Names of the devices this backend sees.
  virtual Result<std::vector<std::string>> list() = 0;
};

// Two peers configured the same (what set() writes; statistics ignored).
bool same_config(const Peer& a, const Peer& b);

}  // namespace cw::wg
