#include "dns/snapshot.h"

#include <algorithm>
#include <map>
#include <set>

#include "common/ipam/clusterset.h"
#include "common/kube/mcs_api.h"

namespace cw::dns {
namespace {

using nlohmann::json;
namespace mcs = kube::mcs;

std::string str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}
json obj(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_object() ? j[key] : json::object();
}
json arr(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_array() ? j[key] : json::array();
}

// An RFC 1123 label: what a name built from it needs (hostnames, cluster IDs, port names).
bool is_label(const std::string& s) { return !ipam::check_dns_label(s); }

std::vector<ServicePort> ports_of(const json& ports) {
  std::vector<ServicePort> out;
  for (const auto& p : ports) {
    if (!p.is_object() || !p.contains("port") || !p["port"].is_number_integer()) continue;
    const auto n = p["port"].get<std::int64_t>();
    if (n < 1 || n > 65535) continue;
    const std::string protocol = str(p, "protocol").empty() ? "TCP" : str(p, "protocol");
    if (protocol != "TCP" && protocol != "UDP" && protocol != "SCTP") continue;
    // An unnamed or oddly named port still counts for A records; SRV needs a label.
    const std::string name = is_label(str(p, "name")) ? str(p, "name") : "";
    out.push_back({name, protocol, static_cast<std::uint16_t>(n)});
  }
  return out;
}

}  // namespace

BuiltSnapshot build_snapshot(const SnapshotInput& in) {
  BuiltSnapshot out;
  out.snapshot.local_cluster_id = in.local_cluster_id;

  std::set<std::string> connected;
  for (const auto& p : in.peerings) {
    // Degraded keeps the routes up, so its Services stay answered, unless no probe through
    // the tunnel is answered at all: an address nobody can reach is worse than no answer.
    const json status = obj(p, "status");
    const std::string phase = str(status, "phase");
    bool unreachable = false;
    for (const auto& c : arr(status, "conditions")) {
      if (str(c, "type") == "DatapathHealthy" && str(c, "status") == "False" && str(c, "reason") == "Unreachable") {
        unreachable = true;
      }
    }
    if ((phase == "Connected" || phase == "Degraded") && !unreachable) {
      connected.insert(str(obj(p, "spec"), "remoteClusterID"));
    }
  }

  // Slices by "<ns>/<service>", then by source cluster.
  std::map<std::string, std::map<std::string, std::vector<const json*>>> slices;
  for (const auto& s : in.slices) {
    const json meta = obj(s, "metadata");
    const json labels = obj(meta, "labels");
    const std::string service = str(labels, mcs::kServiceNameLabel);
    const std::string cluster = str(labels, mcs::kSourceClusterLabel);
    if (service.empty()) continue;  // not an imported slice
    if (!is_label(cluster)) {
      out.skipped.push_back("EndpointSlice " + str(meta, "namespace") + "/" + str(meta, "name") + ": " +
                            mcs::kSourceClusterLabel + " label \"" + cluster + "\" is not a cluster ID");
      continue;
    }
    slices[str(meta, "namespace") + "/" + service][cluster].push_back(&s);
  }

  for (const auto& imp : in.imports) {
    const json meta = obj(imp, "metadata");
    const json spec = obj(imp, "spec");
    ImportedService svc;
    svc.name = str(meta, "name");
    svc.ns = str(meta, "namespace");
    const std::string type = str(spec, "type");
    if (!is_label(svc.name) || !is_label(svc.ns) || (type != "ClusterSetIP" && type != "Headless")) {
      out.skipped.push_back("ServiceImport " + svc.ns + "/" + svc.name + ": spec.type must be ClusterSetIP or Headless");
      continue;
    }
    svc.headless = type == "Headless";
    svc.ports = ports_of(arr(spec, "ports"));
    const auto by_cluster = slices.find(svc.ns + "/" + svc.name);
    if (by_cluster != slices.end()) {
      for (const auto& [cluster, list] : by_cluster->second) {
        ClusterPart part;
        part.cluster_id = cluster;
        part.reachable = cluster == in.local_cluster_id || connected.count(cluster) > 0;
        for (const json* s : list) {
          const std::string ips = str(obj(obj(*s, "metadata"), "annotations"), mcs::kServiceIpsAnnotation);
          for (std::size_t start = 0; start < ips.size();) {
            const std::size_t comma = std::min(ips.find(',', start), ips.size());
            if (auto ip = net::IpAddress::parse(ips.substr(start, comma - start))) part.service_ips.push_back(*ip);
            start = comma + 1;
          }
          for (const auto& e : arr(*s, "endpoints")) {
            ExportedEndpoint ep;
            for (const auto& a : arr(e, "addresses")) {
              if (!a.is_string()) continue;
              if (auto ip = net::IpAddress::parse(a.get<std::string>())) ep.addresses.push_back(*ip);
            }
            ep.hostname = is_label(str(e, "hostname")) ? str(e, "hostname") : "";  // else: no name of its own
            const json cond = obj(e, "conditions");
            ep.ready = !cond.contains("ready") || cond["ready"].is_null() || cond["ready"] == true;  // nil: ready
            if (!ep.addresses.empty()) part.endpoints.push_back(std::move(ep));
          }
        }
        svc.clusters.push_back(std::move(part));
      }
    }
    out.snapshot.services.push_back(std::move(svc));
  }
  return out;
}

}  // namespace cw::dns
