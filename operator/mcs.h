// The Multi-Cluster Services sync as pure functions (KEP-1645):
//
//   export: a ServiceExport and its Service (and, headless, its EndpointSlices) in this
//           cluster → an ExportRecord, which the operator publishes on the broker;
//   import: every cluster's records → for each exported Service whose namespace exists here,
//           a ServiceImport (type and ports merged by the KEP's conflict rules) and one
//           EndpointSlice per reachable source cluster, plus the conflicts to report on
//           this cluster's own ServiceExports.
//
// Conflict resolution follows the KEP: precedence by the ServiceExport's creationTimestamp,
// oldest first (cluster ID breaks ties); the type is the oldest export's, and exports of
// another type do not contribute; ports merge by name first, then by protocol and port;
// session affinity (and its ClientIP timeout) is the oldest export's; a Conflict condition
// goes on every export of a conflicted Service.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/base/result.h"

namespace cw::op {

using nlohmann::json;

struct ExportPort {
  std::string name;
  std::string protocol = "TCP";
  int port = 0;
  std::string app_protocol;
  friend bool operator==(const ExportPort&, const ExportPort&) = default;
};

struct ExportEndpoint {
  std::vector<std::string> addresses;
  std::string hostname;
  bool ready = true;
  friend bool operator==(const ExportEndpoint&, const ExportEndpoint&) = default;
};

struct ExportRecord {
  std::string cluster_id;
  std::string ns;
  std::string name;
  bool headless = false;
  std::vector<ExportPort> ports;
  std::vector<std::string> service_ips;    // ClusterSetIP: the Service's clusterIPs
  std::vector<ExportEndpoint> endpoints;   // headless: its ready and unready endpoints
  std::string exported_at;                 // the ServiceExport's creationTimestamp (RFC 3339)
  std::string session_affinity = "None";   // or "ClientIP"
  int session_affinity_timeout = 0;        // ClientIP's timeoutSeconds; 0: not set
};

// Why a ServiceExport cannot be exported (its Valid=False condition), or the record.
struct ExportResult {
  std::optional<ExportRecord> record;
  std::string invalid_reason;   // "ServiceNotFound", "InvalidServiceType"
  std::string invalid_message;
};

// `service` may be null (not found). `slices` are the EndpointSlices labelled
// kubernetes.io/service-name=<name> in the namespace. A headless Service's ports are its
// pods' (targetPort, as its slices resolve it): its clients connect to the pods directly.
ExportResult make_export_record(const std::string& cluster_id, const json& service_export,
                                const json& service, const std::vector<json>& slices);

json to_json(const ExportRecord& record);
Result<ExportRecord> parse_export_record(const json& spec);

struct ImportedSlice {
  std::string source_cluster;
  std::vector<std::string> service_ips;
  std::vector<ExportEndpoint> endpoints;
};

struct PlannedImport {
  std::string ns;
  std::string name;
  bool headless = false;
  std::vector<ExportPort> ports;
  std::vector<ImportedSlice> slices;  // one per reachable contributing cluster, sorted
  std::vector<std::string> precedence;  // those clusters, oldest export first
  std::string session_affinity = "None";  // the oldest reachable export's
  int session_affinity_timeout = 0;
};

struct ImportPlan {
  std::vector<PlannedImport> imports;  // sorted by namespace, name
  // This cluster's exports in conflict: "<ns>/<name>" → the condition's message.
  std::map<std::string, std::string> conflicts;
};

// `reachable`: this cluster and those whose peering is Connected or Degraded (routes stay up
// while a heartbeat is late). `namespaces`: those that exist here; Services of other
// namespaces are not imported (the KEP: a namespace is never created for an import).
// Conflicts count every cluster's export; an import's type and ports come from the reachable
// ones only (a cluster that is gone and never withdrew its records decides nothing here), and
// there is no import when none is reachable.
ImportPlan plan_imports(const std::string& local_cluster_id, const std::vector<ExportRecord>& records,
                        const std::set<std::string>& reachable, const std::set<std::string>& namespaces);

// The objects the sync writes for one planned import (docs/api.md "ServiceExport,
// ServiceImport"), without resourceVersions:
// - the ServiceImport: spec.type, spec.ports, and for ClusterSetIP spec.ips, the Service IPs
//   of the cluster that is preferred (the local one when it exports the Service, else the
//   first contributing cluster by precedence; at most one per family, as the schema allows);
//   status.clusters, the contributing clusters;
// - per contributing cluster and address family, an EndpointSlice "<svc>.<cluster>.ipv4" (or
//   .ipv6: dots, which neither a Service name nor a cluster ID can hold, keep it unique) with
//   the KEP's labels, our managed-by label, the ports, and either the headless
//   endpoints of that family or, for ClusterSetIP, no endpoints and the Service IPs in the
//   clusterwire.io/service-ips annotation. A cluster with no address at all still gets its
//   IPv4 slice, so that it shows as a source.
json service_import_for(const PlannedImport& import, const std::string& local_cluster_id);
std::vector<json> endpoint_slices_for(const PlannedImport& import);

// A ServiceExport's status.conditions:
//   Valid     from `result`;
//   Ready     whether the broker holds the current record (`publish_error`: why it could
//             not be written, "" when it was); False while invalid;
//   Conflict  `conflict` is the message when the Service is in conflict, "" when not; no
//             Conflict condition while invalid.
// A condition whose status did not change keeps its lastTransitionTime from `old_conditions`.
json export_conditions(const ExportResult& result, const std::string& publish_error, const std::string& conflict,
                       std::int64_t generation, const std::string& now, const json& old_conditions);

// Whether `current` (as the API server returned it) differs from `desired` in what the sync
// owns: the body (spec, or an EndpointSlice's addressType, ports and endpoints) and, of the
// labels and annotations, only the keys `desired` sets; others' keys are theirs. Empty lists
// equal null, and a port's name and protocol default to "" and TCP, as a real server returns
// them, so an unchanged object is never rewritten.
bool needs_write(const json& current, const json& desired);

// A ServiceExport's conditions after writing `ours` (Valid, Ready, Conflict): conditions of
// other types, another controller's, are kept.
json merge_conditions(const json& old_conditions, const json& ours);

}  // namespace cw::op
