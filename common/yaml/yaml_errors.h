// Problems found in a YAML file, each reported as "<source>:<line>:<column>: <field>: <message>"
// so that a person can go straight to the spot. Shared by every loader of user-written YAML
// (cwctl plan files, kubeconfigs).
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

namespace cw {

class YamlErrors {
 public:
  explicit YamlErrors(std::string source) : source_(std::move(source)) {}

  // At `node`, or without a position when the node is missing.
  void fail(const YAML::Node& node, const std::string& field, const std::string& message);
  void add(const YAML::Mark& mark, const std::string& field, const std::string& message);

  bool empty() const { return lines_.empty(); }
  // Every problem, one per line, in the order found.
  std::string joined() const;

 private:
  std::string source_;
  std::vector<std::string> lines_;
};

}  // namespace cw
