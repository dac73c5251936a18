#include "cli/lab/world.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "common/net/prefix.h"

namespace cw::lab {

using nlohmann::json;

Result<Cni> parse_cni(const std::string& text) {
  if (text == "bird") return Cni::kBird;
  if (text == "vxlan") return Cni::kVxlan;
  if (text == "clusterwire") return Cni::kClusterwire;
  return Error(ErrorCode::kInvalidArgument, "--cni \"" + text + "\": expected bird, vxlan or clusterwire");
}

const char* cni_name(Cni cni) {
  switch (cni) {
    case Cni::kBird: return "bird";
    case Cni::kVxlan: return "vxlan";
    case Cni::kClusterwire: return "clusterwire";
  }
  return "?";
}

Result<std::string> cluster_range_of(const std::string& node_block) {
  auto block = net::Prefix::parse(node_block);
  if (!block) return block.error();
  // The block's first bits: the cluster's range holding it.
  const bool v4 = block->address().is_v4();
  const int width = v4 ? 32 : 128, length = v4 ? kClusterPrefixLength : kClusterPrefixLength6;
  const net::Uint128 host = (net::Uint128{1} << (width - length)) - 1;
  auto range = net::Prefix::make(net::IpAddress::from_bits(block->address().family(), block->address().bits() & ~host),
                                 length);
  if (!range) return range.error();
  return range->to_string();
}

std::string family_block(const std::string& annotation, bool v6) {
  std::istringstream in(annotation);
  for (std::string part; std::getline(in, part, ',');) {
    if (!part.empty() && (part.find(':') != std::string::npos) == v6) return part;
  }
  return "";
}

json bridge_config(Cni cni, const std::string& node_blocks, int underlay_mtu, const std::string& ipam_dir) {
  json ranges = json::array(), routes = json::array();
  for (const bool v6 : {false, true}) {
    const std::string block = family_block(node_blocks, v6);
    if (block.empty()) continue;
    ranges.push_back(json::array({{{"subnet", block}}}));
    routes.push_back({{"dst", v6 ? "::/0" : "0.0.0.0/0"}});
  }
  const int mtu = cni == Cni::kBird    ? underlay_mtu  // Calico without encapsulation: the host's MTU
                  : cni == Cni::kVxlan ? underlay_mtu - kVxlanOverhead
                                       : underlay_mtu - kWireGuardOverhead;
  return {{"cniVersion", "1.0.0"},
          {"name", "cwlab"},
          {"type", "bridge"},
          {"bridge", "cni0"},
          {"isGateway", true},
          {"ipMasq", cni == Cni::kBird},
          // A pod reaching a Service whose endpoint is itself: the bridge must send the frame back
          // out of the port it came in on (kubelet's hairpin-veth, every CNI's default).
          {"hairpinMode", true},
          {"mtu", mtu},
          {"ipam",
           {{"type", "host-local"},
            {"ranges", ranges},
            {"routes", routes},
            {"dataDir", ipam_dir}}}};
}

std::string bird_config(const ClusterLayout& cluster, const NodeLayout& node,
                        const std::map<std::string, std::string>& node_blocks) {
  std::ostringstream s;
  s << "# bird2 on " << node.node_name << ", as Calico's BIRD: iBGP full mesh within " << cluster.id << "\n"
    << "log stderr all;\n"
    << "router id " << node.underlay_ip << ";\n"
    << "protocol device { scan time 10; }\n";
  for (const bool v6 : {false, true}) {
    const std::string block = family_block(node_blocks.at(node.node_name), v6);
    if (block.empty()) continue;
    const std::string f = v6 ? "ipv6" : "ipv4", sfx = v6 ? "6" : "";
    const std::string& local = v6 ? node.underlay_ip6 : node.underlay_ip;
    s << "protocol static blocks" << sfx << " {\n  " << f << ";\n  route " << block << " blackhole;\n}\n"
      << "protocol kernel kernel_" << (v6 ? "v6" : "v4") << " {\n  " << f
      << " { import none; export filter { if source = RTS_BGP then accept; reject; }; };\n}\n"
      << "template bgp mesh" << sfx << " {\n  local " << local << " as " << kBgpAs << ";\n  direct;\n"
      << "  connect delay time 1;\n  connect retry time 2;\n  error wait time 1, 10;\n"
      << "  " << f << " { import all; export where proto = \"blocks" << sfx << "\"; next hop self; };\n}\n";
    for (const auto& other : cluster.nodes) {
      if (other.node_name == node.node_name) continue;
      s << "protocol bgp n" << other.index << (v6 ? "v6" : "") << " from mesh" << sfx << " { neighbor "
        << (v6 ? other.underlay_ip6 : other.underlay_ip) << " as " << kBgpAs << "; }\n";
    }
  }
  return s.str();
}

std::string vtep_mac(const NodeLayout& node) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "02:c0:ff:ee:%02x:%02x", node.cluster, node.index);
  return buf;
}

