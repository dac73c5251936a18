// Base64 (RFC 4648) over OpenSSL's encoder: standard alphabet with padding, as Kubernetes
// *-data fields and Secrets use, and the URL-safe unpadded form, as continue tokens use.
#pragma once

#include <string>
#include <string_view>

#include "common/base/result.h"

namespace cw {

std::string base64_encode(std::string_view data);
// Strict: only the standard alphabet, correct padding; no white space.
Result<std::string> base64_decode(std::string_view text);

std::string base64url_encode(std::string_view data);  // '-' '_' and no padding
Result<std::string> base64url_decode(std::string_view text);

}  // namespace cw
