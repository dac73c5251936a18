// The request → response rules of dns/handler.h, one table row per rule. Queries are written
// byte by byte here (not with the codec), so that the codec's parser is exercised as a client's
// packet would; responses are checked on their raw header and, for OPT and the question,
// read back with the codec. Then the server (dns/server.h) on loopback: the same handler
// behind UDP and TCP, the observer, start and stop. Real clients: tests/integration.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dns/handler.h"
#include "dns/message.h"
#include "dns/server.h"
#include "dns/zone.h"

namespace cw::dns {
namespace {

using Bytes = std::vector<std::uint8_t>;

// ---- building queries by hand

void put16(Bytes& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v & 0xFF));
}

void put_name(Bytes& b, const std::string& dotted) {
  for (const auto& label : Name::parse(dotted).labels) {
    b.push_back(static_cast<std::uint8_t>(label.size()));
    b.insert(b.end(), label.begin(), label.end());
  }
  b.push_back(0);
}

struct QuerySpec {
  std::uint16_t id = 0x4a7e;
  bool qr = false;
  std::uint8_t opcode = 0;
  bool rd = true;
  std::string name = "web.default.svc.clusterset.local";
  std::uint16_t type = 1;
  std::uint16_t klass = kClassIN;
  std::uint16_t qdcount = 1;               // questions written: min(qdcount, 2)
  std::optional<std::uint16_t> edns_size;  // OPT with this size
  std::uint8_t edns_version = 0;
  bool dnssec_ok = false;
};

Bytes make_query(const QuerySpec& q) {
  Bytes b;
  put16(b, q.id);
  const auto flags = static_cast<std::uint16_t>((q.qr ? 0x8000 : 0) | (q.opcode & 0xF) << 11 |
                                                (q.rd ? 0x0100 : 0));
  put16(b, flags);
  put16(b, q.qdcount);
  put16(b, 0);
  put16(b, 0);
  put16(b, q.edns_size ? 1 : 0);
  for (std::uint16_t i = 0; i < std::min<std::uint16_t>(q.qdcount, 2); ++i) {
    put_name(b, q.name);
    put16(b, q.type);
    put16(b, q.klass);
  }
  if (q.edns_size) {
    b.push_back(0);  // root owner
    put16(b, 41);
    put16(b, *q.edns_size);
    b.push_back(0);  // extended rcode
    b.push_back(q.edns_version);
    put16(b, q.dnssec_ok ? 0x8000 : 0);
    put16(b, 0);  // no options
  }
  return b;
}

// ---- a zone with a few fixed answers

ResourceRecord a_record(const Name& owner, std::uint8_t last) {
  return ResourceRecord{owner, static_cast<std::uint16_t>(RType::kA), kClassIN, 5,
                        A{{10, 96, 0, last}}};
}

class FakeZone final : public Zone {
 public:
  Answer lookup(const Question& q) const override {
    const Name apex = Name::parse("clusterset.local");
    const SOA soa{.mname = Name::parse("ns.clusterset.local"),
                  .rname = Name::parse("hostmaster.clusterset.local"),
                  .serial = 1,
                  .minimum = 5};
    Answer out;
    if (!q.name.ends_with(apex)) {
      out.rcode = Rcode::kRefused;
      return out;
    }
    out.authoritative = true;
    const std::string n = q.name.lower();
    if (n == "throw.clusterset.local.") throw std::runtime_error("zone bug");
    if (n == "web.default.svc.clusterset.local.") {
      if (q.type == 1 || q.type == 255) out.answers.push_back(a_record(q.name, 10));
    } else if (n == "big.default.svc.clusterset.local.") {
      for (int i = 0; i < 200; ++i) {
        out.answers.push_back(a_record(q.name, static_cast<std::uint8_t>(i)));
      }
    } else {
      out.rcode = Rcode::kNXDomain;
    }
    if (out.answers.empty()) {
      out.authority.push_back(
          ResourceRecord{apex, static_cast<std::uint16_t>(RType::kSOA), kClassIN, 5, soa});
    }
    return out;
  }
};