namespace {
// flannel gives flannel.1 the network address of the node's block (10.240.1.0 of 10.240.1.0/24).
std::string vtep_address(const std::string& block) { return block.substr(0, block.find('/')); }
}  // namespace

std::vector<std::vector<std::string>> vxlan_commands(const ClusterLayout& cluster, const NodeLayout& node,
                                                     const std::map<std::string, std::string>& node_blocks,
                                                     int underlay_mtu) {
  std::vector<std::vector<std::string>> cmds = {
      {"ip", "link", "add", "flannel.1", "address", vtep_mac(node), "type", "vxlan", "id", "1", "local",
       node.underlay_ip, "dev", "eth0", "dstport", std::to_string(kVxlanPort), "nolearning"},
      {"ip", "link", "set", "flannel.1", "mtu", std::to_string(underlay_mtu - kVxlanOverhead), "up"},
  };
  for (const bool v6 : {false, true}) {
    const std::string block = family_block(node_blocks.at(node.node_name), v6);
    if (!block.empty()) cmds.push_back({"ip", "addr", "add", vtep_address(block) + (v6 ? "/128" : "/32"), "dev", "flannel.1"});
  }
  for (const auto& other : cluster.nodes) {
    if (other.node_name == node.node_name) continue;
    cmds.push_back({"bridge", "fdb", "append", vtep_mac(other), "dev", "flannel.1", "dst", other.underlay_ip});
    for (const bool v6 : {false, true}) {
      const std::string block = family_block(node_blocks.at(other.node_name), v6);
      if (block.empty()) continue;
      const std::string vtep = vtep_address(block);
      cmds.push_back({"ip", "neigh", "replace", vtep, "lladdr", vtep_mac(other), "dev", "flannel.1", "nud", "permanent"});
      cmds.push_back({"ip", "route", "replace", block, "via", vtep, "dev", "flannel.1", "onlink"});
    }
  }
  return cmds;
}

std::string flannel_masquerade_rules(const std::string& cluster_range, const std::string& node_block) {
  const std::string& c = cluster_range;
  const std::string tag = " -m comment --comment \"flanneld masq\"";
  const std::string multicast = c.find(':') == std::string::npos ? "224.0.0.0/4" : "ff00::/8";
  std::ostringstream s;
  s << "*nat\n:FLANNEL-POSTRTG - [0:0]\n"
    << "-A POSTROUTING" << tag << " -j FLANNEL-POSTRTG\n"
    << "-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000" << tag << " -j RETURN\n"
    << "-A FLANNEL-POSTRTG -s " << c << " -d " << c << tag << " -j RETURN\n"
    << "-A FLANNEL-POSTRTG ! -s " << c << " -d " << node_block << tag << " -j RETURN\n"
    << "-A FLANNEL-POSTRTG -s " << c << " ! -d " << multicast << tag << " -j MASQUERADE --random-fully\n"
    << "-A FLANNEL-POSTRTG ! -s " << c << " -d " << c << tag << " -j MASQUERADE --random-fully\n"
    << "COMMIT\n";
  return s.str();
}

}  // namespace cw::lab

