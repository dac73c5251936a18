#include "node-agent/ingress_table.h"

#include <map>
#include <set>
#include <sstream>

namespace cw::agent {
namespace {

using Elements = std::map<std::string, std::set<std::string>>;  // set name → elements, as nft writes them

const char* proto_name(std::uint8_t p) { return p == kTcp ? "tcp" : p == kUdp ? "udp" : "sctp"; }

std::string ports(const PortRange& r) {
  return std::string(proto_name(r.protocol)) + " . " + std::to_string(r.first) +
         (r.last != r.first ? "-" + std::to_string(r.last) : "");
}

const char* suffix(net::Family f) { return f == net::Family::kIPv4 ? "_v4" : "_v6"; }
const char* addr_type(net::Family f) { return f == net::Family::kIPv4 ? "ipv4_addr" : "ipv6_addr"; }
const char* ip_kw(net::Family f) { return f == net::Family::kIPv4 ? "ip" : "ip6"; }

std::string chain_of(const std::string& cluster) { return "c_" + cluster; }  // IDs are RFC 1123 labels
std::string relay_chain_of(const std::string& cluster) { return "r_" + cluster; }

// Every set's elements. Sets that exist whatever the elements are listed even when empty, so
// that a plan can tell an emptied set from a missing one.
Elements elements_of(const IngressRules& rules) {
  Elements e;
  for (const auto f : {net::Family::kIPv4, net::Family::kIPv6}) {
    const std::string s = suffix(f);
    auto& exported = e["exported" + s];
    for (const auto& t : rules.exported) {
      if (t.address.family() == f) {
        exported.insert(t.address.to_string() + " . " + ports({t.protocol, t.port, t.port}));
      }
    }
    auto& exported_cluster = e["exported_cluster" + s];
    for (const auto& t : rules.exported_cluster) {
      if (t.address.family() == f) {
        exported_cluster.insert(t.address.to_string() + " . " + ports({t.protocol, t.port, t.port}));
      }
    }
    auto& relay = e["relay_from_cluster" + s];
    for (const auto& [id, c] : rules.clusters) {
      if (c.posture == IngressPosture::kAll) continue;  // nothing to judge: it falls through
      for (const auto& r : c.ranges) {
        if (r.family() == f) relay.insert(r.to_string() + " : jump " + relay_chain_of(id));
      }
    }
    auto& node = e["node_pods" + s];
    for (const auto& r : rules.node_pod_cidrs) {
      if (r.family() == f) node.insert(r.to_string());
    }
    auto& from = e["from_cluster" + s];
    for (const auto& [id, c] : rules.clusters) {
      for (const auto& r : c.ranges) {
        if (r.family() == f) from.insert(r.to_string() + " : jump " + chain_of(id));
      }
      const std::string base = chain_of(id);
      auto& any = e[base + "_any" + s];
      for (const auto& a : c.to_any) {
        if (a.family() == f) any.insert(a.to_string());
      }
      auto& to_ports = e[base + "_ports" + s];
      for (const auto& [a, r] : c.to_ports) {
        if (a.family() == f) to_ports.insert(a.to_string() + " . " + ports(r));
      }
      auto& from_any = e[base + "_from_any" + s];
      for (const auto& [src, dst] : c.from_to_any) {
        if (dst.family() == f) from_any.insert(src.to_string() + " . " + dst.to_string());
      }
      auto& from_ports = e[base + "_from_ports" + s];
      for (const auto& [src, dst, r] : c.from_to_ports) {
        if (dst.family() == f) from_ports.insert(src.to_string() + " . " + dst.to_string() + " . " + ports(r));
      }
    }
  }
  return e;
}

void declare(std::ostringstream& out, const std::string& name, const std::string& type, bool interval, bool map = false) {
  out << "  " << (map ? "map " : "set ") << name << " { type " << type << (map ? " : verdict" : "") << ";"
      << (interval ? " flags interval;" : "") << " }\n";
}

// The table without its elements: what must be rewritten whole when it changes.
std::string structure_of(const IngressRules& rules) {
  std::ostringstream out;
  out << "table inet " << kIngressTable << " {\n";
  for (const auto f : {net::Family::kIPv4, net::Family::kIPv6}) {
    const std::string s = suffix(f);
    const std::string a = addr_type(f);
    declare(out, "node_pods" + s, a, true);
    declare(out, "exported" + s, a + " . inet_proto . inet_service", false);
    declare(out, "from_cluster" + s, a, true, true);
    declare(out, "exported_cluster" + s, a + " . inet_proto . inet_service", false);
    declare(out, "relay_from_cluster" + s, a, true, true);
    for (const auto& [id, c] : rules.clusters) {
      const std::string base = chain_of(id);
      declare(out, base + "_any" + s, a, false);
      declare(out, base + "_ports" + s, a + " . inet_proto . inet_service", true);
      declare(out, base + "_from_any" + s, a + " . " + a, false);
      declare(out, base + "_from_ports" + s, a + " . " + a + " . inet_proto . inet_service", true);
    }
  }
  for (const auto& [id, c] : rules.clusters) {
    const std::string base = chain_of(id);
    out << "  chain " << base << " {\n";
    if (c.posture == IngressPosture::kAll) {
      out << "    counter accept comment \"" << id << ": ingress All\"\n";
    } else {
      for (const auto f : {net::Family::kIPv4, net::Family::kIPv6}) {
        const std::string s = suffix(f);
        const std::string ip = ip_kw(f);
        if (c.posture == IngressPosture::kExportedServices) {
          out << "    meta l4proto { tcp, udp, sctp } " << ip << " daddr . meta l4proto . th dport @exported" << s
              << " counter accept comment \"" << id << ": exported services\"\n";
        }
        out << "    " << ip << " daddr @" << base << "_any" << s << " counter accept comment \"" << id
            << ": policy, any port\"\n";
        out << "    meta l4proto { tcp, udp, sctp } " << ip << " daddr . meta l4proto . th dport @" << base << "_ports"
            << s << " counter accept comment \"" << id << ": policy ports\"\n";
        out << "    " << ip << " saddr . " << ip << " daddr @" << base << "_from_any" << s << " counter accept comment \""
            << id << ": policy from namespaces, any port\"\n";
        out << "    meta l4proto { tcp, udp, sctp } " << ip << " saddr . " << ip << " daddr . meta l4proto . th dport @"
            << base << "_from_ports" << s << " counter accept comment \"" << id << ": policy from namespaces, ports\"\n";
      }
      out << "    counter drop comment \"" << id << ": not allowed by ingress " << to_string(c.posture)
          << " or a ClusterSetIngressPolicy\"\n";
    }
    out << "  }\n";
  }
  for (const auto& [id, c] : rules.clusters) {
    if (c.posture == IngressPosture::kAll) continue;
    out << "  chain " << relay_chain_of(id) << " {\n";
    if (c.posture == IngressPosture::kExportedServices) {
      for (const auto f : {net::Family::kIPv4, net::Family::kIPv6}) {
        out << "    meta l4proto { tcp, udp, sctp } " << ip_kw(f) << " daddr . meta l4proto . th dport @exported_cluster"
            << suffix(f) << " counter accept comment \"" << id << ": exported services, translated here\"\n";
      }
    }
    out << "    counter drop comment \"" << id << ": a Service address translated here to another node's pod; ingress "
        << to_string(c.posture) << " admits " << (c.posture == IngressPosture::kExportedServices ? "only exported endpoints" : "none")
        << " this way\"\n"
        << "  }\n";
  }
  out << "  chain forward {\n"
      << "    type filter hook forward priority filter - 5; policy accept;\n"
      << "    ct state established,related accept comment \"a connection keeps the verdict of its start\"\n"
      << "    ct status dnat ip daddr != @node_pods_v4 ip saddr vmap @relay_from_cluster_v4\n"
      << "    ct status dnat ip6 daddr != @node_pods_v6 ip6 saddr vmap @relay_from_cluster_v6\n"
      << "    ip daddr != @node_pods_v4 accept comment \"not to a pod of this node: its own node judges it\"\n"
      << "    ip6 daddr != @node_pods_v6 accept comment \"not to a pod of this node: its own node judges it\"\n"
      << "    ip saddr vmap @from_cluster_v4\n"
      << "    ip6 saddr vmap @from_cluster_v6\n"
      << "  }\n"
      << "}\n";
  return out.str();
}

void add_elements(std::ostringstream& out, const std::string& op, const std::string& set,
                  const std::set<std::string>& items) {
  if (items.empty()) return;
  out << op << " element inet " << kIngressTable << " " << set << " {";
  bool first = true;
  for (const auto& i : items) {
    out << (first ? " " : ", ") << i;
    first = false;
  }
  out << " }\n";
}

}  // namespace

std::string render_ingress_table(const IngressRules& rules) {
  std::ostringstream out;
  // add, delete, create: one transaction that works whether or not the table is there.
  out << "add table inet " << kIngressTable << "\n"
      << "delete table inet " << kIngressTable << "\n"
      << structure_of(rules);
  for (const auto& [set, items] : elements_of(rules)) add_elements(out, "add", set, items);
  return out.str();
}

std::string plan_ingress_table(const IngressRules& desired, const std::optional<IngressRules>& applied) {
  if (!applied || structure_of(desired) != structure_of(*applied)) return render_ingress_table(desired);
  const Elements want = elements_of(desired);
  const Elements have = elements_of(*applied);
  std::ostringstream out;
  for (const auto& [set, items] : have) {
    std::set<std::string> gone;
    const auto& w = want.at(set);
    for (const auto& i : items) {
      if (!w.count(i)) gone.insert(i);
    }
    add_elements(out, "delete", set, gone);
  }
  for (const auto& [set, items] : want) {
    std::set<std::string> added;
    const auto& h = have.at(set);
    for (const auto& i : items) {
      if (!h.count(i)) added.insert(i);
    }
    add_elements(out, "add", set, added);
  }
  return out.str();
}

std::string delete_ingress_table() {
  return std::string("add table inet ") + kIngressTable + "\ndelete table inet " + kIngressTable + "\n";
}

}  // namespace cw::agent