// ---- reading responses

struct Reply {
  Bytes wire;
  std::uint16_t id() const { return static_cast<std::uint16_t>(wire[0] << 8 | wire[1]); }
  bool qr() const { return (wire[2] & 0x80) != 0; }
  int opcode() const { return (wire[2] >> 3) & 0xF; }
  bool aa() const { return (wire[2] & 0x04) != 0; }
  bool tc() const { return (wire[2] & 0x02) != 0; }
  bool rd() const { return (wire[2] & 0x01) != 0; }
  bool ra() const { return (wire[3] & 0x80) != 0; }
  int rcode() const { return wire[3] & 0x0F; }
  std::uint16_t count(std::size_t i) const {
    return static_cast<std::uint16_t>(wire[4 + 2 * i] << 8 | wire[5 + 2 * i]);
  }
  std::uint16_t qdcount() const { return count(0); }
  std::uint16_t ancount() const { return count(1); }
  std::uint16_t nscount() const { return count(2); }
};

Reply run(const Bytes& request, bool tcp, HandlerOptions options = {}) {
  static const FakeZone zone;
  return Reply{handle(request, tcp, zone, options)};
}

// ---- the table

struct Expect {
  bool dropped = false;
  int rcode = 0;  // the header's 4 bits
  bool aa = false;
  bool tc = false;
  int qdcount = 1;
  int min_answers = 0;
  int max_answers = 0;
  int nscount = 0;
  std::optional<std::uint16_t> opt_size;  // OPT expected, advertising this size
  int full_rcode = -1;                    // with OPT's upper bits, when not `rcode`
};

struct Case {
  std::string name;
  Bytes request;
  bool tcp = false;
  Expect expect;
  friend void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }
};

Bytes cut(Bytes b, std::size_t size) {
  b.resize(size);
  return b;
}

Bytes plus_zero(Bytes b) {
  b.push_back(0);
  return b;
}

// A question whose name is a compression pointer to itself.
Bytes compression_loop() {
  Bytes b = make_query(QuerySpec{});
  b.resize(12);
  b.push_back(0xC0);
  b.push_back(12);
  put16(b, 1);
  put16(b, 1);
  return b;
}

