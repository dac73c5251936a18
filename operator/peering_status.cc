#include "operator/peering_status.h"

#include <algorithm>
#include <ctime>

namespace cw::op {
namespace {

json condition(const PeeringInput& in, const char* type, bool ok, const std::string& reason,
               const std::string& message) {
  const std::string status = ok ? "True" : "False";
  std::string since = rfc3339(in.now);
  if (in.old_status.is_object() && in.old_status.contains("conditions")) {
    for (const auto& c : in.old_status["conditions"]) {
      if (c.value("type", "") == type && c.value("status", "") == status) {
        since = c.value("lastTransitionTime", since);
      }
    }
  }
  return {{"type", type},           {"status", status},
          {"reason", reason},       {"message", message},
          {"lastTransitionTime", since}, {"observedGeneration", in.generation}};
}

bool node_ready(const NodeEntry& n) {
  return !n.public_key.empty() && !n.endpoint.empty() && !n.pod_cidrs.empty();
}

// A gateway behind NAT advertises no endpoint: it is ready with a key and a block, and is
// reached once it has reached the other side.
bool gateway_ready(const NodeEntry& n) { return !n.public_key.empty() && !n.pod_cidrs.empty(); }

// "412us", "3.2ms", "150ms", "1.05s": RTTs as people read them.
std::string format_micros(std::int64_t us) {
  char buf[48];
  if (us < 1000) {
    std::snprintf(buf, sizeof buf, "%lldus", static_cast<long long>(us));
  } else if (us < 10000) {
    std::snprintf(buf, sizeof buf, "%.1fms", static_cast<double>(us) / 1000.0);
  } else if (us < 1000000) {
    std::snprintf(buf, sizeof buf, "%.0fms", static_cast<double>(us) / 1000.0);
  } else {
    std::snprintf(buf, sizeof buf, "%.3gs", static_cast<double>(us) / 1e6);
  }
  return buf;
}

// At most `n` bytes of another process's text (cut at a character boundary).
std::string bounded(std::string s, std::size_t n) {
  if (s.size() <= n) return s;
  std::size_t cut = n;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + "...";
}

std::string text_of(const json& j, const char* key, const char* fallback) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : fallback;
}

// A count from another process's report: 0..1e6, else 0 (the status must stay within the CRD's
// bounds whatever a report says, or the API server refuses every status write).
int count_of(const json& entry, const char* key) {
  const json v = entry.value(key, json());
  if (!v.is_number_integer()) return 0;
  const auto n = v.get<std::int64_t>();
  return n < 0 || n > 1'000'000 ? 0 : static_cast<int>(n);
}

}  // namespace

