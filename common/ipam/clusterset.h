// The address plan of a clusterset: the ClusterSet spec (pools and prefix lengths per
// family) and its validation. The same types back the ClusterSet custom resource and the
// `cwctl plan` input file, so both are validated by the same rules.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/net/prefix.h"

namespace cw::ipam {

// One family's pools and the block sizes handed out from them.
struct FamilyPools {
  std::vector<net::Prefix> pools;
  int cluster_prefix_length = 0;  // a cluster's pod block
  int node_prefix_length = 0;     // a node's block inside its cluster's block
};

struct ClusterSetSpec {
  std::optional<FamilyPools> ipv4;
  std::optional<FamilyPools> ipv6;

  const std::optional<FamilyPools>& pools_for(net::Family family) const {
    return family == net::Family::kIPv4 ? ipv4 : ipv6;
  }
};

// A validation failure at a field, named by its path in the API ("ipv4.pools[1]",
// "clusters[2].id") so that a loader can point at the line it came from.
struct FieldError {
  std::string field;
  std::string message;
};

std::vector<FieldError> validate(const ClusterSetSpec& spec);

// RFC 1123 label, as Kubernetes validates names of this kind: 1-63 characters of [a-z0-9-],
// starting and ending alphanumeric. Returns what is wrong, or nothing.
std::optional<std::string> check_dns_label(const std::string& value);

}  // namespace cw::ipam
