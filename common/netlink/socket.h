// A netlink socket that sends one request at a time and collects its whole answer, built on
// libmnl. It serves NETLINK_ROUTE (links, addresses, routes: rtnetlink.h) and NETLINK_GENERIC
// (the kernel's "wireguard" family): Request builds a message with its family header and
// attributes, Reply and AttributeList read the answer without trusting its lengths.
//
// Threading: a Socket is not thread-safe. Use one per thread (or guard it): a request and
// its answer share the socket's receive queue, and two threads interleaving would read
// each other's replies. Request, Reply and AttributeList are plain values.
//
// Namespaces: a netlink socket belongs to the network namespace its thread was in when
// open() ran, for its whole life; a later setns() on that thread does not move it.
#pragma once

#include <linux/genetlink.h>
#include <linux/netlink.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/result.h"

struct mnl_socket;

namespace cw::netlink {

class AttributeList;

// The ErrorCode for a kernel errno: ENOENT/ENODEV/ESRCH/EADDRNOTAVAIL -> kNotFound, EEXIST ->
// kAlreadyExists, EPERM/EACCES -> kPermissionDenied, EINVAL/EOPNOTSUPP/ERANGE/EAFNOSUPPORT/
// EMSGSIZE -> kInvalidArgument, EBUSY -> kConflict, anything else -> kUnavailable.
ErrorCode error_code_for_errno(int error_number);
// "No such device (ENODEV)", plus ": <kernel's extended ack text>" when there is one. The
// errno's name ("ENODEV") is the Error's reason(), for callers that must tell errnos apart.
Error errno_error(int error_number, std::string_view extack_message = {});

// One attribute of a received message. Its payload is a view: the Reply (or buffer) it came
// from must outlive it. The typed getters return nullopt when the payload has another size,
// so a malformed or unexpected attribute is a handled case, not undefined behaviour.
class Attribute {
 public:
  Attribute(std::uint16_t type, std::span<const std::uint8_t> payload)
      : type_(type), payload_(payload) {}

  // The type without the NLA_F_NESTED and NLA_F_NET_BYTEORDER bits.
  std::uint16_t type() const { return type_; }
  std::span<const std::uint8_t> payload() const { return payload_; }

  std::optional<std::uint8_t> u8() const;
  std::optional<std::uint16_t> u16() const;
  std::optional<std::uint32_t> u32() const;
  std::optional<std::uint64_t> u64() const;
  // Up to the first NUL (kernel strings are NUL-terminated; the terminator is not included).
  std::string_view string() const;
  // The payload read as a list of attributes (a nested attribute).
  AttributeList nested() const;

 private:
  std::uint16_t type_;
  std::span<const std::uint8_t> payload_;
};

// The attributes in a byte range, in order. Iteration stops at the first attribute whose
// length is impossible (shorter than its header or running past the range); well_formed()
// tells whether that happened.
class AttributeList {
 public:
  AttributeList() = default;
  explicit AttributeList(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}

  class Iterator {
   public:
    using value_type = Attribute;
    using difference_type = std::ptrdiff_t;
    Iterator() = default;
    explicit Iterator(std::span<const std::uint8_t> rest) : rest_(rest) { settle(); }
    Attribute operator*() const;
    Iterator& operator++();
    Iterator operator++(int) {
      Iterator copy = *this;
      ++*this;
      return copy;
    }
    bool operator==(const Iterator& other) const { return rest_.size() == other.rest_.size(); }

   private:
    void settle();  // ends the iteration (empty rest_) when the next attribute is malformed
    std::span<const std::uint8_t> rest_;
  };

  Iterator begin() const { return Iterator(bytes_); }
  Iterator end() const { return Iterator(); }
  // The first attribute of this type.
  std::optional<Attribute> find(std::uint16_t type) const;
  bool well_formed() const;

 private:
  std::span<const std::uint8_t> bytes_;
};

// A netlink message under construction, in a buffer of fixed capacity. NLM_F_REQUEST is
// always set; Socket::request sets the sequence number, the port id and NLM_F_ACK.
//
// Attributes that do not fit make put_* return false and mark the message overflowed
// (Socket::request refuses it), unless a cancel_nested() removes the failed part again:
// that is how a caller splits a long list (WireGuard peers) over several messages, as
// wireguard-tools does.
class Request {
 public:
  static constexpr std::size_t kDefaultCapacity = 8192;
  static constexpr std::size_t kMinCapacity = 256;  // the headers always fit

  Request(std::uint16_t type, std::uint16_t flags, std::size_t capacity = kDefaultCapacity);
  // A generic netlink message: the nlmsghdr of `family_id` followed by a genlmsghdr.
  static Request generic(std::uint16_t family_id, std::uint8_t command, std::uint8_t version,
                         std::uint16_t flags, std::size_t capacity = kDefaultCapacity);

  // Appends the family's fixed header (ifinfomsg, rtmsg, ...), zeroed, and returns it to be
  // filled in. Only before the first attribute: anything else is a programming mistake.
  template <typename T>
  T& put_header() {
    static_assert(sizeof(T) <= 64, "a family header, not a payload");
    return *new (put_extra_header(sizeof(T))) T{};
  }

