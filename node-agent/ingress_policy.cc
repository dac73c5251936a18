#include "node-agent/ingress_policy.h"

#include <algorithm>

namespace cw::agent {

Result<IngressPosture> parse_ingress_posture(std::string_view text) {
  if (text == "All") return IngressPosture::kAll;
  if (text == "ExportedServices") return IngressPosture::kExportedServices;
  if (text == "None") return IngressPosture::kNone;
  return Error(ErrorCode::kInvalidArgument,
               "ingress \"" + std::string(text) + "\" is not one of All, ExportedServices, None");
}

const char* to_string(IngressPosture posture) {
  switch (posture) {
    case IngressPosture::kAll: return "All";
    case IngressPosture::kExportedServices: return "ExportedServices";
    case IngressPosture::kNone: return "None";
  }
  return "All";
}

Result<std::uint8_t> parse_protocol(std::string_view text) {
  if (text == "TCP") return kTcp;
  if (text == "UDP") return kUdp;
  if (text == "SCTP") return kSctp;
  return Error(ErrorCode::kInvalidArgument, "protocol \"" + std::string(text) + "\" is not one of TCP, UDP, SCTP");
}

std::vector<PortRange> merge_port_ranges(std::vector<PortRange> ranges) {
  std::sort(ranges.begin(), ranges.end());
  std::vector<PortRange> out;
  for (const auto& r : ranges) {
    if (!out.empty() && out.back().protocol == r.protocol &&
        static_cast<unsigned>(r.first) <= static_cast<unsigned>(out.back().last) + 1) {
      out.back().last = std::max(out.back().last, r.last);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

namespace {

// Ports gathered per key before merging, so that no two elements of a set overlap.
template <typename Key>
using PortsBy = std::map<Key, std::vector<PortRange>>;

}  // namespace

IngressRules compile_ingress(const IngressInput& input) {
  IngressRules out;
  out.node_pod_cidrs = input.node_pod_cidrs;
  std::sort(out.node_pod_cidrs.begin(), out.node_pod_cidrs.end());
  std::map<std::string, const PeeredCluster*> peered;
  for (const auto& c : input.clusters) {
    peered[c.id] = &c;
    ClusterIngress& ci = out.clusters[c.id];
    ci.posture = c.posture;
    ci.ranges = c.ranges;
    std::sort(ci.ranges.begin(), ci.ranges.end());
  }
  const bool any_exported_posture =
      std::any_of(input.clusters.begin(), input.clusters.end(),
                  [](const PeeredCluster& c) { return c.posture == IngressPosture::kExportedServices; });
  if (any_exported_posture) {
    out.exported.insert(input.exported.begin(), input.exported.end());
    out.exported_cluster.insert(input.exported_cluster.begin(), input.exported_cluster.end());
  }

  std::map<std::string, PortsBy<net::IpAddress>> to_ports;                                  // cluster → dst → ports
  std::map<std::string, PortsBy<std::pair<net::IpAddress, net::IpAddress>>> from_to_ports;  // cluster → (src, dst) → ports

  for (const auto& policy : input.policies) {
    PolicyStatus& status = out.policies[policy.ns + "/" + policy.name];
    std::vector<net::IpAddress> targets;
    for (const auto& pod : input.pods) {
      if (pod.ns != policy.ns || !policy.pods.matches(pod.labels)) continue;
      ++status.selected_pods;
      targets.insert(targets.end(), pod.ips.begin(), pod.ips.end());
    }
    for (const auto& rule : policy.from) {
      std::vector<const PeeredCluster*> sources;
      if (rule.all_clusters) {
        for (const auto& c : input.clusters) sources.push_back(&c);
      } else {
        for (const auto& id : rule.clusters) {
          auto it = peered.find(id);
          if (it == peered.end()) {
            status.problems.push_back("cluster " + id + " is not a Connected peer of this cluster");
            continue;
          }
          sources.push_back(it->second);
        }
      }
      for (const PeeredCluster* c : sources) {
        if (c->posture == IngressPosture::kAll) continue;  // everything from it passes anyway
        ClusterIngress& ci = out.clusters[c->id];
        std::vector<net::IpAddress> from;
        if (!rule.namespaces.empty()) {
          for (const auto& w : input.remote_workloads) {
            if (w.cluster == c->id &&
                std::find(rule.namespaces.begin(), rule.namespaces.end(), w.ns) != rule.namespaces.end()) {
              from.push_back(w.address);
            }
          }
        }
        for (const auto& dst : targets) {
          if (rule.namespaces.empty()) {
            if (rule.ports.empty()) {
              ci.to_any.insert(dst);
            } else {
              auto& p = to_ports[c->id][dst];
              p.insert(p.end(), rule.ports.begin(), rule.ports.end());
            }
            continue;
          }
          for (const auto& src : from) {
            if (src.family() != dst.family()) continue;
            if (rule.ports.empty()) {
              ci.from_to_any.insert({src, dst});
            } else {
              auto& p = from_to_ports[c->id][{src, dst}];
              p.insert(p.end(), rule.ports.begin(), rule.ports.end());
            }
          }
        }
      }
    }
  }
  // What passes to any port needs no port elements.
  for (auto& [id, by_dst] : to_ports) {
    ClusterIngress& ci = out.clusters[id];
    for (auto& [dst, ports] : by_dst) {
      if (ci.to_any.count(dst)) continue;
      for (const auto& r : merge_port_ranges(std::move(ports))) ci.to_ports.insert({dst, r});
    }
  }
  for (auto& [id, by_pair] : from_to_ports) {
    ClusterIngress& ci = out.clusters[id];
    for (auto& [pair, ports] : by_pair) {
      if (ci.to_any.count(pair.second) || ci.from_to_any.count(pair)) continue;
      for (const auto& r : merge_port_ranges(std::move(ports))) ci.from_to_ports.insert({pair.first, pair.second, r});
    }
  }
  for (auto& [id, ci] : out.clusters) {
    // A source-specific allowance the cluster-wide one covers is redundant.
    for (auto it = ci.from_to_any.begin(); it != ci.from_to_any.end();) {
      it = ci.to_any.count(std::get<1>(*it)) ? ci.from_to_any.erase(it) : std::next(it);
    }
  }
  return out;
}

}  // namespace cw::agent
