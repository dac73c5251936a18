#include "common/netlink/socket.h"

#include <libmnl/libmnl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace cw::netlink {
namespace {

// A dump the kernel flags as inconsistent is re-run this many times in all before giving up:
// one change racing the dump is common on a busy node, several in a row mean a table that
// churns faster than it can be read, which the caller should hear about.
constexpr int kDumpAttempts = 4;

constexpr std::size_t align4(std::size_t n) { return (n + 3U) & ~std::size_t{3}; }

// NLA_HDRLEN and NLMSG_HDRLEN as sizes (the macros are ints).
constexpr std::size_t kAttributeHeader = align4(sizeof(nlattr));
constexpr std::size_t kMessageHeader = align4(sizeof(nlmsghdr));

// The extended ack message in `tlvs` (NLMSGERR_ATTR_MSG), if the kernel sent one.
std::string_view extack_message(std::span<const std::uint8_t> tlvs) {
  const auto message = AttributeList(tlvs).find(NLMSGERR_ATTR_MSG);
  return message ? message->string() : std::string_view{};
}

}  // namespace

ErrorCode error_code_for_errno(int error_number) {
  switch (error_number) {
    case ENOENT:
    case ENODEV:
    case ESRCH:
    case EADDRNOTAVAIL:  // RTM_DELADDR of an address the link does not have
      return ErrorCode::kNotFound;
    case EEXIST:
      return ErrorCode::kAlreadyExists;
    case EPERM:
    case EACCES:
      return ErrorCode::kPermissionDenied;
    case EINVAL:
    case EOPNOTSUPP:
    case ERANGE:
    case EAFNOSUPPORT:  // an IPv6 request where IPv6 is disabled
    case EMSGSIZE:
      return ErrorCode::kInvalidArgument;
    case EBUSY:
      return ErrorCode::kConflict;
    default:
      return ErrorCode::kUnavailable;
  }
}

Error errno_error(int error_number, std::string_view extack_message) {
  const char* description = strerrordesc_np(error_number);
  const char* name = strerrorname_np(error_number);
  std::string message =
      description != nullptr ? description : "errno " + std::to_string(error_number);
  if (name != nullptr) message += std::string(" (") + name + ")";
  if (!extack_message.empty()) message += ": " + std::string(extack_message);
  return Error(error_code_for_errno(error_number), message, 0, name != nullptr ? name : "");
}

// --- Attribute, AttributeList --------------------------------------------------------------

namespace {

template <typename T>
std::optional<T> read_exact(std::span<const std::uint8_t> payload) {
  if (payload.size() != sizeof(T)) return std::nullopt;
  T value;
  std::memcpy(&value, payload.data(), sizeof(T));
  return value;
}

}  // namespace

std::optional<std::uint8_t> Attribute::u8() const { return read_exact<std::uint8_t>(payload_); }
std::optional<std::uint16_t> Attribute::u16() const { return read_exact<std::uint16_t>(payload_); }
std::optional<std::uint32_t> Attribute::u32() const { return read_exact<std::uint32_t>(payload_); }
std::optional<std::uint64_t> Attribute::u64() const { return read_exact<std::uint64_t>(payload_); }

std::string_view Attribute::string() const {
  const auto* chars = reinterpret_cast<const char*>(payload_.data());
  const auto end = std::find(chars, chars + payload_.size(), '\0');
  return std::string_view(chars, static_cast<std::size_t>(end - chars));
}

AttributeList Attribute::nested() const { return AttributeList(payload_); }

namespace {

// The total length (header and payload) of the attribute at the start of `rest`; 0 when it
// is malformed.
std::size_t attribute_length(std::span<const std::uint8_t> rest) {
  if (rest.size() < kAttributeHeader) return 0;
  nlattr header;
  std::memcpy(&header, rest.data(), sizeof header);
  if (header.nla_len < kAttributeHeader || header.nla_len > rest.size()) return 0;
  return header.nla_len;
}

}  // namespace

void AttributeList::Iterator::settle() {
  if (attribute_length(rest_) == 0) rest_ = {};
}

Attribute AttributeList::Iterator::operator*() const {
  nlattr header;
  std::memcpy(&header, rest_.data(), sizeof header);
  const auto type = static_cast<std::uint16_t>(header.nla_type & NLA_TYPE_MASK);
  return Attribute(type, rest_.subspan(kAttributeHeader, header.nla_len - kAttributeHeader));
}

AttributeList::Iterator& AttributeList::Iterator::operator++() {
  // The last attribute may lack its padding; the kernel never sends that, others might.
  const std::size_t step = std::min(align4(attribute_length(rest_)), rest_.size());
  rest_ = rest_.subspan(step);
  settle();
  return *this;
}

