// `cwctl lab impair`: faults real networks have, injected into a running lab and removed again
// (docs/lab.md, "Faults"). The rules themselves come from world.h; this applies them and keeps
// the list in state.json. `down` needs nothing from here: every fault lives in a lab namespace.
#include <unistd.h>

#include <algorithm>
#include <sstream>

#include "cli/lab/cluster_api.h"
#include "cli/lab/gateways.h"
#include "cli/lab/lab.h"
#include "cli/lab/state.h"
#include "cli/lab/world.h"

namespace cw::lab {
namespace {

using std::chrono::seconds;

std::string kind_of(const std::string& impairment) { return impairment.substr(0, impairment.find(' ')); }

// The masquerade rule on every node of one cluster, added ("-A") or deleted ("-D"); a node that
// already is as asked is left alone, so a half-done earlier attempt is completed, not doubled.
Result<void> masquerade(const LabLayout& lab, const LabState& s, const std::string& cluster_id, const std::string& op) {
  for (const auto& n : lab.cluster(cluster_id)->nodes) {
    auto it = s.node_cidrs.find(n.node_name);
    const std::string block = it == s.node_cidrs.end() ? "" : family_block(it->second, false);
    if (block.empty()) return Error(ErrorCode::kNotFound, n.node_name + " has no IPv4 pod block in the lab's state");
    auto range = cluster_range_of(block);
    if (!range) return range.error();
    const bool present = in_netns(n.netns, masquerade_rule("-C", block, *range), seconds(10)).ok();
    if (present == (op == "-A")) continue;
    auto r = in_netns(n.netns, masquerade_rule(op, block, *range), seconds(10));
    if (!r.ok()) return Error(ErrorCode::kUnavailable, "iptables-legacy in " + n.netns + ": " + r.summary());
  }
  return ok_result();
}

// The `snat` fault's table on every node of one cluster, added or (on = false) removed.
Result<void> snat(const LabLayout& lab, const LabState& s, const std::string& cluster_id, bool on) {
  for (const auto& n : lab.cluster(cluster_id)->nodes) {
    auto it = s.node_cidrs.find(n.node_name);
    const std::string block = it == s.node_cidrs.end() ? "" : family_block(it->second, false);
    if (on && block.empty()) return Error(ErrorCode::kNotFound, n.node_name + " has no IPv4 pod block in the lab's state");
    auto r = in_netns(n.netns, {"nft", "-f", "-"}, seconds(10), snat_rules(n.wg_interface, on ? block : ""));
    if (!r.ok()) return Error(ErrorCode::kUnavailable, "nft in " + n.netns + ": " + r.summary() + " " + r.err);
  }
  return ok_result();
}

Result<void> apply(const LabLayout& lab, const LabState& s, const std::vector<std::string>& before,
                   const std::vector<std::string>& after) {
  for (const auto& what : before) {
    if (kind_of(what) == "snat" && std::find(after.begin(), after.end(), what) == after.end()) {
      if (auto r = snat(lab, s, what.substr(what.find(' ') + 1), false); !r) return r;
    }
  }
  for (const auto& what : after) {
    if (kind_of(what) == "snat" && std::find(before.begin(), before.end(), what) == before.end()) {
      if (auto r = snat(lab, s, what.substr(what.find(' ') + 1), true); !r) return r;
    }
  }
  for (const auto& what : before) {
    if (kind_of(what) == "masquerade" && std::find(after.begin(), after.end(), what) == after.end()) {
      if (auto r = masquerade(lab, s, what.substr(what.find(' ') + 1), "-D"); !r) return r;
    }
  }
  for (const auto& what : after) {
    if (kind_of(what) == "masquerade" && std::find(before.begin(), before.end(), what) == before.end()) {
      if (auto r = masquerade(lab, s, what.substr(what.find(' ') + 1), "-A"); !r) return r;
    }
  }
  auto r = in_netns(lab.underlay_netns, {"nft", "-f", "-"}, seconds(10), underlay_impairment_rules(lab, after, s.underlay_mtu));
  if (!r.ok()) return Error(ErrorCode::kUnavailable, "nft in " + lab.underlay_netns + ": " + r.summary() + " " + r.err);
  return ok_result();
}

}  // namespace

int lab_impair(const LabOptions& options, const std::vector<std::string>& words, bool clear, std::ostream& out,
               std::ostream& err) {
  if (geteuid() != 0) {
    err << "cwctl lab impair needs root: it changes rules inside the lab's namespaces (run it with sudo)\n";
    return 1;
  }
  auto loaded = load_lab(options.name);
  if (!loaded) {
    err << "cwctl lab impair: " << loaded.error().message() << "\n";
    return 1;
  }
  const auto& lab = loaded->lab;
  auto& s = loaded->state;
  // kill-gateway is no rule but an event: the node dies now; clearing it brings it back.
  if (!clear && !words.empty() && words[0] == "kill-gateway") {
    const ClusterLayout* c = words.size() == 2 ? lab.cluster(words[1]) : nullptr;
    if (!lab.nat) {
      err << "cwctl lab impair kill-gateway: only the nat world has gateways (cwctl lab up --world nat)\n";
      return 2;
    }
    if (c == nullptr) {
      err << "cwctl lab impair: kill-gateway CLUSTER (c1 ... c" << lab.clusters.size() << ")\n";
      return 2;
    }
    auto killed = kill_active_gateway(lab, s, *c);
    if (!killed) {
      err << "cwctl lab impair kill-gateway: " << killed.error().message() << "\n";
      return 1;
    }
    if (auto r = save_state(lab, s); !r) {
      err << "cwctl lab impair: " << r.error().message() << "\n";
      return 1;
    }
    out << "killed: " << *killed << " (the active gateway of " << c->id
        << "): agent and WireGuard gone, its traffic dropped; `cwctl lab impair --clear kill-gateway` brings it back\n";
    return 0;
  }
  if (clear && (words.empty() || words[0] == "kill-gateway") && !s.killed_gateways.empty()) {
    const auto killed = s.killed_gateways;
    if (auto r = revive_gateways(lab, s); !r) {
      err << "cwctl lab impair --clear: " << r.error().message() << "\n";
      return 1;
    }
    if (auto r = save_state(lab, s); !r) {
      err << "cwctl lab impair: " << r.error().message() << "\n";
      return 1;
    }
    for (const auto& n : killed) out << "revived: " << n << "\n";
    if (!words.empty()) return 0;
  }
  if (clear && !words.empty() && words[0] == "kill-gateway") {
    out << "no killed gateway to bring back\n";
    return 0;
  }
  const std::vector<std::string> before = s.impairments;
  std::vector<std::string> after = before;
  if (clear) {
    std::string one;
    if (words.size() > 1) {
      auto parsed = parse_impairment(lab, words);
      if (!parsed) {
        err << "cwctl lab impair --clear: " << parsed.error().message() << "\n";
        return 2;
      }
      one = *parsed;
    }
    std::erase_if(after, [&](const std::string& what) {
      return words.empty() || (words.size() == 1 && kind_of(what) == words[0]) || what == one;
    });
  } else if (words.empty()) {
    if (before.empty() && s.killed_gateways.empty()) out << "no faults in lab " << lab.name << "\n";
    for (const auto& what : before) out << what << "\n";
    for (const auto& n : s.killed_gateways) out << "killed gateway " << n << "\n";
    return 0;
  } else {
    auto parsed = parse_impairment(lab, words);
    if (!parsed) {
      err << "cwctl lab impair: " << parsed.error().message() << "\n";
      return 2;
    }
    if (std::find(after.begin(), after.end(), *parsed) != after.end()) {
      out << *parsed << ": already on\n";
      return 0;
    }
    after.push_back(*parsed);
  }
  if (auto r = apply(lab, s, before, after); !r) {
    err << "cwctl lab impair: " << r.error().message() << "\n";
    return 1;
  }
  s.impairments = after;
  if (auto r = save_state(lab, s); !r) {
    err << "cwctl lab impair: " << r.error().message() << "\n";
    return 1;
  }
  for (const auto& what : after) {
    if (std::find(before.begin(), before.end(), what) == before.end()) out << "on:      " << what << "\n";
  }
  for (const auto& what : before) {
    if (std::find(after.begin(), after.end(), what) == after.end()) out << "cleared: " << what << "\n";
  }
  if (before == after) out << "nothing to clear\n";
  return 0;
}

}  // namespace cw::lab
