// The lab's components run as the Helm chart's ServiceAccounts, under the RBAC it renders
// (docs/rbac.md), so that a missing or excessive permission shows in the lab before it shows
// on a real cluster: `helm template` of charts/clusterwire per cluster (the broker cluster with
// its members), its ServiceAccounts, roles, bindings and member token Secrets applied with
// kubectl, and a kubeconfig per component with its ServiceAccount's token (a token Secret, as
// the chart's broker member tokens are made).
#pragma once

#include <string>

#include "cli/lab/layout.h"
#include "common/base/result.h"

namespace cw::lab {

// The release the lab renders: its name and namespace (where the Leases live).
inline constexpr const char* kChartRelease = "clusterwire";
inline constexpr const char* kChartNamespace = "kube-system";

// Renders and applies the chart's RBAC in every cluster and writes the components'
// kubeconfigs (component_kubeconfig). `helm` is a command that runs helm (scripts/helm.sh).
Result<void> apply_chart_rbac(const LabLayout& lab, const std::string& helm, const std::string& chart_dir);

// Where a component's kubeconfig is: component "operator", "node-agent", "dns", or "broker"
// (the operator's credentials on the broker cluster: a member token, or for the broker
// cluster itself the operator's own).
std::string component_kubeconfig(const LabLayout& lab, const ClusterLayout& c, const std::string& component);

}  // namespace cw::lab
