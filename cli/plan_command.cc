#include "cli/plan_command.h"

#include "common/yaml/yaml_errors.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>

namespace cw::cli {
namespace {

using net::Family;
using net::Prefix;

constexpr int kMaxNodesPerCluster = 100000;

// Reads the plan file's YAML into PlanInput, remembering where every field came from so
// that errors found later (by ipam::validate) can still point at a line and column.
class Loader {
 public:
  explicit Loader(std::string source) : errors_(std::move(source)) {}

  std::optional<PlanInput> load(const YAML::Node& root) {
    PlanInput input;
    if (!expect_map(root, "", {"clusterSet", "clusters"})) return std::nullopt;
    const YAML::Node cs = root["clusterSet"];
    if (!cs) {
      fail(root, "clusterSet", "is required");
    } else if (expect_map(cs, "clusterSet", {"ipv4", "ipv6"})) {
      input.spec.ipv4 = family(cs["ipv4"], "ipv4", Family::kIPv4);
      input.spec.ipv6 = family(cs["ipv6"], "ipv6", Family::kIPv6);
    }
    const YAML::Node clusters = root["clusters"];
    if (!clusters) {
      fail(root, "clusters", "is required");
    } else if (!clusters.IsSequence()) {
      fail(clusters, "clusters", "must be a list of clusters");
    } else {
      for (std::size_t i = 0; i < clusters.size(); ++i) {
        input.clusters.push_back(cluster(clusters[i], "clusters[" + std::to_string(i) + "]"));
      }
    }
    if (!errors_.empty()) return std::nullopt;

    for (const auto& e : ipam::validate(input.spec)) report(spec_path(e.field), e.message);
    for (const auto& e : ipam::validate(input.clusters)) report(e.field, e.message);
    if (!errors_.empty()) return std::nullopt;
    return input;
  }

  void fail(const YAML::Node& node, const std::string& field, const std::string& message) {
    errors_.fail(node, field, message);
  }
  void add(const YAML::Mark& mark, const std::string& field, const std::string& message) {
    errors_.add(mark, field, message);
  }
  std::string errors() const { return errors_.joined(); }

 private:
  // ClusterSet fields are validated under "ipv4...", found in the file under "clusterSet.".
  static std::string spec_path(const std::string& field) {
    return field.empty() ? "clusterSet" : "clusterSet." + field;
  }

  // An error at `field`, placed at the nearest enclosing field that was read.
  void report(const std::string& field, const std::string& message) {
    std::string at = field;
    while (!at.empty() && !marks_.count(at)) {
      const auto cut = at.find_last_of(".[");
      at = cut == std::string::npos ? "" : at.substr(0, cut);
    }
    add(marks_.count(at) ? marks_[at] : YAML::Mark::null_mark(), field, message);
  }

  void remember(const YAML::Node& node, const std::string& field) {
    if (node.IsDefined()) marks_.emplace(field, node.Mark());
  }

  bool expect_map(const YAML::Node& node, const std::string& field,
                  std::initializer_list<const char*> allowed) {
    remember(node, field);
    if (!node.IsMap()) {
      fail(node, field, "must be a mapping");
      return false;
    }
    std::set<std::string> seen;
    bool ok = true;
    for (const auto& kv : node) {
      const std::string key = kv.first.Scalar();
      const std::string path = field.empty() ? key : field + "." + key;
      if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
        std::string known;
        for (const char* a : allowed) known += (known.empty() ? "" : ", ") + std::string(a);
        fail(kv.first, path, "unknown field (known: " + known + ")");
        ok = false;
      } else if (!seen.insert(key).second) {
        fail(kv.first, path, "appears twice");
        ok = false;
      }
    }
    return ok;
  }

  std::optional<std::string> scalar(const YAML::Node& node, const std::string& field) {
    remember(node, field);
    if (!node.IsScalar()) {
      fail(node, field, "must be a single value");
      return std::nullopt;
    }
    return node.Scalar();
  }

  std::optional<int> integer(const YAML::Node& node, const std::string& field, int lo, int hi) {
    auto text = scalar(node, field);
    if (!text) return std::nullopt;
    int value = 0;
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc() || end != text->data() + text->size() || value < lo || value > hi) {
      fail(node, field, "\"" + *text + "\" is not a whole number from " + std::to_string(lo) +
                            " to " + std::to_string(hi));
      return std::nullopt;
    }
    return value;
  }

  std::optional<Prefix> prefix(const YAML::Node& node, const std::string& field) {
    auto text = scalar(node, field);
    if (!text) return std::nullopt;
    auto parsed = Prefix::parse(*text);
    if (!parsed) {
      fail(node, field, parsed.error().message());
      return std::nullopt;
    }
    return *parsed;
  }