std::optional<Attribute> AttributeList::find(std::uint16_t type) const {
  for (const Attribute& attribute : *this) {
    if (attribute.type() == type) return attribute;
  }
  return std::nullopt;
}

bool AttributeList::well_formed() const {
  auto rest = bytes_;
  while (!rest.empty()) {
    const std::size_t length = attribute_length(rest);
    if (length == 0) return false;
    rest = rest.subspan(std::min(align4(length), rest.size()));
  }
  return true;
}

// --- Request -------------------------------------------------------------------------------

Request::Request(std::uint16_t type, std::uint16_t flags, std::size_t capacity)
    : buffer_(std::max(capacity, kMinCapacity), 0) {
  nlmsghdr* h = mnl_nlmsg_put_header(buffer_.data());
  h->nlmsg_type = type;
  h->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | flags);
}

Request Request::generic(std::uint16_t family_id, std::uint8_t command, std::uint8_t version,
                         std::uint16_t flags, std::size_t capacity) {
  Request request(family_id, flags, capacity);
  auto& genl = request.put_header<genlmsghdr>();
  genl.cmd = command;
  genl.version = version;
  return request;
}

void* Request::put_extra_header(std::size_t length) {
  if (attributes_started_) {
    die_on_misuse("netlink Request::put_header", "a family header after attributes");
  }
  if (size() + align4(length) > kMinCapacity) {
    die_on_misuse("netlink Request::put_header", "family headers longer than the minimum capacity");
  }
  return mnl_nlmsg_put_extra_header(header(), length);
}

bool Request::note(bool fitted) {
  attributes_started_ = true;
  if (!fitted && !overflow_at_) overflow_at_ = size();
  return fitted;
}

bool Request::put_u8(std::uint16_t type, std::uint8_t value) {
  return note(mnl_attr_put_u8_check(header(), capacity(), type, value));
}
bool Request::put_u16(std::uint16_t type, std::uint16_t value) {
  return note(mnl_attr_put_u16_check(header(), capacity(), type, value));
}
bool Request::put_u32(std::uint16_t type, std::uint32_t value) {
  return note(mnl_attr_put_u32_check(header(), capacity(), type, value));
}
bool Request::put_u64(std::uint16_t type, std::uint64_t value) {
  return note(mnl_attr_put_u64_check(header(), capacity(), type, value));
}
bool Request::put_string(std::uint16_t type, std::string_view value) {
  const std::string terminated(value);  // mnl wants a C string; the view may not end in NUL
  return note(mnl_attr_put_strz_check(header(), capacity(), type, terminated.c_str()));
}
bool Request::put_bytes(std::uint16_t type, std::span<const std::uint8_t> value) {
  return note(mnl_attr_put_check(header(), capacity(), type, value.size(), value.data()));
}

nlattr* Request::begin_nested(std::uint16_t type) {
  nlattr* nest = mnl_attr_nest_start_check(header(), capacity(), type);
  note(nest != nullptr);
  return nest;
}

void Request::end_nested(nlattr* nest) {
  if (nest != nullptr) mnl_attr_nest_end(header(), nest);
}

void Request::cancel_nested(nlattr* nest) {
  if (nest == nullptr) return;
  const auto start =
      static_cast<std::size_t>(reinterpret_cast<std::uint8_t*>(nest) - buffer_.data());
  // A put that failed inside the nest did so after its 4-byte header, so strictly past start.
  if (overflow_at_ && *overflow_at_ > start) overflow_at_.reset();
  mnl_attr_nest_cancel(header(), nest);
}

// --- Reply ---------------------------------------------------------------------------------

nlmsghdr Reply::header() const {
  nlmsghdr h{};
  std::memcpy(&h, bytes_.data(), std::min(sizeof h, bytes_.size()));
  return h;
}

std::span<const std::uint8_t> Reply::payload() const {
  return std::span<const std::uint8_t>(bytes_).subspan(
      std::min<std::size_t>(kMessageHeader, bytes_.size()));
}

AttributeList Reply::attributes(std::size_t header_size) const {
  const auto p = payload();
  const std::size_t offset = align4(header_size);
  if (offset > p.size()) return AttributeList();
  return AttributeList(p.subspan(offset));
}

// --- Socket --------------------------------------------------------------------------------

