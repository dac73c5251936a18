// The exported zone's answers, rule by rule (MCS DNS specification, RFC 2308).
#include "dns/zone.h"

#include <gtest/gtest.h>

namespace cw::dns {
namespace {

net::IpAddress ip(const std::string& t) { return net::IpAddress::parse(t).value(); }

std::string text(const ResourceRecord& rr) {
  std::string s = rr.name.to_string() + " ";
  if (const auto* a = std::get_if<A>(&rr.data)) {
    return s + "A " + std::to_string(a->address[0]) + "." + std::to_string(a->address[1]) + "." +
           std::to_string(a->address[2]) + "." + std::to_string(a->address[3]);
  }
  if (std::holds_alternative<AAAA>(rr.data)) return s + "AAAA";
  if (const auto* srv = std::get_if<SRV>(&rr.data)) return s + "SRV " + std::to_string(srv->port) + " " + srv->target.to_string();
  if (const auto* txt = std::get_if<TXT>(&rr.data)) return s + "TXT " + txt->strings.at(0);
  if (std::holds_alternative<SOA>(rr.data)) return s + "SOA";
  if (std::holds_alternative<NS>(rr.data)) return s + "NS";
  return s + "?";
}

struct Case {
  std::string qname;
  RType type;
  Rcode rcode;
  std::vector<std::string> answers;  // sorted
  bool soa_in_authority;
  friend void PrintTo(const Case& c, std::ostream* os) { *os << c.qname << " " << static_cast<int>(c.type); }
};

ZoneSnapshot snapshot() {
  ZoneSnapshot s;
  s.local_cluster_id = "east";
  // web: ClusterSetIP, exported by west and north; north's peering is not Connected.
  s.services.push_back({"web", "default", false, {{"http", "TCP", 80}, {"", "TCP", 8080}},
                        {{"west", true, {ip("10.112.0.10")}, {}}, {"north", false, {ip("10.113.0.10")}, {}}}});
  // db: headless in west, with hostnames; one endpoint not ready.
  s.services.push_back({"db", "data", true, {{"pg", "TCP", 5432}},
                        {{"west", true, {}, {{{ip("10.80.1.5")}, "db-0", true}, {{ip("10.80.2.6")}, "db-1", true},
                                             {{ip("10.80.3.7")}, "db-2", false}, {{ip("10.80.4.8")}, "", true}}}}});
  // api: exported here and in west: only ours is given.
  s.services.push_back({"api", "default", false, {}, {{"west", true, {ip("10.112.0.20")}, {}}, {"east", true, {ip("10.96.0.20")}, {}}}});
  // gone: only an unreachable cluster exports it.
  s.services.push_back({"gone", "default", false, {}, {{"north", false, {ip("10.113.0.30")}, {}}}});
  return s;
}

class ZoneTest : public testing::TestWithParam<Case> {};

TEST_P(ZoneTest, Answers) {
  ServiceZone zone;
  zone.update(snapshot());
  const auto& c = GetParam();
  Answer a = zone.lookup({Name::parse(c.qname), static_cast<std::uint16_t>(c.type), kClassIN});
  EXPECT_EQ(static_cast<int>(a.rcode), static_cast<int>(c.rcode));
  std::vector<std::string> got;
  for (const auto& rr : a.answers) got.push_back(text(rr));
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, c.answers);
  const bool soa = !a.authority.empty() && std::holds_alternative<SOA>(a.authority[0].data);
  EXPECT_EQ(soa, c.soa_in_authority);
  if (c.rcode != Rcode::kRefused) {
    EXPECT_TRUE(a.authoritative);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Rules, ZoneTest,
    testing::Values(
        Case{"clusterset.local", RType::kSOA, Rcode::kNoError, {"clusterset.local. SOA"}, false},
        Case{"clusterset.local", RType::kNS, Rcode::kNoError, {"clusterset.local. NS"}, false},
        Case{"dns-version.clusterset.local", RType::kTXT, Rcode::kNoError, {"dns-version.clusterset.local. TXT 1.0.0"}, false},
        Case{"web.default.svc.clusterset.local", RType::kA, Rcode::kNoError, {"web.default.svc.clusterset.local. A 10.112.0.10"}, false},
        // The query's case comes back as asked.
        Case{"WeB.DeFaUlT.svc.clusterset.local", RType::kA, Rcode::kNoError, {"WeB.DeFaUlT.svc.clusterset.local. A 10.112.0.10"}, false},
        Case{"web.default.svc.clusterset.local", RType::kAAAA, Rcode::kNoError, {}, true},  // NODATA
        Case{"_http._tcp.web.default.svc.clusterset.local", RType::kSRV, Rcode::kNoError,
             {"_http._tcp.web.default.svc.clusterset.local. SRV 80 web.default.svc.clusterset.local."}, false},
        Case{"_tcp.web.default.svc.clusterset.local", RType::kA, Rcode::kNoError, {}, true},  // empty non-terminal
        Case{"svc.clusterset.local", RType::kA, Rcode::kNoError, {}, true},                  // QNAME minimisation
        Case{"default.svc.clusterset.local", RType::kA, Rcode::kNoError, {}, true},
        Case{"nope.default.svc.clusterset.local", RType::kA, Rcode::kNXDomain, {}, true},
        Case{"db.data.svc.clusterset.local", RType::kA, Rcode::kNoError,
             {"db.data.svc.clusterset.local. A 10.80.1.5", "db.data.svc.clusterset.local. A 10.80.2.6",
              "db.data.svc.clusterset.local. A 10.80.4.8"}, false},
        Case{"db-0.west.db.data.svc.clusterset.local", RType::kA, Rcode::kNoError,
             {"db-0.west.db.data.svc.clusterset.local. A 10.80.1.5"}, false},
        Case{"db-2.west.db.data.svc.clusterset.local", RType::kA, Rcode::kNXDomain, {}, true},  // not ready
        // <clusterid>.<svc>... has no records (the spec forbids them): only an empty non-terminal.
        Case{"west.db.data.svc.clusterset.local", RType::kA, Rcode::kNoError, {}, true},
        Case{"_pg._tcp.db.data.svc.clusterset.local", RType::kSRV, Rcode::kNoError,
             {"_pg._tcp.db.data.svc.clusterset.local. SRV 5432 db-0.west.db.data.svc.clusterset.local.",
              "_pg._tcp.db.data.svc.clusterset.local. SRV 5432 db-1.west.db.data.svc.clusterset.local."}, false},
        Case{"api.default.svc.clusterset.local", RType::kA, Rcode::kNoError, {"api.default.svc.clusterset.local. A 10.96.0.20"}, false},
        Case{"gone.default.svc.clusterset.local", RType::kA, Rcode::kNXDomain, {}, true},
        Case{"example.com", RType::kA, Rcode::kRefused, {}, false},
        Case{"local", RType::kSOA, Rcode::kRefused, {}, false}));

TEST(ZoneAdditionalTest, SrvAnswersCarryTheTargetsAddresses) {
  ServiceZone zone;
  zone.update(snapshot());
  auto a = zone.lookup({Name::parse("_pg._tcp.db.data.svc.clusterset.local"), static_cast<std::uint16_t>(RType::kSRV), kClassIN});
  std::vector<std::string> extra;
  for (const auto& rr : a.additional) extra.push_back(text(rr));
  std::sort(extra.begin(), extra.end());
  EXPECT_EQ(extra, (std::vector<std::string>{"db-0.west.db.data.svc.clusterset.local. A 10.80.1.5",
                                             "db-1.west.db.data.svc.clusterset.local. A 10.80.2.6"}));
}

TEST(ZoneUpdateTest, AnUpdateReplacesEverythingAtOnce) {
  ServiceZone zone;
  zone.update(snapshot());
  const Question q{Name::parse("web.default.svc.clusterset.local"), static_cast<std::uint16_t>(RType::kA), kClassIN};
  ASSERT_EQ(zone.lookup(q).answers.size(), 1U);
  zone.update({});  // unexported everywhere
  EXPECT_EQ(zone.lookup(q).rcode, Rcode::kNXDomain);
  EXPECT_EQ(zone.names(), (std::vector<std::string>{"clusterset.local.", "dns-version.clusterset.local."}));
}

TEST(ZoneLocalPreferenceTest, ALocalHeadlessExportWithNoReadyPodDoesNotHideTheOthers) {
  ServiceZone zone;
  ZoneSnapshot s;
  s.local_cluster_id = "east";
  s.services.push_back({"db", "data", true, {},
                        {{"east", true, {}, {{{net::IpAddress::parse("10.96.1.5").value()}, "db-0", false}}},
                         {"west", true, {}, {{{net::IpAddress::parse("10.80.1.5").value()}, "db-0", true}}}}});
  zone.update(s);
  const Question q{Name::parse("db.data.svc.clusterset.local"), static_cast<std::uint16_t>(RType::kA), kClassIN};
  const Answer a = zone.lookup(q);
  ASSERT_EQ(a.answers.size(), 1U);  // west's ready pod, not NXDOMAIN
  // Once ours is ready, only ours.
  s.services[0].clusters[0].endpoints[0].ready = true;
  zone.update(s);
  const Answer b = zone.lookup(q);
  ASSERT_EQ(b.answers.size(), 1U);
  EXPECT_EQ(std::get<A>(b.answers[0].data).address[0], 10);
  EXPECT_EQ(std::get<A>(b.answers[0].data).address[1], 96);
}

TEST(ZoneUpdateTest, VersionRisesWithEveryUpdate) {
  ServiceZone zone;
  const auto v0 = zone.version();
  ASSERT_TRUE(v0.has_value());
  zone.update(snapshot());
  EXPECT_GT(zone.version().value(), *v0);
}

TEST(ZoneOptionsTest, AnotherZoneNameAndTtl) {
  ServiceZone zone({.zone = "mesh.example", .ttl = 30});
  zone.update(snapshot());
  auto a = zone.lookup({Name::parse("web.default.svc.mesh.example"), static_cast<std::uint16_t>(RType::kA), kClassIN});
  ASSERT_EQ(a.answers.size(), 1U);
  EXPECT_EQ(a.answers[0].ttl, 30U);
  EXPECT_EQ(zone.lookup({Name::parse("web.default.svc.clusterset.local"), 1, kClassIN}).rcode, Rcode::kRefused);
}

}  // namespace
}  // namespace cw::dns
