// The operator's view of the API objects it reads, parsed from JSON once, with the problems
// in them spelled out (a malformed object is reported, never a crash).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/base/result.h"
#include "common/ipam/clusterset.h"
#include "common/net/prefix.h"

namespace cw::op {

using nlohmann::json;

inline constexpr const char* kGroupVersion = "clusterwire.io/v1alpha1";

struct Claim {
  std::string name;
  net::Prefix cidr;
  std::string cluster_id;
  std::string purpose;  // "pods" or "services"
};
Result<Claim> parse_claim(const json& object);

struct ClusterSetView {
  ipam::ClusterSetSpec spec;
  int heartbeat_timeout_seconds = 60;
  std::string default_topology = "mesh";  // spec.defaultTopology: mesh or gateway
};
// kInvalidArgument listing every problem ("spec.ipv4.pools[0]: ..."), one per line.
Result<ClusterSetView> parse_clusterset(const json& object);

struct NodeEntry {
  std::string name;
  std::string endpoint;
  std::string public_key;
  std::vector<net::Prefix> pod_cidrs;
};

struct Advertisement {
  std::string cluster_id;
  std::vector<net::Prefix> pod_cidrs;
  std::vector<net::Prefix> service_cidrs;
  std::vector<NodeEntry> nodes;
  std::vector<NodeEntry> gateways;
  std::string topology = "mesh";  // "mesh" or "gateway" (docs/gateway.md)
  std::string active_gateway;     // gateway mode: the Lease's holder, a hint
  std::string dns_endpoint;
  std::vector<std::string> peers;
  std::string heartbeat;  // RFC 3339
};
Result<Advertisement> parse_advertisement(const json& object);
json to_json(const Advertisement& ad);  // the spec
json to_json(const NodeEntry& node);

// "10.0.0.0/8,fd00::/8" or a JSON list of strings → prefixes; kInvalidArgument names the bad one.
Result<std::vector<net::Prefix>> parse_prefixes(const json& list_or_string);

}  // namespace cw::op
