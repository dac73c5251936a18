// Small text helpers shared by the lab's commands: reading a whole file with an error that says
// why it could not be read, and flattening a command's output into one table cell.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "common/base/result.h"

namespace cw::lab {

// The whole file. The error keeps errno's meaning: kNotFound for ENOENT, kPermissionDenied for
// EACCES/EPERM, kInternal otherwise, and says which file and why.
inline Result<std::string> read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    const ErrorCode code = e == ENOENT ? ErrorCode::kNotFound
                           : (e == EACCES || e == EPERM) ? ErrorCode::kPermissionDenied
                                                         : ErrorCode::kInternal;
    return Error(code, path + ": " + std::strerror(e));
  }
  std::string text;
  char buf[65536];
  while (true) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r > 0) {
      text.append(buf, static_cast<std::size_t>(r));
    } else if (r == 0) {
      break;
    } else if (errno != EINTR) {
      const int e = errno;
      ::close(fd);
      return Error(ErrorCode::kInternal, path + ": " + std::strerror(e));
    }
  }
  ::close(fd);
  return text;
}

// The file's text, or "" when it cannot be read (for logs that may not exist yet).
inline std::string read_file_or_empty(const std::string& path) {
  auto r = read_file(path);
  return r ? *r : std::string();
}

// One line: trailing newlines and spaces dropped, inner newlines turned into spaces.
inline std::string one_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

}  // namespace cw::lab
