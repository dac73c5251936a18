#include "common/wireguard/device.h"

#include <sodium.h>

#include <algorithm>
#include <charconv>

#include "common/base/base64.h"

namespace cw::wg {
namespace {

Result<void> sodium_ready() {
  // sodium_init is idempotent and thread-safe; < 0 means no usable randomness.
  if (sodium_init() < 0) return Error(ErrorCode::kInternal, "libsodium could not initialise");
  return ok_result();
}

}  // namespace

Key& Key::operator=(const Key& other) {
  if (this != &other) bytes_ = other.bytes_;
  return *this;
}

Key::~Key() { sodium_memzero(bytes_.data(), bytes_.size()); }

bool operator==(const Key& a, const Key& b) {
  return sodium_memcmp(a.bytes_.data(), b.bytes_.data(), kKeyLength) == 0;
}

bool Key::is_zero() const { return sodium_is_zero(bytes_.data(), bytes_.size()) == 1; }

Result<Key> Key::from_base64(std::string_view text) {
  auto bad = [] {
    // The text itself is not repeated: it may be a private key.
    return Error(ErrorCode::kInvalidArgument, "a WireGuard key must be 44 characters of base64 (32 bytes)");
  };
  if (text.size() != 44 || text.back() != '=') return bad();
  auto raw = base64_decode(text);
  if (!raw || raw->size() != kKeyLength) return bad();
  std::array<std::uint8_t, kKeyLength> bytes{};
  std::copy(raw->begin(), raw->end(), bytes.begin());
  sodium_memzero(raw->data(), raw->size());
  Key k(bytes);
  sodium_memzero(bytes.data(), bytes.size());
  // Only the canonical encoding: decoders ignore the last character's spare bits, so
  // "...Xb=" and "...Xo=" would be the same key, and the CRD schema (like wg) refuses the
  // former. Accepting it here would let it through to be refused with a whole advertisement.
  std::string canonical = k.to_base64();
  const bool same = canonical == text;
  sodium_memzero(canonical.data(), canonical.size());
  if (!same) return bad();
  return k;
}

Result<Key> Key::from_hex(std::string_view text) {
  if (text.size() != 2 * kKeyLength) {
    return Error(ErrorCode::kInvalidArgument, "a WireGuard key in hex must be 64 hex digits");
  }
  std::array<std::uint8_t, kKeyLength> bytes{};
  std::size_t written = 0;
  if (sodium_hex2bin(bytes.data(), bytes.size(), text.data(), text.size(), nullptr, &written, nullptr) != 0 ||
      written != kKeyLength) {
    return Error(ErrorCode::kInvalidArgument, "a WireGuard key in hex must be 64 hex digits");
  }
  Key k(bytes);
  sodium_memzero(bytes.data(), bytes.size());
  return k;
}

std::string Key::to_base64() const {
  return base64_encode(std::string_view(reinterpret_cast<const char*>(bytes_.data()), bytes_.size()));
}

std::string Key::to_hex() const {
  std::string out(2 * kKeyLength + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), bytes_.data(), bytes_.size());
  out.pop_back();
  return out;
}

Result<Key> generate_private_key() {
  if (auto r = sodium_ready(); !r) return r.error();
  std::array<std::uint8_t, kKeyLength> bytes{};
  randombytes_buf(bytes.data(), bytes.size());
  // Clamp as X25519 (and `wg genkey`) does.
  bytes[0] &= 248;
  bytes[31] = static_cast<std::uint8_t>((bytes[31] & 127) | 64);
  Key k(bytes);
  sodium_memzero(bytes.data(), bytes.size());
  return k;
}

Result<Key> public_key_of(const Key& private_key) {
  if (auto r = sodium_ready(); !r) return r.error();
  std::array<std::uint8_t, kKeyLength> pub{};
  if (crypto_scalarmult_curve25519_base(pub.data(), private_key.bytes().data()) != 0) {
    return Error(ErrorCode::kInvalidArgument, "not a usable private key");
  }
  return Key(pub);
}

Result<Endpoint> Endpoint::parse(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument, "invalid endpoint \"" + std::string(text) + "\": " + why);
  };
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad("an IPv6 endpoint is written [address]:port");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("missing \":port\"");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad("an IPv6 endpoint is written [address]:port");
  }
  auto address = net::IpAddress::parse(host);
  if (!address) return bad(address.error().message());
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
    return bad("the port must be 1-65535");
  }
  return Endpoint{*address, static_cast<std::uint16_t>(value)};
}

std::string Endpoint::to_string() const {
  const std::string host = address.to_string();
  return (address.is_v4() ? host : "[" + host + "]") + ":" + std::to_string(port);
}

bool same_config(const Peer& a, const Peer& b) {
  auto sorted = [](std::vector<net::Prefix> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  return a.public_key == b.public_key && a.preshared_key == b.preshared_key && a.endpoint == b.endpoint &&
         a.persistent_keepalive == b.persistent_keepalive && sorted(a.allowed_ips) == sorted(b.allowed_ips);
}

}  // namespace cw::wg
