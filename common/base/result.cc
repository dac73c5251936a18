#include "common/base/result.h"

namespace cw {

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "InvalidArgument";
    case ErrorCode::kNotFound: return "NotFound";
    case ErrorCode::kAlreadyExists: return "AlreadyExists";
    case ErrorCode::kConflict: return "Conflict";
    case ErrorCode::kExhausted: return "Exhausted";
    case ErrorCode::kUnavailable: return "Unavailable";
    case ErrorCode::kGone: return "Gone";
    case ErrorCode::kPermissionDenied: return "PermissionDenied";
    case ErrorCode::kInternal: return "Internal";
  }
  return "Unknown";
}

}  // namespace cw
