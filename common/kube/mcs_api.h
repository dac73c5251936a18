// The Multi-Cluster Services API (KEP-1645, sigs.k8s.io/mcs-api v1alpha1) as clusterwire
// uses it on a member cluster: the resources, and the labels and annotation that tie an
// imported EndpointSlice to its ServiceImport. The operator writes these (operator/
// service_sync.h); the DNS server reads them (dns/api_source.h).
#pragma once

#include "common/kube/client.h"

namespace cw::kube::mcs {

inline const Resource kServiceExports{"multicluster.x-k8s.io", "v1alpha1", "serviceexports", true};
inline const Resource kServiceImports{"multicluster.x-k8s.io", "v1alpha1", "serviceimports", true};
inline constexpr const char* kApiVersion = "multicluster.x-k8s.io/v1alpha1";

// On every imported EndpointSlice (the KEP's labels).
inline constexpr const char* kServiceNameLabel = "multicluster.kubernetes.io/service-name";
inline constexpr const char* kSourceClusterLabel = "multicluster.kubernetes.io/source-cluster";
// Kubernetes' own: which controller owns a slice. Ours never carry kubernetes.io/service-name,
// so kube-proxy and the EndpointSlice controller leave them alone.
inline constexpr const char* kManagedByLabel = "endpointslice.kubernetes.io/managed-by";
inline constexpr const char* kManagedBy = "clusterwire.io/operator";
// On the ServiceImports the operator writes.
inline constexpr const char* kImportManagedByLabel = "app.kubernetes.io/managed-by";
inline constexpr const char* kImportManagedBy = "clusterwire";
// A ClusterSetIP import's slice has no endpoints: the source cluster's Service IPs, reached
// through the peering (which routes its service range), are this annotation, comma-separated.
inline constexpr const char* kServiceIpsAnnotation = "clusterwire.io/service-ips";

// The label a Service's own EndpointSlices carry (the EndpointSlice controller's).
inline constexpr const char* kKubeServiceNameLabel = "kubernetes.io/service-name";

}  // namespace cw::kube::mcs
