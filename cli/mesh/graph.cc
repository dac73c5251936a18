// `cwctl graph`: the view as Graphviz DOT.
#include <set>

#include "cli/mesh/mesh.h"

namespace cw::mesh {
namespace {

std::string str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

}  // namespace

std::string graph_dot(const MeshView& view) {
  auto quote = [](const std::string& s) {
    std::string q = "\"";
    for (char ch : s) q += ch == '"' ? std::string("\\\"") : std::string(1, ch);
    return q + "\"";
  };
  std::string out = "digraph clusterset {\n  rankdir=LR;\n  graph [fontname=\"Helvetica\"];\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n"
                    "  edge [fontname=\"Helvetica\", fontsize=10];\n";
  for (const auto& c : view.clusters) {
    out += "  subgraph " + quote("cluster_" + c.id) + " {\n    label=" + quote(c.id + (c.error.empty() ? "" : " (unreadable)")) +
           ";\n    style=rounded; color=\"#555555\";\n";
    out += "    " + quote(c.id) + " [label=" + quote(c.id) + ", shape=point, style=invis];\n";
    for (const auto& n : c.nodes) {
      std::string label = n.name + "\\n" + (n.pod_cidrs.empty() ? "no block" : n.pod_cidrs);
      const std::string colour = n.agent_error.empty() ? "black" : "red";
      out += "    " + quote(c.id + "/" + n.name) + " [label=" + quote(label) + ", color=" + colour + "];\n";
    }
    out += "  }\n";
  }
  std::set<std::string> drawn;
  for (const auto& c : view.clusters) {
    for (const auto& p : c.peerings) {
      const json d = p.condition("DatapathHealthy");
      const std::string health = str(d, "status");
      const std::string colour = health == "True" ? "forestgreen" : health == "False" ? "red" : "grey";
      const json sum = p.status.value("datapath", json::object());
      std::string label = p.phase.empty() ? "no status" : p.phase;
      if (!str(sum, "rttP50").empty()) label += "\\nRTT " + str(sum, "rttP50");
      if (health == "False") label += "\\n" + str(d, "reason");
      // Edges between the clusters' first nodes (lhead/ltail draw them to the cluster boxes).
      const ClusterView* r = view.cluster(p.remote);
      const std::string from = c.nodes.empty() ? c.id : c.id + "/" + c.nodes.front().name;
      const std::string to = r == nullptr || r->nodes.empty() ? p.remote : p.remote + "/" + r->nodes.front().name;
      if (r == nullptr && !drawn.count("remote " + p.remote)) {
        out += "  " + quote(p.remote) + " [label=" + quote(p.remote + "\\n(not read)") + ", style=dashed];\n";
        drawn.insert("remote " + p.remote);
      }
      out += "  " + quote(from) + " -> " + quote(to) + " [color=" + colour + ", fontcolor=" + colour +
             ", label=" + quote(label) + ", ltail=" + quote("cluster_" + c.id) +
             (r != nullptr ? ", lhead=" + quote("cluster_" + p.remote) : std::string()) + "];\n";
    }
  }
  out += "  compound=true;\n}\n";
  return out;
}

}  // namespace cw::mesh
