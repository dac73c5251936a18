#include "cli/lab/services.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "cli/lab/cluster_api.h"
#include "cli/lab/lab.h"
#include "cli/lab/state.h"
#include "cli/lab/world.h"
#include "common/base/clock.h"
#include "common/kube/client.h"
#include "common/kube/informer.h"
#include "common/kube/kubeconfig.h"

namespace cw::lab {

using nlohmann::json;

namespace {

std::string str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}
const json& obj(const json& j, const char* key) {
  static const json empty = json::object();
  return j.is_object() && j.contains(key) && j[key].is_object() ? j[key] : empty;
}
const json& arr(const json& j, const char* key) {
  static const json empty = json::array();
  return j.is_object() && j.contains(key) && j[key].is_array() ? j[key] : empty;
}

bool selector_matches(const json& selector, const json& labels) {
  if (!selector.is_object() || selector.empty()) return false;  // no selector: not the controller's
  for (auto it = selector.begin(); it != selector.end(); ++it) {
    if (!labels.contains(it.key()) || labels[it.key()] != it.value()) return false;
  }
  return true;
}

bool pod_ready(const json& pod) {
  if (str(obj(pod, "status"), "phase") != "Running") return false;
  for (const auto& c : arr(obj(pod, "status"), "conditions")) {
    if (str(c, "type") == "Ready") return str(c, "status") == "True";
  }
  return false;
}

// The pod's addresses (status.podIPs, else status.podIP).
std::vector<std::string> pod_ips(const json& pod) {
  std::vector<std::string> out;
  for (const auto& p : arr(obj(pod, "status"), "podIPs")) {
    if (!str(p, "ip").empty()) out.push_back(str(p, "ip"));
  }
  if (out.empty() && !str(obj(pod, "status"), "podIP").empty()) out.push_back(str(obj(pod, "status"), "podIP"));
  return out;
}

// A Service port's target port on one pod: a number, or a container port's name.
int target_port(const json& service_port, const json& pod) {
  const json t = service_port.contains("targetPort") ? service_port["targetPort"] : service_port.value("port", json());
  if (t.is_number_integer()) return t.get<int>();
  if (!t.is_string()) return 0;
  for (const auto& c : arr(obj(pod, "spec"), "containers")) {
    for (const auto& p : arr(c, "ports")) {
      if (str(p, "name") == t.get<std::string>() && p.value("containerPort", json()).is_number_integer()) {
        return p["containerPort"].get<int>();
      }
    }
  }
  return 0;
}

// FNV-1a, 8 upper-case hex digits: the short hash in chain names (kube-proxy uses 8 base32
// characters of a SHA-256 for the same purpose: unique, readable names).
std::string short_hash(const std::string& s) {
  std::uint32_t h = 2166136261u;
  for (char ch : s) h = (h ^ static_cast<unsigned char>(ch)) * 16777619u;
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08X", static_cast<unsigned>(h));
  return buf;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

std::vector<json> desired_endpoint_slices(const json& services, const json& pods) {
  std::vector<json> out;
  for (const auto& svc : arr(services, "items")) {
    if (svc.value("kind", "Service") != "Service") continue;
    const json& meta = obj(svc, "metadata");
    const std::string ns = str(meta, "namespace"), name = str(meta, "name");
    const json& selector = obj(obj(svc, "spec"), "selector");
    if (selector.empty()) continue;
    const json& ports = arr(obj(svc, "spec"), "ports");
    for (const auto& [family, v4] : {std::pair{"IPv4", true}, std::pair{"IPv6", false}}) {
      json endpoints = json::array();
      std::map<std::string, int> slice_ports;  // port name -> target port (the first pod's, as the controller groups by port)
      for (const auto& pod : arr(pods, "items")) {
        if (str(obj(pod, "metadata"), "namespace") != ns || !selector_matches(selector, obj(obj(pod, "metadata"), "labels"))) continue;
        if (str(obj(pod, "status"), "phase") != "Running") continue;
        for (const auto& ip : pod_ips(pod)) {
          if ((ip.find(':') == std::string::npos) != v4) continue;
          const bool ready = pod_ready(pod);
          endpoints.push_back({{"addresses", json::array({ip})},
                               {"conditions", {{"ready", ready}, {"serving", ready}, {"terminating", false}}},
                               {"nodeName", str(obj(pod, "spec"), "nodeName")},
                               {"targetRef", {{"kind", "Pod"}, {"namespace", ns}, {"name", str(obj(pod, "metadata"), "name")}}}});
          for (const auto& p : ports) {
            const int port = target_port(p, pod);
            if (port > 0) slice_ports.emplace(str(p, "name"), port);
          }
        }
      }
      if (endpoints.empty()) continue;
      std::sort(endpoints.begin(), endpoints.end(),
                [](const json& a, const json& b) { return a["addresses"][0] < b["addresses"][0]; });
      json slice_port_list = json::array();
      for (const auto& p : ports) {
        auto it = slice_ports.find(str(p, "name"));
        if (it == slice_ports.end()) continue;
        slice_port_list.push_back({{"name", it->first}, {"port", it->second}, {"protocol", p.value("protocol", "TCP")}});
      }
      out.push_back({{"apiVersion", "discovery.k8s.io/v1"},
                     {"kind", "EndpointSlice"},
                     {"metadata",
                      {{"name", name + "-" + lower(family)},
                       {"namespace", ns},
                       {"labels", {{"kubernetes.io/service-name", name}, {"endpointslice.kubernetes.io/managed-by", kSliceManager}}}}},
                     {"addressType", family},
                     {"endpoints", endpoints},
                     {"ports", slice_port_list}});
    }
  }
  return out;
}

std::string kube_proxy_rules(const json& services, const json& slices, const std::string& cluster_cidr) {
  std::ostringstream chains, elements;
  std::vector<std::string> chain_names;
  for (const auto& svc : arr(services, "items")) {
    if (svc.value("kind", "Service") != "Service") continue;
    const json& meta = obj(svc, "metadata");
    const std::string ns = str(meta, "namespace"), name = str(meta, "name");
    const std::string ip = str(obj(svc, "spec"), "clusterIP");
    if (ip.empty() || ip == "None" || ip.find(':') != std::string::npos) continue;
    for (const auto& p : arr(obj(svc, "spec"), "ports")) {
      const std::string proto = lower(p.value("protocol", "TCP"));
      if (proto != "tcp" && proto != "udp") continue;
      if (!p.value("port", json()).is_number_integer()) continue;
      const int port = p["port"].get<int>();
      const std::string port_name = str(p, "name");
      // Ready IPv4 endpoints of this port, from every slice of the Service (whoever wrote it).
      std::set<std::pair<std::string, int>> endpoints;
      for (const auto& slice : arr(slices, "items")) {
        const json& sm = obj(slice, "metadata");
        if (str(sm, "namespace") != ns || str(obj(sm, "labels"), "kubernetes.io/service-name") != name) continue;
        if (str(slice, "addressType") != "IPv4") continue;
        int target = 0;
        for (const auto& sp : arr(slice, "ports")) {
          if (str(sp, "name") == port_name && sp.value("port", json()).is_number_integer()) target = sp["port"].get<int>();
        }
        if (target == 0) continue;
        for (const auto& e : arr(slice, "endpoints")) {
          if (obj(e, "conditions").value("ready", true) != true) continue;
          for (const auto& a : arr(e, "addresses")) {
            if (a.is_string()) endpoints.insert({a.get<std::string>(), target});
          }
        }
      }
      const std::string id = ns + "/" + name + "/" + proto + "/" + port_name;
      const std::string service_chain = "service-" + short_hash(id) + "-" + id;
      chain_names.push_back(service_chain);
      elements << "    " << ip << " . " << proto << " . " << port << " : goto " << service_chain << ",\n";
      chains << "  chain " << service_chain << " {\n"
             << "    ip daddr " << ip << " " << proto << " dport " << port << " ip saddr != " << cluster_cidr
             << " jump mark-for-masquerade\n";
      if (endpoints.empty()) {
        // kube-proxy rejects traffic to a Service without endpoints (its filter table); here it
        // is dropped, which a client sees as a time-out rather than a refusal.
        chains << "    drop\n  }\n";
        continue;
      }
      std::vector<std::string> endpoint_chains;
      for (const auto& [eip, eport] : endpoints) {
        const std::string eid = id + "__" + eip + "/" + std::to_string(eport);
        endpoint_chains.push_back("endpoint-" + short_hash(eid) + "-" + eid);
      }
      chains << "    numgen random mod " << endpoints.size() << " vmap {";
      for (std::size_t i = 0; i < endpoint_chains.size(); ++i) {
        chains << (i == 0 ? " " : ", ") << i << " : goto " << endpoint_chains[i];
      }
      chains << " }\n  }\n";
      std::size_t i = 0;
      for (const auto& [eip, eport] : endpoints) {
        chain_names.push_back(endpoint_chains[i]);
        chains << "  chain " << endpoint_chains[i++] << " {\n"
               << "    ip saddr " << eip << " jump mark-for-masquerade\n"  // hairpin: a pod reaching itself
               << "    meta l4proto " << proto << " dnat to " << eip << ":" << eport << "\n  }\n";
      }
    }
  }
  std::ostringstream s;
  s << "add table ip kube-proxy\ndelete table ip kube-proxy\n"
    << "table ip kube-proxy {\n"
    << "  comment \"rules for kube-proxy (the clusterwire lab's stand-in)\"\n"
    << "  map service-ips {\n    type ipv4_addr . inet_proto . inet_service : verdict\n"
    << "    comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\"\n";
  const std::string e = elements.str();
  if (!e.empty()) s << "    elements = {\n" << e.substr(0, e.size() - 2) << "\n    }\n";
  s << "  }\n"
    << "  chain nat-prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n    jump services\n  }\n"
    << "  chain nat-output {\n    type nat hook output priority -100; policy accept;\n    jump services\n  }\n"
    << "  chain nat-postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n    jump masquerading\n  }\n"
    << "  chain masquerading {\n    meta mark & 0x00004000 == 0 return\n    meta mark set meta mark ^ 0x00004000\n"
    << "    masquerade fully-random\n  }\n"
    << "  chain mark-for-masquerade {\n    meta mark set meta mark | 0x00004000\n  }\n"
    << "  chain services {\n    ip daddr . meta l4proto . th dport vmap @service-ips\n  }\n"
    << chains.str() << "}\n";
  return s.str();
}

namespace {

// The fields of a slice the controller decides; the API server adds the rest.
json slice_essence(const json& slice) {
  return {{"labels", obj(obj(slice, "metadata"), "labels")},
          {"addressType", str(slice, "addressType")},
          {"endpoints", arr(slice, "endpoints")},
          {"ports", arr(slice, "ports")}};
}

const kube::Resource kPods{"", "v1", "pods", true};

json items(const std::vector<json>& list) { return {{"items", list}}; }

// One pass of both stand-ins over what the informers hold: the EndpointSlice controller's
// writes, then (once the slices are as desired) kube-proxy's rules on every node, when changed.
Result<void> pass(kube::Client& client, const kube::Informer& pods, const kube::Informer& services,
                  const kube::Informer& slices, const ClusterLayout& c, const std::string& cluster_cidr,
                  std::string& applied_rules, std::ostream& out) {
  std::map<std::string, json> ours;  // ns/name -> existing slice written by "the controller"
  for (const auto& s : slices.list()) {
    if (str(obj(obj(s, "metadata"), "labels"), "endpointslice.kubernetes.io/managed-by") == kSliceManager) {
      ours[str(obj(s, "metadata"), "namespace") + "/" + str(obj(s, "metadata"), "name")] = s;
    }
  }
  bool wrote = false;
  std::set<std::string> wanted;
  for (auto d : desired_endpoint_slices(items(services.list()), items(pods.list()))) {
    const std::string ns = str(d["metadata"], "namespace");
    const std::string key = ns + "/" + str(d["metadata"], "name");
    wanted.insert(key);
    auto it = ours.find(key);
    if (it != ours.end() && slice_essence(it->second) == slice_essence(d)) continue;
    Result<json> r = Error(ErrorCode::kInternal, "");
    if (it == ours.end()) {
      r = client.create(kube::resources::kEndpointSlices, ns, d);
    } else {
      d["metadata"]["resourceVersion"] = it->second["metadata"].value("resourceVersion", "");
      r = client.update(kube::resources::kEndpointSlices, ns, d);
    }
    if (!r) return r.error().with_context("writing EndpointSlice " + key);
    out << "EndpointSlice " << (it == ours.end() ? "created" : "updated") << ": " << key << std::endl;
    wrote = true;
  }
  for (const auto& [key, s] : ours) {
    if (wanted.count(key)) continue;
    auto r = client.remove(kube::resources::kEndpointSlices, str(s["metadata"], "namespace"), str(s["metadata"], "name"));
    if (!r && r.error().code() != ErrorCode::kNotFound) return r.error().with_context("deleting EndpointSlice " + key);
    out << "EndpointSlice deleted: " << key << std::endl;
    wrote = true;
  }
  if (wrote || cluster_cidr.empty()) return ok_result();  // the informer brings the slices back as stored
  const std::string rules = kube_proxy_rules(items(services.list()), items(slices.list()), cluster_cidr);
  if (rules == applied_rules) return ok_result();
  for (const auto& n : c.nodes) {
    auto r = in_netns(n.netns, {"nft", "-f", "-"}, std::chrono::seconds(10), rules);
    if (!r.ok()) return Error(ErrorCode::kUnavailable, "nft in " + n.netns + ": " + r.summary() + " " + r.err);
  }
  applied_rules = rules;
  out << "kube-proxy rules applied on every node of " << c.id << std::endl;
  return ok_result();
}

}  // namespace

int lab_services(const LabOptions& options, const std::string& cluster_id, std::ostream& out, std::ostream& err) {
  ignore_sigpipe();
  auto loaded = load_lab(options.name);
  if (!loaded) {
    err << "cwctl lab services: " << loaded.error().message() << "\n";
    return 1;
  }
  const auto& lab = loaded->lab;
  const ClusterLayout* c = lab.cluster(cluster_id);
  if (c == nullptr) {
    err << "cwctl lab services: no cluster \"" << cluster_id << "\" in lab " << lab.name << "\n";
    return 2;
  }
  auto block = loaded->state.node_cidrs.find(c->nodes.front().node_name);
  // kube-proxy's stand-in serves IPv4 Services: without an IPv4 pod range (an IPv6-only lab) it
  // writes no rules, and only the EndpointSlices are kept.
  const std::string block4 = block == loaded->state.node_cidrs.end() ? "" : family_block(block->second, false);
  std::string cluster_cidr;
  if (!block4.empty()) {
    auto range = cluster_range_of(block4);
    if (!range) {
      err << "cwctl lab services: the pod range of " << c->id << ": " << range.error().message() << "\n";
      return 1;
    }
    cluster_cidr = *range;
  }
  // Watches, not polls: the lab's API servers push changes (a kubectl per poll cost a core).
  auto conn = kube::load_client_config(lab.kubeconfig(*c));
  if (!conn) {
    err << "cwctl lab services: " << conn.error().message() << "\n";
    return 1;
  }
  auto client = kube::Client::create(*conn);
  if (!client) {
    err << "cwctl lab services: " << client.error().message() << "\n";
    return 1;
  }
  SystemClock clock;
  std::mutex mu;
  std::condition_variable changed;
  bool dirty = true;
  auto kick = [&] {
    std::lock_guard lock(mu);
    dirty = true;
    changed.notify_one();
  };
  const kube::InformerHandlers handlers{.on_add = [&](const json&) { kick(); },
                                        .on_update = [&](const json&, const json&) { kick(); },
                                        .on_delete = [&](const json&) { kick(); }};
  kube::Informer pods(**client, {.resource = kPods}, clock), services(**client, {.resource = kube::resources::kServices}, clock),
      slices(**client, {.resource = kube::resources::kEndpointSlices}, clock);
  for (auto* inf : {&pods, &services, &slices}) {
    inf->add_handlers(handlers);
    inf->start();
  }
  catch_interrupts();
  out << "services of " << c->id << ": EndpointSlices from Pods"
      << (cluster_cidr.empty() ? " (no IPv4 pod range: no kube-proxy rules)"
                               : ", kube-proxy's nftables rules on " + std::to_string(c->nodes.size()) + " nodes (cluster CIDR " +
                                     cluster_cidr + ")")
      << std::endl;
  std::string applied_rules, last_error;
  while (interrupt_signal() == 0) {
    {
      std::unique_lock lock(mu);
      changed.wait_for(lock, std::chrono::seconds(1), [&] { return dirty; });  // 1 s: also notices SIGTERM
      if (!dirty) continue;
      dirty = false;
    }
    if (!pods.has_synced() || !services.has_synced() || !slices.has_synced()) {
      kick();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    auto r = pass(**client, pods, services, slices, *c, cluster_cidr, applied_rules, out);
    const std::string e = r ? "" : r.error().message();
    if (e != last_error && !e.empty()) err << "cwctl lab services: " << e << std::endl;
    last_error = e;
    if (!r) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));  // then try again
      kick();
    }
  }
  for (auto* inf : {&pods, &services, &slices}) inf->stop();
  out << "stopping" << std::endl;
  return 0;
}

}  // namespace cw::lab
