#include "node-agent/key_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace cw::agent {
namespace {

Error io_error(const std::string& what, const std::string& path) {
  const int e = errno;
  return Error(e == EACCES || e == EPERM ? ErrorCode::kPermissionDenied : ErrorCode::kUnavailable,
               what + " " + path + ": " + std::strerror(e));
}

// Wipes the buffer it holds when it goes.
struct SecretBuffer {
  std::array<char, 128> bytes{};
  ~SecretBuffer() { explicit_bzero(bytes.data(), bytes.size()); }
};

}  // namespace

Result<wg::Key> load_or_create_private_key(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    struct stat st{};
    if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) fchmod(fd, 0600);
    SecretBuffer buf;
    const ssize_t n = ::read(fd, buf.bytes.data(), buf.bytes.size() - 1);
    ::close(fd);
    if (n < 0) return io_error("reading the private key", path);
    std::size_t len = static_cast<std::size_t>(n);
    while (len > 0 && (buf.bytes[len - 1] == '\n' || buf.bytes[len - 1] == '\r' || buf.bytes[len - 1] == ' ')) --len;
    auto key = wg::Key::from_base64(std::string_view(buf.bytes.data(), len));
    if (!key) {
      return Error(ErrorCode::kInvalidArgument,
                   path + " does not hold a WireGuard private key (base64, as `wg genkey` writes); "
                          "it is left as it is: move it away to give this node a new identity");
    }
    return *key;
  }
  if (errno != ENOENT) return io_error("opening the private key", path);

  std::error_code ec;
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return Error(ErrorCode::kUnavailable, "creating " + dir.string() + ": " + ec.message());
    ::chmod(dir.c_str(), 0700);
  }
  auto key = wg::generate_private_key();
  if (!key) return key.error();
  // Written to a temporary file and renamed, so a crash never leaves half a key behind.
  const std::string tmp = path + ".tmp";
  const int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (out < 0) return io_error("creating the private key", tmp);
  std::string text = key->to_base64() + "\n";
  const bool written = ::write(out, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(out) == 0;
  explicit_bzero(text.data(), text.size());
  ::close(out);
  if (!written || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return io_error("writing the private key", path);
  }
  return *key;
}

}  // namespace cw::agent
