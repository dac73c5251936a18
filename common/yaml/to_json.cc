#include "common/yaml/to_json.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <regex>
#include <sstream>

namespace cw {
namespace {

using nlohmann::json;

json scalar(const YAML::Node& node) {
  const std::string& v = node.Scalar();
  if (node.Tag() == "!") return v;  // quoted: a string whatever it looks like
  static const std::regex kInt("[-+]?(0|[1-9][0-9]*)");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (v == "true" || v == "True" || v == "TRUE") return true;
  if (v == "false" || v == "False" || v == "FALSE") return false;
  if (v == "null" || v == "Null" || v == "NULL" || v == "~" || v.empty()) return nullptr;
  if (std::regex_match(v, kInt)) {
    try {
      return std::stoll(v);
    } catch (const std::out_of_range&) {
      return v;
    }
  }
  if (std::regex_match(v, kFloat)) return std::stod(v);
  return v;
}

json convert(const YAML::Node& node, int depth) {
  if (depth > 200) throw YAML::ParserException(node.Mark(), "nesting deeper than 200 levels");
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar: return scalar(node);
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& item : node) a.push_back(convert(item, depth + 1));
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : node) o[kv.first.Scalar()] = convert(kv.second, depth + 1);
      return o;
    }
  }
  return nullptr;
}

}  // namespace

Result<std::vector<json>> yaml_documents_to_json(const std::string& text, const std::string& source) {
  std::vector<json> out;
  try {
    for (const auto& doc : YAML::LoadAll(text)) {
      json j = convert(doc, 0);
      if (!j.is_null()) out.push_back(std::move(j));
    }
  } catch (const YAML::Exception& e) {
    std::ostringstream msg;
    msg << source << ":" << e.mark.line + 1 << ":" << e.mark.column + 1 << ": " << e.msg;
    return Error(ErrorCode::kInvalidArgument, msg.str());
  }
  return out;
}

Result<std::vector<json>> yaml_file_to_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(ErrorCode::kNotFound, "cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return yaml_documents_to_json(text.str(), path);
}

}  // namespace cw
