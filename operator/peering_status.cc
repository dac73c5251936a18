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

}  // namespace

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
  for (const auto& n : remote.nodes) {
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
  json status{{"observedGeneration", in.generation}, {"conflicts", json::array()}};
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
  const bool nodes_ready = std::any_of(ad.nodes.begin(), ad.nodes.end(), node_ready) ||
                           std::any_of(ad.gateways.begin(), ad.gateways.end(), node_ready);

  json conditions = json::array();
  conditions.push_back(consents
      ? condition(in, "RemoteConsents", true, "PeeringNamesUs", "cluster " + remote + " has a ClusterPeering naming " + in.cluster_id)
      : condition(in, "RemoteConsents", false, "AwaitingRemote",
                  "cluster " + remote + " has no ClusterPeering naming " + in.cluster_id + " yet: apply one there"));
  conditions.push_back(conflicts.empty()
      ? condition(in, "CIDRsDisjoint", true, "NoOverlap", "no remote CIDR overlaps a local one")
      : condition(in, "CIDRsDisjoint", false, "Overlap", conflicts.front() + (conflicts.size() > 1 ? " (and more: see status.conflicts)" : "")));
  conditions.push_back(fresh
      ? condition(in, "RemoteHealthy", true, "HeartbeatFresh",
                  "the remote operator refreshed its advertisement within " +
                      std::to_string(in.heartbeat_timeout_seconds) + "s")
      : condition(in, "RemoteHealthy", false, "HeartbeatStale",
                  heartbeat ? "last heartbeat " + ad.heartbeat + " is older than " +
                                  std::to_string(in.heartbeat_timeout_seconds) + "s: is its operator running?"
                            : "the remote advertisement has no valid heartbeat"));

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
    reason = "NoRemoteNodes";
    message = "cluster " + remote + " advertises no node with a key and an endpoint yet";
  } else if (!fresh) {
    phase = "Degraded";
    reason = "HeartbeatStale";
    message = "cluster " + remote + " has not refreshed its advertisement: keeping the last known state";
  } else {
    phase = "Connected";
    reason = "Connected";
    message = "both clusters consent, no CIDR overlaps and remote nodes are ready: node agents route to " + remote;
  }
  conditions.push_back(condition(in, "Ready", phase == "Connected", reason, message));
  status["phase"] = phase;
  status["conditions"] = conditions;
  return status;
}

}  // namespace cw::op
