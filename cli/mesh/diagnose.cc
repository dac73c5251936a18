// `cwctl diagnose`: every known fault, checked against the view (docs/cwctl.md lists them).
#include <algorithm>
#include <map>
#include <set>

#include "cli/mesh/mesh.h"
#include "common/net/prefix.h"

namespace cw::mesh {
namespace {

std::string str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

// object[outer][inner], or null when either is missing or not an object.
json field(const json& object, const char* outer, const char* inner) {
  if (!object.is_object() || !object.contains(outer) || !object[outer].is_object()) return json();
  const json& o = object[outer];
  return o.contains(inner) ? o[inner] : json();
}

const PeeringView* peering_to(const ClusterView& c, const std::string& remote) {
  for (const auto& p : c.peerings) {
    if (p.remote == remote) return &p;
  }
  return nullptr;
}

bool unreachable(const PeeringView* p) {
  if (p == nullptr) return false;
  const json d = p->condition("DatapathHealthy");
  return str(d, "status") == "False" && str(d, "reason") == "Unreachable";
}

// The endpoints of a cluster's nodes, "192.168.77.11:51820, ..." (at most 4).
std::string endpoints(const ClusterView& c) {
  std::string out;
  int n = 0;
  for (const auto& node : c.nodes) {
    if (node.endpoint.empty()) continue;
    if (++n > 4) {
      out += ", ...";
      break;
    }
    out += (out.empty() ? "" : ", ") + node.endpoint;
  }
  return out.empty() ? "(none advertised)" : out;
}

// Peers of `remote` whose handshakes do not complete, summed over the cluster's nodes.
int stale_handshakes(const ClusterView& c, const std::string& remote) {
  int n = 0;
  for (const auto& node : c.nodes) {
    if (node.datapath.contains(remote) && node.datapath[remote].is_object()) {
      const json v = node.datapath[remote].value("handshakeStale", json(0));
      if (v.is_number_integer() && v.get<std::int64_t>() > 0 && v.get<std::int64_t>() < 1'000'000) {
        n += static_cast<int>(v.get<std::int64_t>());
      }
    }
  }
  return n;
}

std::vector<net::Prefix> prefixes(const json& list) {
  std::vector<net::Prefix> out;
  if (!list.is_array()) return out;
  for (const auto& x : list) {
    if (!x.is_string()) continue;
    if (auto p = net::Prefix::parse(x.get<std::string>())) out.push_back(*p);
  }
  return out;
}

}  // namespace

std::vector<Finding> diagnose(const MeshView& view) {
  std::vector<Finding> out;
  auto add = [&](Severity s, const char* check, std::string subject, std::string finding, std::string fix) {
    out.push_back({s, check, std::move(subject), std::move(finding), std::move(fix)});
  };
  std::set<std::string> udp_pairs_reported;

  for (const auto& c : view.clusters) {
    if (!c.error.empty()) {
      add(Severity::kError, "api", c.id, "cannot read cluster " + c.id + ": " + c.error,
          "check the kubeconfig context " + c.context + " (server address, credentials) and that its API server is up");
      continue;
    }
    for (const auto& n : c.nodes) {
      if (!n.agent_error.empty()) {
        add(Severity::kError, "agent-apply", c.id + "/" + n.name, "the node agent cannot apply: " + n.agent_error,
            "read the node agent's log on " + n.name + " (the error names the step: WireGuard, routes, nftables, the API)");
      }
    }
    for (const auto& p : c.peerings) {
      const std::string pair = c.id + " → " + p.remote;
      if (p.phase.empty()) {
        add(Severity::kWarning, "operator", pair, "the ClusterPeering has no status",
            "is " + c.id + "'s operator running and leading? kubectl -n <namespace> logs deploy/clusterwire-operator");
        continue;
      }
      const json consents = p.condition("RemoteConsents");
      if (str(consents, "status") == "False") {
        add(Severity::kError, "one-sided", pair, str(consents, "message"),
            "apply a ClusterPeering with spec.remoteClusterID: " + c.id + " in cluster " + p.remote +
                " (a peering is mutual)");
      }
      const json disjoint = p.condition("CIDRsDisjoint");
      if (str(disjoint, "status") == "False" || p.phase == "Conflict") {
        std::string what = str(disjoint, "message");
        if (what.empty() && p.status.contains("conflicts") && p.status["conflicts"].is_array() &&
            !p.status["conflicts"].empty() && p.status["conflicts"][0].is_string()) {
          what = p.status["conflicts"][0].get<std::string>();
        }
        add(Severity::kError, "overlap", pair, "not routed: " + what,
            "give one of the clusters another pod or service range: clusterwire never routes overlapping ranges");
      }
      const json broker = p.condition("BrokerReachable");
      if (str(broker, "status") == "False") {
        add(Severity::kError, "broker", c.id, str(broker, "message"),
            "check " + c.id + "'s broker credentials (the broker kubeconfig Secret: server, token) and that the broker's "
            "API server is up; traffic keeps flowing meanwhile, on the last known state");
      }
      const json healthy = p.condition("RemoteHealthy");
      if (str(healthy, "status") == "False" && str(healthy, "reason") == "HeartbeatStale") {
        add(Severity::kWarning, "remote-silent", p.remote, str(healthy, "message"),
            "check cluster " + p.remote + "'s operator: running, leading, and its own BrokerReachable condition");
      }
      const json d = p.condition("DatapathHealthy");
      if (str(d, "status") != "False") continue;
      const std::string reason = str(d, "reason");
      if (reason == "Unreachable") {
        const ClusterView* r = view.cluster(p.remote);
        const bool both = r != nullptr && r->error.empty() && unreachable(peering_to(*r, c.id));
        const std::string key = std::min(c.id, p.remote) + "/" + std::max(c.id, p.remote);
        if (both && !udp_pairs_reported.insert(key).second) continue;  // told once, from the first side
        const int stale = stale_handshakes(c, p.remote);
        std::string finding = both ? "no node pair between " + c.id + " and " + p.remote +
                                         " answers probes, in either direction"
                                   : "no node of " + p.remote + " answers " + c.id + "'s probes";
        finding += stale > 0 ? " and " + std::to_string(stale) + " WireGuard peer(s) complete no handshake"
                             : " (WireGuard handshakes still recent: the cut is new, or only traffic inside the tunnel is dropped)";
        finding += ": WireGuard's UDP between " + c.id + " (" + endpoints(c) + ") and " + p.remote +
                   (r != nullptr ? " (" + endpoints(*r) + ")" : "") + " is most likely blocked";
        add(Severity::kError, "udp-blocked", both ? c.id + " ↔ " + p.remote : pair, finding,
            "allow UDP to the nodes' WireGuard endpoints both ways (security groups, firewalls, NAT); if the nodes "
            "cannot reach each other at all, use gateway mode with a reachable endpoint" +
                std::string(r == nullptr ? "; run diagnose with " + p.remote + "'s context too, to see its side" : ""));
      } else if (reason == "MTUBlackHole") {
        add(Severity::kError, "mtu", pair, str(d, "message"),
            "the path's MTU is below the tunnel's: set the node agents' --mtu (chart: nodeAgent.mtu) to the path MTU "
            "minus 80, or let ICMP \"fragmentation needed\" through; TCP is clamped, other traffic is not");
      } else if (reason == "SNATOnPath") {
        add(Severity::kError, "snat", pair, str(d, "message"),
            "something rewrites cross-cluster addresses: exempt the remote pod and service CIDRs from the CNI's "
            "masquerade (Calico natOutgoing, flannel --ip-masq, the bridge plugin's ipMasq, Cilium's BPF masquerade "
            "ignores netfilter), and check that `nft list table inet clusterwire` exists on the nodes");
      } else {
        add(Severity::kError, "datapath", pair, str(d, "message"),
            "look at the named remote nodes: is their node agent running, is UDP to their endpoints allowed?");
      }
    }
  }

  if (view.broker && view.broker->error.empty()) {
    // Clock skew: a heartbeat from the future, as this machine's clock has it.
    for (const auto& a : view.broker->advertisements) {
      const json n = field(a, "metadata", "name"), h = field(a, "spec", "heartbeat");
      const std::string name = n.is_string() ? n.get<std::string>() : "";
      const std::string beat = h.is_string() ? h.get<std::string>() : "";
      std::tm tm{};
      if (strptime(beat.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) continue;
      const auto t = std::chrono::system_clock::from_time_t(timegm(&tm));
      const auto ahead = std::chrono::duration_cast<std::chrono::seconds>(t - view.now).count();
      if (ahead > 30) {
        add(Severity::kWarning, "clock-skew", name,
            "cluster " + name + "'s heartbeat " + beat + " is " + std::to_string(ahead) +
                " s ahead of this machine's clock",
            "synchronise the clocks (NTP) of " + name + "'s operator node and this machine: peers judge heartbeats "
            "by their own clocks");
      }
    }
    // Overlaps across the whole clusterset, peered or not.
    for (std::size_t i = 0; i < view.broker->advertisements.size(); ++i) {
      for (std::size_t j = i + 1; j < view.broker->advertisements.size(); ++j) {
        const json& a = view.broker->advertisements[i];
        const json& b = view.broker->advertisements[j];
        const json na = field(a, "metadata", "name"), nb = field(b, "metadata", "name");
        const std::string an = na.is_string() ? na.get<std::string>() : "?";
        const std::string bn = nb.is_string() ? nb.get<std::string>() : "?";
        for (const char* kind : {"podCIDRs", "serviceCIDRs"}) {
          for (const auto& pa : prefixes(field(a, "spec", kind))) {
            for (const auto& pb : prefixes(field(b, "spec", kind))) {
              if (!pa.overlaps(pb)) continue;
              add(Severity::kError, "overlap", an + " ↔ " + bn,
                  std::string(kind) + " overlap: " + an + " " + pa.to_string() + " and " + bn + " " + pb.to_string(),
                  "give one of the clusters another range: they can never be peered");
            }
          }
        }
      }
    }
  }

  // Every check named, even when it found nothing: "ok" is an answer too.
  for (const char* check : {"api", "agent-apply", "one-sided", "overlap", "broker", "remote-silent", "udp-blocked",
                            "mtu", "snat", "datapath", "clock-skew"}) {
    const bool found = std::any_of(out.begin(), out.end(), [&](const Finding& f) { return f.check == check; });
    if (!found) out.push_back({Severity::kOk, check, "", "nothing found", ""});
  }
  std::stable_sort(out.begin(), out.end(), [](const Finding& a, const Finding& b) { return a.severity > b.severity; });
  return out;
}

int print_findings(const std::vector<Finding>& findings, std::ostream& out) {
  int bad = 0;
  for (const auto& f : findings) {
    const char* level = f.severity == Severity::kError ? "ERROR" : f.severity == Severity::kWarning ? "WARN " : "ok   ";
    out << level << "  " << f.check;
    if (!f.subject.empty()) out << " [" << f.subject << "]";
    out << ": " << f.finding << "\n";
    if (!f.fix.empty()) out << "       what to do: " << f.fix << "\n";
    if (f.severity != Severity::kOk) ++bad;
  }
  out << (bad == 0 ? "no problem found\n" : std::to_string(bad) + " problem(s) found\n");
  return bad == 0 ? 0 : 1;
}

json findings_json(const std::vector<Finding>& findings) {
  json out = json::array();
  for (const auto& f : findings) {
    out.push_back({{"severity", f.severity == Severity::kError ? "error" : f.severity == Severity::kWarning ? "warning" : "ok"},
                   {"check", f.check}, {"subject", f.subject}, {"finding", f.finding}, {"fix", f.fix}});
  }
  return out;
}

}  // namespace cw::mesh
