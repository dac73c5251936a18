#include "common/wireguard/uapi_control.h"

#include "common/net/interface_name.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace cw::wg {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string describe(int error) {
  return std::generic_category().message(error);
}

class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&&) = delete;
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Bytes that may hold keys (a get reply carries the private key). Growing copies into a new
// block and wipes the old one, and the destructor wipes, so no key is left in freed memory.
class SecretBuffer {
 public:
  SecretBuffer() = default;
  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;
  ~SecretBuffer() {
    if (data_) sodium_memzero(data_.get(), capacity_);
  }

  // Where at least `n` more bytes can be written after the data.
  char* tail(std::size_t n) {
    if (capacity_ - size_ < n) {
      const std::size_t grown = std::max({capacity_ * 2, size_ + n, std::size_t{4096}});
      auto bigger = std::make_unique<char[]>(grown);
      if (size_ > 0) std::memcpy(bigger.get(), data_.get(), size_);
      if (data_) sodium_memzero(data_.get(), capacity_);
      data_ = std::move(bigger);
      capacity_ = grown;
    }
    return data_.get() + size_;
  }
  void commit(std::size_t n) { size_ += n; }
  std::string_view view() const { return {data_.get(), size_}; }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

Result<void> check_name(const std::string& name) { return net::check_interface_name(name); }

// Milliseconds left for poll(), rounded up so that a wait never ends just short of the
// deadline; 0 once it has passed.
int remaining_ms(SteadyClock::time_point deadline) {
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
  return static_cast<int>(std::clamp<decltype(left)>(left, 0, INT_MAX));
}

// Waits until `fd` is ready for `events` (or has hung up: the next call says how).
Result<void> wait_ready(int fd, short events, SteadyClock::time_point deadline,
                        const std::string& what) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return ok_result();
    if (n == 0) return Error(ErrorCode::kUnavailable, what + ": timed out");
    if (errno != EINTR) return Error(ErrorCode::kUnavailable, what + ": poll: " + describe(errno));
  }
}

Error connect_error(int error, const std::string& name, const std::string& path) {
  const std::string missing =
      "no userspace WireGuard device " + name + " (is wireguard-go running?): ";
  switch (error) {
    case ENOENT:
    case ENOTDIR: return Error(ErrorCode::kNotFound, missing + path + " does not exist");
    case ECONNREFUSED:
      return Error(ErrorCode::kNotFound,
                   missing + "nothing listens on " + path + ", left by a daemon that exited");
    case EACCES:
    case EPERM:
      return Error(ErrorCode::kPermissionDenied,
                   "permission denied connecting to " + path +
                       ": UAPI sockets belong to the user running wireguard-go "
                       "(usually root)");
    default:
      return Error(ErrorCode::kUnavailable, "connecting to " + path + ": " + describe(error));
  }
}

Result<UniqueFd> connect_socket(const std::string& name, const std::string& path,
                                SteadyClock::time_point deadline) {
  sockaddr_un address{};
  if (path.size() >= sizeof address.sun_path) {
    return Error(ErrorCode::kInvalidArgument,
                 "the socket path " + path + " is too long for a unix socket");
  }
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) {
    return Error(ErrorCode::kUnavailable, "creating a unix socket: " + describe(errno));
  }
  for (;;) {
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
      return fd;
    }
    int error = errno;
    if (error == EINTR) continue;
    if (error == EAGAIN) {
      // A unix socket's listen backlog is full: the daemon is busy. Non-blocking connect does
      // not queue, so try again until the deadline.
      if (remaining_ms(deadline) == 0) {
        return Error(ErrorCode::kUnavailable,
                     "connecting to " + path + ": timed out, its backlog stayed full");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (error == EINPROGRESS) {
      if (auto r = wait_ready(fd.get(), POLLOUT, deadline, "connecting to " + path); !r) {
        return r.error();
      }
      socklen_t length = sizeof error;
      if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
      if (error == 0) return fd;
    }
    return connect_error(error, name, path);
  }
}

// `closed_by_peer` tells a daemon that stopped reading (it may have answered already) from
// other failures.
Result<void> send_all(int fd, std::string_view data, SteadyClock::time_point deadline,
                      const std::string& path, bool& closed_by_peer) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    const int error = errno;
    if (n < 0 && error == EINTR) continue;
    if (n < 0 && (error == EAGAIN || error == EWOULDBLOCK)) {
      if (auto r = wait_ready(fd, POLLOUT, deadline, "writing to " + path); !r) return r;
      continue;
    }
    closed_by_peer = n < 0 && (error == EPIPE || error == ECONNRESET);
    return Error(ErrorCode::kUnavailable,
                 "writing to " + path + ": " + describe(n < 0 ? error : EIO));
  }
  return ok_result();
}

