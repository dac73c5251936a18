// Reading the fields of Kubernetes objects that may be missing or of another type than
// expected, without exceptions: a missing field reads as null, a string field as "" unless it
// is one, a list as the strings it holds. For code that must never throw on what a user wrote.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cw::kube {

// o[key], or null when o is not an object or has no such key.
inline const nlohmann::json& field(const nlohmann::json& o, const char* key) {
  static const nlohmann::json kNull;
  if (!o.is_object()) return kNull;
  auto it = o.find(key);
  return it == o.end() ? kNull : *it;
}

// o[key] when it is a string, else "".
inline std::string text(const nlohmann::json& o, const char* key) {
  const nlohmann::json& v = field(o, key);
  return v.is_string() ? v.get<std::string>() : "";
}

// The strings of a list (other items skipped); empty when it is not a list.
inline std::vector<std::string> strings(const nlohmann::json& list) {
  std::vector<std::string> out;
  if (!list.is_array()) return out;
  for (const auto& v : list) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace cw::kube
