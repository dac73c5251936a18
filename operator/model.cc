#include "operator/model.h"

#include <climits>
#include <cstdint>
#include <sstream>

namespace cw::op {
namespace {

Error invalid(const std::string& what) { return Error(ErrorCode::kInvalidArgument, what); }

const json& spec_of(const json& object) {
  static const json kEmpty = json::object();
  if (!object.is_object() || !object.contains("spec") || !object["spec"].is_object()) return kEmpty;
  return object["spec"];
}

std::string name_of(const json& object) {
  if (!object.is_object() || !object.contains("metadata")) return "";
  return object["metadata"].value("name", "");
}

std::string string_at(const json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

// An integer field: `fallback` when absent, a problem (and nullopt) when it is not an integer.
// nlohmann's value() would throw on a mistyped field ("60s"); a typo must be reported instead.
std::optional<int> int_at(const json& j, const char* key, int fallback, const std::string& field,
                          std::vector<std::string>& problems) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  const json& v = j[key];
  if (!v.is_number_integer() || v.get<std::int64_t>() < INT32_MIN || v.get<std::int64_t>() > INT32_MAX) {
    problems.push_back(field + ": must be a whole number, got " + v.dump());
    return std::nullopt;
  }
  return static_cast<int>(v.get<std::int64_t>());
}

Result<std::vector<NodeEntry>> parse_nodes(const json& list, const std::string& field) {
  std::vector<NodeEntry> out;
  if (list.is_null()) return out;
  if (!list.is_array()) return invalid(field + ": must be a list");
  for (std::size_t i = 0; i < list.size(); ++i) {
    const json& n = list[i];
    const std::string at = field + "[" + std::to_string(i) + "]";
    if (!n.is_object()) return invalid(at + ": must be an object");
    NodeEntry e{string_at(n, "name"), string_at(n, "endpoint"), string_at(n, "publicKey"), {}};
    if (e.name.empty()) return invalid(at + ".name: required");
    if (n.contains("podCIDRs")) {
      auto p = parse_prefixes(n["podCIDRs"]);
      if (!p) return p.error().with_context(at + ".podCIDRs");
      e.pod_cidrs = std::move(*p);
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

Result<std::vector<net::Prefix>> parse_prefixes(const json& value) {
  std::vector<net::Prefix> out;
  std::vector<std::string> texts;
  if (value.is_null()) return out;
  if (value.is_string()) {
    std::stringstream ss(value.get<std::string>());
    std::string part;
    while (std::getline(ss, part, ',')) {
      if (!part.empty()) texts.push_back(part);
    }
  } else if (value.is_array()) {
    for (const auto& v : value) {
      if (!v.is_string()) return invalid("every CIDR must be a string");
      texts.push_back(v.get<std::string>());
    }
  } else {
    return invalid("must be a list of CIDRs");
  }
  for (const auto& t : texts) {
    auto p = net::Prefix::parse(t);
    if (!p) return p.error();
    out.push_back(*p);
  }
  return out;
}

Result<Claim> parse_claim(const json& object) {
  const json& spec = spec_of(object);
  const std::string name = name_of(object);
  auto cidr = net::Prefix::parse(string_at(spec, "cidr"));
  if (!cidr) return invalid("CIDRClaim " + name + ": spec.cidr: " + cidr.error().message());
  Claim c{name, *cidr, string_at(spec, "clusterID"), string_at(spec, "purpose")};
  if (c.cluster_id.empty()) return invalid("CIDRClaim " + name + ": spec.clusterID is required");
  if (c.purpose != "pods" && c.purpose != "services") {
    return invalid("CIDRClaim " + name + ": spec.purpose must be pods or services");
  }
  return c;
}

Result<ClusterSetView> parse_clusterset(const json& object) {
  const json& spec = spec_of(object);
  ClusterSetView view;
  std::vector<std::string> problems;
  for (const char* fam : {"ipv4", "ipv6"}) {
    if (!spec.contains(fam) || spec[fam].is_null()) continue;
    const json& f = spec[fam];
    ipam::FamilyPools fp;
    if (!f.is_object()) {
      problems.push_back(std::string("spec.") + fam + ": must be an object");
      continue;
    }
    auto pools = parse_prefixes(f.value("pools", json::array()));
    if (!pools) {
      problems.push_back(std::string("spec.") + fam + ".pools: " + pools.error().message());
    } else {
      fp.pools = std::move(*pools);
    }
    const std::string at = std::string("spec.") + fam;
    fp.cluster_prefix_length = int_at(f, "clusterPrefixLength", 0, at + ".clusterPrefixLength", problems).value_or(0);
    fp.node_prefix_length = int_at(f, "nodePrefixLength", 0, at + ".nodePrefixLength", problems).value_or(0);
    (std::string(fam) == "ipv4" ? view.spec.ipv4 : view.spec.ipv6) = fp;
  }
  if (problems.empty()) {
    for (const auto& e : ipam::validate(view.spec)) {
      problems.push_back("spec" + (e.field.empty() ? "" : "." + e.field) + ": " + e.message);
    }
  }
  view.heartbeat_timeout_seconds =
      int_at(spec, "heartbeatTimeoutSeconds", 60, "spec.heartbeatTimeoutSeconds", problems).value_or(60);
  if (view.heartbeat_timeout_seconds < 1) problems.push_back("spec.heartbeatTimeoutSeconds: must be positive");
  view.default_topology = spec.contains("defaultTopology") && spec["defaultTopology"].is_string()
                              ? spec["defaultTopology"].get<std::string>()
                              : "mesh";
  if (view.default_topology != "mesh" && view.default_topology != "gateway") {
    problems.push_back("spec.defaultTopology: \"" + view.default_topology + "\" is neither mesh nor gateway");
  }
  if (!problems.empty()) {
    std::string all;
    for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
    return invalid("ClusterSet " + name_of(object) + " is invalid: " + all);
  }
  return view;
}

Result<Advertisement> parse_advertisement(const json& object) {
  const json& spec = spec_of(object);
  Advertisement ad;
  ad.cluster_id = string_at(spec, "clusterID");
  const std::string where = "ClusterAdvertisement " + name_of(object);
  if (ad.cluster_id.empty()) return invalid(where + ": spec.clusterID is required");
  for (auto [field, target] : {std::pair{"podCIDRs", &ad.pod_cidrs}, std::pair{"serviceCIDRs", &ad.service_cidrs}}) {
    auto p = parse_prefixes(spec.value(field, json::array()));
    if (!p) return invalid(where + ": spec." + field + ": " + p.error().message());
    *target = std::move(*p);
  }
  auto nodes = parse_nodes(spec.value("nodes", json::array()), "spec.nodes");
  if (!nodes) return nodes.error().with_context(where);
  ad.nodes = std::move(*nodes);
  auto gws = parse_nodes(spec.value("gateways", json::array()), "spec.gateways");
  if (!gws) return gws.error().with_context(where);
  ad.gateways = std::move(*gws);
  ad.topology = spec.contains("topology") ? string_at(spec, "topology") : "mesh";
  if (ad.topology != "mesh" && ad.topology != "gateway") {
    return invalid(where + ": spec.topology \"" + ad.topology + "\" is neither mesh nor gateway");
  }
  ad.active_gateway = string_at(spec, "activeGateway");
  ad.dns_endpoint = string_at(spec, "dnsEndpoint");
  if (spec.contains("peers") && spec["peers"].is_array()) {
    for (const auto& p : spec["peers"]) {
      if (p.is_string()) ad.peers.push_back(p);
    }
  }
  ad.heartbeat = string_at(spec, "heartbeat");
  return ad;
}

json to_json(const NodeEntry& n) {
  json cidrs = json::array();
  for (const auto& p : n.pod_cidrs) cidrs.push_back(p.to_string());
  json out{{"name", n.name}, {"podCIDRs", cidrs}};
  if (!n.endpoint.empty()) out["endpoint"] = n.endpoint;
  if (!n.public_key.empty()) out["publicKey"] = n.public_key;
  return out;
}

json to_json(const Advertisement& ad) {
  auto prefixes = [](const std::vector<net::Prefix>& ps) {
    json a = json::array();
    for (const auto& p : ps) a.push_back(p.to_string());
    return a;
  };
  json nodes = json::array();
  for (const auto& n : ad.nodes) nodes.push_back(to_json(n));
  json gateways = json::array();
  for (const auto& g : ad.gateways) gateways.push_back(to_json(g));
  json spec{{"clusterID", ad.cluster_id}, {"podCIDRs", prefixes(ad.pod_cidrs)},
            {"serviceCIDRs", prefixes(ad.service_cidrs)}, {"nodes", nodes},
            {"gateways", gateways}, {"peers", ad.peers}, {"heartbeat", ad.heartbeat}};
  if (!ad.dns_endpoint.empty()) spec["dnsEndpoint"] = ad.dns_endpoint;
  spec["topology"] = ad.topology;
  if (!ad.active_gateway.empty()) spec["activeGateway"] = ad.active_gateway;
  return spec;
}

}  // namespace cw::op
