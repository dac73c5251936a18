#include "node-agent/tunnel_rules.h"

#include <gtest/gtest.h>

#include <sstream>

namespace cw::agent {
namespace {

using json = nlohmann::json;

net::Prefix P(const std::string& t) { return net::Prefix::parse(t).value(); }
std::vector<net::Prefix> Ps(std::initializer_list<const char*> list) {
  std::vector<net::Prefix> out;
  for (const char* t : list) out.push_back(P(t));
  return out;
}

// What the kernel would list for `rules`, in the shape of `nft -j list table inet clusterwire`:
// the chains, then the rules with their comments, and the sets' elements as nft prints them
// (a /32 or /128 as a bare address, anything else as {"prefix": ...}).
json listing_of(const TunnelRules& rules) {
  json out = json::array({{{"metainfo", {{"version", "1.0.6"}}}},
                          {{"table", {{"family", "inet"}, {"name", "clusterwire"}}}}});
  for (const auto& [name, list] : {std::pair{"remote_v4", &rules.remote_v4}, std::pair{"remote_v6", &rules.remote_v6}}) {
    json elems = json::array();
    for (const auto& p : *list) {
      if (p.length() == (p.address().is_v4() ? 32 : 128)) elems.push_back(p.address().to_string());
      else elems.push_back({{"prefix", {{"addr", p.address().to_string()}, {"len", p.length()}}}});
    }
    json set = {{"family", "inet"}, {"name", name}, {"table", "clusterwire"}, {"flags", {"interval"}}};
    if (!elems.empty()) set["elem"] = elems;
    out.push_back({{"set", set}});
  }
  // Rebuild the chains and tags from structure_of(): "chain NAME TYPE HOOK PRIO", "rule CHAIN TAG".
  std::vector<json> rules_json;
  for (const auto& line : structure_of(rules)) {
    std::istringstream in(line);
    std::string kind, name;
    in >> kind >> name;
    if (kind == "chain") {
      std::string type, hook;
      int prio = 0;
      in >> type >> hook >> prio;
      out.push_back({{"chain", {{"family", "inet"}, {"table", "clusterwire"}, {"name", name}, {"type", type}, {"hook", hook}, {"prio", prio}}}});
    } else {
      std::string tag;
      std::getline(in >> std::ws, tag);
      rules_json.push_back({{"rule", {{"family", "inet"}, {"table", "clusterwire"}, {"chain", name}, {"comment", tag}}}});
    }
  }
  for (auto& r : rules_json) out.push_back(r);
  return out;
}

TEST(TunnelRulesTest, SplitsFamiliesSortsAndDropsCoveredRanges) {
  auto r = make_tunnel_rules("cw0", Ps({"10.96.2.0/24", "fd00:20::/56", "10.241.0.0/16", "10.241.3.0/24", "fd00:10::/48"}),
                             true);
  EXPECT_EQ(r.remote_v4, Ps({"10.96.2.0/24", "10.241.0.0/16"}));
  EXPECT_EQ(r.remote_v6, Ps({"fd00:10::/48", "fd00:20::/56"}));
}

TEST(TunnelRulesTest, TheTableExemptsRemoteRangesFromSnatAndClampsMss) {
  const std::string t = render_tunnel_rules(make_tunnel_rules("cwab12c1n1", Ps({"10.241.0.0/16", "fd00:2::/48"}), 1420));
  // One transaction that replaces the table whether or not it exists.
  EXPECT_EQ(t.rfind("add table inet clusterwire\ndelete table inet clusterwire\ntable inet clusterwire {", 0), 0U) << t;
  EXPECT_NE(t.find("elements = { 10.241.0.0/16 }"), std::string::npos) << t;
  EXPECT_NE(t.find("elements = { fd00:2::/48 }"), std::string::npos) << t;
  EXPECT_NE(t.find("type nat hook postrouting priority srcnat - 1;"), std::string::npos) << t;
  EXPECT_NE(t.find("ip daddr @remote_v4 counter snat ip to ip saddr"), std::string::npos) << t;
  EXPECT_NE(t.find("ip6 daddr @remote_v6 counter snat ip6 to ip6 saddr"), std::string::npos) << t;
  // The MSS each family's headers leave in a 1420-byte tunnel, only ever lowered.
  EXPECT_NE(t.find("oifname \"cwab12c1n1\" meta nfproto ipv4 tcp flags syn / syn,rst tcp option maxseg size > 1380 counter "
                   "tcp option maxseg size set 1380"),
            std::string::npos) << t;
  EXPECT_NE(t.find("oifname \"cwab12c1n1\" meta nfproto ipv6 tcp flags syn / syn,rst tcp option maxseg size > 1360 counter "
                   "tcp option maxseg size set 1360"),
            std::string::npos) << t;
  EXPECT_NE(t.find("type filter hook output priority mangle"), std::string::npos) << t;
}

TEST(TunnelRulesTest, WithoutClampingThereIsOnlyTheNatChain) {
  const auto r = make_tunnel_rules("cw0", Ps({"10.241.0.0/16"}), 0);
  const std::string t = render_tunnel_rules(r);
  EXPECT_EQ(t.find("maxseg"), std::string::npos) << t;
  EXPECT_EQ(structure_of(r), (std::vector<std::string>{"chain postrouting nat postrouting 99",
                                                       "rule postrouting cw1 no-snat v4", "rule postrouting cw1 no-snat v6"}));
}

TEST(TunnelRulesTest, EmptySetsAreDeclaredWithoutElements) {
  const std::string t = render_tunnel_rules(make_tunnel_rules("cw0", {}, 1420));
  EXPECT_EQ(t.find("elements"), std::string::npos) << t;
  EXPECT_NE(t.find("set remote_v4 {"), std::string::npos);
}

TEST(TunnelRulesTest, ParsesTheKernelsListingBack) {
  const auto want = make_tunnel_rules("cw0", Ps({"10.241.0.0/16", "10.9.9.9/32", "fd00:2::/48", "fd00::1/128"}), 1420);
  const auto seen = parse_listing(listing_of(want));
  EXPECT_TRUE(seen.elements_readable);
  EXPECT_EQ(seen.remote_v4, want.remote_v4);
  EXPECT_EQ(seen.remote_v6, want.remote_v6);
  EXPECT_EQ(seen.structure, structure_of(want));
}

struct PlanCase {
  const char* name;
  std::vector<const char*> before;  // ranges in the table now (nullopt table when "absent")
  bool absent;
  std::vector<const char*> after;
  std::string want;  // "" nothing; "whole" the whole table; else the exact element script
};

TEST(TunnelRulesTest, PlansTheSmallestChange) {
  const std::vector<PlanCase> cases = {
      {"no table yet", {}, true, {"10.241.0.0/16"}, "whole"},
      {"equal", {"10.241.0.0/16", "fd00:2::/48"}, false, {"fd00:2::/48", "10.241.0.0/16"}, ""},
      {"a cluster joins",
       {"10.241.0.0/16"},
       false,
       {"10.241.0.0/16", "10.242.0.0/16", "10.96.3.0/24"},
       "add element inet clusterwire remote_v4 { 10.96.3.0/24, 10.242.0.0/16 }\n"},
      {"a cluster leaves",
       {"10.241.0.0/16", "10.242.0.0/16", "fd00:2::/48"},
       false,
       {"10.241.0.0/16"},
       "delete element inet clusterwire remote_v4 { 10.242.0.0/16 }\n"
       "delete element inet clusterwire remote_v6 { fd00:2::/48 }\n"},
      {"a range grows: deleted before the larger one is added",
       {"10.241.0.0/17"},
       false,
       {"10.241.0.0/16"},
       "delete element inet clusterwire remote_v4 { 10.241.0.0/17 }\n"
       "add element inet clusterwire remote_v4 { 10.241.0.0/16 }\n"},
      {"only IPv6 changes", {"10.241.0.0/16"}, false, {"10.241.0.0/16", "fd00:3::/48"},
       "add element inet clusterwire remote_v6 { fd00:3::/48 }\n"},
  };
  for (const auto& c : cases) {
    std::vector<net::Prefix> before, after;
    for (const char* t : c.before) before.push_back(P(t));
    for (const char* t : c.after) after.push_back(P(t));
    const auto desired = make_tunnel_rules("cw0", after, 1420);
    std::optional<ObservedRules> observed;
    if (!c.absent) observed = parse_listing(listing_of(make_tunnel_rules("cw0", before, 1420)));
    const std::string plan = plan_tunnel_rules(desired, observed);
    if (c.want == "whole") EXPECT_EQ(plan, render_tunnel_rules(desired)) << c.name;
    else EXPECT_EQ(plan, c.want) << c.name;
  }
}

TEST(TunnelRulesTest, AnythingButTheSetsDifferingReplacesTheWholeTable) {
  const auto desired = make_tunnel_rules("cw0", Ps({"10.241.0.0/16"}), 1420);
  const std::string whole = render_tunnel_rules(desired);

  auto renamed = listing_of(make_tunnel_rules("cw1", Ps({"10.241.0.0/16"}), 1420));  // another device
  EXPECT_EQ(plan_tunnel_rules(desired, parse_listing(renamed)), whole);

  auto flushed = listing_of(desired);  // someone flushed a chain
  flushed.erase(std::remove_if(flushed.begin(), flushed.end(), [](const json& j) { return j.contains("rule"); }),
                flushed.end());
  EXPECT_EQ(plan_tunnel_rules(desired, parse_listing(flushed)), whole);

  auto extra = listing_of(desired);  // someone added a rule of their own to our chain
  extra.push_back({{"rule", {{"chain", "postrouting"}, {"expr", json::array()}}}});
  EXPECT_EQ(plan_tunnel_rules(desired, parse_listing(extra)), whole);

  auto older = listing_of(make_tunnel_rules("cw0", Ps({"10.241.0.0/16"}), 0));  // clamping turned on
  EXPECT_EQ(plan_tunnel_rules(desired, parse_listing(older)), whole);

  auto other_mtu = listing_of(make_tunnel_rules("cw0", Ps({"10.241.0.0/16"}), 1320));  // the MTU changed
  EXPECT_EQ(plan_tunnel_rules(desired, parse_listing(other_mtu)), whole);

  auto ranged = listing_of(desired);  // an element nft prints as a range: not one we wrote
  for (auto& item : ranged) {
    if (item.contains("set") && item["set"]["name"] == "remote_v4") {
      item["set"]["elem"] = json::array({{{"range", {"10.241.0.0", "10.241.0.200"}}}});
    }
  }
  EXPECT_FALSE(parse_listing(ranged).elements_readable);
  EXPECT_EQ(plan_tunnel_rules(desired, parse_listing(ranged)), whole);

  EXPECT_EQ(plan_tunnel_rules(desired, parse_listing(json("garbage"))), whole);
}

TEST(TunnelRulesTest, ReversePathFilteringIsNeverStrictOnTheTunnel) {
  EXPECT_EQ(tunnel_rp_filter(0, 0), std::nullopt);
  EXPECT_EQ(tunnel_rp_filter(2, 0), std::nullopt);
  EXPECT_EQ(tunnel_rp_filter(0, 2), std::nullopt);
  EXPECT_EQ(tunnel_rp_filter(1, 0), 2);  // all=1: only a larger device value wins
  EXPECT_EQ(tunnel_rp_filter(0, 1), 2);
  EXPECT_EQ(tunnel_rp_filter(1, 2), std::nullopt);
}

}  // namespace
}  // namespace cw::agent