namespace cw::lab {

Result<std::string> parse_impairment(const LabLayout& lab, const std::vector<std::string>& words) {
  auto cluster = [&](const std::string& id) -> Result<std::string> {
    const auto* c = lab.cluster(id);
    if (c == nullptr) return Error(ErrorCode::kInvalidArgument, "no cluster \"" + id + "\" in lab " + lab.name);
    return c->id;
  };
  if (words.size() == 1 && words[0] == "drop-icmp-frag") return words[0];
  if (words.size() == 3 && words[0] == "partition") {
    auto a = cluster(words[1]), b = cluster(words[2]);
    if (!a) return a.error();
    if (!b) return b.error();
    if (*a == *b) return Error(ErrorCode::kInvalidArgument, "partition: two different clusters");
    return "partition " + std::min(*a, *b) + " " + std::max(*a, *b);
  }
  if (words.size() == 2 && (words[0] == "masquerade" || words[0] == "snat")) {
    auto c = cluster(words[1]);
    if (!c) return c.error();
    return words[0] + " " + *c;
  }
  if (words.size() == 4 && words[0] == "loss") {
    auto a = cluster(words[1]), b = cluster(words[2]);
    if (!a) return a.error();
    if (!b) return b.error();
    if (*a == *b) return Error(ErrorCode::kInvalidArgument, "loss: two different clusters");
    const std::string& pct = words[3];
    if (pct.empty() || pct.size() > 2 || pct.find_first_not_of("0123456789") != std::string::npos || pct == "0") {
      return Error(ErrorCode::kInvalidArgument, "loss: a percentage from 1 to 99, got \"" + pct + "\"");
    }
    return "loss " + std::min(*a, *b) + " " + std::max(*a, *b) + " " + std::to_string(std::stoi(pct));
  }
  if (words.size() == 3 && words[0] == "mtu-black-hole") {
    auto a = cluster(words[1]), b = cluster(words[2]);
    if (!a) return a.error();
    if (!b) return b.error();
    if (*a == *b) return Error(ErrorCode::kInvalidArgument, "mtu-black-hole: two different clusters");
    return "mtu-black-hole " + std::min(*a, *b) + " " + std::max(*a, *b);
  }
  return Error(ErrorCode::kInvalidArgument,
               "expected one of: drop-icmp-frag | partition CLUSTER CLUSTER | masquerade CLUSTER | snat CLUSTER | "
               "mtu-black-hole CLUSTER CLUSTER | loss CLUSTER CLUSTER PERCENT");
}

std::string underlay_impairment_rules(const LabLayout& lab, const std::vector<std::string>& impairments,
                                      int underlay_mtu) {
  // Where a cluster's WireGuard traffic shows on the underlay: its nodes, or in the nat world
  // its router (every port: the gateways' traffic is masqueraded and forwarded there).
  auto addresses = [&](const std::string& id) {
    if (lab.nat) return lab.cluster(id)->router_ip;
    std::string s;
    for (const auto& n : lab.cluster(id)->nodes) s += (s.empty() ? "" : ", ") + n.underlay_ip;
    return s;
  };
  const std::string wireguard = lab.nat ? "meta l4proto udp" : "udp dport " + std::to_string(kWireGuardPort);
  std::ostringstream s;
  s << "add table bridge cwlab_impair\ndelete table bridge cwlab_impair\n"
    << "table bridge cwlab_impair {\n  chain forward {\n    type filter hook forward priority 0; policy accept;\n";
  for (const auto& what : impairments) {
    std::istringstream in(what);
    std::string kind, a, b, pct;
    in >> kind >> a >> b >> pct;
    if (kind == "drop-icmp-frag") {
      s << "    icmp type destination-unreachable icmp code frag-needed counter drop comment \"" << what << "\"\n"
        << "    icmpv6 type packet-too-big counter drop comment \"" << what << "\"\n";
    } else if (kind == "loss" && lab.cluster(a) && lab.cluster(b)) {
      // Random loss of the WireGuard packets between the clusters, each way on its own.
      for (const auto& [from, to] : {std::pair{a, b}, std::pair{b, a}}) {
        s << "    ip saddr { " << addresses(from) << " } ip daddr { " << addresses(to) << " } " << wireguard
          << " numgen random mod 100 < " << pct << " counter drop comment \"" << what << "\"\n";
      }
    } else if (kind == "mtu-black-hole" && lab.cluster(a) && lab.cluster(b)) {
      // A hop whose MTU is 100 bytes below the links' and that sends no ICMP: larger frames
      // vanish (the nodes' links say more, so nothing tells them).
      for (const auto& [from, to] : {std::pair{a, b}, std::pair{b, a}}) {
        s << "    ip saddr { " << addresses(from) << " } ip daddr { " << addresses(to) << " } meta length > "
          << underlay_mtu - 100
          << " counter drop comment \"" << what << "\"\n";
      }
    } else if (kind == "partition" && lab.cluster(a) && lab.cluster(b)) {
      for (const auto& [from, to] : {std::pair{a, b}, std::pair{b, a}}) {
        s << "    ip saddr { " << addresses(from) << " } ip daddr { " << addresses(to) << " } " << wireguard
          << " counter drop comment \"" << what << "\"\n";
      }
    }
  }
  s << "  }\n}\n";
  return s.str();
}

std::string snat_rules(const std::string& wg_interface, const std::string& node_block) {
  std::ostringstream s;
  s << "add table ip cwlab_snat\ndelete table ip cwlab_snat\n";
  auto block = net::Prefix::parse(node_block);
  if (node_block.empty() || !block) return s.str();
  const auto to = net::IpAddress::from_bits(net::Family::kIPv4, block->address().bits() + kSnatHost);
  s << "table ip cwlab_snat {\n  chain postrouting {\n    type nat hook postrouting priority srcnat - 50; policy accept;\n"
    << "    oifname \"" << wg_interface << "\" ip saddr " << node_block << " counter snat to " << to.to_string()
    << " comment \"cwlab impair snat\"\n  }\n}\n";
  return s.str();
}

std::vector<std::string> masquerade_rule(const std::string& op, const std::string& node_block,
                                         const std::string& cluster_range) {
  return {"iptables-legacy", "-t", "nat", op, "POSTROUTING", "-s", node_block, "!", "-d", cluster_range,
          "-m", "comment", "--comment", "cwlab impair masquerade", "-j", "MASQUERADE"};
}

std::string nat_router_rules(const ClusterLayout& c) {
  std::string forwards;
  for (const auto& n : c.nodes) {
    if (!n.gateway) continue;
    const std::string port = n.public_endpoint.substr(n.public_endpoint.rfind(':') + 1);
    forwards += "    iifname \"eth0\" udp dport " + port + " dnat to " + n.underlay_ip + ":" + std::to_string(kWireGuardPort) + "\n";
  }
  return "table ip cwlab_router\n"
         "delete table ip cwlab_router\n"
         "table ip cwlab_router {\n"
         "  chain prerouting {\n"
         "    type nat hook prerouting priority dstnat; policy accept;\n" +
         forwards +
         "  }\n"
         "  chain postrouting {\n"
         "    type nat hook postrouting priority srcnat; policy accept;\n"
         "    oifname \"eth0\" ip saddr " + std::string(kNatNodeSubnet) + " masquerade\n"
         "  }\n"
         "  chain forward {\n"
         "    type filter hook forward priority filter; policy drop;\n"
         "    iifname \"" + std::string(kNatBridge) + "\" accept\n"
         "    ct state established,related accept\n"
         "    ct status dnat accept\n"
         "  }\n"
         "}\n";
}

}  // namespace cw::lab