  std::vector<Prefix> prefixes(const YAML::Node& node, const std::string& field) {
    std::vector<Prefix> out;
    remember(node, field);
    if (!node.IsSequence()) {
      fail(node, field, "must be a list of CIDRs");
      return out;
    }
    for (std::size_t i = 0; i < node.size(); ++i) {
      if (auto p = prefix(node[i], field + "[" + std::to_string(i) + "]")) out.push_back(*p);
    }
    return out;
  }

  std::optional<ipam::FamilyPools> family(const YAML::Node& node, const std::string& field,
                                          Family fam) {
    if (!node) return std::nullopt;
    const std::string at = "clusterSet." + field;
    if (!expect_map(node, at, {"pools", "clusterPrefixLength", "nodePrefixLength"})) {
      return std::nullopt;
    }
    ipam::FamilyPools fp;
    const int width = net::bit_width(fam);
    for (const char* key : {"pools", "clusterPrefixLength", "nodePrefixLength"}) {
      if (!node[key]) fail(node, at + "." + key, "is required");
    }
    if (node["pools"]) fp.pools = prefixes(node["pools"], at + ".pools");
    if (node["clusterPrefixLength"]) {
      fp.cluster_prefix_length =
          integer(node["clusterPrefixLength"], at + ".clusterPrefixLength", 0, width).value_or(0);
    }
    if (node["nodePrefixLength"]) {
      fp.node_prefix_length =
          integer(node["nodePrefixLength"], at + ".nodePrefixLength", 0, width).value_or(0);
    }
    return fp;
  }

  ipam::ClusterInput cluster(const YAML::Node& node, const std::string& at) {
    ipam::ClusterInput c;
    if (!expect_map(node, at, {"id", "podCIDRs", "serviceCIDRs", "nodes"})) return c;
    if (!node["id"]) {
      fail(node, at + ".id", "is required");
    } else {
      c.id = scalar(node["id"], at + ".id").value_or("");
    }
    if (node["podCIDRs"]) c.pod_cidrs = prefixes(node["podCIDRs"], at + ".podCIDRs");
    if (node["serviceCIDRs"]) c.service_cidrs = prefixes(node["serviceCIDRs"], at + ".serviceCIDRs");
    if (const YAML::Node nodes = node["nodes"]) {
      if (nodes.IsSequence()) {
        remember(nodes, at + ".nodes");
        for (std::size_t j = 0; j < nodes.size(); ++j) {
          const std::string field = at + ".nodes[" + std::to_string(j) + "]";
          auto name = scalar(nodes[j], field);
          if (!name) continue;
          if (auto why = ipam::check_dns_label(*name)) {
            fail(nodes[j], field, "node name \"" + *name + "\" " + *why);
          } else {
            c.nodes.push_back(*name);
          }
        }
      } else if (auto count = integer(nodes, at + ".nodes", 0, kMaxNodesPerCluster)) {
        for (int j = 1; j <= *count; ++j) c.nodes.push_back("node-" + std::to_string(j));
      }
    }
    return c;
  }

  YamlErrors errors_;
  std::map<std::string, YAML::Mark> marks_;
};

std::string block_label(const ipam::PodBlock& b) {
  std::string label = b.cidr.to_string() + " (" + ipam::to_string(b.source);
  if (!b.in_pool) label += ", outside the pools";
  return label + ")";
}

void render_text(const ipam::Plan& plan, const ipam::ClusterSetSpec& spec, std::ostream& out) {
  out << "ClusterSet\n";
  for (const auto& u : plan.usage) {
    const auto& fp = *spec.pools_for(u.family);
    std::string pools;
    for (const auto& p : fp.pools) pools += (pools.empty() ? "" : ", ") + p.to_string();
    out << "  " << net::to_string(u.family) << "  pools " << pools << "  cluster /"
        << fp.cluster_prefix_length << "  node /" << fp.node_prefix_length << "  cluster blocks: "
        << net::format_count(u.total_blocks) << " total, " << net::format_count(u.free_blocks)
        << " free\n";
  }
  out << "\nClusters\n";
  for (const auto& c : plan.clusters) {
    out << "  " << c.id << "\n";
    std::string pods;
    for (const auto& b : c.pod_blocks) pods += (pods.empty() ? "" : ", ") + block_label(b);
    out << "    pods      " << (pods.empty() ? "none (see conflicts)" : pods) << "\n";
    if (!c.service_cidrs.empty()) {
      std::string svcs;
      for (const auto& s : c.service_cidrs) svcs += (svcs.empty() ? "" : ", ") + s.to_string();
      out << "    services  " << svcs << "\n";
    }
    if (c.nodes.empty()) continue;
    out << "    nodes     " << c.nodes.size() << "\n";
    std::size_t width = 0;
    for (const auto& n : c.nodes) width = std::max(width, n.name.size());
    for (const auto& n : c.nodes) {
      out << "      " << std::left << std::setw(static_cast<int>(width)) << n.name;
      if (n.pod_cidrs.empty()) out << "  none (see conflicts)";
      for (const auto& p : n.pod_cidrs) out << "  " << p.to_string();
      out << "\n";
    }
  }
  if (!plan.warnings.empty()) {
    out << "\nWarnings (" << plan.warnings.size() << ")\n";
    for (const auto& w : plan.warnings) out << "  " << w << "\n";
  }
  if (plan.conflicts.empty()) {
    out << "\nNo conflicts.\n";
  } else {
    out << "\nConflicts (" << plan.conflicts.size() << ")\n";
    for (const auto& c : plan.conflicts) out << "  " << c.cluster << ": " << c.message << "\n";
  }
}