  bool put_u8(std::uint16_t type, std::uint8_t value);
  bool put_u16(std::uint16_t type, std::uint16_t value);
  bool put_u32(std::uint16_t type, std::uint32_t value);
  bool put_u64(std::uint16_t type, std::uint64_t value);
  bool put_string(std::uint16_t type, std::string_view value);  // NUL-terminated on the wire
  bool put_bytes(std::uint16_t type, std::span<const std::uint8_t> value);

  // A nested attribute: begin_nested returns its start (nullptr when it does not fit) to
  // hand to end_nested once its members are in, or to cancel_nested to drop it with all
  // its members (and the overflow, if it happened inside).
  nlattr* begin_nested(std::uint16_t type);
  void end_nested(nlattr* nest);
  void cancel_nested(nlattr* nest);

  bool overflowed() const { return overflow_at_.has_value(); }
  std::size_t size() const { return header()->nlmsg_len; }
  std::size_t capacity() const { return buffer_.size(); }

  nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buffer_.data()); }
  const nlmsghdr* header() const { return reinterpret_cast<const nlmsghdr*>(buffer_.data()); }
  // The message as it goes on the wire (nlmsg_len bytes).
  std::span<const std::uint8_t> bytes() const { return {buffer_.data(), size()}; }

 private:
  void* put_extra_header(std::size_t length);
  bool note(bool fitted);

  std::vector<std::uint8_t> buffer_;
  bool attributes_started_ = false;
  std::optional<std::size_t> overflow_at_;  // message length when the first put failed
};

// One received message, copied out of the receive buffer.
class Reply {
 public:
  explicit Reply(std::vector<std::uint8_t> bytes) : bytes_(std::move(bytes)) {}

  std::uint16_t type() const { return header().nlmsg_type; }
  std::uint16_t flags() const { return header().nlmsg_flags; }
  nlmsghdr header() const;
  // Everything after the nlmsghdr.
  std::span<const std::uint8_t> payload() const;
  // A copy of the family's fixed header (ifinfomsg, rtmsg, genlmsghdr, ...); nullopt when
  // the message is too short to hold one.
  template <typename T>
  std::optional<T> family_header() const {
    const auto p = payload();
    if (p.size() < sizeof(T)) return std::nullopt;
    T value;
    std::memcpy(&value, p.data(), sizeof(T));
    return value;
  }
  // The attributes after a family header of `header_size` bytes (sizeof(ifinfomsg),
  // GENL_HDRLEN, ...), which is padded to netlink's 4-byte alignment.
  AttributeList attributes(std::size_t header_size) const;
  std::span<const std::uint8_t> bytes() const { return bytes_; }

 private:
  std::vector<std::uint8_t> bytes_;
};

class Socket {
 public:
  static constexpr std::chrono::milliseconds kDefaultTimeout{5000};
  // Big enough for any single datagram the kernel sends: dumps are packed into skbs of at
  // most 32 KiB (and it packs more per datagram when the reader's buffer is larger).
  static constexpr std::size_t kReceiveBufferSize = 64 * 1024;

  // A socket of `protocol` (NETLINK_ROUTE, NETLINK_GENERIC) in the calling thread's current
  // network namespace. `timeout` bounds every wait for the kernel's next message: a dump
  // that keeps answering is never cut off, a kernel that stops answering is.
  static Result<Socket> open(int protocol, std::chrono::milliseconds timeout = kDefaultTimeout);

  Socket(Socket&& other) noexcept;
  Socket& operator=(Socket&& other) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket();

  int protocol() const { return protocol_; }
  std::uint32_t port_id() const { return port_id_; }

  // setsockopt(SOL_NETLINK, option, value): NETLINK_GET_STRICT_CHK and the like. open()
  // already turns on NETLINK_EXT_ACK (the kernel's error text) and NETLINK_CAP_ACK (errors
  // do not echo the request back).
  Result<void> set_option(int option, int value);

  // Sends `message` and collects its answer: for a dump (NLM_F_DUMP), every reply up to
  // NLMSG_DONE; otherwise any replies and then the acknowledgement (NLM_F_ACK is added).
  // A kernel error is returned as an Error with errno's text, the kernel's extended ack
  // message and error_code_for_errno()'s code. Messages with another sequence number or
  // port id (late answers to a request that timed out) are skipped. A dump the kernel
  // marks inconsistent (NLM_F_DUMP_INTR: the table changed while it was read) is re-run a
  // few times, then reported as kUnavailable.
  Result<std::vector<Reply>> request(Request& message);

 private:
  Socket(mnl_socket* socket, int protocol, std::chrono::milliseconds timeout);
  Result<std::vector<Reply>> request_once(Request& message, bool& interrupted);
  // Reads one datagram from the kernel into receive_buffer_; its length.
  Result<std::size_t> receive();

  mnl_socket* socket_ = nullptr;
  int protocol_ = 0;
  std::uint32_t port_id_ = 0;
  std::uint32_t sequence_ = 0;
  std::chrono::milliseconds timeout_;
  std::vector<std::uint8_t> receive_buffer_;
};

// The id of the generic netlink family `name` ("wireguard"), asked of the kernel's
// controller (CTRL_CMD_GETFAMILY). `socket` must be a NETLINK_GENERIC socket. kNotFound when
// no such family is registered (for "wireguard": the module is not loaded).
Result<std::uint16_t> resolve_genl_family(Socket& socket, std::string_view name);

}  // namespace cw::netlink