// Reads until the reply's closing blank line; the reply's length comes back. Anything the
// daemon sends after it is not looked at: one request, one reply.
Result<std::size_t> read_reply(int fd, SteadyClock::time_point deadline, std::size_t max_bytes,
                               const std::string& path, SecretBuffer& buffer) {
  constexpr std::size_t kChunk = 64 * 1024;
  std::size_t searched = 0;  // bytes known not to hold the end of the reply, bar the last '\n'
  for (;;) {
    const std::string_view have = buffer.view();
    if (!have.empty()) {
      if (searched == 0) {
        if (auto end = reply_length(have)) return *end;
      } else if (const std::size_t blank = have.find("\n\n", searched - 1);
                 blank != std::string_view::npos) {
        return blank + 2;
      }
      searched = have.size();
    }
    if (have.size() > max_bytes) {
      return Error(ErrorCode::kInvalidArgument, "the reply from " + path + " exceeds " +
                                                    std::to_string(max_bytes) +
                                                    " bytes without ending; refused");
    }
    const std::size_t room = std::min(kChunk, max_bytes + 1 - have.size());
    const ssize_t n = ::recv(fd, buffer.tail(room), room, 0);
    if (n > 0) {
      buffer.commit(static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) {
      return Error(ErrorCode::kUnavailable,
                   "truncated UAPI reply: " + path + " closed the connection after " +
                       std::to_string(have.size()) + " bytes, before the end of the reply");
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (auto r = wait_ready(fd, POLLIN, deadline, "waiting for the reply from " + path); !r) {
        return r.error();
      }
      continue;
    }
    return Error(ErrorCode::kUnavailable, "reading from " + path + ": " + describe(errno));
  }
}

class UapiControl final : public DeviceControl {
 public:
  explicit UapiControl(UapiControlOptions options) : options_(std::move(options)) {}

  const char* backend() const override { return "uapi"; }

  Result<Device> get(const std::string& name) override {
    SecretBuffer reply;
    auto length = exchange(name, "get=1\n\n", reply);
    if (!length) return length.error();
    auto device = parse_get(reply.view().substr(0, *length));
    if (!device) return device.error().with_context("reading WireGuard device " + name);
    device->name = name;
    return device;
  }

  Result<void> set(const std::string& name, const DeviceUpdate& update) override {
    const std::string context = "configuring WireGuard device " + name;
    if (auto r = check_encodable(update); !r) return r.error().with_context(context);
    std::string request = encode_set(update);
    struct WipeOnExit {
      std::string& text;
      ~WipeOnExit() { wipe(text); }
    } wipe_request{request};
    SecretBuffer reply;
    auto length = exchange(name, request, reply);
    if (!length) return length.error();
    if (auto r = parse_set_reply(reply.view().substr(0, *length)); !r) {
      return r.error().with_context(context);
    }
    return ok_result();
  }

  Result<std::vector<std::string>> list() override {
    const std::string& dir_path = options_.socket_dir;
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(dir_path.c_str()), &::closedir);
    if (!dir) {
      const int error = errno;
      if (error == ENOENT) return std::vector<std::string>{};  // no daemon has run here yet
      if (error == EACCES || error == EPERM) {
        return Error(ErrorCode::kPermissionDenied, "listing " + dir_path + ": " + describe(error));
      }
      return Error(ErrorCode::kUnavailable, "listing " + dir_path + ": " + describe(error));
    }
    constexpr std::string_view kSuffix = ".sock";
    std::vector<std::string> names;
    for (;;) {
      errno = 0;
      const dirent* entry = ::readdir(dir.get());
      if (entry == nullptr) break;
      const std::string_view file = entry->d_name;
      if (file.size() <= kSuffix.size() || file.substr(file.size() - kSuffix.size()) != kSuffix) {
        continue;
      }
      std::string name(file.substr(0, file.size() - kSuffix.size()));
      if (!check_name(name)) continue;
      bool is_socket = entry->d_type == DT_SOCK;
      if (entry->d_type == DT_UNKNOWN) {  // file systems that do not fill d_type
        struct stat st {};
        is_socket = ::fstatat(::dirfd(dir.get()), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                    S_ISSOCK(st.st_mode);
      }
      if (is_socket) names.push_back(std::move(name));
    }
    if (errno != 0) {
      return Error(ErrorCode::kUnavailable, "listing " + dir_path + ": " + describe(errno));
    }
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  // Sends one request to device `name` and reads its reply into `reply`; the reply's length
  // comes back.
  Result<std::size_t> exchange(const std::string& name, std::string_view request,
                               SecretBuffer& reply) {
    if (auto r = check_name(name); !r) return r.error();
    const std::string path = options_.socket_dir + "/" + name + ".sock";
    const auto deadline = SteadyClock::now() + options_.timeout;
    auto fd = connect_socket(name, path, deadline);
    if (!fd) return fd.error();
    bool closed_by_peer = false;
    if (auto sent = send_all(fd->get(), request, deadline, path, closed_by_peer); !sent) {
      // wireguard-go answers a refused set as soon as it reaches the bad line, then closes the
      // connection without reading the rest: the answer says more than the failed write.
      if (closed_by_peer) {
        if (auto length = read_reply(fd->get(), deadline, options_.max_reply_bytes, path, reply)) {
          return length;
        }
      }
      return sent.error();
    }
    // The daemon reads requests until end of file: this lets it close once it has answered.
    ::shutdown(fd->get(), SHUT_WR);
    return read_reply(fd->get(), deadline, options_.max_reply_bytes, path, reply);
  }

  const UapiControlOptions options_;
};

}  // namespace

std::unique_ptr<DeviceControl> make_uapi_control(std::string socket_dir) {
  UapiControlOptions options;
  options.socket_dir = std::move(socket_dir);
  return make_uapi_control(std::move(options));
}

std::unique_ptr<DeviceControl> make_uapi_control(UapiControlOptions options) {
  return std::make_unique<UapiControl>(std::move(options));
}

}  // namespace cw::wg
