#include "operator/mcs.h"

#include <algorithm>
#include <tuple>

#include "common/kube/mcs_api.h"
#include "common/net/ip_address.h"

namespace cw::op {
namespace {

std::string str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

std::string key(const std::string& ns, const std::string& name) { return ns + "/" + name; }

// The port number a headless Service's pods listen on, for its Service port `p`.
int headless_port(const ExportPort& port, const json& p, const std::vector<json>& slices) {
  for (const auto& slice : slices) {
    for (const auto& q : slice.value("ports", json::array())) {
      const std::string protocol = str(q, "protocol").empty() ? "TCP" : str(q, "protocol");
      if (str(q, "name") == port.name && protocol == port.protocol && q.contains("port") && q["port"].is_number_integer()) {
        return q["port"].get<int>();
      }
    }
  }
  if (p.contains("targetPort") && p["targetPort"].is_number_integer()) return p["targetPort"].get<int>();
  return port.port;
}

}  // namespace

ExportResult make_export_record(const std::string& cluster_id, const json& service_export, const json& service,
                                const std::vector<json>& slices) {
  ExportResult out;
  const json meta = service_export.value("metadata", json::object());
  const std::string name = str(meta, "name");
  const std::string ns = str(meta, "namespace");
  if (service.is_null() || !service.is_object()) {
    out.invalid_reason = "ServiceNotFound";
    out.invalid_message = "there is no Service " + ns + "/" + name + " to export";
    return out;
  }
  const json spec = service.value("spec", json::object());
  const std::string type = str(spec, "type");
  if (type == "ExternalName") {
    out.invalid_reason = "InvalidServiceType";
    out.invalid_message = "an ExternalName Service cannot be exported: create it in each cluster instead";
    return out;
  }
  ExportRecord r;
  r.cluster_id = cluster_id;
  r.ns = ns;
  r.name = name;
  r.exported_at = str(meta, "creationTimestamp");
  r.headless = str(spec, "clusterIP") == "None";
  if (str(spec, "sessionAffinity") == "ClientIP") {
    r.session_affinity = "ClientIP";
    const json cfg = spec.value("sessionAffinityConfig", json::object());
    const json client_ip = cfg.is_object() ? cfg.value("clientIP", json::object()) : json::object();
    if (client_ip.is_object() && client_ip.contains("timeoutSeconds") && client_ip["timeoutSeconds"].is_number_integer()) {
      r.session_affinity_timeout = client_ip["timeoutSeconds"].get<int>();
    }
  }
  for (const auto& p : spec.value("ports", json::array())) {
    ExportPort port{str(p, "name"), str(p, "protocol").empty() ? "TCP" : str(p, "protocol"),
                    p.value("port", 0), str(p, "appProtocol")};
    if (r.headless) {
      // Headless endpoints are pods: clients connect to the pod's port, the targetPort. The
      // Service's own EndpointSlices hold it resolved (a named targetPort needs the pods);
      // else a numeric targetPort says it; else it is the port itself.
      port.port = headless_port(port, p, slices);
    }
    if (port.port > 0) r.ports.push_back(port);
  }
  if (!r.headless) {
    for (const auto& ip : spec.value("clusterIPs", json::array())) {
      if (ip.is_string() && ip.get<std::string>() != "None") r.service_ips.push_back(ip);
    }
    if (r.service_ips.empty() && !str(spec, "clusterIP").empty()) r.service_ips.push_back(str(spec, "clusterIP"));
  } else {
    for (const auto& slice : slices) {
      for (const auto& ep : slice.value("endpoints", json::array())) {
        ExportEndpoint e;
        for (const auto& a : ep.value("addresses", json::array())) {
          if (a.is_string()) e.addresses.push_back(a);
        }
        e.hostname = str(ep, "hostname");
        const json cond = ep.value("conditions", json::object());
        // Kubernetes: a nil ready condition means ready.
        e.ready = !cond.contains("ready") || cond["ready"].is_null() || cond["ready"] == true;
        if (!e.addresses.empty()) r.endpoints.push_back(std::move(e));
      }
    }
    std::sort(r.endpoints.begin(), r.endpoints.end(),
              [](const ExportEndpoint& a, const ExportEndpoint& b) { return a.addresses < b.addresses; });
  }
  out.record = std::move(r);
  return out;
}

json to_json(const ExportRecord& r) {
  json ports = json::array();
  for (const auto& p : r.ports) {
    json j{{"name", p.name}, {"protocol", p.protocol}, {"port", p.port}};
    if (!p.app_protocol.empty()) j["appProtocol"] = p.app_protocol;
    ports.push_back(j);
  }
  json endpoints = json::array();
  for (const auto& e : r.endpoints) {
    json j{{"addresses", e.addresses}, {"ready", e.ready}};
    if (!e.hostname.empty()) j["hostname"] = e.hostname;
    endpoints.push_back(j);
  }
  json out{{"clusterID", r.cluster_id}, {"namespace", r.ns},   {"service", r.name},
           {"type", r.headless ? "Headless" : "ClusterSetIP"}, {"ports", ports},
           {"serviceIPs", r.service_ips}, {"endpoints", endpoints}, {"exportedAt", r.exported_at},
           {"sessionAffinity", r.session_affinity}};
  if (r.session_affinity_timeout > 0) out["sessionAffinityTimeoutSeconds"] = r.session_affinity_timeout;
  return out;
}

Result<ExportRecord> parse_export_record(const json& spec) {
  ExportRecord r;
  r.cluster_id = str(spec, "clusterID");
  r.ns = str(spec, "namespace");
  r.name = str(spec, "service");
  r.exported_at = str(spec, "exportedAt");
  const std::string type = str(spec, "type");
  if (r.cluster_id.empty() || r.ns.empty() || r.name.empty() || (type != "Headless" && type != "ClusterSetIP")) {
    return Error(ErrorCode::kInvalidArgument, "an export record needs clusterID, namespace, service and type");
  }
  r.headless = type == "Headless";
  if (str(spec, "sessionAffinity") == "ClientIP") r.session_affinity = "ClientIP";
  if (spec.contains("sessionAffinityTimeoutSeconds") && spec["sessionAffinityTimeoutSeconds"].is_number_integer()) {
    r.session_affinity_timeout = spec["sessionAffinityTimeoutSeconds"].get<int>();
  }
  for (const auto& p : spec.value("ports", json::array())) {
    if (!p.is_object() || !p.contains("port") || !p["port"].is_number_integer()) continue;
    r.ports.push_back({str(p, "name"), str(p, "protocol").empty() ? "TCP" : str(p, "protocol"), p["port"].get<int>(),
                       str(p, "appProtocol")});
  }
  for (const auto& ip : spec.value("serviceIPs", json::array())) {
    if (ip.is_string()) r.service_ips.push_back(ip);
  }
  for (const auto& e : spec.value("endpoints", json::array())) {
    if (!e.is_object()) continue;
    ExportEndpoint ep;
    for (const auto& a : e.value("addresses", json::array())) {
      if (a.is_string()) ep.addresses.push_back(a);
    }
    ep.hostname = str(e, "hostname");
    ep.ready = !e.contains("ready") || e["ready"] == true;
    r.endpoints.push_back(std::move(ep));
  }
  return r;
}

namespace {

// What the exports of one Service (sorted oldest first) add up to by the KEP's rules: the
// type of the oldest, the ports merged by name and then by protocol and number, the exports
// that contribute (those of that type), and every disagreement, said for a human.
struct Merged {
  bool headless = false;
  std::string session_affinity = "None";
  int session_affinity_timeout = 0;
  std::vector<ExportPort> ports;
  std::vector<const ExportRecord*> contributors;
  std::vector<std::string> problems;
};

Merged merge_exports(const std::vector<const ExportRecord*>& recs) {
  Merged m;
  const ExportRecord& oldest = *recs.front();
  m.headless = oldest.headless;
  m.session_affinity = oldest.session_affinity;
  m.session_affinity_timeout = oldest.session_affinity_timeout;
  for (const auto* r : recs) {
    if (r->headless != oldest.headless) {
      m.problems.push_back("type: cluster " + r->cluster_id + " exports it " + (r->headless ? "Headless" : "ClusterSetIP") +
                           ", the oldest export (cluster " + oldest.cluster_id + ") " +
                           (oldest.headless ? "Headless" : "ClusterSetIP") + ", which is used");
      continue;
    }
    m.contributors.push_back(r);
    if (r->session_affinity != oldest.session_affinity || r->session_affinity_timeout != oldest.session_affinity_timeout) {
      auto text = [](const ExportRecord& x) {
        return x.session_affinity + (x.session_affinity_timeout > 0 ? " (" + std::to_string(x.session_affinity_timeout) + " s)" : "");
      };
      m.problems.push_back("sessionAffinity: cluster " + r->cluster_id + " has " + text(*r) + ", the oldest export (cluster " +
                           oldest.cluster_id + ") " + text(oldest) + ", which is used");
    }
    for (const auto& p : r->ports) {
      auto same_name = std::find_if(m.ports.begin(), m.ports.end(), [&](const ExportPort& q) { return q.name == p.name; });
      if (same_name != m.ports.end()) {
        if (same_name->protocol != p.protocol || same_name->port != p.port) {
          m.problems.push_back("port \"" + p.name + "\": cluster " + r->cluster_id + " has " + p.protocol + "/" +
                               std::to_string(p.port) + ", an older export " + same_name->protocol + "/" +
                               std::to_string(same_name->port) + ", which is used");
        }
        continue;
      }
      auto same_port = std::find_if(m.ports.begin(), m.ports.end(), [&](const ExportPort& q) {
        return q.protocol == p.protocol && q.port == p.port;
      });
      if (same_port != m.ports.end()) {
        m.problems.push_back(p.protocol + "/" + std::to_string(p.port) + ": cluster " + r->cluster_id + " names it \"" +
                             p.name + "\", an older export \"" + same_port->name + "\", which is used");
        continue;
      }
      m.ports.push_back(p);
    }
  }
  return m;
}

}  // namespace

ImportPlan plan_imports(const std::string& local_cluster_id, const std::vector<ExportRecord>& records,
                        const std::set<std::string>& reachable, const std::set<std::string>& namespaces) {
  ImportPlan plan;
  std::map<std::string, std::vector<const ExportRecord*>> by_service;
  for (const auto& r : records) by_service[key(r.ns, r.name)].push_back(&r);

  for (auto& [k, recs] : by_service) {
    // Precedence: oldest export first; the cluster ID breaks ties, so every cluster agrees.
    std::sort(recs.begin(), recs.end(), [](const ExportRecord* a, const ExportRecord* b) {
      return std::tie(a->exported_at, a->cluster_id) < std::tie(b->exported_at, b->cluster_id);
    });
    // Conflicts are the clusterset's: every export counts, reachable from here or not.
    const Merged all = merge_exports(recs);
    if (!all.problems.empty()) {
      std::string message = "Conflict: " + all.problems.front();
      if (all.problems.size() > 1) message += " (and " + std::to_string(all.problems.size() - 1) + " more)";
      for (const auto* r : recs) {
        if (r->cluster_id == local_cluster_id) plan.conflicts[k] = message;
      }
    }
    // The import is what can be reached: a cluster that is gone (or not peered) and never
    // withdrew its record must not decide the type or the ports here.
    std::vector<const ExportRecord*> reached;
    for (const auto* r : recs) {
      if (reachable.count(r->cluster_id)) reached.push_back(r);
    }
    if (reached.empty() || namespaces.count(recs.front()->ns) == 0) continue;  // never create a namespace
    const Merged here = merge_exports(reached);
    PlannedImport imp{recs.front()->ns, recs.front()->name, here.headless, here.ports, {}};
    imp.session_affinity = here.session_affinity;
    imp.session_affinity_timeout = here.session_affinity_timeout;
    for (const auto* r : here.contributors) {
      imp.slices.push_back({r->cluster_id, r->service_ips, r->endpoints});
      imp.precedence.push_back(r->cluster_id);
    }
    std::sort(imp.slices.begin(), imp.slices.end(),
              [](const ImportedSlice& a, const ImportedSlice& b) { return a.source_cluster < b.source_cluster; });
    plan.imports.push_back(std::move(imp));
  }
  return plan;
}

namespace {

json ports_json(const std::vector<ExportPort>& ports) {
  json out = json::array();
  for (const auto& p : ports) {
    json j{{"protocol", p.protocol}, {"port", p.port}};
    if (!p.name.empty()) j["name"] = p.name;
    if (!p.app_protocol.empty()) j["appProtocol"] = p.app_protocol;
    out.push_back(j);
  }
  return out;
}

// "ipv4", "ipv6", or "" for text that is not an address (left out, never written).
std::string family_of(const std::string& address) {
  auto ip = net::IpAddress::parse(address);
  if (!ip) return "";
  return ip->family() == net::Family::kIPv4 ? "ipv4" : "ipv6";
}

}  // namespace

json service_import_for(const PlannedImport& imp, const std::string& local_cluster_id) {
  json spec{{"type", imp.headless ? "Headless" : "ClusterSetIP"}, {"ports", ports_json(imp.ports)}};
  if (imp.session_affinity == "ClientIP") {
    spec["sessionAffinity"] = "ClientIP";
    if (imp.session_affinity_timeout > 0) {
      spec["sessionAffinityConfig"] = {{"clientIP", {{"timeoutSeconds", imp.session_affinity_timeout}}}};
    }
  }
  if (!imp.headless) {
    // The preferred cluster: this one when it exports the Service, else by precedence.
    std::string preferred = imp.precedence.empty() ? "" : imp.precedence.front();
    for (const auto& s : imp.slices) {
      if (s.source_cluster == local_cluster_id) preferred = local_cluster_id;
    }
    json ips = json::array();
    std::set<std::string> families;
    for (const auto& s : imp.slices) {
      if (s.source_cluster != preferred) continue;
      for (const auto& ip : s.service_ips) {
        const std::string f = family_of(ip);
        if (!f.empty() && families.insert(f).second) ips.push_back(ip);
      }
    }
    if (!ips.empty()) spec["ips"] = ips;
  }
  json clusters = json::array();
  for (const auto& s : imp.slices) clusters.push_back({{"cluster", s.source_cluster}});
  return {{"apiVersion", kube::mcs::kApiVersion},
          {"kind", "ServiceImport"},
          {"metadata", {{"name", imp.name}, {"namespace", imp.ns},
                        {"labels", {{kube::mcs::kImportManagedByLabel, kube::mcs::kImportManagedBy}}}}},
          {"spec", spec},
          {"status", {{"clusters", clusters}}}};
}

std::vector<json> endpoint_slices_for(const PlannedImport& imp) {
  std::vector<json> out;
  for (const auto& s : imp.slices) {
    // Addresses by family: headless endpoints split per family; ClusterSetIP service IPs.
    std::map<std::string, json> endpoints;               // family → endpoints
    std::map<std::string, std::vector<std::string>> ips;  // family → service IPs
    if (imp.headless) {
      for (const auto& e : s.endpoints) {
        std::map<std::string, std::vector<std::string>> by_family;
        for (const auto& a : e.addresses) {
          if (const std::string f = family_of(a); !f.empty()) by_family[f].push_back(a);
        }
        for (const auto& [f, addresses] : by_family) {
          json ep{{"addresses", addresses}, {"conditions", {{"ready", e.ready}}}};
          if (!e.hostname.empty()) ep["hostname"] = e.hostname;
          endpoints[f].push_back(ep);
        }
      }
    } else {
      for (const auto& ip : s.service_ips) {
        if (const std::string f = family_of(ip); !f.empty()) ips[f].push_back(ip);
      }
    }
    std::set<std::string> families;
    for (const auto& [f, _] : endpoints) families.insert(f);
    for (const auto& [f, _] : ips) families.insert(f);
    if (families.empty()) families.insert("ipv4");
    for (const auto& f : families) {
      // Dots cannot occur in a Service name or a cluster ID (DNS labels), so the name is
      // unique: "web-us" from "east" and "web" from "us-east" must not share one.
      json meta{{"name", imp.name + "." + s.source_cluster + "." + f},
                {"namespace", imp.ns},
                {"labels", {{kube::mcs::kServiceNameLabel, imp.name},
                            {kube::mcs::kSourceClusterLabel, s.source_cluster},
                            {kube::mcs::kManagedByLabel, kube::mcs::kManagedBy}}}};
      if (!imp.headless) {
        std::string joined;
        for (const auto& ip : ips[f]) joined += (joined.empty() ? "" : ",") + ip;
        meta["annotations"] = {{kube::mcs::kServiceIpsAnnotation, joined}};
      }
      out.push_back({{"apiVersion", "discovery.k8s.io/v1"},
                     {"kind", "EndpointSlice"},
                     {"metadata", meta},
                     {"addressType", f == "ipv4" ? "IPv4" : "IPv6"},
                     {"ports", ports_json(imp.ports)},
                     {"endpoints", endpoints.count(f) ? endpoints[f] : json::array()}});
    }
  }
  return out;
}

json export_conditions(const ExportResult& result, const std::string& publish_error, const std::string& conflict,
                       std::int64_t generation, const std::string& now, const json& old_conditions) {
  auto condition = [&](const char* type, bool status, const std::string& reason, const std::string& message) {
    json c{{"type", type}, {"status", status ? "True" : "False"}, {"reason", reason}, {"message", message},
           {"observedGeneration", generation}, {"lastTransitionTime", now}};
    if (old_conditions.is_array()) {
      for (const auto& old : old_conditions) {
        if (old.is_object() && old.value("type", "") == type && old.value("status", "") == c["status"] &&
            old.contains("lastTransitionTime")) {
          c["lastTransitionTime"] = old["lastTransitionTime"];
        }
      }
    }
    return c;
  };
  json out = json::array();
  if (!result.record) {
    out.push_back(condition("Valid", false, result.invalid_reason, result.invalid_message));
    out.push_back(condition("Ready", false, "Invalid", "not exported: see the Valid condition"));
    return out;
  }
  const ExportRecord& r = *result.record;
  out.push_back(condition("Valid", true, "Exported",
                          "exported to the clusterset as " + std::string(r.headless ? "Headless" : "ClusterSetIP") +
                              " with " + std::to_string(r.ports.size()) + " port(s)"));
  out.push_back(publish_error.empty()
                    ? condition("Ready", true, "Published", "the broker holds this cluster's export record")
                    : condition("Ready", false, "BrokerUnavailable",
                                "the export record could not be written to the broker (retrying): " + publish_error));
  out.push_back(conflict.empty() ? condition("Conflict", false, "NoConflict", "no other cluster exports it differently")
                                 : condition("Conflict", true, "Conflict", conflict));
  return out;
}

namespace {

// A list as the sync writes it and as an API server may return it: an empty list may come
// back null (omitempty), a port without a name with name "" and without a protocol as TCP.
json normalised_list(const json& list, bool ports) {
  if (!list.is_array()) return json::array();
  json out = list;
  if (ports) {
    for (auto& p : out) {
      if (!p.is_object()) continue;
      if (!p.contains("name") || p["name"].is_null()) p["name"] = "";
      if (!p.contains("protocol") || p["protocol"].is_null()) p["protocol"] = "TCP";
    }
  }
  return out;
}

// The fields the sync owns, as compared before writing.
json owned_fields(const json& o, const json& desired) {
  json out = json::object();
  if (o.contains("spec")) {
    out["spec"] = o["spec"];
    if (out["spec"].is_object()) out["spec"]["ports"] = normalised_list(out["spec"].value("ports", json()), true);
  }
  if (o.contains("addressType")) out["addressType"] = o["addressType"];
  if (desired.contains("ports")) out["ports"] = normalised_list(o.value("ports", json()), true);
  if (desired.contains("endpoints")) out["endpoints"] = normalised_list(o.value("endpoints", json()), false);
  const json o_meta = o.value("metadata", json::object());
  const json d_meta = desired.value("metadata", json::object());
  for (const char* field : {"labels", "annotations"}) {
    const json mine = d_meta.value(field, json::object());
    const json theirs = o_meta.value(field, json::object());
    for (const auto& [k, _] : mine.items()) out[field][k] = theirs.contains(k) ? theirs[k] : json();
  }
  return out;
}

}  // namespace

bool needs_write(const json& current, const json& desired) {
  return owned_fields(current, desired) != owned_fields(desired, desired);
}

json merge_conditions(const json& old_conditions, const json& ours) {
  json out = ours;
  if (!old_conditions.is_array()) return out;
  for (const auto& c : old_conditions) {
    const std::string type = c.is_object() ? c.value("type", "") : "";
    const bool mine = std::any_of(ours.begin(), ours.end(), [&](const json& o) { return o.value("type", "") == type; });
    if (!mine && !type.empty() && type != "Valid" && type != "Ready" && type != "Conflict") out.push_back(c);
  }
  return out;
}

}  // namespace cw::op
