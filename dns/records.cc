#include "dns/records.h"

#include <algorithm>
#include <cctype>

namespace cw::dns {
namespace {

bool iequal(const std::string& a, const std::string& b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

Name Name::parse(const std::string& dotted) {
  Name n;
  std::size_t start = 0;
  while (start < dotted.size()) {
    const auto dot = dotted.find('.', start);
    const std::string label = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!label.empty()) n.labels.push_back(label);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return n;
}

std::string Name::to_string() const {
  if (labels.empty()) return ".";
  std::string out;
  for (const auto& l : labels) out += l + ".";
  return out;
}

std::string Name::lower() const {
  std::string s = to_string();
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool Name::ends_with(const Name& suffix) const {
  if (suffix.labels.size() > labels.size()) return false;
  const std::size_t offset = labels.size() - suffix.labels.size();
  for (std::size_t i = 0; i < suffix.labels.size(); ++i) {
    if (!iequal(labels[offset + i], suffix.labels[i])) return false;
  }
  return true;
}

std::size_t Name::wire_length() const {
  std::size_t n = 1;
  for (const auto& l : labels) n += 1 + l.size();
  return n;
}

bool operator==(const Name& a, const Name& b) {
  if (a.labels.size() != b.labels.size()) return false;
  for (std::size_t i = 0; i < a.labels.size(); ++i) {
    if (!iequal(a.labels[i], b.labels[i])) return false;
  }
  return true;
}

}  // namespace cw::dns
