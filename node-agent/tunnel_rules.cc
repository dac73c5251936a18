#include "node-agent/tunnel_rules.h"

#include <algorithm>
#include <sstream>
#include <tuple>

namespace cw::agent {
namespace {

using json = nlohmann::json;

// Bump when a rule's text changes: a table carrying other tags is replaced whole.
constexpr const char* kTagVersion = "cw1";

struct Chain {
  const char* name;
  const char* type;
  const char* hook;
  const char* priority;  // as written
  int prio;              // as the kernel reports it
};

constexpr Chain kPostrouting{"postrouting", "nat", "postrouting", "srcnat - 1", 99};
constexpr Chain kForward{"forward", "filter", "forward", "mangle", -150};
constexpr Chain kOutput{"output", "filter", "output", "mangle", -150};

struct Rule {
  const Chain* chain;
  std::string text;  // without the comment
  std::string tag;
};

std::vector<Rule> rules_of(const TunnelRules& r) {
  std::vector<Rule> out;
  const std::string v = kTagVersion;
  out.push_back({&kPostrouting, "ip daddr @remote_v4 counter snat ip to ip saddr", v + " no-snat v4"});
  out.push_back({&kPostrouting, "ip6 daddr @remote_v6 counter snat ip6 to ip6 saddr", v + " no-snat v6"});
  if (r.mtu != 0) {
    // Counted only when they lower an MSS, so the counters say how many SYNs were clamped.
    for (const auto& [family, headers] : {std::pair{"ipv4", 40U}, std::pair{"ipv6", 60U}}) {
      const std::string mss = std::to_string(r.mtu > headers ? r.mtu - headers : 536);
      const std::string clamp = "oifname \"" + r.interface + "\" meta nfproto " + family +
                                " tcp flags syn / syn,rst tcp option maxseg size > " + mss +
                                " counter tcp option maxseg size set " + mss;
      const std::string tag = v + " mss " + family + " " + mss + " " + r.interface;
      out.push_back({&kForward, clamp, tag});
      out.push_back({&kOutput, clamp, tag});
    }
  }
  return out;
}

std::vector<const Chain*> chains_of(const TunnelRules& r) {
  if (r.mtu != 0) return {&kPostrouting, &kForward, &kOutput};
  return {&kPostrouting};
}

std::string chain_line(const std::string& name, const std::string& type, const std::string& hook, int prio) {
  return "chain " + name + " " + type + " " + hook + " " + std::to_string(prio);
}

std::vector<net::Prefix> normalize(std::vector<net::Prefix> in) {
  std::sort(in.begin(), in.end());  // a covering range sorts just before what it covers
  std::vector<net::Prefix> out;
  for (const auto& p : in) {
    if (!out.empty() && out.back().contains(p)) continue;
    out.push_back(p);
  }
  return out;
}

std::string elements(const std::vector<net::Prefix>& list) {
  std::string s;
  for (const auto& p : list) s += (s.empty() ? "" : ", ") + p.to_string();
  return s;
}

// What `a` has that `b` does not; both sorted.
std::vector<net::Prefix> minus(const std::vector<net::Prefix>& a, const std::vector<net::Prefix>& b) {
  std::vector<net::Prefix> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

std::optional<net::Prefix> element_prefix(const json& e) {
  if (e.is_string()) {  // a single address
    auto ip = net::IpAddress::parse(e.get<std::string>());
    if (!ip) return std::nullopt;
    auto p = net::Prefix::make(*ip, ip->is_v4() ? 32 : 128);
    return p ? std::optional(*p) : std::nullopt;
  }
  if (e.is_object() && e.contains("prefix") && e["prefix"].is_object()) {
    const json& p = e["prefix"];
    if (!p.contains("addr") || !p["addr"].is_string() || !p.contains("len") || !p["len"].is_number_integer()) return std::nullopt;
    auto ip = net::IpAddress::parse(p["addr"].get<std::string>());
    if (!ip) return std::nullopt;
    auto prefix = net::Prefix::make(*ip, p["len"].get<int>());
    return prefix ? std::optional(*prefix) : std::nullopt;
  }
  return std::nullopt;  // a range, or something newer nft prints: not ours
}

}  // namespace

TunnelRules make_tunnel_rules(std::string interface, const std::vector<net::Prefix>& remote_ranges, std::uint32_t mtu) {
  TunnelRules r;
  r.interface = std::move(interface);
  r.mtu = mtu;
  std::vector<net::Prefix> v4, v6;
  for (const auto& p : remote_ranges) (p.address().is_v4() ? v4 : v6).push_back(p);
  r.remote_v4 = normalize(std::move(v4));
  r.remote_v6 = normalize(std::move(v6));
  return r;
}

std::vector<std::string> structure_of(const TunnelRules& rules) {
  std::vector<std::string> out;
  const auto all = rules_of(rules);
  for (const Chain* c : chains_of(rules)) {
    out.push_back(chain_line(c->name, c->type, c->hook, c->prio));
    for (const auto& rule : all) {
      if (rule.chain == c) out.push_back("rule " + std::string(c->name) + " " + rule.tag);
    }
  }
  return out;
}

ObservedRules parse_listing(const json& listing) {
  ObservedRules o;
  std::vector<std::pair<std::string, std::vector<std::string>>> chains;  // in listing order
  auto chain = [&](const std::string& name) -> std::vector<std::string>* {
    for (auto& [n, rules] : chains) {
      if (n == name) return &rules;
    }
    return nullptr;
  };
  std::vector<std::string> chain_lines;
  if (!listing.is_array()) return o;
  for (const auto& item : listing) {
    if (!item.is_object()) continue;
    if (item.contains("chain") && item["chain"].is_object()) {
      const json& c = item["chain"];
      const std::string name = c.value("name", "");
      chain_lines.push_back(chain_line(name, c.value("type", "-"), c.value("hook", "-"), c.value("prio", 0)));
      chains.push_back({name, {}});
    } else if (item.contains("rule") && item["rule"].is_object()) {
      const json& r = item["rule"];
      if (auto* rules = chain(r.value("chain", ""))) rules->push_back(r.value("comment", "(untagged)"));
    } else if (item.contains("set") && item["set"].is_object()) {
      const json& s = item["set"];
      const std::string name = s.value("name", "");
      auto* target = name == "remote_v4" ? &o.remote_v4 : name == "remote_v6" ? &o.remote_v6 : nullptr;
      if (target == nullptr) {
        o.structure.push_back("set " + name);  // a set we never make: the table is not ours as it is
        continue;
      }
      for (const auto& e : s.value("elem", json::array())) {
        if (auto p = element_prefix(e)) target->push_back(*p);
        else o.elements_readable = false;
      }
      std::sort(target->begin(), target->end());
    }
  }
  for (std::size_t i = 0; i < chains.size(); ++i) {
    o.structure.push_back(chain_lines[i]);
    for (const auto& tag : chains[i].second) o.structure.push_back("rule " + chains[i].first + " " + tag);
  }
  return o;
}

std::string render_tunnel_rules(const TunnelRules& r) {
  std::ostringstream s;
  // "add" makes the delete succeed whether or not the table exists; all of it is one transaction.
  s << "add table " << kNftFamily << " " << kNftTable << "\n"
    << "delete table " << kNftFamily << " " << kNftTable << "\n"
    << "table " << kNftFamily << " " << kNftTable << " {\n";
  for (const auto& [name, type, list] : {std::tuple{"remote_v4", "ipv4_addr", &r.remote_v4},
                                         std::tuple{"remote_v6", "ipv6_addr", &r.remote_v6}}) {
    s << "  set " << name << " {\n    type " << type << "\n    flags interval\n";
    if (!list->empty()) s << "    elements = { " << elements(*list) << " }\n";
    s << "  }\n";
  }
  const auto all = rules_of(r);
  for (const Chain* c : chains_of(r)) {
    s << "  chain " << c->name << " {\n    type " << c->type << " hook " << c->hook << " priority " << c->priority
      << "; policy accept;\n";
    for (const auto& rule : all) {
      if (rule.chain == c) s << "    " << rule.text << " comment \"" << rule.tag << "\"\n";
    }
    s << "  }\n";
  }
  s << "}\n";
  return s.str();
}

std::string plan_tunnel_rules(const TunnelRules& desired, const std::optional<ObservedRules>& observed) {
  if (!observed || !observed->elements_readable || observed->structure != structure_of(desired)) {
    return render_tunnel_rules(desired);
  }
  std::ostringstream s;
  for (const auto& [name, want, have] : {std::tuple{"remote_v4", &desired.remote_v4, &observed->remote_v4},
                                         std::tuple{"remote_v6", &desired.remote_v6, &observed->remote_v6}}) {
    // Deletions first: a range that grows or shrinks is deleted and added in one transaction.
    const auto gone = minus(*have, *want), added = minus(*want, *have);
    if (!gone.empty()) s << "delete element " << kNftFamily << " " << kNftTable << " " << name << " { " << elements(gone) << " }\n";
    if (!added.empty()) s << "add element " << kNftFamily << " " << kNftTable << " " << name << " { " << elements(added) << " }\n";
  }
  return s.str();
}

std::string delete_tunnel_rules() {
  return std::string("add table ") + kNftFamily + " " + kNftTable + "\ndelete table " + kNftFamily + " " + kNftTable + "\n";
}

std::optional<int> tunnel_rp_filter(int all, int device) {
  if (std::max(all, device) != 1) return std::nullopt;  // off or loose already
  return 2;
}

}  // namespace cw::agent
