// The lab's stand-ins for what a real cluster runs beside clusterwire to make Services work
// (docs/lab.md, "Services"): kube-controller-manager's EndpointSlice controller and kube-proxy
// (in its nftables mode). Debian has neither. One `cwctl lab services CLUSTER` process per
// cluster polls the cluster's lab API server and keeps:
// - an EndpointSlice per selecting Service and address family, from the ready Pods its
//   selector matches (the Pods are written by `up`, as a kubelet would);
// - on every node, `table ip kube-proxy`: ClusterIP:port to a random ready endpoint, and
//   masquerade of Service traffic that does not come from the cluster's pod range (kube-proxy's
//   --cluster-cidr / detect-local), written the way kube-proxy's nftables mode writes it.
// The two functions below are the decisions, pure; lab_services() applies them.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace cw::lab {

inline constexpr const char* kSliceManager = "endpointslice-controller.k8s.io";

// The EndpointSlices the EndpointSlice controller would keep for these Services and Pods (List
// items): one per Service with a selector and per address family that its Pods have, named
// "<service>-<family>" ("web-ipv4"), labelled kubernetes.io/service-name and managed-by, with
// an endpoint per running Pod (ready as its Ready condition says) and the Service's ports
// resolved to the target ports. Services without a selector get none (someone else writes
// theirs, as the MCS import slices are).
std::vector<nlohmann::json> desired_endpoint_slices(const nlohmann::json& services, const nlohmann::json& pods);

// kube-proxy's nftables rules for IPv4 ClusterIP Services (as `nft -f` input that replaces
// `table ip kube-proxy`): the services map, a service chain per Service port (mark for
// masquerade unless the source is in `cluster_cidr`, then a random endpoint), an endpoint chain
// per ready endpoint (DNAT), and masquerade of marked packets at postrouting.
std::string kube_proxy_rules(const nlohmann::json& services, const nlohmann::json& slices,
                             const std::string& cluster_cidr);

}  // namespace cw::lab