void render_json(const ipam::Plan& plan, const ipam::ClusterSetSpec& spec, std::ostream& out) {
  using nlohmann::json;
  auto strings = [](const std::vector<Prefix>& ps) {
    json a = json::array();
    for (const auto& p : ps) a.push_back(p.to_string());
    return a;
  };
  json doc;
  doc["clusterSet"] = json::object();
  for (const auto& u : plan.usage) {
    const auto& fp = *spec.pools_for(u.family);
    // Counts are strings: an IPv6 pool can hold more blocks than a JSON number keeps exactly.
    doc["clusterSet"][u.family == Family::kIPv4 ? "ipv4" : "ipv6"] = {
        {"pools", strings(fp.pools)},
        {"clusterPrefixLength", fp.cluster_prefix_length},
        {"nodePrefixLength", fp.node_prefix_length},
        {"clusterBlocks",
         {{"total", net::format_count(u.total_blocks)}, {"free", net::format_count(u.free_blocks)}}}};
  }
  doc["clusters"] = json::array();
  for (const auto& c : plan.clusters) {
    json pods = json::array();
    for (const auto& b : c.pod_blocks) {
      pods.push_back({{"cidr", b.cidr.to_string()}, {"source", ipam::to_string(b.source)},
                      {"inPool", b.in_pool}});
    }
    json nodes = json::array();
    for (const auto& n : c.nodes) nodes.push_back({{"name", n.name}, {"podCIDRs", strings(n.pod_cidrs)}});
    doc["clusters"].push_back({{"id", c.id}, {"podCIDRs", pods},
                               {"serviceCIDRs", strings(c.service_cidrs)}, {"nodes", nodes}});
  }
  doc["conflicts"] = json::array();
  for (const auto& c : plan.conflicts) doc["conflicts"].push_back({{"cluster", c.cluster}, {"message", c.message}});
  doc["warnings"] = plan.warnings;
  out << doc.dump(2) << "\n";
}

}  // namespace

Result<PlanInput> parse_plan_input(const std::string& text, const std::string& source) {
  Loader loader(source);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    loader.add(e.mark, "", "not valid YAML: " + e.msg);
    return Error(ErrorCode::kInvalidArgument, loader.errors());
  }
  if (!root || root.IsNull()) {
    loader.add(YAML::Mark::null_mark(), "", "the file is empty");
    return Error(ErrorCode::kInvalidArgument, loader.errors());
  }
  auto input = loader.load(root);
  if (!input) return Error(ErrorCode::kInvalidArgument, loader.errors());
  return std::move(*input);
}

void render_plan(const ipam::Plan& plan, const ipam::ClusterSetSpec& spec, OutputFormat format,
                 std::ostream& out) {
  if (format == OutputFormat::kJson) {
    render_json(plan, spec, out);
  } else {
    render_text(plan, spec, out);
  }
}

int run_plan(const std::string& path, OutputFormat format, std::ostream& out, std::ostream& err) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    err << "cwctl plan: cannot read " << path << "\n";
    return kPlanBadInput;
  }
  std::ostringstream text;
  text << file.rdbuf();
  auto input = parse_plan_input(text.str(), path);
  if (!input) {
    err << input.error().message() << "\n";
    return kPlanBadInput;
  }
  const ipam::Plan plan = ipam::make_plan(input->spec, input->clusters);
  render_plan(plan, input->spec, format, out);
  return plan.conflicts.empty() ? kPlanClean : kPlanHasConflicts;
}

}  // namespace cw::cli
