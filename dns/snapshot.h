// What the zone answers from, built from the local API's objects (a pure function, so that
// every rule is a table test): the ServiceImports the operator writes, their EndpointSlices
// (labelled multicluster.kubernetes.io/service-name and .../source-cluster, the ClusterSetIP
// ones carrying the source cluster's Service IPs in the clusterwire.io/service-ips
// annotation), and the ClusterPeerings, whose phase says which source clusters are reachable.
//
// Rules:
// - a ServiceImport gives one ImportedService: its type and its named and unnamed ports;
// - each EndpointSlice of it (same namespace, service-name label = the import's name) adds
//   to the part of its source cluster: Service IPs (ClusterSetIP) or endpoints (headless);
//   slices without a source-cluster label, and addresses that do not parse, are skipped;
// - a part is reachable when it is the local cluster's, or a ClusterPeering naming its
//   cluster has phase Connected or Degraded (the node agents keep the routes of both),
//   except when its DatapathHealthy condition is False for reason Unreachable: no node
//   pair's probe through the tunnel is answered (a partial failure keeps the answers);
//   a name none of whose clusters is reachable is not in the zone (NXDOMAIN);
// - anything malformed is skipped and counted in `skipped`, never fatal: one bad object must
//   not take the other names down.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dns/zone.h"

namespace cw::dns {

struct SnapshotInput {
  std::string local_cluster_id;
  std::vector<nlohmann::json> imports;
  std::vector<nlohmann::json> slices;
  std::vector<nlohmann::json> peerings;
};

struct BuiltSnapshot {
  ZoneSnapshot snapshot;
  std::vector<std::string> skipped;  // what was left out, and why
};

BuiltSnapshot build_snapshot(const SnapshotInput& input);

}  // namespace cw::dns
