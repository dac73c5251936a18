#include "common/ipam/clusterset.h"

namespace cw::ipam {
namespace {

void validate_family(net::Family family, const FamilyPools& fp, const std::string& at,
                     std::vector<FieldError>& errors) {
  const int width = net::bit_width(family);
  const std::string fam = net::to_string(family);
  if (fp.pools.empty()) {
    errors.push_back({at + ".pools", "at least one " + fam + " pool is required"});
  }
  if (fp.cluster_prefix_length < 1 || fp.cluster_prefix_length > width) {
    errors.push_back({at + ".clusterPrefixLength",
                      "must be 1-" + std::to_string(width) + " for " + fam + ", got " +
                          std::to_string(fp.cluster_prefix_length)});
  }
  if (fp.node_prefix_length < fp.cluster_prefix_length || fp.node_prefix_length > width) {
    errors.push_back({at + ".nodePrefixLength",
                      "must be between clusterPrefixLength (" +
                          std::to_string(fp.cluster_prefix_length) + ") and " +
                          std::to_string(width) + ", got " +
                          std::to_string(fp.node_prefix_length)});
  }
  for (std::size_t i = 0; i < fp.pools.size(); ++i) {
    const auto& pool = fp.pools[i];
    const std::string field = at + ".pools[" + std::to_string(i) + "]";
    if (pool.family() != family) {
      errors.push_back({field, pool.to_string() + " is not an " + fam + " prefix"});
      continue;
    }
    if (pool.length() > fp.cluster_prefix_length) {
      errors.push_back({field, pool.to_string() + " is smaller than one cluster block (/" +
                                   std::to_string(fp.cluster_prefix_length) + ")"});
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (pool.overlaps(fp.pools[j])) {
        errors.push_back({field, pool.to_string() + " overlaps " + at + ".pools[" +
                                     std::to_string(j) + "] " + fp.pools[j].to_string()});
      }
    }
  }
}

}  // namespace

std::vector<FieldError> validate(const ClusterSetSpec& spec) {
  std::vector<FieldError> errors;
  if (!spec.ipv4 && !spec.ipv6) {
    errors.push_back({"", "neither ipv4 nor ipv6 pools are configured"});
  }
  if (spec.ipv4) validate_family(net::Family::kIPv4, *spec.ipv4, "ipv4", errors);
  if (spec.ipv6) validate_family(net::Family::kIPv6, *spec.ipv6, "ipv6", errors);
  return errors;
}

std::optional<std::string> check_dns_label(const std::string& value) {
  if (value.empty()) return "must not be empty";
  if (value.size() > 63) return "must be at most 63 characters";
  for (char c : value) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return "may contain only lower-case letters, digits and '-'";
  }
  if (value.front() == '-' || value.back() == '-') {
    return "must start and end with a letter or digit";
  }
  return std::nullopt;
}

}  // namespace cw::ipam