Result<Socket> Socket::open(int protocol, std::chrono::milliseconds timeout) {
  mnl_socket* raw = mnl_socket_open2(protocol, SOCK_CLOEXEC);
  if (raw == nullptr) return errno_error(errno).with_context("opening a netlink socket");
  Socket socket(raw, protocol, timeout);
  if (mnl_socket_bind(raw, 0, MNL_SOCKET_AUTOPID) < 0) {
    return errno_error(errno).with_context("binding a netlink socket");
  }
  socket.port_id_ = mnl_socket_get_portid(raw);
  // Both are refinements older kernels lack; without them errors are merely terser.
  (void)socket.set_option(NETLINK_EXT_ACK, 1);
  (void)socket.set_option(NETLINK_CAP_ACK, 1);

  const auto ms = std::max<std::chrono::milliseconds::rep>(timeout.count(), 1);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  if (setsockopt(mnl_socket_get_fd(raw), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
    return errno_error(errno).with_context("setting the netlink receive timeout");
  }
  return socket;
}

Socket::Socket(mnl_socket* socket, int protocol, std::chrono::milliseconds timeout)
    : socket_(socket),
      protocol_(protocol),
      timeout_(timeout),
      receive_buffer_(kReceiveBufferSize) {}

Socket::Socket(Socket&& other) noexcept
    : socket_(std::exchange(other.socket_, nullptr)),
      protocol_(other.protocol_),
      port_id_(other.port_id_),
      sequence_(other.sequence_),
      timeout_(other.timeout_),
      receive_buffer_(std::move(other.receive_buffer_)) {}

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    if (socket_ != nullptr) mnl_socket_close(socket_);
    socket_ = std::exchange(other.socket_, nullptr);
    protocol_ = other.protocol_;
    port_id_ = other.port_id_;
    sequence_ = other.sequence_;
    timeout_ = other.timeout_;
    receive_buffer_ = std::move(other.receive_buffer_);
  }
  return *this;
}

Socket::~Socket() {
  if (socket_ != nullptr) mnl_socket_close(socket_);
}

Result<void> Socket::set_option(int option, int value) {
  if (mnl_socket_setsockopt(socket_, option, &value, sizeof value) < 0) {
    return errno_error(errno).with_context("setting netlink socket option " +
                                           std::to_string(option));
  }
  return ok_result();
}

Result<std::size_t> Socket::receive() {
  for (;;) {
    sockaddr_nl sender{};
    iovec io{receive_buffer_.data(), receive_buffer_.size()};
    msghdr header{};
    header.msg_name = &sender;
    header.msg_namelen = sizeof sender;
    header.msg_iov = &io;
    header.msg_iovlen = 1;
    const ssize_t n = recvmsg(mnl_socket_get_fd(socket_), &header, 0);
    if (n < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      if (error == EAGAIN || error == EWOULDBLOCK) {
        return Error(ErrorCode::kUnavailable, "the kernel did not answer within " +
                                                  std::to_string(timeout_.count()) + " ms");
      }
      if (error == ENOBUFS) {
        return Error(
            ErrorCode::kUnavailable,
            "the netlink receive queue overflowed and part of the answer was lost (ENOBUFS)");
      }
      return errno_error(error).with_context("receiving from netlink");
    }
    if ((header.msg_flags & MSG_TRUNC) != 0) {
      return Error(ErrorCode::kInternal, "a netlink message was larger than the " +
                                             std::to_string(receive_buffer_.size()) +
                                             "-byte receive buffer and was cut off");
    }
    // Only the kernel (port 0) answers requests; another process could unicast to us.
    if (sender.nl_pid != 0) continue;
    return static_cast<std::size_t>(n);
  }
}

Result<std::vector<Reply>> Socket::request(Request& message) {
  if (message.overflowed()) {
    return Error(ErrorCode::kInvalidArgument, "the netlink message does not fit in its " +
                                                  std::to_string(message.capacity()) +
                                                  "-byte buffer");
  }
  // The receive buffer may hold secrets once the answer is copied out (a WireGuard
  // device's private key comes back in WG_CMD_GET_DEVICE): wipe it on every way out.
  struct WipeOnExit {
    std::vector<std::uint8_t>& buffer;
    ~WipeOnExit() { explicit_bzero(buffer.data(), buffer.size()); }
  } wipe{receive_buffer_};
  for (int attempt = 1;; ++attempt) {
    bool interrupted = false;
    auto replies = request_once(message, interrupted);
    if (!replies || !interrupted) return replies;
    if (attempt == kDumpAttempts) {
      return Error(ErrorCode::kUnavailable,
                   "the kernel's dump was interrupted by concurrent changes " +
                       std::to_string(kDumpAttempts) + " times in a row");
    }
  }
}

