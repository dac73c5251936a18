#include "common/wireguard/uapi.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdint>
#include <limits>
#include <system_error>

namespace cw::wg {
namespace {

// ---- Encoding ----

// Counts the request's bytes when `out` is null, appends them otherwise: encode_set runs it
// twice so that the string is allocated once at its final size.
class RequestWriter {
 public:
  explicit RequestWriter(std::string* out) : out_(out) {}
  void put(std::string_view text) {
    if (out_ != nullptr) out_->append(text);
    size_ += text.size();
  }
  std::size_t size() const { return size_; }

 private:
  std::string* out_;
  std::size_t size_ = 0;
};

// The hex goes through a stack buffer wiped afterwards rather than Key::to_hex(), whose
// temporary string would be freed with the secret still in it.
void put_key(RequestWriter& w, std::string_view name, const Key& key) {
  std::array<char, 2 * kKeyLength + 1> hex{};
  sodium_bin2hex(hex.data(), hex.size(), key.bytes().data(), key.bytes().size());
  w.put(name);
  w.put("=");
  w.put(std::string_view(hex.data(), 2 * kKeyLength));
  w.put("\n");
  sodium_memzero(hex.data(), hex.size());
}

void put_number(RequestWriter& w, std::string_view name, std::uint64_t value) {
  std::array<char, 24> digits{};
  const auto [end, ec] = std::to_chars(digits.data(), digits.data() + digits.size(), value);
  w.put(name);
  w.put("=");
  w.put(std::string_view(digits.data(), static_cast<std::size_t>(end - digits.data())));
  w.put("\n");
}

void put_text(RequestWriter& w, std::string_view name, const std::string& value) {
  w.put(name);
  w.put("=");
  w.put(value);
  w.put("\n");
}

void write_request(const DeviceUpdate& update, RequestWriter& w) {
  w.put("set=1\n");
  if (update.private_key) put_key(w, "private_key", *update.private_key);
  if (update.listen_port) put_number(w, "listen_port", *update.listen_port);
  if (update.fwmark) put_number(w, "fwmark", *update.fwmark);
  if (update.replace_peers) w.put("replace_peers=true\n");
  for (const PeerUpdate& p : update.peers) {
    put_key(w, "public_key", p.peer.public_key);
    if (p.remove) {
      w.put("remove=true\n");
      continue;
    }
    // Right after public_key: wireguard-go creates the peer on that line and drops it again
    // here, before any later line could configure it.
    if (p.update_only) w.put("update_only=true\n");
    if (p.set_preshared_key) put_key(w, "preshared_key", p.peer.preshared_key.value_or(Key()));
    if (p.set_endpoint && p.peer.endpoint) put_text(w, "endpoint", p.peer.endpoint->to_string());
    if (p.set_keepalive) {
      put_number(w, "persistent_keepalive_interval", p.peer.persistent_keepalive);
    }
    if (p.replace_allowed_ips) w.put("replace_allowed_ips=true\n");
    for (const net::Prefix& prefix : p.peer.allowed_ips) {
      put_text(w, "allowed_ip", prefix.to_string());
    }
  }
  w.put("\n");
}

// ---- Decoding ----

// Digits only: from_chars alone would let "-0" through for signed types, and the protocol
// has no signs, spaces or '+'.
template <typename T>
std::optional<T> parse_unsigned(std::string_view text) {
  if (text.empty() ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<long long> parse_errno(std::string_view text) {
  const bool negative = !text.empty() && text.front() == '-';
  auto magnitude = parse_unsigned<std::uint32_t>(negative ? text.substr(1) : text);
  if (!magnitude || *magnitude > static_cast<std::uint32_t>(std::numeric_limits<int>::max())) {
    return std::nullopt;
  }
  const auto value = static_cast<long long>(*magnitude);
  return negative ? -value : value;
}

// A value for a message: printable ASCII only, at most 64 characters.
std::string quoted(std::string_view value) {
  constexpr std::size_t kShown = 64;
  std::string out = "\"";
  for (const char c : value.substr(0, kShown)) {
    if (c >= 0x20 && c < 0x7f) {
      out += c;
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      const auto byte = static_cast<unsigned char>(c);
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  out += value.size() > kShown ? "\"..." : "\"";
  return out;
}

Error truncated(std::string_view why) {
  return Error(ErrorCode::kUnavailable, "truncated UAPI reply: " + std::string(why));
}

// Checks a reply's frame and its errno line; the lines before errno come back, each with its
// '\n'. A non-zero errno is the daemon's answer and takes precedence over the content.
Result<std::string_view> checked_frame(std::string_view reply, std::string_view operation) {
  if (reply.size() > kMaxUapiReplyBytes) {
    return Error(ErrorCode::kInvalidArgument,
                 "UAPI reply of " + std::to_string(reply.size()) + " bytes refused: the limit is " +
                     std::to_string(kMaxUapiReplyBytes >> 20) + " MiB");
  }
  const auto end = reply_length(reply);
  if (!end) {
    return truncated("it stops after " + std::to_string(reply.size()) +
                     " bytes without its closing blank line");
  }
  if (*end != reply.size()) {
    return Error(ErrorCode::kInvalidArgument,
                 "malformed UAPI reply: " + std::to_string(reply.size() - *end) +
                     " bytes follow its closing blank line");
  }
  const std::string_view lines = reply.substr(0, *end - 1);
  if (lines.empty()) return truncated("it is empty, without errno=");
  const std::size_t previous_newline =
      lines.size() >= 2 ? lines.rfind('\n', lines.size() - 2) : std::string_view::npos;
  const std::size_t last_start =
      previous_newline == std::string_view::npos ? 0 : previous_newline + 1;
  const std::string_view last = lines.substr(last_start, lines.size() - 1 - last_start);
  constexpr std::string_view kErrno = "errno=";
  if (last.substr(0, kErrno.size()) != kErrno) return truncated("it does not end with errno=");
  const auto value = parse_errno(last.substr(kErrno.size()));
  if (!value) {
    return Error(
        ErrorCode::kInvalidArgument,
        "malformed UAPI reply: errno=" + quoted(last.substr(kErrno.size())) + " is not an integer");
  }
  if (*value != 0) return uapi_errno_error(*value, operation);
  return lines.substr(0, last_start);
}

// Calls `f(number, key, value)` for each line of `lines` (each ending in '\n'), stopping at
// the first error. Lines that are not key=value with a non-empty key are errors; the line is
// not repeated, since it may be a mangled key line.
template <typename F>
Result<void> for_each_line(std::string_view lines, F&& f) {
  std::size_t number = 0;
  while (!lines.empty()) {
    ++number;
    const std::size_t newline = lines.find('\n');
    const std::string_view line = lines.substr(0, newline);
    lines.remove_prefix(newline + 1);
    const std::size_t equals = line.find('=');
    if (equals == std::string_view::npos || equals == 0) {
      return Error(ErrorCode::kInvalidArgument,
                   "malformed UAPI reply: line " + std::to_string(number) + " (" +
                       std::to_string(line.size()) + " bytes) is not key=value");
    }
    if (auto r = f(number, line.substr(0, equals), line.substr(equals + 1)); !r) return r;
  }
  return ok_result();
}

// The latest handshake time system_clock can hold (its duration is 64-bit nanoseconds with
// libstdc++, about the year 2262); later values are malformed rather than an overflow.
constexpr std::uint64_t kMaxHandshakeSeconds =
    static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::duration::max())
            .count()) -
    1;

class GetReplyParser {
 public:
  Result<Device> parse(std::string_view lines) {
    auto r = for_each_line(
        lines,
        [this](std::size_t number, std::string_view key, std::string_view value) -> Result<void> {
          line_ = number;
          if (key == "public_key") return start_peer(value);
          if (key == "errno") return bad("errno= before the end of the reply");
          return peer_ ? peer_line(key, value) : device_line(key, value);
        });
    if (!r) return r.error();
    if (auto f = finish_peer(); !f) return f.error();

    std::sort(device_.peers.begin(), device_.peers.end(),
              [](const Peer& a, const Peer& b) { return a.public_key < b.public_key; });
    const auto twice = std::adjacent_find(
        device_.peers.begin(), device_.peers.end(),
        [](const Peer& a, const Peer& b) { return a.public_key == b.public_key; });
    if (twice != device_.peers.end()) {
      return Error(
          ErrorCode::kInvalidArgument,
          "malformed UAPI reply: peer " + twice->public_key.to_base64() + " is listed twice");
    }
    if (device_.private_key) {
      auto pub = public_key_of(*device_.private_key);
      if (!pub) return pub.error().with_context("deriving the device's public key");
      device_.public_key = *pub;
    }
    return std::move(device_);
  }

 private:
  // Bits for keys seen in the current section: a key given twice is an error, not "last wins".
  enum Field : unsigned {
    kPrivateKey = 1U << 0,
    kListenPort = 1U << 1,
    kFwmark = 1U << 2,
    kPresharedKey = 1U << 3,
    kProtocolVersion = 1U << 4,
    kEndpoint = 1U << 5,
    kHandshakeSec = 1U << 6,
    kHandshakeNsec = 1U << 7,
    kTxBytes = 1U << 8,
    kRxBytes = 1U << 9,
    kKeepalive = 1U << 10,
  };

  Error bad(const std::string& what) const {
    return Error(ErrorCode::kInvalidArgument,
                 "malformed UAPI reply: line " + std::to_string(line_) + ": " + what);
  }

  Result<void> once(Field field, std::string_view key) {
    if ((seen_ & field) != 0) return bad(std::string(key) + " given twice in one section");
    seen_ |= field;
    return ok_result();
  }

  template <typename T>
  Result<T> number(std::string_view key, std::string_view value) {
    auto n = parse_unsigned<T>(value);
    if (!n) {
      return bad(std::string(key) + "=" + quoted(value) + " is not a number from 0 to " +
                 std::to_string(std::numeric_limits<T>::max()));
    }
    return *n;
  }

  // Secret or not, the value is not repeated: Key's message says what a key must look like.
  Result<Key> key(std::string_view name, std::string_view value) {
    auto k = Key::from_hex(value);
    if (!k) return bad(std::string(name) + ": " + k.error().message());
    return k;
  }

  Result<void> device_line(std::string_view k, std::string_view value) {
    if (k == "private_key") {
      if (auto r = once(kPrivateKey, k); !r) return r;
      auto parsed = key(k, value);
      if (!parsed) return parsed.error();
      // All zeros is how a device without a key would be written; wireguard-go omits the line.
      if (!parsed->is_zero()) device_.private_key = *parsed;
    } else if (k == "listen_port") {
      if (auto r = once(kListenPort, k); !r) return r;
      auto n = number<std::uint16_t>(k, value);
      if (!n) return n.error();
      device_.listen_port = *n;
    } else if (k == "fwmark") {
      if (auto r = once(kFwmark, k); !r) return r;
      auto n = number<std::uint32_t>(k, value);
      if (!n) return n.error();
      device_.fwmark = *n;
    } else if (is_peer_key(k)) {
      return bad(std::string(k) + " before any public_key");
    }
    return ok_result();  // a key from a newer protocol
  }

  static bool is_peer_key(std::string_view k) {
    return k == "preshared_key" || k == "protocol_version" || k == "endpoint" ||
           k == "last_handshake_time_sec" || k == "last_handshake_time_nsec" || k == "tx_bytes" ||
           k == "rx_bytes" || k == "persistent_keepalive_interval" || k == "allowed_ip";
  }

  Result<void> start_peer(std::string_view value) {
    if (auto r = finish_peer(); !r) return r;
    auto k = key("public_key", value);
    if (!k) return k.error();
    peer_.emplace();
    peer_->public_key = *k;
    seen_ = 0;
    handshake_sec_ = 0;
    handshake_nsec_ = 0;
    return ok_result();
  }

  Result<void> peer_line(std::string_view k, std::string_view value) {
    Peer& p = *peer_;
    if (k == "preshared_key") {
      if (auto r = once(kPresharedKey, k); !r) return r;
      auto parsed = key(k, value);
      if (!parsed) return parsed.error();
      if (!parsed->is_zero()) p.preshared_key = *parsed;  // zeros: no preshared key
    } else if (k == "protocol_version") {
      if (auto r = once(kProtocolVersion, k); !r) return r;
      if (value != "1") {
        return bad("protocol_version=" + quoted(value) + " is not supported (only 1 is)");
      }
    } else if (k == "endpoint") {
      if (auto r = once(kEndpoint, k); !r) return r;
      auto e = Endpoint::parse(value);
      if (!e) return bad(e.error().message());
      p.endpoint = *e;
    } else if (k == "last_handshake_time_sec") {
      if (auto r = once(kHandshakeSec, k); !r) return r;
      auto n = number<std::uint64_t>(k, value);
      if (!n) return n.error();
      if (*n > kMaxHandshakeSeconds) {
        return bad("last_handshake_time_sec=" + quoted(value) + " is out of range");
      }
      handshake_sec_ = *n;
    } else if (k == "last_handshake_time_nsec") {
      if (auto r = once(kHandshakeNsec, k); !r) return r;
      auto n = number<std::uint64_t>(k, value);
      if (!n) return n.error();
      if (*n >= 1'000'000'000) {
        return bad("last_handshake_time_nsec=" + quoted(value) + " is not below 10^9");
      }
      handshake_nsec_ = *n;
    } else if (k == "tx_bytes") {
      if (auto r = once(kTxBytes, k); !r) return r;
      auto n = number<std::uint64_t>(k, value);
      if (!n) return n.error();
      p.tx_bytes = *n;
    } else if (k == "rx_bytes") {
      if (auto r = once(kRxBytes, k); !r) return r;
      auto n = number<std::uint64_t>(k, value);
      if (!n) return n.error();
      p.rx_bytes = *n;
    } else if (k == "persistent_keepalive_interval") {
      if (auto r = once(kKeepalive, k); !r) return r;
      auto n = number<std::uint16_t>(k, value);
      if (!n) return n.error();
      p.persistent_keepalive = *n;
    } else if (k == "allowed_ip") {
      auto prefix = net::Prefix::parse(value);
      if (!prefix) return bad(prefix.error().message());
      p.allowed_ips.push_back(*prefix);
    } else if (k == "private_key" || k == "listen_port" || k == "fwmark") {
      return bad(std::string(k) + " inside the section of peer " + p.public_key.to_base64());
    }
    return ok_result();  // a key from a newer protocol
  }

  Result<void> finish_peer() {
    if (!peer_) return ok_result();
    Peer& p = *peer_;
    // 0/0 is how the protocol says "never".
    if (handshake_sec_ != 0 || handshake_nsec_ != 0) {
      const auto since_epoch =
          std::chrono::seconds(handshake_sec_) + std::chrono::nanoseconds(handshake_nsec_);
      p.last_handshake = std::chrono::system_clock::time_point(
          std::chrono::duration_cast<std::chrono::system_clock::duration>(since_epoch));
    }
    std::sort(p.allowed_ips.begin(), p.allowed_ips.end());
    const auto twice = std::adjacent_find(p.allowed_ips.begin(), p.allowed_ips.end());
    if (twice != p.allowed_ips.end()) {
      return Error(ErrorCode::kInvalidArgument,
                   "malformed UAPI reply: allowed_ip " + twice->to_string() +
                       " is listed twice for peer " + p.public_key.to_base64());
    }
    device_.peers.push_back(std::move(p));
    peer_.reset();
    return ok_result();
  }

  Device device_;
  std::optional<Peer> peer_;  // the section being read
  unsigned seen_ = 0;
  std::uint64_t handshake_sec_ = 0;
  std::uint64_t handshake_nsec_ = 0;
  std::size_t line_ = 0;
};

const char* errno_name(long long e) {
  switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EIO: return "EIO";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case ENODEV: return "ENODEV";
    case EINVAL: return "EINVAL";
    case ENOANO: return "ENOANO";
    case EPROTO: return "EPROTO";
    case EADDRINUSE: return "EADDRINUSE";
    default: return nullptr;
  }
}

}  // namespace

std::string encode_set(const DeviceUpdate& update) {
  RequestWriter counter(nullptr);
  write_request(update, counter);
  std::string out;
  out.reserve(counter.size());
  RequestWriter writer(&out);
  write_request(update, writer);
  return out;
}

Result<void> check_encodable(const DeviceUpdate& update) {
  for (const PeerUpdate& p : update.peers) {
    if (p.remove || !p.set_endpoint) continue;
    const std::string who = "peer " + p.peer.public_key.to_base64();
    if (!p.peer.endpoint) {
      return Error(ErrorCode::kInvalidArgument,
                   who +
                       ": set_endpoint without an endpoint; UAPI cannot clear one (remove and "
                       "re-add the peer)");
    }
    if (p.peer.endpoint->port == 0) {
      return Error(ErrorCode::kInvalidArgument, who + ": endpoint port 0");
    }
  }
  return ok_result();
}

Result<Device> parse_get(std::string_view reply) {
  auto lines = checked_frame(reply, "get");
  if (!lines) return lines.error();
  return GetReplyParser().parse(*lines);
}

Result<void> parse_set_reply(std::string_view reply) {
  auto lines = checked_frame(reply, "set");
  if (!lines) return lines.error();
  // Nothing but errno is expected; other well-formed lines are ignored like unknown keys.
  return for_each_line(*lines, [](std::size_t, std::string_view, std::string_view) -> Result<void> {
    return ok_result();
  });
}

Error uapi_errno_error(long long value, std::string_view operation) {
  // Negating LLONG_MIN would overflow; no errno is anywhere near it.
  const long long e = value == LLONG_MIN ? LLONG_MAX : value < 0 ? -value : value;
  std::string text = "errno=" + std::to_string(value);
  if (const char* name = errno_name(e)) {
    text += std::string(" (") + name + ": " + std::generic_category().message(static_cast<int>(e)) +
            ")";
  }
  ErrorCode code = ErrorCode::kInternal;
  switch (e) {
    case EINVAL:
    case EPROTO: code = ErrorCode::kInvalidArgument; break;
    case EADDRINUSE: code = ErrorCode::kConflict; break;
    case EIO:
    case ENOMEM: code = ErrorCode::kUnavailable; break;
    case EACCES:
    case EPERM: code = ErrorCode::kPermissionDenied; break;
    case ENOENT:
    case ENODEV: code = ErrorCode::kNotFound; break;
    default: break;
  }
  if (operation == "set") {
    return Error(code,
                 "the userspace WireGuard daemon refused the configuration, " + text +
                     "; its log names the refused line, and the lines before it were applied");
  }
  return Error(
      code, "the userspace WireGuard daemon answered " + std::string(operation) + " with " + text);
}

std::optional<std::size_t> reply_length(std::string_view buffer) {
  if (!buffer.empty() && buffer.front() == '\n') return 1;
  const std::size_t blank = buffer.find("\n\n");
  if (blank == std::string_view::npos) return std::nullopt;
  return blank + 2;
}

void wipe(std::string& secret) {
  // resize() up to the capacity never reallocates, and makes the spare bytes addressable.
  secret.resize(secret.capacity());
  sodium_memzero(secret.data(), secret.size());
  secret.clear();
}

}  // namespace cw::wg
