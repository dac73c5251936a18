#include "common/yaml/yaml_errors.h"

#include <sstream>

namespace cw {

void YamlErrors::fail(const YAML::Node& node, const std::string& field, const std::string& message) {
  add(node.IsDefined() ? node.Mark() : YAML::Mark::null_mark(), field, message);
}

void YamlErrors::add(const YAML::Mark& mark, const std::string& field, const std::string& message) {
  std::ostringstream line;
  line << source_;
  if (!mark.is_null()) line << ':' << mark.line + 1 << ':' << mark.column + 1;
  line << ": " << (field.empty() ? "" : field + ": ") << message;
  lines_.push_back(line.str());
}

std::string YamlErrors::joined() const {
  std::string all;
  for (const auto& e : lines_) all += (all.empty() ? "" : "\n") + e;
  return all;
}

}  // namespace cw
