// YAML documents as JSON values, typed as Kubernetes reads manifests (YAML 1.2 core schema):
// plain scalars true/false, null/~, integers and floats become those types; quoted scalars
// stay strings. For loading manifests (CRDs, examples) in tools and tests.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/base/result.h"

namespace cw {

// Every document in `text` ("---"-separated), empty ones skipped. kInvalidArgument with the
// line and column for malformed YAML.
Result<std::vector<nlohmann::json>> yaml_documents_to_json(const std::string& text,
                                                           const std::string& source);
Result<std::vector<nlohmann::json>> yaml_file_to_json(const std::string& path);

}  // namespace cw
