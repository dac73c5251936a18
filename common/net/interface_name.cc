#include "common/net/interface_name.h"

#include <algorithm>
#include <cctype>

namespace cw::net {

Result<void> check_interface_name(const std::string& name) {
  constexpr std::size_t kMaxLength = 15;  // IFNAMSIZ - 1
  const bool valid = !name.empty() && name.size() <= kMaxLength && name != "." && name != ".." &&
                     std::none_of(name.begin(), name.end(), [](char c) {
                       const auto u = static_cast<unsigned char>(c);
                       return c == '/' || c == ':' || std::isspace(u) != 0 || u < 0x20 || u == 0x7f;
                     });
  if (valid) return ok_result();
  return Error(ErrorCode::kInvalidArgument,
               "\"" + name + "\" is not a network interface name: 1 to 15 characters, no '/', ':', "
                             "white space or control characters, not \".\" or \"..\"");
}

}  // namespace cw::net
