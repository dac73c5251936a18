// Reads the view of cli/mesh/mesh.h from real clusters: kubeconfig contexts, as kubectl takes
// them (docs/cwctl.md).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "cli/mesh/mesh.h"

namespace cw::mesh {

struct FetchOptions {
  // Files as $KUBECONFIG lists them (':'-separated); empty: --kubeconfig's default order
  // ($KUBECONFIG, in-cluster, ~/.kube/config).
  std::string kubeconfig;
  // The member clusters' contexts; empty: the current context only.
  std::vector<std::string> contexts;
  // The broker's context; empty: the first of `contexts` whose API holds advertisements.
  std::string broker_context;
  std::string broker_namespace = "clusterwire-broker";
  std::chrono::milliseconds timeout{std::chrono::seconds(10)};
};

// A cluster that cannot be read is in the view with its error (diagnose reports it); an error
// is returned only when no kubeconfig can be loaded at all.
Result<MeshView> fetch(const FetchOptions& options);

}  // namespace cw::mesh