std::vector<Case> cases() {
  const Expect answer{.aa = true, .min_answers = 1, .max_answers = 1};
  const Expect refused{.rcode = 5};
  const std::string big = "big.default.svc.clusterset.local";
  return {
      {"AOverUdp", make_query({}), false, answer},
      {"AOverTcp", make_query({}), true, answer},
      {"AnyPassesToTheZone", make_query({.type = 255}), false, answer},
      {"NxdomainCarriesTheSoa", make_query({.name = "nope.clusterset.local"}), false,
       {.rcode = 3, .aa = true, .nscount = 1}},
      {"NodataCarriesTheSoa", make_query({.type = 16}), false, {.aa = true, .nscount = 1}},
      {"OutsideTheZoneIsRefused", make_query({.name = "example.com"}), false, refused},
      {"ResponseIsDropped", make_query({.qr = true}), false, {.dropped = true}},
      {"ResponseOverTcpIsDropped", make_query({.qr = true}), true, {.dropped = true}},
      {"EmptyIsDropped", {}, false, {.dropped = true}},
      {"ShortHeaderIsDropped", Bytes(11, 0), false, {.dropped = true}},
      {"NotifyIsNotimp", make_query({.opcode = 4}), false, {.rcode = 4}},
      {"UpdateIsNotimp", make_query({.opcode = 5}), false, {.rcode = 4}},
      {"StatusIsNotimp", make_query({.opcode = 2}), false, {.rcode = 4}},
      {"NotimpEvenUnparsed", plus_zero(make_query({.opcode = 5})), false, {.rcode = 4}},
      {"NoQuestionIsFormerr", make_query({.qdcount = 0}), false, {.rcode = 1, .qdcount = 0}},
      {"TwoQuestionsIsFormerr", make_query({.qdcount = 2}), false, {.rcode = 1, .qdcount = 0}},
      {"MissingQuestionIsFormerr", cut(make_query({}), 12), false, {.rcode = 1, .qdcount = 0}},
      {"CutInTheQuestionIsFormerr", cut(make_query({}), 20), false, {.rcode = 1, .qdcount = 0}},
      {"CompressionLoopIsFormerr", compression_loop(), false, {.rcode = 1, .qdcount = 0}},
      {"TrailingByteIsFormerrWithTheQuestion", plus_zero(make_query({})), false, {.rcode = 1}},
      {"ChaosClassIsRefused", make_query({.klass = 3}), false, refused},
      {"AnyClassIsRefused", make_query({.klass = 255}), false, refused},
      {"AxfrIsRefused", make_query({.type = 252}), true, refused},
      {"AxfrOverUdpIsRefused", make_query({.type = 252}), false, refused},
      {"IxfrIsRefused", make_query({.type = 251}), true, refused},
      {"ZoneExceptionIsServfail", make_query({.name = "throw.clusterset.local"}), false,
       {.rcode = 2}},
      {"EdnsGetsOurSize", make_query({.edns_size = 4096}), false,
       {.aa = true, .min_answers = 1, .max_answers = 1, .opt_size = 1232}},
      {"EdnsOnAnErrorToo", make_query({.klass = 3, .edns_size = 4096}), false,
       {.rcode = 5, .opt_size = 1232}},
      {"EdnsVersion1IsBadvers", make_query({.edns_size = 1232, .edns_version = 1}), false,
       {.rcode = 0, .opt_size = 1232, .full_rcode = 16}},
      // 200 A records are 3,200 bytes of answers: over every UDP limit, not TCP's.
      {"BigOverUdpWithoutEdnsTruncates", make_query({.name = big}), false,
       {.aa = true, .tc = true, .max_answers = 30}},
      {"BigOverUdpWithEdnsTruncatesAtOurSize", make_query({.name = big, .edns_size = 4096}),
       false, {.aa = true, .tc = true, .max_answers = 75, .opt_size = 1232}},
      {"BigOverTcpIsWhole", make_query({.name = big, .edns_size = 4096}), true,
       {.aa = true, .min_answers = 200, .max_answers = 200, .opt_size = 1232}},
  };
}

class DnsHandleTest : public testing::TestWithParam<Case> {};

