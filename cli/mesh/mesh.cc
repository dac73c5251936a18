#include "cli/mesh/mesh.h"

#include <algorithm>
#include <ctime>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

namespace cw::mesh {
namespace {

std::string str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

json obj(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_object() ? j[key] : json::object();
}

// A count from JSON another process wrote: 0 unless it is a non-negative integer.
int count(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number_integer()) return 0;
  const auto v = j[key].get<std::int64_t>();
  return v < 0 || v > 1'000'000 ? 0 : static_cast<int>(v);
}

json items(const json& list) {
  if (list.is_array()) return list;
  return list.is_object() && list.contains("items") && list["items"].is_array() ? list["items"] : json::array();
}

std::string join(const json& list, const char* sep = ",") {
  std::string out;
  if (!list.is_array()) return "";
  for (const auto& x : list) {
    if (x.is_string()) out += (out.empty() ? "" : sep) + x.get<std::string>();
  }
  return out;
}

std::optional<std::chrono::system_clock::time_point> parse_time(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

// "12s ago", "3m ago", "in 40s" (a clock ahead of ours).
std::string age(std::chrono::system_clock::time_point now, const std::string& when) {
  auto t = parse_time(when);
  if (!t) return "never";
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(now - *t).count();
  if (s < 0) return "in " + std::to_string(-s) + "s (clock ahead)";
  if (s < 120) return std::to_string(s) + "s ago";
  if (s < 7200) return std::to_string(s / 60) + "m ago";
  return std::to_string(s / 3600) + "h ago";
}

// Pads `text` to `width` columns, counting UTF-8 characters (the arrows) as one.
std::string pad(const std::string& text, std::size_t width) {
  std::size_t chars = 0;
  for (char c : text) chars += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1U : 0U;
  return text + std::string(width > chars ? width - chars : 1, ' ');
}

// One line per remote cluster a node probes: "c2 2 up, 1 down (p50 1.1ms)".
std::string probes_of(const NodeView& n) {
  std::string out;
  for (const auto& [cluster, e] : n.datapath.items()) {
    if (!e.is_object()) continue;
    std::string part = cluster + ":";
    for (const char* k : {"up", "down", "mtu", "snat", "unknown"}) {
      const int v = count(e, k);
      if (v > 0) part += " " + std::to_string(v) + " " + k;
    }
    if (e.contains("rttP50Micros") && e["rttP50Micros"].is_number()) {
      std::ostringstream rtt;
      rtt << std::setprecision(2) << e["rttP50Micros"].get<double>() / 1000.0;
      part += " (p50 " + rtt.str() + "ms)";
    }
    if (count(e, "handshakeStale") > 0) part += " [" + std::to_string(count(e, "handshakeStale")) + " without handshake]";
    out += (out.empty() ? "" : "; ") + part;
  }
  return out.empty() ? "-" : out;
}

std::string datapath_cell(const PeeringView& p) {
  const json d = p.condition("DatapathHealthy");
  const json sum = obj(p.status, "datapath");
  if (d.empty()) return "-";
  const int probed = count(sum, "probedPairs"), failing = count(sum, "failingPairs");
  if (str(d, "status") == "Unknown") return "not probed yet";
  if (failing == 0) return std::to_string(probed) + "/" + std::to_string(probed) + " pairs answer";
  return str(d, "reason") + " (" + std::to_string(failing) + "/" + std::to_string(probed) + " fail)";
}

std::string control_cell(const PeeringView& p) {
  std::vector<std::string> bad;
  for (const char* type : {"BrokerReachable", "RemoteHealthy", "RemoteConsents", "CIDRsDisjoint"}) {
    const json c = p.condition(type);
    if (!c.empty() && str(c, "status") == "False") bad.push_back(str(c, "reason"));
  }
  if (bad.empty()) return "ok";
  std::string out;
  for (const auto& b : bad) out += (out.empty() ? "" : ",") + b;
  return out;
}

}  // namespace

json PeeringView::condition(const std::string& type) const {
  if (!status.contains("conditions") || !status["conditions"].is_array()) return json::object();
  for (const auto& c : status["conditions"]) {
    if (str(c, "type") == type) return c;
  }
  return json::object();
}

const json* BrokerView::advertisement(const std::string& cluster_id) const {
  for (const auto& a : advertisements) {
    if (str(obj(a, "metadata"), "name") == cluster_id) return &a;
  }
  return nullptr;
}

const ClusterView* MeshView::cluster(const std::string& id) const {
  for (const auto& c : clusters) {
    if (c.id == id) return &c;
  }
  return nullptr;
}

ClusterView cluster_from(const std::string& context, const json& nodes, const json& peerings) {
  ClusterView c;
  c.context = context;
  c.id = context;
  for (const auto& n : items(nodes)) {
    const json meta = obj(n, "metadata");
    const json ann = obj(meta, "annotations");
    NodeView v{str(meta, "name"), str(ann, "clusterwire.io/pod-cidr"), str(ann, "clusterwire.io/public-key"),
               str(ann, "clusterwire.io/endpoint"), json::object(), str(ann, "clusterwire.io/agent-error")};
    const json report = json::parse(str(ann, "clusterwire.io/datapath"), nullptr, false);
    if (report.is_object()) v.datapath = report;
    c.nodes.push_back(std::move(v));
  }
  for (const auto& p : items(peerings)) {
    PeeringView v{str(obj(p, "metadata"), "name"), str(obj(p, "spec"), "remoteClusterID"),
                  str(obj(p, "status"), "phase"), obj(p, "status")};
    c.peerings.push_back(std::move(v));
  }
  std::sort(c.nodes.begin(), c.nodes.end(), [](const NodeView& a, const NodeView& b) { return a.name < b.name; });
  std::sort(c.peerings.begin(), c.peerings.end(),
            [](const PeeringView& a, const PeeringView& b) { return a.name < b.name; });
  return c;
}

BrokerView broker_from(const std::string& context, const json& advertisements, const json& claims) {
  BrokerView b;
  b.context = context;
  for (const auto& a : items(advertisements)) b.advertisements.push_back(a);
  for (const auto& c : items(claims)) b.claims.push_back(c);
  return b;
}

void identify(MeshView& view) {
  if (!view.broker) return;
  for (auto& c : view.clusters) {
    std::set<std::string> mine;
    for (const auto& n : c.nodes) mine.insert(n.name);
    std::string best;
    std::size_t best_count = 0;
    bool tie = false;
    for (const auto& a : view.broker->advertisements) {
      std::size_t count = 0;
      const json spec = obj(a, "spec");
      if (spec.contains("nodes") && spec["nodes"].is_array()) {
        for (const auto& n : spec["nodes"]) count += mine.count(str(n, "name"));
      }
      if (count > best_count) {
        best = str(obj(a, "metadata"), "name");
        best_count = count;
        tie = false;
      } else if (count == best_count && count > 0) {
        tie = true;
      }
    }
    if (!best.empty() && !tie) c.id = best;
  }
}

void print_status(const MeshView& view, std::ostream& out) {
  out << "clusterset: " << view.clusters.size() << " cluster" << (view.clusters.size() == 1 ? "" : "s");
  if (view.broker) {
    out << ", broker at context " << view.broker->context;
    if (!view.broker->error.empty()) out << " (unreadable: " << view.broker->error << ")";
    else out << " (" << view.broker->advertisements.size() << " advertisements, " << view.broker->claims.size() << " claims)";
  } else {
    out << ", broker not read (--broker-context)";
  }
  out << "\n";
  for (const auto& c : view.clusters) {
    out << "\ncluster " << c.id << (c.id != c.context ? " (context " + c.context + ")" : "") << "\n";
    if (!c.error.empty()) {
      out << "  unreadable: " << c.error << "\n";
      continue;
    }
    if (view.broker) {
      if (const json* a = view.broker->advertisement(c.id)) {
        const json spec = obj(*a, "spec");
        out << "  pods " << join(spec.value("podCIDRs", json::array()), ", ") << "   services "
            << join(spec.value("serviceCIDRs", json::array()), ", ") << "   heartbeat "
            << age(view.now, str(spec, "heartbeat")) << "   peers " << join(spec.value("peers", json::array()), ", ")
            << "\n";
        if (str(spec, "topology") == "gateway") {
          // Gateway mode (docs/gateway.md): the candidates, and the Lease's holder as advertised.
          std::string names;
          for (const auto& g : spec.value("gateways", json::array())) {
            names += (names.empty() ? "" : ", ") + str(g, "name") + (str(g, "endpoint").empty() ? " (behind NAT)" : " " + str(g, "endpoint"));
          }
          out << "  topology gateway   active " << (str(spec, "activeGateway").empty() ? "(none)" : str(spec, "activeGateway"))
              << "   candidates " << (names.empty() ? "(none labelled)" : names) << "\n";
        }
      } else {
        out << "  no advertisement on the broker\n";
      }
    }
    if (c.peerings.empty()) out << "  no ClusterPeering\n";
    else {
      out << "  " << pad("PEERING", 12) << pad("PHASE", 12) << pad("DATAPATH", 34) << pad("RTT p50/max", 16)
          << "CONTROL PLANE\n";
      for (const auto& p : c.peerings) {
        const json sum = obj(p.status, "datapath");
        const std::string rtt = str(sum, "rttP50").empty() ? "-" : str(sum, "rttP50") + "/" + str(sum, "rttMax");
        out << "  " << pad(p.name + (p.name != p.remote ? " (" + p.remote + ")" : ""), 12)
            << pad(p.phase.empty() ? "(none)" : p.phase, 12) << pad(datapath_cell(p), 34) << pad(rtt, 16)
            << control_cell(p) << "\n";
      }
    }
    out << "  " << pad("NODE", 14) << pad("PODS", 34) << pad("ENDPOINT", 24) << "PROBES\n";
    for (const auto& n : c.nodes) {
      out << "  " << pad(n.name, 14) << pad(n.pod_cidrs.empty() ? "-" : n.pod_cidrs, 34)
          << pad(n.endpoint.empty() ? "-" : n.endpoint, 24) << probes_of(n) << "\n";
    }
    std::vector<std::string> problems;
    for (const auto& n : c.nodes) {
      if (!n.agent_error.empty()) problems.push_back("node agent on " + n.name + ": " + n.agent_error);
    }
    for (const auto& p : c.peerings) {
      const json ready = p.condition("Ready");
      if (!ready.empty() && str(ready, "status") != "True") {
        problems.push_back("peering " + p.name + ": " + str(ready, "message"));
      }
    }
    for (const auto& p : problems) out << "  ! " << p << "\n";
  }
}

json status_json(const MeshView& view) {
  json out{{"clusters", json::array()}};
  if (view.broker) {
    out["broker"] = {{"context", view.broker->context}, {"error", view.broker->error},
                     {"advertisements", view.broker->advertisements.size()}, {"claims", view.broker->claims.size()}};
  }
  for (const auto& c : view.clusters) {
    json j{{"id", c.id}, {"context", c.context}, {"peerings", json::array()}, {"nodes", json::array()}};
    if (!c.error.empty()) j["error"] = c.error;
    if (view.broker) {
      if (const json* a = view.broker->advertisement(c.id)) {
        const json spec = obj(*a, "spec");
        j["podCIDRs"] = spec.value("podCIDRs", json::array());
        j["serviceCIDRs"] = spec.value("serviceCIDRs", json::array());
        j["heartbeat"] = str(spec, "heartbeat");
      }
    }
    for (const auto& p : c.peerings) {
      json conditions = json::object();
      if (p.status.contains("conditions") && p.status["conditions"].is_array()) {
        for (const auto& cond : p.status["conditions"]) {
          conditions[str(cond, "type")] = {{"status", str(cond, "status")}, {"reason", str(cond, "reason")},
                                           {"message", str(cond, "message")}};
        }
      }
      j["peerings"].push_back({{"name", p.name}, {"remote", p.remote}, {"phase", p.phase},
                               {"datapath", obj(p.status, "datapath")}, {"conditions", conditions}});
    }
    for (const auto& n : c.nodes) {
      json node{{"name", n.name}, {"podCIDRs", n.pod_cidrs}, {"endpoint", n.endpoint}, {"probes", n.datapath}};
      if (!n.agent_error.empty()) node["agentError"] = n.agent_error;
      j["nodes"].push_back(node);
    }
    out["clusters"].push_back(j);
  }
  return out;
}

}  // namespace cw::mesh
