// The MCS ServiceExport → ServiceImport sync of one member cluster (DESIGN.md "Flows" 5),
// the applier around the pure rules of operator/mcs.h:
//
//   "exports"  one key per ServiceExport (<ns>/<name>): its Service (and, headless, the
//              Service's EndpointSlices) → the ExportedService <cluster>.<ns>.<name> on the
//              broker, created, updated or deleted to match; the export's Valid and Conflict
//              conditions.
//   "imports"  one key: every cluster's ExportedServices, the peerings that are Connected and
//              the namespaces that exist here → the ServiceImports and their EndpointSlices
//              (one per source cluster and address family), written and removed to match.
//
// Only objects the sync made are ever changed or removed here: ServiceImports labelled
// app.kubernetes.io/managed-by=clusterwire and EndpointSlices labelled
// endpointslice.kubernetes.io/managed-by=clusterwire.io/operator. The controllers run only
// while the operator leads, and decide nothing until every cache has synced.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/base/clock.h"
#include "common/kube/client.h"
#include "common/kube/controller.h"
#include "common/log/log.h"

namespace cw::kube {
class Informer;
}

namespace cw::op {

namespace resources {
inline const kube::Resource kExportedServices{"clusterwire.io", "v1alpha1", "exportedservices", true};
}  // namespace resources

struct ServiceSyncConfig {
  std::string cluster_id;
  std::string broker_namespace = "clusterwire-broker";
  std::chrono::milliseconds resync_period{std::chrono::seconds(60)};
};

// The broker object's name for one cluster's export of <ns>/<name>.
std::string exported_service_name(const std::string& cluster_id, const std::string& ns, const std::string& name);

class ServiceSync {
 public:
  // `peerings` is the operator's ClusterPeering informer (it must outlive this object); call
  // peerings_changed() when one of them changes.
  ServiceSync(ServiceSyncConfig config, kube::Client& local, kube::Client& broker, const kube::Informer& peerings,
              Clock& clock, log::Logger logger);
  ~ServiceSync();
  ServiceSync(const ServiceSync&) = delete;
  ServiceSync& operator=(const ServiceSync&) = delete;

  void start_informers();
  void stop();  // controllers and informers
  // While leading.
  void start_controllers(const kube::ReconcileObserver& observe);
  void stop_controllers();

  void peerings_changed();
  bool synced() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cw::op