TEST_P(DnsHandleTest, FollowsTheRule) {
  const Case& c = GetParam();
  const Reply r = run(c.request, c.tcp);
  const Expect& e = c.expect;
  if (e.dropped) {
    EXPECT_TRUE(r.wire.empty());
    return;
  }
  ASSERT_GE(r.wire.size(), 12u);
  EXPECT_EQ(r.id(), 0x4a7e);
  EXPECT_TRUE(r.qr());
  EXPECT_FALSE(r.ra()) << "an authoritative server does not offer recursion";
  EXPECT_EQ(r.rcode(), e.rcode);
  EXPECT_EQ(r.aa(), e.aa);
  EXPECT_EQ(r.tc(), e.tc);
  EXPECT_EQ(r.qdcount(), e.qdcount);
  EXPECT_GE(r.ancount(), e.min_answers);
  EXPECT_LE(r.ancount(), e.max_answers);
  EXPECT_EQ(r.nscount(), e.nscount);
  if (!c.tcp) {
    EXPECT_LE(r.wire.size(), e.opt_size ? *e.opt_size : 512u);
  }

  auto parsed = parse(r.wire);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  EXPECT_EQ(static_cast<int>(parsed->header.rcode), e.full_rcode >= 0 ? e.full_rcode : e.rcode);
  ASSERT_EQ(parsed->edns.has_value(), e.opt_size.has_value());
  if (e.opt_size) {
    EXPECT_EQ(parsed->edns->udp_size, *e.opt_size);
    EXPECT_EQ(parsed->edns->version, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Table, DnsHandleTest, testing::ValuesIn(cases()),
                         [](const auto& test) { return test.param.name; });

// ---- the rest

TEST(DnsHandleTest, EchoesIdRdAndTheQuestionAsWritten) {
  QuerySpec q;
  q.id = 0xBEEF;
  q.name = "WeB.DeFaUlT.svc.ClusterSet.LOCAL";
  const Reply r = run(make_query(q), false);
  ASSERT_GE(r.wire.size(), 12u);
  EXPECT_EQ(r.id(), 0xBEEF);
  EXPECT_TRUE(r.rd());
  EXPECT_EQ(r.opcode(), 0);
  EXPECT_EQ(r.rcode(), 0);
  auto parsed = parse(r.wire);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  ASSERT_EQ(parsed->questions.size(), 1u);
  EXPECT_EQ(parsed->questions[0].name.to_string(), "WeB.DeFaUlT.svc.ClusterSet.LOCAL.");
  EXPECT_EQ(parsed->questions[0].type, 1);

  q.rd = false;
  EXPECT_FALSE(run(make_query(q), false).rd());
}

TEST(DnsHandleTest, FormerrKeepsTheIdWhenOnlyTheHeaderIsReadable) {
  Bytes b = make_query(QuerySpec{.id = 0x0102});
  b.resize(13);
  const Reply r = run(b, false);
  ASSERT_EQ(r.wire.size(), 12u);
  EXPECT_EQ(r.id(), 0x0102);
  EXPECT_EQ(r.rcode(), 1);
  EXPECT_TRUE(r.qr());
}

TEST(DnsHandleTest, DnssecOkIsCopied) {
  auto parsed = parse(run(make_query(QuerySpec{.edns_size = 1232, .dnssec_ok = true}), false).wire);
  ASSERT_TRUE(parsed.ok() && parsed->edns);
  EXPECT_TRUE(parsed->edns->do_bit);
  parsed = parse(run(make_query(QuerySpec{.edns_size = 1232}), false).wire);
  ASSERT_TRUE(parsed.ok() && parsed->edns);
  EXPECT_FALSE(parsed->edns->do_bit);
}

struct LimitCase {
  bool tcp;
  std::optional<std::uint16_t> client;
  std::uint16_t ours;
  std::size_t expected;
};

TEST(DnsResponseLimitTest, ClampsTheClientSizeBetween512AndOurs) {
  const std::vector<LimitCase> table = {
      {true, std::nullopt, 1232, 65535},
      {true, 512, 1232, 65535},
      {false, std::nullopt, 1232, 512},
      {false, std::nullopt, 4096, 512},
      {false, 0, 1232, 512},
      {false, 100, 1232, 512},
      {false, 512, 1232, 512},
      {false, 1000, 1232, 1000},
      {false, 1232, 1232, 1232},
      {false, 4096, 1232, 1232},
      {false, 65535, 1232, 1232},
      {false, 4096, 4096, 4096},
      {false, 4096, 100, 512},  // our size below 512 counts as 512
  };
  for (const auto& c : table) {
    EXPECT_EQ(response_limit(c.tcp, c.client, HandlerOptions{.udp_payload_size = c.ours}),
              c.expected)
        << "tcp=" << c.tcp << " client=" << (c.client ? *c.client : -1) << " ours=" << c.ours;
  }
}

// Whatever the client's size and ours, a UDP response to the big name stays within the
// limit (no amplification) and says TC exactly when it had to cut.
TEST(DnsHandleTest, UdpResponsesNeverExceedTheLimit) {
  for (const std::uint16_t ours : std::vector<std::uint16_t>{100, 512, 1232, 1400, 4096}) {
    const std::vector<std::optional<std::uint16_t>> clients = {
        std::nullopt, 0, 1, 511, 512, 513, 1000, 1232, 1233, 4096, 65535};
    for (const auto client : clients) {
      QuerySpec q{.name = "big.default.svc.clusterset.local", .edns_size = client};
      const HandlerOptions options{.udp_payload_size = ours};
      const Reply r = run(make_query(q), false, options);
      const std::size_t limit = response_limit(false, client, options);
      ASSERT_FALSE(r.wire.empty());
      EXPECT_LE(r.wire.size(), limit) << "ours=" << ours << " client=" << (client ? *client : -1);
      const std::size_t whole = run(make_query(q), true, options).wire.size();
      EXPECT_EQ(r.tc(), whole > limit);
      EXPECT_GT(r.wire.size(), std::min(whole, limit) / 2) << "truncation keeps what fits";
    }
  }
}

TEST(DnsResponseRcodeTest, ReadsTheHeader) {
  EXPECT_FALSE(response_rcode({}).has_value());
  const Reply r = run(make_query(QuerySpec{.name = "nope.clusterset.local"}), false);
  EXPECT_EQ(response_rcode(r.wire), Rcode::kNXDomain);
}

// ---- the answer cache

std::shared_ptr<ServiceZone> service_zone(const std::string& ip) {
  auto zone = std::make_shared<ServiceZone>();
  ZoneSnapshot snap;
  snap.local_cluster_id = "east";
  snap.services.push_back({"web", "default", false, {{"http", "TCP", 80}},
                           {{"west", true, {net::IpAddress::parse(ip).value()}, {}}}});
  zone->update(snap);
  return zone;
}

TEST(AnswerCacheTest, AnswersAgainWithTheRequestsIdAndTheSameBytesAsHandle) {
  auto zone = service_zone("10.112.0.10");
  AnswerCache cache;
  const HandlerOptions options;
  for (const std::uint16_t id : std::vector<std::uint16_t>{0x1111, 0x2222, 0xfffe}) {
    const Bytes q = make_query(QuerySpec{.id = id, .edns_size = 1232});
    EXPECT_EQ(cache.answer(q, false, *zone, options), handle(q, false, *zone, options)) << id;
  }
  EXPECT_EQ(cache.hits(), 2U);
  EXPECT_EQ(cache.size(), 1U);
}

TEST(AnswerCacheTest, KeepsOnlyWhatDependsOnTheRequestBytes) {
  auto zone = service_zone("10.112.0.10");
  const HandlerOptions options;
  struct Uncacheable {
    const char* why;
    Bytes query;
  };
  for (const auto& c : std::vector<Uncacheable>{
           {"mixed case must be echoed as sent (0x20)", make_query(QuerySpec{.name = "Web.default.svc.clusterset.local"})},
           {"two questions", make_query(QuerySpec{.qdcount = 2})},
           {"a response", make_query(QuerySpec{.qr = true})},
           {"not a QUERY", make_query(QuerySpec{.opcode = 2})},
           {"too short", Bytes{0x12, 0x34, 0x01}},
       }) {
    AnswerCache cache;
    for (int i = 0; i < 3; ++i) EXPECT_EQ(cache.answer(c.query, false, *zone, options), handle(c.query, false, *zone, options)) << c.why;
    EXPECT_EQ(cache.hits(), 0U) << c.why;
  }
  // The mixed-case answer still echoes the question's case.
  AnswerCache cache;
  const Bytes mixed = make_query(QuerySpec{.name = "WEB.default.svc.clusterset.local"});
  auto parsed = parse(cache.answer(mixed, false, *zone, options));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->questions.at(0).name.to_string(), "WEB.default.svc.clusterset.local.");
}

TEST(AnswerCacheTest, AZoneUpdateOrAnotherTransportIsAMiss) {
  auto zone = service_zone("10.112.0.10");
  AnswerCache cache;
  const HandlerOptions options;
  const Bytes q = make_query(QuerySpec{});
  const Bytes before = cache.answer(q, false, *zone, options);
  EXPECT_EQ(cache.answer(q, true, *zone, options), handle(q, true, *zone, options));  // TCP: its own entry
  EXPECT_EQ(cache.hits(), 0U);
  ZoneSnapshot snap;
  snap.local_cluster_id = "east";
  snap.services.push_back({"web", "default", false, {}, {{"west", true, {net::IpAddress::parse("10.112.0.99").value()}, {}}}});
  zone->update(snap);
  const Bytes after = cache.answer(q, false, *zone, options);
  EXPECT_NE(after, before);
  EXPECT_EQ(after, handle(q, false, *zone, options));
  EXPECT_EQ(cache.hits(), 0U);
}

TEST(AnswerCacheTest, AZoneWithoutAVersionIsNeverCached) {
  const FakeZone zone;
  AnswerCache cache;
  const Bytes q = make_query(QuerySpec{});
  for (int i = 0; i < 3; ++i) (void)cache.answer(q, false, zone, HandlerOptions{});
  EXPECT_EQ(cache.hits(), 0U);
  EXPECT_EQ(cache.size(), 0U);
}

// A zone that fails every lookup, with a version: its SERVFAILs must not be kept.
class BrokenZone final : public Zone {
 public:
  Answer lookup(const Question&) const override { throw std::runtime_error("broken"); }
  std::optional<std::uint64_t> version() const override { return 7; }
};

TEST(AnswerCacheTest, ServfailIsNotKept) {
  const BrokenZone zone;
  AnswerCache cache;
  const Bytes q = make_query(QuerySpec{});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(response_rcode(cache.answer(q, false, zone, HandlerOptions{})), Rcode::kServFail);
  EXPECT_EQ(cache.size(), 0U);
}

TEST(AnswerCacheTest, StaysBounded) {
  auto zone = service_zone("10.112.0.10");
  AnswerCache cache(8);
  for (int i = 0; i < 100; ++i) {
    (void)cache.answer(make_query(QuerySpec{.name = "n" + std::to_string(i) + ".clusterset.local"}), false, *zone, HandlerOptions{});
    EXPECT_LE(cache.size(), 8U);
  }
}

// Random damage to valid queries: the handler never crashes, never answers a response,
// and never sends more than the UDP limit allows.
TEST(DnsHandleTest, SurvivesDamagedQueries) {
  std::mt19937 rng(20240611);
  const std::vector<Bytes> seeds = {
      make_query(QuerySpec{}), make_query(QuerySpec{.edns_size = 4096}),
      make_query(QuerySpec{.name = "big.default.svc.clusterset.local", .edns_size = 1232}),
      compression_loop()};
  for (int i = 0; i < 20000; ++i) {
    Bytes b = seeds[static_cast<std::size_t>(i) % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      switch (rng() % 4) {
        case 0:
          b[rng() % b.size()] = static_cast<std::uint8_t>(rng());
          break;
        case 1:
          b.resize(rng() % (b.size() + 1));
          break;
        case 2:
          b.push_back(static_cast<std::uint8_t>(rng()));
          break;
        default:
          if (b.size() > 12) b[12 + rng() % (b.size() - 12)] = 0xC0;
          break;
      }
      if (b.empty()) b.push_back(0);
    }
    const Reply r = run(b, false);
    if (b.size() >= 3 && (b[2] & 0x80) != 0) {
      EXPECT_TRUE(r.wire.empty());
    }
    EXPECT_LE(r.wire.size(), 1232u);
    if (!r.wire.empty()) {
      ASSERT_GE(r.wire.size(), 12u);
      EXPECT_EQ(r.id(), static_cast<std::uint16_t>(b[0] << 8 | b[1]));
    }
  }
}

// ---- the server on loopback

// A blocking client socket with a receive timeout, closed on destruction.
class ClientSocket {
 public:
  ClientSocket(int type, std::uint16_t port) : fd_(::socket(AF_INET, type, 0)) {
    timeval tv{2, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~ClientSocket() { ::close(fd_); }
  ClientSocket(const ClientSocket&) = delete;
  ClientSocket& operator=(const ClientSocket&) = delete;

  bool connected() const { return connected_; }
  bool send(const Bytes& b) {
    return ::send(fd_, b.data(), b.size(), 0) == static_cast<ssize_t>(b.size());
  }
  // One datagram, or the next n bytes of a stream; empty on timeout or close.
  Bytes receive(std::size_t n = 65535, bool exact = false) {
    Bytes b(n);
    std::size_t got = 0;
    do {
      const ssize_t r = ::recv(fd_, b.data() + got, n - got, 0);
      if (r <= 0) return {};
      got += static_cast<std::size_t>(r);
    } while (exact && got < n);
    b.resize(got);
    return b;
  }
  Bytes receive_frame() {
    const Bytes len = receive(2, true);
    if (len.size() != 2) return {};
    return receive(static_cast<std::size_t>(len[0] << 8 | len[1]), true);
  }

 private:
  int fd_;
  bool connected_ = false;
};

Bytes framed(const Bytes& m) {
  Bytes b;
  put16(b, static_cast<std::uint16_t>(m.size()));
  b.insert(b.end(), m.begin(), m.end());
  return b;
}

struct Observed {
  std::mutex mu;
  std::vector<QueryEvent> events;  // spans cleared: they die with the call

  bool wait_for(std::size_t n) {
    for (int i = 0; i < 200; ++i) {
      {
        std::lock_guard lock(mu);
        if (events.size() >= n) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
};

std::unique_ptr<Server> start_server(Observed* observed, ServerOptions options = {}) {
  options.threads = 2;
  if (observed != nullptr) {
    options.observer = [observed](const QueryEvent& e) {
      std::lock_guard lock(observed->mu);
      observed->events.push_back(e);
      observed->events.back().request = {};
      observed->events.back().response = {};
    };
  }
  auto server = Server::start(std::move(options), std::make_shared<FakeZone>());
  EXPECT_TRUE(server.ok()) << server.error().message();
  return server.ok() ? std::move(server).value() : nullptr;
}

TEST(DnsServerTest, AnswersOverUdpAndTellsTheObserver) {
  Observed observed;
  auto server = start_server(&observed);
  ASSERT_TRUE(server);
  ASSERT_NE(server->port(), 0);
  ClientSocket udp(SOCK_DGRAM, server->port());
  ASSERT_TRUE(udp.send(make_query(QuerySpec{.id = 7})));
  const Reply r{udp.receive()};
  ASSERT_GE(r.wire.size(), 12u);
  EXPECT_EQ(r.id(), 7);
  EXPECT_EQ(r.ancount(), 1);
  ASSERT_TRUE(udp.send(make_query(QuerySpec{.id = 8, .name = "nope.clusterset.local"})));
  EXPECT_EQ(Reply{udp.receive()}.rcode(), 3);
  ASSERT_TRUE(observed.wait_for(2));
  server->stop();
  std::lock_guard lock(observed.mu);
  ASSERT_EQ(observed.events.size(), 2u);
  EXPECT_EQ(observed.events[0].transport, Transport::kUdp);
  EXPECT_TRUE(observed.events[0].answered);
  EXPECT_EQ(observed.events[0].rcode, Rcode::kNoError);
  EXPECT_EQ(observed.events[1].rcode, Rcode::kNXDomain);
  EXPECT_GT(observed.events[0].latency.count(), 0);
}

TEST(DnsServerTest, TruncatesOverUdpAndAnswersWholeOverTcp) {
  auto server = start_server(nullptr);
  ASSERT_TRUE(server);
  const Bytes big = make_query(QuerySpec{.name = "big.default.svc.clusterset.local"});
  ClientSocket udp(SOCK_DGRAM, server->port());
  ASSERT_TRUE(udp.send(big));
  const Reply small{udp.receive()};
  EXPECT_TRUE(small.tc());
  EXPECT_LE(small.wire.size(), 512u);

  ClientSocket tcp(SOCK_STREAM, server->port());
  ASSERT_TRUE(tcp.connected());
  // Two queries in one write: both answered, in order, on the one connection.
  Bytes two = framed(big);
  const Bytes second = framed(make_query(QuerySpec{.id = 9}));
  two.insert(two.end(), second.begin(), second.end());
  ASSERT_TRUE(tcp.send(two));
  const Reply whole{tcp.receive_frame()};
  EXPECT_FALSE(whole.tc());
  EXPECT_EQ(whole.ancount(), 200);
  EXPECT_EQ(Reply{tcp.receive_frame()}.id(), 9);
}

TEST(DnsServerTest, DropsWhatIsNotAQueryAndKeepsServing) {
  Observed observed;
  auto server = start_server(&observed);
  ASSERT_TRUE(server);
  ClientSocket udp(SOCK_DGRAM, server->port());
  ASSERT_TRUE(udp.send(make_query(QuerySpec{.qr = true})));
  ASSERT_TRUE(udp.send(Bytes{1, 2, 3}));
  ASSERT_TRUE(udp.send(make_query(QuerySpec{.id = 10})));
  EXPECT_EQ(Reply{udp.receive()}.id(), 10) << "the only answer is to the third datagram";
  // Datagrams are spread over the workers: the other two may be read after the answer.
  ASSERT_TRUE(observed.wait_for(3));
  server->stop();
  std::lock_guard lock(observed.mu);
  ASSERT_EQ(observed.events.size(), 3u);
  EXPECT_EQ(std::count_if(observed.events.begin(), observed.events.end(),
                          [](const QueryEvent& e) { return e.answered; }),
            1);
}

TEST(DnsServerTest, IdleTcpConnectionsAreClosed) {
  auto server =
      start_server(nullptr, ServerOptions{.tcp_idle_timeout = std::chrono::milliseconds(200)});
  ASSERT_TRUE(server);
  ClientSocket tcp(SOCK_STREAM, server->port());
  ASSERT_TRUE(tcp.connected());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(tcp.receive(1).empty());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(DnsServerTest, StopsWithConnectionsOpenAndTwice) {
  auto server = start_server(nullptr);
  ASSERT_TRUE(server);
  ClientSocket tcp(SOCK_STREAM, server->port());
  ASSERT_TRUE(tcp.connected());
  ASSERT_TRUE(tcp.send(framed(make_query(QuerySpec{}))));
  EXPECT_FALSE(tcp.receive_frame().empty());
  server->stop();
  EXPECT_TRUE(tcp.receive(1).empty()) << "stop closes open connections";
  server->stop();
}

TEST(DnsServerTest, EveryUdpSocketModeServes) {
  for (const auto mode :
       {UdpSockets::kPerWorkerRandom, UdpSockets::kPerWorkerHash, UdpSockets::kShared}) {
    auto server = start_server(nullptr, ServerOptions{.udp_sockets = mode});
    ASSERT_TRUE(server);
    // Several client sockets, so that every worker gets some datagrams.
    for (std::uint16_t i = 0; i < 8; ++i) {
      ClientSocket udp(SOCK_DGRAM, server->port());
      ASSERT_TRUE(udp.send(make_query(QuerySpec{.id = i})));
      EXPECT_EQ(Reply{udp.receive()}.id(), i) << "mode " << static_cast<int>(mode);
    }
    ClientSocket tcp(SOCK_STREAM, server->port());
    ASSERT_TRUE(tcp.send(framed(make_query(QuerySpec{.id = 99}))));
    EXPECT_EQ(Reply{tcp.receive_frame()}.id(), 99);
  }
}

TEST(DnsServerTest, RefusesABadAddressOrAPortInUse) {
  auto bad =
      Server::start(ServerOptions{.address = "not-an-address"}, std::make_shared<FakeZone>());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  auto first = start_server(nullptr, ServerOptions{.udp_sockets = UdpSockets::kShared});
  ASSERT_TRUE(first);
  auto second = Server::start(ServerOptions{.port = first->port()}, std::make_shared<FakeZone>());
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message().find(std::to_string(first->port())), std::string::npos);
}

}  // namespace
}  // namespace cw::dns