DatapathVerdict datapath_verdict(const std::string& remote, const std::vector<DatapathReport>& reports) {
  DatapathVerdict v;
  std::int64_t up = 0, down = 0, mtu = 0, snat = 0;  // sums of bounded counts: no overflow
  int loss = 0;
  std::vector<std::int64_t> p50s;
  std::int64_t max_us = -1;
  std::vector<std::string> failing;
  for (const auto& r : reports) {
    if (!r.entry.is_object()) continue;
    up += count_of(r.entry, "up");
    down += count_of(r.entry, "down");
    mtu += count_of(r.entry, "mtu");
    snat += count_of(r.entry, "snat");
    loss = std::max(loss, std::min(100, count_of(r.entry, "lossPercent")));
    constexpr std::int64_t kHour = 3'600'000'000;  // RTTs beyond are nonsense
    if (const json p = r.entry.value("rttP50Micros", json()); p.is_number_integer() && p.get<std::int64_t>() >= 0 &&
                                                              p.get<std::int64_t>() < kHour) {
      p50s.push_back(p.get<std::int64_t>());
    }
    if (const json m = r.entry.value("rttMaxMicros", json()); m.is_number_integer() && m.get<std::int64_t>() >= 0 &&
                                                              m.get<std::int64_t>() < kHour) {
      max_us = std::max(max_us, m.get<std::int64_t>());
    }
    const json list = r.entry.value("failing", json::array());
    if (!list.is_array()) continue;
    for (const auto& f : list) {
      if (!f.is_object()) continue;
      // A report is another process's writing: strings only where strings are expected.
      std::string what = r.node + "→" + bounded(text_of(f, "node", "?"), 253) + " " +
                         bounded(text_of(f, "verdict", "?"), 32);
      if (const std::string d = bounded(text_of(f, "detail", ""), 300); !d.empty()) what += " (" + d + ")";
      failing.push_back(what);
    }
  }
  const int probed = static_cast<int>(std::min<std::int64_t>(up + down + mtu + snat, 1'000'000'000));
  const int bad = static_cast<int>(std::min<std::int64_t>(down + mtu + snat, 1'000'000'000));
  v.probed_pairs = probed;
  v.failing_pairs = bad;
  v.summary = {{"probedPairs", probed}, {"failingPairs", bad}, {"lossPercent", loss}};
  std::string rtt;
  if (!p50s.empty()) {
    std::sort(p50s.begin(), p50s.end());
    v.summary["rttP50"] = format_micros(p50s[p50s.size() / 2]);
    v.rtt_p50_seconds = static_cast<double>(p50s[p50s.size() / 2]) / 1e6;
    rtt = "RTT p50 " + v.summary["rttP50"].get<std::string>();
  }
  if (max_us >= 0) {
    v.summary["rttMax"] = format_micros(max_us);
    v.rtt_max_seconds = static_cast<double>(max_us) / 1e6;
    rtt += ", max " + v.summary["rttMax"].get<std::string>();
  }
  if (probed == 0) {
    v.message = "no node agent has probed cluster " + remote + "'s nodes yet";
    return v;
  }
  if (bad == 0) {
    v.status = "True";
    v.reason = "ProbesAnswered";
    v.message = std::to_string(probed) + " node pair" + (probed == 1 ? "" : "s") +
                " answer probes through the tunnel" + (rtt.empty() ? "" : " (" + rtt + ")");
    return v;
  }
  v.status = "False";
  v.reason = down == probed ? "Unreachable" : down > 0 ? "PartlyUnreachable" : snat > 0 ? "SNATOnPath" : "MTUBlackHole";
  std::sort(failing.begin(), failing.end());
  std::string listed;
  const std::size_t shown = std::min<std::size_t>(failing.size(), 3);
  for (std::size_t i = 0; i < shown; ++i) listed += (i == 0 ? "" : "; ") + failing[i];
  v.message = std::to_string(bad) + " of " + std::to_string(probed) + " node pairs fail through the tunnel to " +
              remote + ": " + listed;
  if (static_cast<int>(shown) < bad) v.message += "; and " + std::to_string(bad - static_cast<int>(shown)) + " more";
  v.message += " (loss up to " + std::to_string(loss) + "%" + (rtt.empty() ? "" : ", " + rtt) + ")";
  return v;
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<std::chrono::system_clock::time_point> parse_rfc3339(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) return std::nullopt;
  if (*end == '.') {  // fractional seconds: ignored
    ++end;
    while (*end >= '0' && *end <= '9') ++end;
  }
  if (*end != 'Z' || end[1] != '\0') return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::vector<std::string> cidr_conflicts(const std::vector<net::Prefix>& local_pods,
                                        const std::vector<net::Prefix>& local_services,
                                        const Advertisement& remote) {
  std::vector<std::string> out;
  const std::pair<const char*, const std::vector<net::Prefix>*> remotes[] = {
      {"pod", &remote.pod_cidrs}, {"service", &remote.service_cidrs}};
  const std::pair<const char*, const std::vector<net::Prefix>*> locals[] = {
      {"pod", &local_pods}, {"service", &local_services}};
  for (const auto& [rkind, rlist] : remotes) {
    for (const auto& r : *rlist) {
      for (const auto& [lkind, llist] : locals) {
        for (const auto& l : *llist) {
          if (r.overlaps(l)) {
            out.push_back(std::string("remote ") + rkind + " CIDR " + r.to_string() + " overlaps local " +
                          lkind + " CIDR " + l.to_string());
          }
        }
      }
    }
  }
  // Node blocks must stay inside what the remote advertises as its pod CIDRs.
  std::vector<NodeEntry> all = remote.nodes;
  all.insert(all.end(), remote.gateways.begin(), remote.gateways.end());
  for (const auto& n : all) {
    for (const auto& p : n.pod_cidrs) {
      const bool inside = std::any_of(remote.pod_cidrs.begin(), remote.pod_cidrs.end(),
                                      [&](const net::Prefix& c) { return c.contains(p); });
      if (!inside) {
        out.push_back("remote node " + n.name + "'s pod CIDR " + p.to_string() +
                      " is outside the remote cluster's pod CIDRs");
      }
    }
  }
  return out;
}

json peering_status(const PeeringInput& in) {
  json status{{"observedGeneration", in.generation},
              {"conflicts", json::array()},
              {"localTopology", in.local_topology},
              {"ingress", in.ingress}};
  const std::string remote = in.remote_cluster_id;
  if (in.remote_cluster_id == in.cluster_id) {
    status["phase"] = "Conflict";
    status["conflicts"].push_back("a cluster cannot peer with itself");
    status["conditions"] = json::array(
        {condition(in, "RemoteConsents", false, "SelfPeering", "spec.remoteClusterID names this cluster"),
         condition(in, "Ready", false, "SelfPeering", "a cluster cannot peer with itself")});
    return status;
  }
  if (!in.remote) {
    const std::string why = in.remote_error.empty()
                                ? "cluster " + remote + " has no ClusterAdvertisement on the broker: is it "
                                  "installed and does its clusterID match?"
                                : "cluster " + remote + "'s advertisement is malformed: " + in.remote_error;
    status["phase"] = "Pending";
    status["conditions"] = json::array(
        {condition(in, "RemoteConsents", false, in.remote_error.empty() ? "RemoteUnknown" : "RemoteMalformed", why),
         condition(in, "Ready", false, "Pending", why)});
    return status;
  }
  const Advertisement& ad = *in.remote;
  json remote_json = to_json(ad);
  remote_json.erase("clusterID");
  remote_json.erase("peers");
  // Not the heartbeat: it changes every few seconds, and a status that changes with it would
  // be rewritten (and every node agent woken) for nothing. RemoteHealthy says if it is fresh.
  remote_json.erase("heartbeat");
  status["remote"] = remote_json;

  const bool consents = std::find(ad.peers.begin(), ad.peers.end(), in.cluster_id) != ad.peers.end();
  const auto conflicts = cidr_conflicts(in.local_pod_cidrs, in.local_service_cidrs, ad);
  for (const auto& c : conflicts) status["conflicts"].push_back(c);
  const auto heartbeat = parse_rfc3339(ad.heartbeat);
  const bool fresh = heartbeat && in.now - *heartbeat <= std::chrono::seconds(in.heartbeat_timeout_seconds);
  const bool remote_gateways = ad.topology == "gateway";
  const bool nodes_ready = remote_gateways ? std::any_of(ad.gateways.begin(), ad.gateways.end(), gateway_ready)
                                           : std::any_of(ad.nodes.begin(), ad.nodes.end(), node_ready);
  // Somebody must be reachable: a remote gateway with an endpoint, or our own (a mesh node's
  // endpoint counts as reachable: the mesh assumes it).
  const bool remote_reachable = !remote_gateways || std::any_of(ad.gateways.begin(), ad.gateways.end(),
                                                                [](const NodeEntry& g) { return !g.endpoint.empty(); });
  const bool local_reachable = in.local_topology != "gateway" || in.local_gateway_reachable;

  json conditions = json::array();
  conditions.push_back(consents
      ? condition(in, "RemoteConsents", true, "PeeringNamesUs", "cluster " + remote + " has a ClusterPeering naming " + in.cluster_id)
      : condition(in, "RemoteConsents", false, "AwaitingRemote",
                  "cluster " + remote + " has no ClusterPeering naming " + in.cluster_id + " yet: apply one there"));
  conditions.push_back(conflicts.empty()
      ? condition(in, "CIDRsDisjoint", true, "NoOverlap", "no remote CIDR overlaps a local one")
      : condition(in, "CIDRsDisjoint", false, "Overlap", conflicts.front() + (conflicts.size() > 1 ? " (and more: see status.conflicts)" : "")));
  // A stale heartbeat has two causes, told apart: this operator cannot read the broker, or
  // the remote operator stopped writing to it.
  if (fresh) {
    conditions.push_back(condition(in, "RemoteHealthy", true, "HeartbeatFresh",
                                   "the remote operator refreshed its advertisement within " +
                                       std::to_string(in.heartbeat_timeout_seconds) + "s"));
  } else if (!in.broker_error.empty()) {
    conditions.push_back(condition(in, "RemoteHealthy", false, "BrokerUnreachable",
                                   "unknown: this operator cannot reach the broker to read cluster " + remote +
                                       "'s advertisement (last heartbeat seen: " +
                                       (heartbeat ? ad.heartbeat : std::string("none")) + ")"));
  } else {
    conditions.push_back(condition(
        in, "RemoteHealthy", false, "HeartbeatStale",
        heartbeat ? "cluster " + remote + " has not refreshed its advertisement since " + ad.heartbeat +
                        " (more than " + std::to_string(in.heartbeat_timeout_seconds) +
                        "s ago): is its operator running, and can it reach the broker?"
                  : "cluster " + remote + "'s advertisement has no valid heartbeat"));
  }
  conditions.push_back(in.broker_error.empty()
      ? condition(in, "BrokerReachable", true, "BrokerAnswers", "this operator reads and writes the broker")
      : condition(in, "BrokerReachable", false, "BrokerUnreachable",
                  "this operator cannot reach the broker: " + in.broker_error));
  const DatapathVerdict datapath = datapath_verdict(remote, in.datapath);

  std::string phase;
  std::string reason;
  std::string message;
  if (!consents) {
    phase = "Pending";
    reason = "AwaitingRemote";
    message = "waiting for cluster " + remote + " to peer with " + in.cluster_id;
  } else if (ad.pod_cidrs.empty()) {
    phase = "Pending";
    reason = "RemoteHasNoBlock";
    message = "cluster " + remote + " holds no pod block yet: see its operator (a CIDR conflict, or a full pool)";
  } else if (!conflicts.empty()) {
    phase = "Conflict";
    reason = "Overlap";
    message = "not routed: " + conflicts.front();
  } else if (!nodes_ready) {
    phase = "Connecting";
    reason = remote_gateways ? "NoRemoteGateways" : "NoRemoteNodes";
    message = remote_gateways ? "cluster " + remote + " advertises no gateway candidate with a key and a block yet "
                                "(label nodes clusterwire.io/gateway=true there)"
                              : "cluster " + remote + " advertises no node with a key and an endpoint yet";
  } else if (!remote_reachable && !local_reachable) {
    phase = "Connecting";
    reason = "NoReachableEndpoint";
    message = "neither " + in.cluster_id + "'s nor " + remote +
              "'s gateways have a public endpoint: one side must be reachable (set clusterwire.io/public-endpoint "
              "or the chart's gateway.publicEndpoints); NAT to NAT is not supported";
  } else if (datapath.status == "False") {
    phase = "Degraded";
    reason = datapath.reason;
    message = "routed, but traffic does not flow: " + datapath.message;
  } else if (!fresh && datapath.status == "Unknown") {
    phase = "Degraded";
    reason = in.broker_error.empty() ? "HeartbeatStale" : "BrokerUnreachable";
    message = in.broker_error.empty()
                  ? "cluster " + remote + " has not refreshed its advertisement: keeping the last known state"
                  : "this operator cannot reach the broker: keeping the last known state of cluster " + remote;
  } else {
    phase = "Connected";
    reason = "Connected";
    message = "both clusters consent, no CIDR overlaps and remote nodes are ready: node agents route to " + remote;
    if (datapath.status == "True") message += "; " + datapath.message;
    if (!fresh) {
      message += in.broker_error.empty()
                     ? "; but cluster " + remote + "'s operator has not refreshed its advertisement (see RemoteHealthy)"
                     : "; but this operator cannot reach the broker (see BrokerReachable)";
    }
  }
  const bool routed = phase == "Connected" || phase == "Degraded";
  if (routed) {
    json c = condition(in, "DatapathHealthy", datapath.status == "True", datapath.reason, datapath.message);
    c["status"] = datapath.status;
    if (in.old_status.is_object() && in.old_status.contains("conditions")) {  // "Unknown" keeps its time too
      for (const auto& old : in.old_status["conditions"]) {
        if (old.value("type", "") == "DatapathHealthy" && old.value("status", "") == datapath.status) {
          c["lastTransitionTime"] = old.value("lastTransitionTime", c["lastTransitionTime"].get<std::string>());
        }
      }
    }
    conditions.push_back(c);
    status["datapath"] = datapath.summary;
  }
  conditions.push_back(condition(in, "Ready", phase == "Connected", reason, message));
  status["phase"] = phase;
  status["conditions"] = conditions;
  return status;
}

}  // namespace cw::op
