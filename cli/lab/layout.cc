#include "cli/lab/layout.h"

#include <cstdint>
#include <cstdio>
#include <regex>

namespace cw::lab {

Result<void> validate_name(const std::string& name) {
  static const std::regex re("[a-z][a-z0-9]{0,11}");
  if (!std::regex_match(name, re)) {
    return Error(ErrorCode::kInvalidArgument,
                 "lab name \"" + name + "\": use a lowercase letter then up to 11 lowercase letters or digits");
  }
  return ok_result();
}

std::string interface_prefix(const std::string& lab) {
  // FNV-1a, folded to 24 bits: "cw" + 6 hex digits + "c<i>n<j>" is 12 characters, within the
  // 15 of an interface name, and keeps two labs' UAPI sockets (/var/run/wireguard/<if>.sock,
  // shared by all namespaces) apart. A collision is still possible (one in 16 million pairs):
  // down removes only sockets nobody listens on (down.cc), and up refuses an existing one.
  std::uint32_t h = 2166136261u;
  for (char ch : lab) h = (h ^ static_cast<unsigned char>(ch)) * 16777619u;
  char buf[8];
  std::snprintf(buf, sizeof buf, "%06x", static_cast<unsigned>((h ^ (h >> 24)) & 0xffffffu));
  return std::string("cw") + buf;
}

std::string state_dir_for(const std::string& lab) { return std::string(kStateRoot) + "/" + lab; }

Result<LabLayout> make_layout(const std::string& name, int clusters, int nodes, bool nat, int gateways) {
  if (auto r = validate_name(name); !r) return r.error();
  if (clusters < 2 || clusters > kMaxClusters) {
    return Error(ErrorCode::kInvalidArgument, "--clusters must be 2 to " + std::to_string(kMaxClusters));
  }
  if (nodes < 1 || nodes > kMaxNodes) {
    return Error(ErrorCode::kInvalidArgument, "--nodes must be 1 to " + std::to_string(kMaxNodes));
  }
  if (nat && (gateways < 1 || gateways > nodes)) {
    return Error(ErrorCode::kInvalidArgument, "--gateways must be 1 to the number of nodes (" + std::to_string(nodes) + ")");
  }
  if (!nat && gateways != 0) return Error(ErrorCode::kInvalidArgument, "--gateways needs --world nat");
  LabLayout lab;
  lab.name = name;
  lab.nat = nat;
  lab.gateways = gateways;
  lab.underlay_netns = name + "-underlay";
  lab.state_dir = state_dir_for(name);
  lab.interface_prefix = interface_prefix(name);
  for (int c = 1; c <= clusters; ++c) {
    ClusterLayout cl;
    cl.index = c;
    cl.id = "c" + std::to_string(c);
    cl.service_cidr = "10.96." + std::to_string(c) + ".0/24";
    cl.api_port = kFirstApiPort + c - 1;
    if (nat) {
      cl.router_netns = name + "-" + cl.id + "-rt";
      cl.router_ip = "192.168.77." + std::to_string(100 + c);
    }
    for (int n = 1; n <= nodes; ++n) {
      NodeLayout nl;
      nl.cluster = c;
      nl.index = n;
      const std::string cn = "c" + std::to_string(c) + "n" + std::to_string(n);
      nl.node_name = cl.id + "-n" + std::to_string(n);
      nl.netns = name + "-" + nl.node_name;
      nl.pod_netns = nl.netns + "-pod";
      nl.pod_name = nl.node_name + "-pod";
      // In the nat world every cluster has the same node addresses: only its router tells them apart.
      nl.underlay_ip = nat ? "172.31.0." + std::to_string(10 + n) : "192.168.77." + std::to_string(10 * c + n);
      nl.underlay_ip6 = nat ? "fd00:31::" + std::to_string(10 + n) : "fd00:77::" + std::to_string(10 * c + n);
      if (nat && n <= gateways) {
        nl.gateway = true;
        nl.public_endpoint = cl.router_ip + ":" + std::to_string(kGatewayPublicPortBase + n);
      }
      nl.underlay_veth = cn;
      nl.wg_interface = lab.interface_prefix + cn;
      cl.nodes.push_back(nl);
    }
    lab.clusters.push_back(cl);
  }
  return lab;
}

const ClusterLayout* LabLayout::cluster(const std::string& id_or_index) const {
  for (const auto& c : clusters) {
    if (c.id == id_or_index || std::to_string(c.index) == id_or_index) return &c;
  }
  return nullptr;
}

bool is_lab_netns(const std::string& lab, const std::string& netns) {
  if (netns == lab + "-underlay") return true;
  static const std::regex node_re("-c[1-9]-(n[1-9](-pod)?|rt)");
  return netns.size() > lab.size() && netns.compare(0, lab.size(), lab) == 0 &&
         std::regex_match(netns.substr(lab.size()), node_re);
}

bool is_lab_socket(const std::string& lab, const std::string& file_name) {
  static const std::regex sock_re("c[1-9]n[1-9]\\.sock");
  const std::string prefix = interface_prefix(lab);
  return file_name.size() > prefix.size() && file_name.compare(0, prefix.size(), prefix) == 0 &&
         std::regex_match(file_name.substr(prefix.size()), sock_re);
}

}  // namespace cw::lab