Result<std::vector<Reply>> Socket::request_once(Request& message, bool& interrupted) {
  nlmsghdr* request = message.header();
  const bool dump = (request->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  // A dump ends with NLMSG_DONE, and the kernel never acknowledges one; anything else is
  // acknowledged so that success is an answer, not a silence.
  if (!dump) request->nlmsg_flags = static_cast<std::uint16_t>(request->nlmsg_flags | NLM_F_ACK);
  request->nlmsg_seq = ++sequence_;
  request->nlmsg_pid = 0;
  const std::uint32_t sequence = request->nlmsg_seq;

  if (mnl_socket_sendto(socket_, request, request->nlmsg_len) < 0) {
    return errno_error(errno).with_context("sending to netlink");
  }

  std::vector<Reply> replies;
  for (;;) {
    auto length = receive();
    if (!length) return length.error();
    int remaining = static_cast<int>(*length);
    const auto* m = reinterpret_cast<const nlmsghdr*>(receive_buffer_.data());
    for (; mnl_nlmsg_ok(m, remaining); m = mnl_nlmsg_next(m, &remaining)) {
      if (m->nlmsg_seq != sequence || m->nlmsg_pid != port_id_) continue;  // not this request's
      if ((m->nlmsg_flags & NLM_F_DUMP_INTR) != 0) interrupted = true;
      const auto* bytes = reinterpret_cast<const std::uint8_t*>(m);
      const std::span<const std::uint8_t> payload(bytes + kMessageHeader,
                                                  m->nlmsg_len - kMessageHeader);

      switch (m->nlmsg_type) {
        case NLMSG_NOOP:
          break;
        case NLMSG_ERROR: {
          if (payload.size() < sizeof(nlmsgerr)) {
            return Error(ErrorCode::kInternal, "a truncated netlink error message");
          }
          nlmsgerr error;
          std::memcpy(&error, payload.data(), sizeof error);
          if (error.error == 0) return replies;  // the acknowledgement: done
          // The echoed request sits between the error and its TLVs unless the kernel capped it.
          std::size_t tlv_offset = sizeof(nlmsgerr);
          if ((m->nlmsg_flags & NLM_F_CAPPED) == 0) {
            tlv_offset +=
                error.msg.nlmsg_len >= kMessageHeader ? error.msg.nlmsg_len - kMessageHeader : 0;
          }
          std::string_view extack;
          if ((m->nlmsg_flags & NLM_F_ACK_TLVS) != 0 && align4(tlv_offset) <= payload.size()) {
            extack = extack_message(payload.subspan(align4(tlv_offset)));
          }
          return errno_error(-error.error, extack);
        }
        case NLMSG_DONE: {
          if (!dump) break;  // the end of a multipart answer; the acknowledgement follows
          int status = 0;
          if (payload.size() >= sizeof status) std::memcpy(&status, payload.data(), sizeof status);
          if (status < 0) {
            std::string_view extack;
            if ((m->nlmsg_flags & NLM_F_ACK_TLVS) != 0) {
              extack = extack_message(payload.subspan(align4(sizeof status)));
            }
            return errno_error(-status, extack);
          }
          return replies;
        }
        case NLMSG_OVERRUN:
          return Error(ErrorCode::kUnavailable, "netlink reported an overrun: data was lost");
        default:
          replies.emplace_back(std::vector<std::uint8_t>(bytes, bytes + m->nlmsg_len));
      }
    }
  }
}

// --- generic netlink -----------------------------------------------------------------------

Result<std::uint16_t> resolve_genl_family(Socket& socket, std::string_view name) {
  const std::string context = "resolving generic netlink family \"" + std::string(name) + "\"";
  if (socket.protocol() != NETLINK_GENERIC) {
    return Error(ErrorCode::kInvalidArgument,
                 context + ": the socket is not a NETLINK_GENERIC socket");
  }
  if (name.empty() || name.size() >= GENL_NAMSIZ) {
    return Error(ErrorCode::kInvalidArgument, context + ": a family name has 1 to " +
                                                  std::to_string(GENL_NAMSIZ - 1) + " characters");
  }
  Request request = Request::generic(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, 0);
  request.put_string(CTRL_ATTR_FAMILY_NAME, name);
  auto replies = socket.request(request);
  if (!replies) {
    if (replies.error().code() == ErrorCode::kNotFound) {
      return Error(ErrorCode::kNotFound,
                   context + ": the kernel has no such family (is its module loaded?): " +
                       replies.error().message());
    }
    return replies.error().with_context(context);
  }
  for (const Reply& reply : *replies) {
    if (reply.type() != GENL_ID_CTRL) continue;
    const auto id = reply.attributes(GENL_HDRLEN).find(CTRL_ATTR_FAMILY_ID);
    if (id && id->u16()) return *id->u16();
  }
  return Error(ErrorCode::kInternal, context + ": the controller's answer carries no family id");
}

}  // namespace cw::netlink
