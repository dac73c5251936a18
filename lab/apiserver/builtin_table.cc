// The Tables of built-in kinds, as kube-apiserver's printers make them
// (k8s.io/kubernetes/pkg/printers/internalversion/printers.go: the column definitions, and the
// print functions' cells). Columns of priority 1 are what `kubectl get -o wide` adds.
#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "lab/apiserver/table.h"

namespace cw::lab {
namespace {

using nlohmann::json;

struct ColumnDef {
  const char* name;
  const char* type;
  int priority;
  const char* description;
};

struct Printer {
  std::vector<ColumnDef> columns;
  std::function<json(const json& item, std::chrono::system_clock::time_point now)> cells;
};

const json& field(const json& j, const char* key) {
  static const json null;
  if (!j.is_object()) return null;
  auto it = j.find(key);
  return it == j.end() ? null : *it;
}

std::string text(const json& j, const char* key, const std::string& otherwise = "") {
  const json& v = field(j, key);
  return v.is_string() && !v.get<std::string>().empty() ? v.get<std::string>() : otherwise;
}

std::string age(const json& item, std::chrono::system_clock::time_point now) {
  return age_since(text(field(item, "metadata"), "creationTimestamp"), now);
}

std::string join(const std::vector<std::string>& parts, const char* sep = ",") {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

// ---- Namespace

Printer namespaces() {
  return {{{"Name", "string", 0, "name"},
           {"Status", "string", 0, "The status of the namespace"},
           {"Age", "string", 0, "creationTimestamp"}},
          [](const json& ns, auto now) {
            return json::array({text(field(ns, "metadata"), "name"), text(field(ns, "status"), "phase", "Active"), age(ns, now)});
          }};
}

// ---- Node

std::string node_status(const json& node) {
  std::string status = "Unknown";
  for (const auto& c : field(field(node, "status"), "conditions").is_array() ? field(field(node, "status"), "conditions") : json::array()) {
    if (text(c, "type") == "Ready") status = text(c, "status") == "True" ? "Ready" : "NotReady";
  }
  if (field(field(node, "spec"), "unschedulable") == true) status += ",SchedulingDisabled";
  return status;
}

std::string node_roles(const json& node) {
  std::set<std::string> roles;
  const json& labels = field(field(node, "metadata"), "labels");
  if (labels.is_object()) {
    for (const auto& [k, v] : labels.items()) {
      const std::string prefix = "node-role.kubernetes.io/";
      if (k.rfind(prefix, 0) == 0 && k.size() > prefix.size()) roles.insert(k.substr(prefix.size()));
      if (k == "kubernetes.io/role" && v.is_string() && !v.get<std::string>().empty()) roles.insert(v.get<std::string>());
    }
  }
  return roles.empty() ? "<none>" : join({roles.begin(), roles.end()});
}

std::string node_address(const json& node, const char* type) {
  const json& addresses = field(field(node, "status"), "addresses");
  if (addresses.is_array()) {
    for (const auto& a : addresses) {
      if (text(a, "type") == type) return text(a, "address", "<none>");
    }
  }
  return "<none>";
}

Printer nodes() {
  return {{{"Name", "string", 0, "name"},
           {"Status", "string", 0, "The status of the node"},
           {"Roles", "string", 0, "The roles of the node"},
           {"Age", "string", 0, "creationTimestamp"},
           {"Version", "string", 0, "Kubelet Version reported by the node."},
           {"Internal-IP", "string", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."},
           {"External-IP", "string", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."},
           {"OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."},
           {"Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."},
           {"Container-Runtime", "string", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."}},
          [](const json& n, auto now) {
            const json& info = field(field(n, "status"), "nodeInfo");
            return json::array({text(field(n, "metadata"), "name"), node_status(n), node_roles(n), age(n, now),
                                text(info, "kubeletVersion"), node_address(n, "InternalIP"), node_address(n, "ExternalIP"),
                                text(info, "osImage", "<unknown>"), text(info, "kernelVersion", "<unknown>"),
                                text(info, "containerRuntimeVersion", "<unknown>")});
          }};
}

// ---- Service

std::string service_external_ip(const json& svc) {
  const json& spec = field(svc, "spec");
  const std::string type = text(spec, "type", "ClusterIP");
  std::vector<std::string> ips;
  if (field(spec, "externalIPs").is_array()) {
    for (const auto& ip : field(spec, "externalIPs")) {
      if (ip.is_string()) ips.push_back(ip.get<std::string>());
    }
  }
  if (type == "ClusterIP" || type == "NodePort") return ips.empty() ? "<none>" : join(ips);
  if (type == "ExternalName") return text(spec, "externalName");
  if (type == "LoadBalancer") {
    const json& ingress = field(field(field(svc, "status"), "loadBalancer"), "ingress");
    if (ingress.is_array()) {
      for (const auto& i : ingress) {
        if (!text(i, "ip").empty()) ips.push_back(text(i, "ip"));
        else if (!text(i, "hostname").empty()) ips.push_back(text(i, "hostname"));
      }
    }
    return ips.empty() ? "<pending>" : join(ips);
  }
  return "<unknown>";
}

std::string service_ports(const json& svc) {
  std::vector<std::string> out;
  const json& ports = field(field(svc, "spec"), "ports");
  if (ports.is_array()) {
    for (const auto& p : ports) {
      std::string s = field(p, "port").is_number_integer() ? std::to_string(field(p, "port").get<long long>()) : "";
      if (field(p, "nodePort").is_number_integer() && field(p, "nodePort").get<long long>() > 0) {
        s += ":" + std::to_string(field(p, "nodePort").get<long long>());
      }
      out.push_back(s + "/" + text(p, "protocol", "TCP"));
    }
  }
  return out.empty() ? "<none>" : join(out);
}

std::string selector_text(const json& selector) {
  if (!selector.is_object() || selector.empty()) return "<none>";
  std::vector<std::string> parts;
  for (const auto& [k, v] : selector.items()) parts.push_back(k + "=" + (v.is_string() ? v.get<std::string>() : v.dump()));
  std::sort(parts.begin(), parts.end());
  return join(parts);
}

Printer services() {
  return {{{"Name", "string", 0, "name"},
           {"Type", "string", 0, "type determines how the Service is exposed."},
           {"Cluster-IP", "string", 0, "clusterIP is the IP address of the service."},
           {"External-IP", "string", 0, "List of IP addresses for which nodes in the cluster will also accept traffic for this service."},
           {"Port(s)", "string", 0, "The ports that are exposed by this service."},
           {"Age", "string", 0, "creationTimestamp"},
           {"Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector."}},
          [](const json& svc, auto now) {
            const json& spec = field(svc, "spec");
            return json::array({text(field(svc, "metadata"), "name"), text(spec, "type", "ClusterIP"),
                                text(spec, "clusterIP", "<none>"), service_external_ip(svc), service_ports(svc), age(svc, now),
                                selector_text(field(spec, "selector"))});
          }};
}

// ---- Pod

Printer pods() {
  return {{{"Name", "string", 0, "name"},
           {"Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."},
           {"Status", "string", 0, "The aggregate status of the containers in this pod."},
           {"Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."},
           {"Age", "string", 0, "creationTimestamp"},
           {"IP", "string", 1, "podIP address allocated to the pod."},
           {"Node", "string", 1, "NodeName indicates in which node this pod is scheduled."},
           {"Nominated Node", "string", 1, "nominatedNodeName is set only when this pod preempts other pods on the node."},
           {"Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."}},
          [](const json& pod, auto now) {
            const json& spec = field(pod, "spec");
            const json& status = field(pod, "status");
            const std::size_t total = field(spec, "containers").is_array() ? field(spec, "containers").size() : 0;
            std::size_t ready = 0;
            long long restarts = 0;
            std::string reason = text(status, "reason", text(status, "phase", "Unknown"));
            if (field(status, "containerStatuses").is_array()) {
              for (const auto& c : field(status, "containerStatuses")) {
                if (field(c, "ready") == true) ++ready;
                if (field(c, "restartCount").is_number_integer()) restarts += field(c, "restartCount").get<long long>();
                const json& state = field(c, "state");
                if (!text(field(state, "waiting"), "reason").empty()) reason = text(field(state, "waiting"), "reason");
                else if (!text(field(state, "terminated"), "reason").empty()) reason = text(field(state, "terminated"), "reason");
              }
            }
            if (field(field(pod, "metadata"), "deletionTimestamp").is_string()) reason = "Terminating";
            std::string gates = "<none>";
            if (field(spec, "readinessGates").is_array() && !field(spec, "readinessGates").empty()) {
              gates = "0/" + std::to_string(field(spec, "readinessGates").size());
            }
            return json::array({text(field(pod, "metadata"), "name"), std::to_string(ready) + "/" + std::to_string(total),
                                reason, restarts, age(pod, now), text(status, "podIP", "<none>"),
                                text(spec, "nodeName", "<none>"), text(status, "nominatedNodeName", "<none>"), gates});
          }};
}

// ---- EndpointSlice

Printer endpoint_slices() {
  return {{{"Name", "string", 0, "name"},
           {"AddressType", "string", 0, "The type of address carried by this EndpointSlice."},
           {"Ports", "string", 0, "Ports are the ports this EndpointSlice exposes."},
           {"Endpoints", "string", 0, "Endpoints is a list of unique endpoints in this slice."},
           {"Age", "string", 0, "creationTimestamp"}},
          [](const json& slice, auto now) {
            std::vector<std::string> ports;
            if (field(slice, "ports").is_array()) {
              for (const auto& p : field(slice, "ports")) {
                ports.push_back(field(p, "port").is_number_integer() ? std::to_string(field(p, "port").get<long long>()) : "<unset>");
              }
            }
            std::vector<std::string> addresses;
            if (field(slice, "endpoints").is_array()) {
              for (const auto& e : field(slice, "endpoints")) {
                if (!field(e, "addresses").is_array()) continue;
                for (const auto& a : field(e, "addresses")) {
                  if (a.is_string()) addresses.push_back(a.get<std::string>());
                }
              }
            }
            // formatEndpointSlices: at most 3 addresses, then " + N more...".
            std::string endpoints = "<unset>";
            if (!addresses.empty()) {
              const std::size_t shown = std::min<std::size_t>(3, addresses.size());
              endpoints = join({addresses.begin(), addresses.begin() + static_cast<long>(shown)});
              if (addresses.size() > shown) endpoints += " + " + std::to_string(addresses.size() - shown) + " more...";
            }
            return json::array({text(field(slice, "metadata"), "name"), text(slice, "addressType"),
                                ports.empty() ? "<unset>" : join(ports), endpoints, age(slice, now)});
          }};
}

// ---- Event (core/v1 and events.k8s.io/v1 carry the same fields under different names)

Printer events() {
  return {{{"Last Seen", "string", 0, "The last time the event was seen."},
           {"Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future."},
           {"Reason", "string", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."},
           {"Object", "string", 0, "The object that this event is about."},
           {"Subobject", "string", 1, "The subobject (field path) that this event is about."},
           {"Source", "string", 1, "The component reporting this event."},
           {"Message", "string", 0, "A human-readable description of the status of this operation."},
           {"First Seen", "string", 1, "The first time the event was seen."},
           {"Count", "string", 1, "The number of times this event has occurred."},
           {"Name", "string", 1, "name"}},
          [](const json& e, auto now) {
            const json& involved = field(e, "involvedObject").is_object() ? field(e, "involvedObject") : field(e, "regarding");
            std::string kind = text(involved, "kind");
            std::transform(kind.begin(), kind.end(), kind.begin(), [](char c) { return static_cast<char>(std::tolower(c)); });
            const std::string last = text(e, "lastTimestamp", text(e, "eventTime", text(e, "deprecatedLastTimestamp")));
            const std::string first = text(e, "firstTimestamp", text(e, "eventTime", text(e, "deprecatedFirstTimestamp")));
            const json& source = field(e, "source");
            std::string src = text(source, "component", text(e, "reportingController", text(e, "reportingComponent")));
            if (!text(source, "host").empty()) src += ", " + text(source, "host");
            const json& count = field(e, "count").is_number_integer() ? field(e, "count") : field(e, "deprecatedCount");
            return json::array({age_since(last, now), text(e, "type"), text(e, "reason"), kind + "/" + text(involved, "name"),
                                text(involved, "fieldPath"), src, text(e, "message", text(e, "note")), age_since(first, now),
                                count.is_number_integer() ? count.get<long long>() : 1, text(field(e, "metadata"), "name")});
          }};
}

// ---- Lease

Printer leases() {
  return {{{"Name", "string", 0, "name"},
           {"Holder", "string", 0, "The holder of the lease."},
           {"Age", "string", 0, "creationTimestamp"}},
          [](const json& lease, auto now) {
            return json::array({text(field(lease, "metadata"), "name"), text(field(lease, "spec"), "holderIdentity"), age(lease, now)});
          }};
}

const std::map<std::string, Printer>& printers() {
  static const std::map<std::string, Printer> all = {
      {"namespaces", namespaces()},
      {"nodes", nodes()},
      {"services", services()},
      {"pods", pods()},
      {"endpointslices.discovery.k8s.io", endpoint_slices()},
      {"events", events()},
      {"events.events.k8s.io", events()},
      {"leases.coordination.k8s.io", leases()},
  };
  return all;
}

}  // namespace

std::optional<json> make_builtin_table(const std::string& group_resource, const std::vector<json>& items,
                                       const std::string& include_object, std::chrono::system_clock::time_point now,
                                       const std::string& list_rv, const std::string& continue_token) {
  auto p = printers().find(group_resource);
  if (p == printers().end()) return std::nullopt;
  json definitions = json::array();
  for (const auto& c : p->second.columns) {
    json d{{"name", c.name}, {"type", c.type}, {"format", ""}, {"description", c.description}, {"priority", c.priority}};
    if (std::string(c.name) == "Name") d["format"] = "name";
    definitions.push_back(std::move(d));
  }
  json rows = json::array();
  for (const auto& item : items) rows.push_back(table_row(p->second.cells(item, now), item, include_object));
  return table_of(std::move(definitions), std::move(rows), list_rv, continue_token);
}

}  // namespace cw::lab
