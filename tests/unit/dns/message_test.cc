// The DNS codec: round trips of every record type, compression, packets captured from dig,
// kdig and unbound, hostile packets, and truncation to a size limit.
#include "dns/message.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>

namespace cw::dns {
namespace {

using Bytes = std::vector<std::uint8_t>;

// "1234 0100 c0 0c": hex digits, spaces ignored.
Bytes hex(std::string_view text) {
  Bytes out;
  int high = -1;
  for (const char c : text) {
    if (c == ' ' || c == '\n') continue;
    int v = 0;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v = c - 'A' + 10;
    } else {
      ADD_FAILURE() << "not hex: " << c;
      return {};
    }
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(high * 16 + v));
      high = -1;
    }
  }
  EXPECT_EQ(high, -1) << "odd number of hex digits";
  return out;
}

std::string hex_of(const Bytes& bytes) {
  std::string s;
  char buf[3];
  for (const auto b : bytes) {
    std::snprintf(buf, sizeof buf, "%02x", b);
    s += buf;
  }
  return s;
}

Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A label of `n` copies of `c`, in wire form.
Bytes label(std::size_t n, char c = 'a') {
  Bytes out{static_cast<std::uint8_t>(n)};
  out.insert(out.end(), n, static_cast<std::uint8_t>(c));
  return out;
}

// --- Messages as text, so that a failed comparison shows what differs ---

std::string name_text(const Name& name) {
  if (name.labels.empty()) return ".";
  std::string s;
  for (const auto& l : name.labels) {
    for (const char c : l) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x21 || u > 0x7e || c == '.' || c == '\\') {
        char buf[5];
        std::snprintf(buf, sizeof buf, "\\%03u", u);
        s += buf;
      } else {
        s += c;
      }
    }
    s += '.';
  }
  return s;
}

std::string type_text(std::uint16_t type) {
  switch (static_cast<RType>(type)) {
    case RType::kA: return "A";
    case RType::kNS: return "NS";
    case RType::kSOA: return "SOA";
    case RType::kMX: return "MX";
    case RType::kTXT: return "TXT";
    case RType::kAAAA: return "AAAA";
    case RType::kSRV: return "SRV";
    default: return "TYPE" + std::to_string(type);
  }
}

std::string class_text(std::uint16_t klass) {
  return klass == kClassIN ? "IN" : "CLASS" + std::to_string(klass);
}

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

std::string rdata_text(const RData& data) {
  return std::visit(
      Overloaded{
          [](const A& a) {
            return std::to_string(a.address[0]) + "." + std::to_string(a.address[1]) + "." +
                   std::to_string(a.address[2]) + "." + std::to_string(a.address[3]);
          },
          [](const AAAA& a) { return hex_of(Bytes(a.address.begin(), a.address.end())); },
          [](const NS& ns) { return name_text(ns.host); },
          [](const SRV& s) {
            return std::to_string(s.priority) + " " + std::to_string(s.weight) + " " +
                   std::to_string(s.port) + " " + name_text(s.target);
          },
          [](const TXT& t) {
            std::string s;
            for (const auto& str : t.strings) s += (s.empty() ? "\"" : " \"") + str + "\"";
            return s;
          },
          [](const SOA& s) {
            return name_text(s.mname) + " " + name_text(s.rname) + " " + std::to_string(s.serial) +
                   " " + std::to_string(s.refresh) + " " + std::to_string(s.retry) + " " +
                   std::to_string(s.expire) + " " + std::to_string(s.minimum);
          },
          [](const Opaque& o) {
            return "\\# " + std::to_string(o.rdata.size()) + (o.rdata.empty() ? "" : " ") +
                   hex_of(o.rdata);
          },
      },
      data);
}

std::string describe(const Message& m) {
  std::ostringstream os;
  const Header& h = m.header;
  char id[8];
  std::snprintf(id, sizeof id, "%04x", h.id);
  os << "id=" << id << " opcode=" << int{h.opcode} << " rcode=" << static_cast<int>(h.rcode);
  for (const auto& [set, flag] : {std::pair{h.qr, "qr"}, {h.aa, "aa"}, {h.tc, "tc"},
                                  {h.rd, "rd"}, {h.ra, "ra"}, {h.ad, "ad"}, {h.cd, "cd"}}) {
    if (set) os << " " << flag;
  }
  os << "\n";
  if (m.edns) {
    os << "edns udp=" << m.edns->udp_size << " version=" << int{m.edns->version}
       << (m.edns->do_bit ? " do" : "") << "\n";
  }
  for (const auto& q : m.questions) {
    os << "Q " << name_text(q.name) << " " << class_text(q.klass) << " " << type_text(q.type)
       << "\n";
  }
  for (const auto& [tag, section] :
       {std::pair{"AN", &m.answers}, {"NS", &m.authority}, {"AR", &m.additional}}) {
    for (const auto& rr : *section) {
      os << tag << " " << name_text(rr.name) << " " << rr.ttl << " " << class_text(rr.klass)
         << " " << type_text(rr.type) << " " << rdata_text(rr.data) << "\n";
    }
  }
  return os.str();
}

// --- Building messages ---

Name name(const std::string& dotted) { return Name::parse(dotted); }

// The type parse() gives each alternative; Opaque records name theirs.
std::uint16_t type_of(const RData& data) {
  return static_cast<std::uint16_t>(std::visit(Overloaded{[](const A&) { return RType::kA; },
                                                          [](const AAAA&) { return RType::kAAAA; },
                                                          [](const NS&) { return RType::kNS; },
                                                          [](const SRV&) { return RType::kSRV; },
                                                          [](const TXT&) { return RType::kTXT; },
                                                          [](const SOA&) { return RType::kSOA; },
                                                          [](const Opaque&) { return RType{0}; }},
                                               data));
}

ResourceRecord rr(const std::string& owner, RData data, std::uint32_t ttl = 30) {
  const std::uint16_t type = type_of(data);
  return ResourceRecord{name(owner), type, kClassIN, ttl, std::move(data)};
}

ResourceRecord opaque(const std::string& owner, std::uint16_t type, Bytes rdata,
                      std::uint16_t klass = kClassIN) {
  return ResourceRecord{name(owner), type, klass, 60, Opaque{std::move(rdata)}};
}

A a(std::uint8_t a0, std::uint8_t a1, std::uint8_t a2, std::uint8_t a3) {
  return A{{a0, a1, a2, a3}};
}

Message query(const std::string& qname, RType type) {
  Message m;
  m.header.id = 0xbeef;
  m.header.rd = true;
  m.questions.push_back({name(qname), static_cast<std::uint16_t>(type), kClassIN});
  return m;
}

Message response(const std::string& qname, RType type) {
  Message m = query(qname, type);
  m.header.qr = true;
  m.header.aa = true;
  return m;
}

// --- Round trips ---

struct RoundTripCase {
  std::string label;
  Message message;
  friend void PrintTo(const RoundTripCase& c, std::ostream* os) { *os << c.label; }
};

class RoundTripTest : public testing::TestWithParam<RoundTripCase> {};

TEST_P(RoundTripTest, ParsesBackEqualAndReserializesToTheSameBytes) {
  const Message& m = GetParam().message;
  const Bytes wire = serialize(m, 65535);
  auto back = parse(wire);
  ASSERT_TRUE(back.ok()) << back.error().message() << "\n" << hex_of(wire);
  EXPECT_EQ(describe(*back), describe(m));
  EXPECT_EQ(hex_of(serialize(*back, 65535)), hex_of(wire));
}

Message with_answers(Message m, std::vector<ResourceRecord> answers) {
  m.answers = std::move(answers);
  return m;
}

Message all_flags() {
  Message m = query("x.clusterset.local", RType::kA);
  m.header = Header{0xffff, true, true, true, true, true, true, true, 15, Rcode::kRefused};
  return m;
}

Message all_sections() {
  Message m = response("web.ns.svc.clusterset.local", RType::kSRV);
  m.answers = {
      rr("web.ns.svc.clusterset.local", SRV{0, 50, 80, name("a.web.ns.svc.clusterset.local")})};
  m.authority = {rr("clusterset.local", NS{name("ns.clusterset.local")}, 3600)};
  m.additional = {rr("a.web.ns.svc.clusterset.local", a(10, 64, 0, 1)),
                  rr("a.web.ns.svc.clusterset.local", AAAA{{0xfd, 0, 0, 0xc1}})};
  m.edns = Edns{1232, 0, false};
  return m;
}

Message edns(std::uint16_t size, std::uint8_t version, bool do_bit, Rcode rcode) {
  Message m = response("x.clusterset.local", RType::kA);
  m.edns = Edns{size, version, do_bit};
  m.header.rcode = rcode;
  return m;
}

Message odd_names() {
  Message m = response("clusterset.local", RType::kNS);
  Name binary;
  binary.labels = {std::string("a.b"), std::string("\0\xff\x20", 3), "X"};
  m.answers = {rr("", NS{binary}),  // owned by the root
               rr("clusterset.local", NS{name("")})};
  return m;
}

Message longest_name() {
  Name n;
  n.labels = {std::string(63, 'a'), std::string(63, 'b'), std::string(63, 'c'),
              std::string(61, 'd')};  // 3 * 64 + 62 + 1 = 255 bytes on the wire
  Message m;
  m.questions.push_back({n, 1, kClassIN});
  m.answers.push_back(ResourceRecord{n, 1, kClassIN, 1, a(1, 2, 3, 4)});
  return m;
}

Message two_questions() {
  Message m = query("a.clusterset.local", RType::kA);
  m.questions.push_back({name("b.clusterset.local"), 28, 3});
  return m;
}

INSTANTIATE_TEST_SUITE_P(
    Types, RoundTripTest,
    testing::Values(
        RoundTripCase{"A", with_answers(response("web.ns.svc.clusterset.local", RType::kA),
                                        {rr("web.ns.svc.clusterset.local", a(10, 64, 0, 10), 5),
                                         rr("web.ns.svc.clusterset.local", a(255, 0, 0, 1), 0)})},
        RoundTripCase{"AAAA",
                      with_answers(response("web.ns.svc.clusterset.local", RType::kAAAA),
                                   {rr("web.ns.svc.clusterset.local",
                                       AAAA{{0xfd, 0, 0, 0xc1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                             0x10}})})},
        RoundTripCase{"NS", with_answers(response("clusterset.local", RType::kNS),
                                         {rr("clusterset.local", NS{name("ns1.clusterset.local")}),
                                          rr("clusterset.local", NS{name("ns.example.org")})})},
        RoundTripCase{"SRV", with_answers(response("_http._tcp.web.ns.svc.clusterset.local",
                                                   RType::kSRV),
                                          {rr("_http._tcp.web.ns.svc.clusterset.local",
                                              SRV{0, 50, 8080,
                                                  name("web.ns.svc.clusterset.local")}),
                                           rr("_http._tcp.web.ns.svc.clusterset.local",
                                              SRV{65535, 65535, 65535, name("")})})},
        RoundTripCase{"TXT", with_answers(response("dns-version.clusterset.local", RType::kTXT),
                                          {rr("dns-version.clusterset.local",
                                              TXT{{"1.0.0", "", "two words", "\"quoted\""}}),
                                           rr("dns-version.clusterset.local",
                                              TXT{{std::string(255, 'z')}})})},
        RoundTripCase{"SOA", with_answers(response("clusterset.local", RType::kSOA),
                                          {rr("clusterset.local",
                                              SOA{name("ns.dns.clusterset.local"),
                                                  name("hostmaster.clusterset.local"), 4294967295U,
                                                  7200, 1800, 86400, 5})})},
        RoundTripCase{"unknown type and MX kept verbatim",
                      with_answers(response("x.clusterset.local", RType::kANY),
                                   {opaque("x.clusterset.local", 99, {1, 2, 3}),
                                    opaque("x.clusterset.local", 65280, {}),
                                    opaque("x.clusterset.local", 15, hex("000a c00c"))})},
        RoundTripCase{"A in class CH is opaque",
                      with_answers(response("x.clusterset.local", RType::kA),
                                   {opaque("x.clusterset.local", 1, {1, 2, 3}, 3),
                                    opaque("x.clusterset.local", 33, {}, 255)})},
        RoundTripCase{"every section with EDNS", all_sections()},
        RoundTripCase{"every header flag, opcode 15", all_flags()},
        RoundTripCase{"EDNS DO bit", edns(4096, 0, true, Rcode::kNoError)},
        RoundTripCase{"EDNS BADVERS", edns(1232, 1, false, static_cast<Rcode>(16))},
        RoundTripCase{"EDNS extended RCODE 255", edns(512, 255, true, static_cast<Rcode>(255))},
        RoundTripCase{"EDNS udp size 0", edns(0, 0, false, Rcode::kNXDomain)},
        RoundTripCase{"root and names with dots and binary", odd_names()},
        RoundTripCase{"255-byte name", longest_name()},
        RoundTripCase{"two questions", two_questions()},
        RoundTripCase{"header only", Message{}}));

// --- Compression ---

std::size_t uncompressed_size(const Message& m) {
  std::size_t size = 12;
  for (const auto& q : m.questions) size += q.name.wire_length() + 4;
  for (const auto* section : {&m.answers, &m.authority, &m.additional}) {
    for (const auto& r : *section) {
      size += r.name.wire_length() + 10;
      if (std::holds_alternative<A>(r.data)) size += 4;
      if (const auto* srv = std::get_if<SRV>(&r.data)) size += 6 + srv->target.wire_length();
    }
  }
  return size;
}

TEST(CompressionTest, ManyNamesUnderOneSuffixAreMuchSmallerAndParseBackEqual) {
  Message m = response("web.ns.svc.cluster-a.clusterset.local", RType::kA);
  for (int i = 0; i < 30; ++i) {
    const std::string pod = "pod-" + std::to_string(i) + ".web.ns.svc.cluster-a.clusterset.local";
    m.answers.push_back(rr(pod, a(10, 64, 0, static_cast<std::uint8_t>(i))));
  }
  m.authority.push_back(rr("clusterset.local", NS{name("ns.clusterset.local")}));
  const Bytes wire = serialize(m, 65535);
  EXPECT_LT(wire.size() * 2, uncompressed_size(m)) << wire.size() << " vs " << uncompressed_size(m);
  auto back = parse(wire);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(describe(*back), describe(m));
}

TEST(CompressionTest, SrvTargetsAreWrittenInFullAndPointedAt) {
  Message m = response("_http._tcp.web.ns.svc.clusterset.local", RType::kSRV);
  std::size_t targets = 0;
  for (int i = 0; i < 20; ++i) {
    const std::string target = "ep-" + std::to_string(i) + ".web.ns.svc.clusterset.local";
    targets += name(target).wire_length();
    m.answers.push_back(rr("_http._tcp.web.ns.svc.clusterset.local", SRV{0, 5, 80, name(target)}));
    m.additional.push_back(rr(target, a(10, 64, 0, static_cast<std::uint8_t>(i))));
  }
  const Bytes wire = serialize(m, 65535);
  // Header, question (40 + 4); each SRV: owner as a pointer, 10, 6, the target in full; each
  // A: owner as a pointer to its target, 10, 4.
  EXPECT_EQ(wire.size(), 12 + 44 + 20 * (2 + 10 + 6) + targets + 20 * (2 + 10 + 4));
  auto back = parse(wire);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(describe(*back), describe(m));
}

TEST(CompressionTest, MessagesBeyond16KiBPointOnlyBelow0x4000AndParseBackEqual) {
  Message m = response("big.ns.svc.clusterset.local", RType::kA);
  for (int i = 0; i < 2000; ++i) {
    // Distinct owners, so that names past 0x4000 must point at suffixes written before it.
    m.answers.push_back(rr("host-" + std::to_string(i) + ".big.ns.svc.clusterset.local",
                           a(10, 0, static_cast<std::uint8_t>(i >> 8),
                             static_cast<std::uint8_t>(i))));
  }
  const Bytes wire = serialize(m, 65535);
  ASSERT_GT(wire.size(), 0x4000U * 2);
  EXPECT_LT(wire.size() * 3, uncompressed_size(m) * 2);
  auto back = parse(wire);  // a pointer beyond 14 bits would have lost its high bits
  ASSERT_TRUE(back.ok()) << back.error().message();
  ASSERT_EQ(back->answers.size(), m.answers.size());
  EXPECT_EQ(describe(*back), describe(m));
}

TEST(CompressionTest, LaterNamesTakeTheQuestionsCase) {
  Message m = response("Foo.NS.Svc.ClusterSet.Local", RType::kA);
  m.answers.push_back(rr("foo.ns.svc.clusterset.local", a(10, 0, 0, 1)));
  m.answers.push_back(rr("BAR.ns.svc.clusterset.local", a(10, 0, 0, 2)));
  auto back = parse(serialize(m, 512));
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(name_text(back->questions[0].name), "Foo.NS.Svc.ClusterSet.Local.");
  EXPECT_EQ(name_text(back->answers[0].name), "Foo.NS.Svc.ClusterSet.Local.");
  EXPECT_EQ(name_text(back->answers[1].name), "BAR.NS.Svc.ClusterSet.Local.");
}

// --- Real packets ---

struct RealPacket {
  std::string source;
  std::string hex;
  std::string expected;  // describe() of the parsed message
  bool exact;            // serialize(parse(p)) == p (false where EDNS options are dropped)
  friend void PrintTo(const RealPacket& c, std::ostream* os) { *os << c.source; }
};

class RealPacketTest : public testing::TestWithParam<RealPacket> {};

TEST_P(RealPacketTest, Parses) {
  const Bytes packet = hex(GetParam().hex);
  auto m = parse(packet);
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(describe(*m), GetParam().expected);
  const Bytes again = serialize(*m, 65535);
  if (GetParam().exact) {
    EXPECT_EQ(hex_of(again), hex_of(packet));
  }
  auto back = parse(again);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(describe(*back), GetParam().expected);
}

TEST_P(RealPacketTest, EveryPrefixIsRejected) {
  const Bytes packet = hex(GetParam().hex);
  for (std::size_t n = 0; n < packet.size(); ++n) {
    auto m = parse(std::span(packet).first(n));
    ASSERT_FALSE(m.ok()) << "a prefix of " << n << " bytes parsed";
    EXPECT_EQ(m.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(parse_header(std::span(packet).first(n)).has_value(), n >= 12);
  }
}

// Every byte changed to values that mean something to the parser: nothing crashes, and what
// parses serializes to something that parses.
TEST_P(RealPacketTest, MutationsParseOrFailCleanly) {
  const Bytes packet = hex(GetParam().hex);
  for (std::size_t i = 0; i < packet.size(); ++i) {
    for (const int v : {0x00, 0x01, 0x3f, 0x40, 0x80, 0xc0, 0xff}) {
      Bytes mutated = packet;
      mutated[i] = static_cast<std::uint8_t>(v == packet[i] ? v ^ 0x21 : v);
      auto m = parse(mutated);
      if (!m.ok()) continue;
      auto back = parse(serialize(*m, 65535));
      ASSERT_TRUE(back.ok()) << back.error().message() << " after changing byte " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Captured, RealPacketTest,
    testing::Values(
        RealPacket{"dig with EDNS and a cookie",
                   "aca50120000100000000000103666f6f037376630a636c7573746572736574056c6f63616c000"
                   "001000100002904d000000000000c000a000814a77cab31525dd1",
                   "id=aca5 opcode=0 rcode=0 rd ad\nedns udp=1232 version=0\n"
                   "Q foo.svc.clusterset.local. IN A\n",
                   false},
        RealPacket{"dig +noedns SRV",
                   "9d2901200001000000000000055f68747470045f74637003666f6f026e73037376630a636c757"
                   "3746572736574056c6f63616c0000210001",
                   "id=9d29 opcode=0 rcode=0 rd ad\n"
                   "Q _http._tcp.foo.ns.svc.clusterset.local. IN SRV\n",
                   true},
        RealPacket{"dig +nocookie AAAA in mixed case",
                   "3d790120000100000000000103466f6f024e53035376630a436c7573746572536574054c6f636"
                   "16c00001c000100002904d0000000000000",
                   "id=3d79 opcode=0 rcode=0 rd ad\nedns udp=1232 version=0\n"
                   "Q Foo.NS.Svc.ClusterSet.Local. IN AAAA\n",
                   true},
        RealPacket{"kdig without EDNS",
                   "a3120120000100000000000003666f6f037376630a636c7573746572736574056c6f63616c000"
                   "0010001",
                   "id=a312 opcode=0 rcode=0 rd ad\nQ foo.svc.clusterset.local. IN A\n", true},
        RealPacket{"kdig +nsid +cookie",
                   "7a5d0120000100000000000103666f6f037376630a636c7573746572736574056c6f63616c000"
                   "0010001000029100000000000001000030000000a0008b535cfa2b7d20cb7",
                   "id=7a5d opcode=0 rcode=0 rd ad\nedns udp=4096 version=0\n"
                   "Q foo.svc.clusterset.local. IN A\n",
                   false},
        RealPacket{"kdig +padding TXT",
                   "42160120000100000000000103666f6f026e73037376630a636c7573746572736574056c6f6361"
                   "6c00001000010000291000000000000048000c0044000000000000000000000000000000000000"
                   "000000000000000000000000000000000000000000000000000000000000000000000000000000"
                   "0000000000000000000000",
                   "id=4216 opcode=0 rcode=0 rd ad\nedns udp=4096 version=0\n"
                   "Q foo.ns.svc.clusterset.local. IN TXT\n",
                   false},
        RealPacket{"dig +dnssec with an unknown EDNS option",
                   "bb980120000100000000000103666f6f026e73037376630a636c7573746572736574056c6f636"
                   "16c000001000100002904d0000080000014000a0008ff3cdc6401f508a5fde90004deadbeef",
                   "id=bb98 opcode=0 rcode=0 rd ad\nedns udp=1232 version=0 do\n"
                   "Q foo.ns.svc.clusterset.local. IN A\n",
                   false},
        RealPacket{"unbound stub query, 0x20 and QNAME minimisation",
                   "395000100001000000000001035356430a636c5573544552734554054c4f43616c00000100010"
                   "0002904d0000080000000",
                   "id=3950 opcode=0 rcode=0 cd\nedns udp=1232 version=0 do\n"
                   "Q SVC.clUsTERsET.LOCal. IN A\n",
                   true},
        RealPacket{"unbound stub query, 0x20",
                   "09b40010000100000000000103776542024e73035356630a634c5573744552536554054c4f636"
                   "16c000001000100002904d0000080000000",
                   "id=09b4 opcode=0 rcode=0 cd\nedns udp=1232 version=0 do\n"
                   "Q weB.Ns.SVc.cLUstERSeT.LOcal. IN A\n",
                   true},
        RealPacket{"unbound response, two A",
                   "12348580000100020000000103776562026e730373766307636c757374657204746573740000"
                   "010001c00c000100010000000500040a40000bc00c000100010000000500040a40000a0000290"
                   "4d0000000000000",
                   "id=1234 opcode=0 rcode=0 qr aa rd ra\nedns udp=1232 version=0\n"
                   "Q web.ns.svc.cluster.test. IN A\n"
                   "AN web.ns.svc.cluster.test. 5 IN A 10.64.0.11\n"
                   "AN web.ns.svc.cluster.test. 5 IN A 10.64.0.10\n",
                   true},
        RealPacket{"unbound response, AAAA",
                   "12348580000100010000000003776562026e730373766307636c757374657204746573740000"
                   "1c0001c00c001c0001000000050010fd0000c1000000000000000000000010",
                   "id=1234 opcode=0 rcode=0 qr aa rd ra\nQ web.ns.svc.cluster.test. IN AAAA\n"
                   "AN web.ns.svc.cluster.test. 5 IN AAAA fd0000c1000000000000000000000010\n",
                   true},
        RealPacket{"unbound response, SRV",
                   "123485800001000100000001055f68747470045f74637003776562026e730373766307636c75"
                   "7374657204746573740000210001c00c0021000100000005001f0000003200500377656202"
                   "6e730373766307636c757374657204746573740000002904d0000000000000",
                   "id=1234 opcode=0 rcode=0 qr aa rd ra\nedns udp=1232 version=0\n"
                   "Q _http._tcp.web.ns.svc.cluster.test. IN SRV\n"
                   "AN _http._tcp.web.ns.svc.cluster.test. 5 IN SRV 0 50 80 "
                   "web.ns.svc.cluster.test.\n",
                   true},
        RealPacket{"unbound response, TXT",
                   "12348580000100010000000103776562026e730373766307636c757374657204746573740000"
                   "100001c00c001000010000000500130b68656c6c6f20776f726c64067365636f6e640000290"
                   "4d0000000000000",
                   "id=1234 opcode=0 rcode=0 qr aa rd ra\nedns udp=1232 version=0\n"
                   "Q web.ns.svc.cluster.test. IN TXT\n"
                   "AN web.ns.svc.cluster.test. 5 IN TXT \"hello world\" \"second\"\n",
                   true},
        RealPacket{"unbound response, SOA with compressed names",
                   "12348580000100010000000007636c757374657204746573740000060001c00c000600010000"
                   "012c0026026e73c00c0a686f73746d6173746572c00c0000000700000e1000000258000151800"
                   "000001e",
                   "id=1234 opcode=0 rcode=0 qr aa rd ra\nQ cluster.test. IN SOA\n"
                   "AN cluster.test. 300 IN SOA ns.cluster.test. hostmaster.cluster.test. 7 3600 "
                   "600 86400 30\n",
                   true},
        RealPacket{"unbound response, NXDOMAIN with SOA",
                   "123485830001000000010001046e6f706507636c757374657204746573740000010001c01100"
                   "0600010000001e0026026e73c0110a686f73746d6173746572c0110000000700000e10000002"
                   "58000151800000001e00002904d0000000000000",
                   "id=1234 opcode=0 rcode=3 qr aa rd ra\nedns udp=1232 version=0\n"
                   "Q nope.cluster.test. IN A\n"
                   "NS cluster.test. 30 IN SOA ns.cluster.test. hostmaster.cluster.test. 7 3600 "
                   "600 86400 30\n",
                   true},
        RealPacket{"unbound response, NS",
                   "12348580000100010000000007636c757374657204746573740000020001c00c00020001000"
                   "0012c0005026e73c00c",
                   "id=1234 opcode=0 rcode=0 qr aa rd ra\nQ cluster.test. IN NS\n"
                   "AN cluster.test. 300 IN NS ns.cluster.test.\n",
                   true},
        RealPacket{"unbound response, MX kept opaque with its pointer",
                   "12348580000100010000000003776562026e730373766307636c757374657204746573740000"
                   "0f0001c00c000f0001000000050009000a046d61696cc017",
                   "id=1234 opcode=0 rcode=0 qr aa rd ra\nQ web.ns.svc.cluster.test. IN MX\n"
                   "AN web.ns.svc.cluster.test. 5 IN MX \\# 9 000a046d61696cc017\n",
                   true}));

// --- Hostile packets ---

struct HostileCase {
  std::string label;
  Bytes packet;
  std::string says;  // the error must contain this
  friend void PrintTo(const HostileCase& c, std::ostream* os) { *os << c.label; }
};

class HostileTest : public testing::TestWithParam<HostileCase> {};

TEST_P(HostileTest, IsRejectedWithAReason) {
  auto m = parse(GetParam().packet);
  ASSERT_FALSE(m.ok()) << "accepted:\n" << describe(*m);
  EXPECT_EQ(m.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(m.error().message().find(GetParam().says), std::string::npos) << m.error().message();
}

// A header with id 1234, RD, and these counts.
Bytes header(std::uint16_t qd, std::uint16_t an = 0, std::uint16_t ns = 0, std::uint16_t ar = 0) {
  return Bytes{0x12, 0x34, 0x01, 0x00,
               static_cast<std::uint8_t>(qd >> 8), static_cast<std::uint8_t>(qd),
               static_cast<std::uint8_t>(an >> 8), static_cast<std::uint8_t>(an),
               static_cast<std::uint8_t>(ns >> 8), static_cast<std::uint8_t>(ns),
               static_cast<std::uint8_t>(ar >> 8), static_cast<std::uint8_t>(ar)};
}

const Bytes kTypeClass = hex("0001 0001");
// "a." A IN at offset 12, 7 bytes: a packet's name can point at 12.
const Bytes kQuestionA = hex("01 61 00 0001 0001");
const Bytes kOpt = hex("00 0029 04d0 00000000 0000");

// qdcount questions: the root at 12, then each a pointer to the one before, so that the last
// one follows qdcount - 1 pointers.
Bytes pointer_chain(std::uint16_t qdcount) {
  Bytes p = header(qdcount) + hex("00") + kTypeClass;
  std::size_t previous = 12;
  for (std::uint16_t i = 1; i < qdcount; ++i) {
    const std::size_t here = p.size();
    p = p + Bytes{static_cast<std::uint8_t>(0xC0 | (previous >> 8)),
                  static_cast<std::uint8_t>(previous)} + kTypeClass;
    previous = here;
  }
  return p;
}

TEST(PointerChainTest, UpToTheLimitParses) {
  auto m = parse(pointer_chain(kMaxPointerHops + 1));
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->questions.size(), static_cast<std::size_t>(kMaxPointerHops + 1));
}

INSTANTIATE_TEST_SUITE_P(
    Packets, HostileTest,
    testing::Values(
        HostileCase{"11 bytes", hex("1234 0100 0000 0000 0000 00"), "shorter than a header"},
        HostileCase{"over 65535 bytes", header(0) + Bytes(65536 - 12, 0), "over 65535"},
        HostileCase{"pointer to itself", header(1) + hex("c00c") + kTypeClass,
                    "does not point backwards"},
        HostileCase{"two pointers to each other", header(1) + hex("c00e c00c") + kTypeClass,
                    "does not point backwards"},
        HostileCase{"pointer back to the start of its own name, through a label",
                    header(2) + kQuestionA + hex("0162 c013") + kTypeClass,
                    "compression pointer at offset 21 to offset 19 does not point backwards"},
        HostileCase{"forward pointer", header(1) + hex("c012") + kTypeClass + hex("0161 00"),
                    "does not point backwards"},
        HostileCase{"pointer chain over the limit", pointer_chain(kMaxPointerHops + 2),
                    "more than 127 compression pointers"},
        HostileCase{"half a pointer at the end", header(1) + label(3) + hex("c0"),
                    "half a compression pointer"},
        HostileCase{"label length 64", header(1) + label(64) + hex("00") + kTypeClass,
                    "length byte 64 at offset 12 is neither a label"},
        HostileCase{"label type 0x80", header(1) + hex("80 00") + kTypeClass, "neither a label"},
        HostileCase{"name over 255 bytes",
                    header(1) + label(50) + label(50) + label(50) + label(50) + label(50) +
                        hex("00") + kTypeClass,
                    "longer than 255 bytes"},
        HostileCase{"name over 255 bytes through a pointer",
                    header(2) + label(63) + label(63) + label(63) + hex("00") + kTypeClass +
                        label(63) + hex("c00c") + kTypeClass,
                    "longer than 255 bytes"},
        HostileCase{"name without its end", header(1) + hex("03 666f6f 02 6161"),
                    "runs past the end of its data"},
        HostileCase{"label past the end", header(1) + hex("03 666f6f 03 6161"),
                    "label at offset 16 runs past the end"},
        HostileCase{"question cut short", header(1) + hex("01 61 00 0001 00"),
                    "question at offset 12 is cut short"},
        HostileCase{"qdcount 65535", header(65535) + kQuestionA, "65535 questions"},
        HostileCase{"ancount past the data", header(1, 10) + kQuestionA, "10 records, more than"},
        HostileCase{"arcount 65535 of OPTs", header(0, 0, 0, 65535) + kOpt + kOpt, "more than"},
        HostileCase{"RDATA length past the end",
                    header(1, 1) + kQuestionA + hex("c00c 0001 0001 0000001e 0004 0a00"),
                    "RDATA of 4 bytes runs past the end"},
        HostileCase{"record cut short",
                    header(1, 1) + kQuestionA + hex("c00c 0001 0001 0000001e 00"), "cut short"},
        HostileCase{"two OPT records", header(1, 0, 0, 2) + kQuestionA + kOpt + kOpt,
                    "second OPT record at offset 30"},
        HostileCase{"OPT not owned by the root",
                    header(1, 0, 0, 1) + kQuestionA + hex("c00c 0029 04d0 00000000 0000"),
                    "owned by a., not the root"},
        HostileCase{"OPT in the answer section", header(1, 1) + kQuestionA + kOpt,
                    "OPT record at offset 19 in the answer section"},
        HostileCase{"OPT in the authority section", header(1, 0, 1) + kQuestionA + kOpt,
                    "in the authority section"},
        HostileCase{"OPT option past its RDATA",
                    header(1, 0, 0, 1) + kQuestionA +
                        hex("00 0029 04d0 00000000 0006 000a 0008 0102"),
                    "option 10 runs past the RDATA"},
        HostileCase{"OPT option header cut short",
                    header(1, 0, 0, 1) + kQuestionA + hex("00 0029 04d0 00000000 0002 000a"),
                    "option cut short"},
        HostileCase{"extended RCODE over 255",
                    header(1, 0, 0, 1) + kQuestionA + hex("00 0029 04d0 10000000 0000"),
                    "extended RCODE 256"},
        HostileCase{"bytes after the last record", header(1) + kQuestionA + hex("00"),
                    "1 bytes after the last record at offset 19"},
        HostileCase{"A of 5 bytes",
                    header(1, 1) + kQuestionA + hex("c00c 0001 0001 00000000 0005 0a00000102"),
                    "RDATA of 5 bytes, not 4"},
        HostileCase{"AAAA of 4 bytes",
                    header(1, 1) + kQuestionA + hex("c00c 001c 0001 00000000 0004 0a000001"),
                    "RDATA of 4 bytes, not 16"},
        HostileCase{"NS with bytes after the name",
                    header(1, 1) + kQuestionA + hex("c00c 0002 0001 00000000 0003 c00c 00"),
                    "bytes after the name"},
        HostileCase{"NS name running past its RDATA into the next bytes",
                    header(1, 2) + kQuestionA + hex("c00c 0002 0001 00000000 0002 0362 6300") +
                        hex("c00c 0001 0001 00000000 0004 0a000001"),
                    "runs past the end"},
        HostileCase{"SRV too short",
                    header(1, 1) + kQuestionA + hex("c00c 0021 0001 00000000 0006 0000 0000 0050"),
                    "too short"},
        HostileCase{"SRV with bytes after the target",
                    header(1, 1) + kQuestionA +
                        hex("c00c 0021 0001 00000000 0008 0000 0000 0050 00 00"),
                    "bytes after the target"},
        HostileCase{"SOA with 19 bytes of numbers",
                    header(1, 1) + kQuestionA + hex("c00c 0006 0001 00000000 0015 00 00") +
                        Bytes(19, 0),
                    "not 20 bytes after the names"},
        HostileCase{"TXT without a string",
                    header(1, 1) + kQuestionA + hex("c00c 0010 0001 00000000 0000"),
                    "no character-string"},
        HostileCase{"TXT string past its RDATA",
                    header(1, 1) + kQuestionA + hex("c00c 0010 0001 00000000 0003 05 6869"),
                    "runs past the RDATA"}));

// --- Header and first question of packets that do not parse ---

TEST(ParseHeaderTest, ReadsTheHeaderOfAnythingLongEnough) {
  EXPECT_FALSE(parse_header(hex("1234 0100 0000 0000 0000 00")).has_value());
  // QR, opcode 2, AA, TC, RD, RA, Z (ignored), AD, CD, rcode 5; counts that lie.
  const auto h = parse_header(hex("abcd 97f5 ffff ffff ffff ffff c0c0"));
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->id, 0xabcd);
  EXPECT_TRUE(h->qr && h->aa && h->tc && h->rd && h->ra && h->ad && h->cd);
  EXPECT_EQ(h->opcode, 2);
  EXPECT_EQ(h->rcode, Rcode::kRefused);
  const auto none = parse_header(hex("0000 0000 0000 0000 0000 0000"));
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->qr || none->aa || none->tc || none->rd || none->ra || none->ad || none->cd);
}

TEST(ParseFirstQuestionTest, ReadsTheQuestionWhenSomethingLaterIsBroken) {
  const Bytes broken = header(1, 0, 0, 2) + hex("03 466f6f 00 0010 0001") + kOpt + kOpt;
  ASSERT_FALSE(parse(broken).ok());
  const auto q = parse_first_question(broken);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(name_text(q->name), "Foo.");
  EXPECT_EQ(q->type, 16);
  EXPECT_FALSE(parse_first_question(header(1) + hex("c00c") + kTypeClass).has_value());
  EXPECT_FALSE(parse_first_question(header(0)).has_value());
  EXPECT_FALSE(parse_first_question(header(1) + hex("00 0001")).has_value());
  EXPECT_FALSE(parse_first_question(hex("1234")).has_value());
}

// --- Truncation to a size limit ---

Message hundred_a(bool with_edns) {
  Message m = response("many.ns.svc.clusterset.local", RType::kA);
  for (int i = 0; i < 100; ++i) {
    m.answers.push_back(
        rr("many.ns.svc.clusterset.local", a(10, 1, 0, static_cast<std::uint8_t>(i))));
  }
  if (with_edns) m.edns = Edns{1232, 0, false};
  return m;
}

TEST(TruncationTest, HundredARecordsAt512SetTCAndStillParse) {
  for (const bool with_edns : {false, true}) {
    SCOPED_TRACE(with_edns ? "with EDNS" : "without EDNS");
    const Message m = hundred_a(with_edns);
    const Bytes wire = serialize(m, 512);
    EXPECT_LE(wire.size(), 512U);
    auto back = parse(wire);
    ASSERT_TRUE(back.ok()) << back.error().message();
    EXPECT_TRUE(back->header.tc);
    ASSERT_EQ(back->questions.size(), 1U);
    EXPECT_EQ(name_text(back->questions[0].name), "many.ns.svc.clusterset.local.");
    // Header 12, question 34, each answer 16 (a pointer for the owner), OPT 11.
    const std::size_t expected = (512 - 12 - 34 - (with_edns ? 11 : 0)) / 16;
    ASSERT_EQ(back->answers.size(), expected);
    for (std::size_t i = 0; i < expected; ++i) {
      EXPECT_EQ(std::get<A>(back->answers[i].data).address[3], i);  // the first ones kept
    }
    EXPECT_EQ(back->edns.has_value(), with_edns);
    // The whole message fits over TCP, without TC.
    auto full = parse(serialize(m, 65535));
    ASSERT_TRUE(full.ok());
    EXPECT_FALSE(full->header.tc);
    EXPECT_EQ(full->answers.size(), 100U);
  }
}

TEST(TruncationTest, DroppingOnlyAdditionalRecordsDoesNotSetTC) {
  Message m = response("_http._tcp.web.ns.svc.clusterset.local", RType::kSRV);
  for (int i = 0; i < 4; ++i) {
    const std::string target = "ep-" + std::to_string(i) + ".web.ns.svc.clusterset.local";
    m.answers.push_back(rr("_http._tcp.web.ns.svc.clusterset.local", SRV{0, 5, 80, name(target)}));
    for (int j = 0; j < 10; ++j) {
      m.additional.push_back(rr(target, a(10, 64, static_cast<std::uint8_t>(i),
                                          static_cast<std::uint8_t>(j))));
    }
  }
  auto back = parse(serialize(m, 512));
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_FALSE(back->header.tc);
  EXPECT_EQ(back->answers.size(), 4U);
  EXPECT_GT(back->additional.size(), 0U);
  EXPECT_LT(back->additional.size(), 40U);
}

TEST(TruncationTest, DroppingAuthoritySetsTC) {
  Message m = response("x.clusterset.local", RType::kA);
  m.answers.push_back(rr("x.clusterset.local", TXT{{std::string(255, 'a')}}));
  m.authority.push_back(rr("clusterset.local", TXT{{std::string(255, 'b')}}));
  auto back = parse(serialize(m, 512));
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_TRUE(back->header.tc);
  EXPECT_EQ(back->answers.size(), 1U);
  EXPECT_EQ(back->authority.size(), 0U);
}

TEST(TruncationTest, NeverExceedsMaxSize) {
  Message m = all_sections();
  for (std::size_t i = 0; i < 30; ++i) {
    m.answers.push_back(rr("web.ns.svc.clusterset.local", TXT{{std::string(i * 7, 't')}}));
    m.authority.push_back(rr("clusterset.local", NS{name("ns" + std::to_string(i) + ".x.org")}));
  }
  const std::size_t whole = serialize(m, 65535).size();
  ASSERT_GT(whole, 4000U);
  // Below this, an answer or authority record goes too, and TC with it; above, only
  // additional records do (they come last, and nothing before them points into them).
  Message without_additional = m;
  without_additional.additional.clear();
  const std::size_t needed = serialize(without_additional, 65535).size();
  const std::size_t header_question_opt = 12 + 33 + 11;
  for (std::size_t max = 0; max <= whole + 1; ++max) {
    const Bytes wire = serialize(m, max);
    ASSERT_LE(wire.size(), max);
    if (max < 12) {
      EXPECT_TRUE(wire.empty());
      continue;
    }
    auto back = parse(wire);
    ASSERT_TRUE(back.ok()) << "max " << max << ": " << back.error().message();
    EXPECT_EQ(back->edns.has_value(), max >= 23) << max;
    EXPECT_EQ(back->questions.size(), max >= header_question_opt ? 1U : 0U) << max;
    EXPECT_EQ(back->header.tc, max < needed) << max;
    EXPECT_EQ(back->additional.size(), max >= whole ? 2U : max >= whole - 28 ? 1U : 0U) << max;
  }
}

TEST(TruncationTest, SizesAbove65535CountAs65535) {
  Message m = response("x.clusterset.local", RType::kA);
  for (int i = 0; i < 5000; ++i) m.answers.push_back(rr("x.clusterset.local", a(1, 1, 1, 1)));
  const Bytes wire = serialize(m, std::numeric_limits<std::size_t>::max());
  EXPECT_LE(wire.size(), 65535U);
  auto back = parse(wire);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_TRUE(back->header.tc);
  EXPECT_EQ(back->answers.size(), (65535U - 12 - 24) / 16);
}

// --- What serialize() cannot encode ---

TEST(SerializeTest, LeavesOutWhatCannotBeEncoded) {
  Message m = response("ok.clusterset.local", RType::kA);
  Name long_label;
  long_label.labels = {std::string(64, 'x'), "clusterset", "local"};
  Name empty_label;
  empty_label.labels = {"a", "", "local"};
  Name too_long;
  too_long.labels.assign(5, std::string(60, 'y'));
  m.questions.push_back({long_label, 1, kClassIN});
  m.answers = {
      ResourceRecord{long_label, 1, kClassIN, 1, a(1, 1, 1, 1)},
      ResourceRecord{empty_label, 1, kClassIN, 1, a(1, 1, 1, 2)},
      ResourceRecord{too_long, 1, kClassIN, 1, a(1, 1, 1, 3)},
      rr("ok.clusterset.local", NS{long_label}),
      rr("ok.clusterset.local", SRV{0, 0, 0, too_long}),
      rr("ok.clusterset.local", SOA{name("ns.x"), empty_label, 1, 2, 3, 4, 5}),
      opaque("ok.clusterset.local", 99, Bytes(65536, 0)),
      rr("ok.clusterset.local", a(1, 1, 1, 4)),
  };
  m.additional = {opaque("", 41, {})};  // an OPT comes only from `edns`
  auto back = parse(serialize(m, 65535));
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(describe(*back),
            "id=beef opcode=0 rcode=0 qr aa rd\nQ ok.clusterset.local. IN A\n"
            "AN ok.clusterset.local. 30 IN A 1.1.1.4\n");
}

TEST(SerializeTest, SplitsLongTxtStringsAndGivesAnEmptyTxtOneEmptyString) {
  Message m = response("t.clusterset.local", RType::kTXT);
  m.answers = {rr("t.clusterset.local", TXT{{std::string(300, 'a'), std::string(510, 'b')}}),
               rr("t.clusterset.local", TXT{})};
  auto back = parse(serialize(m, 65535));
  ASSERT_TRUE(back.ok()) << back.error().message();
  ASSERT_EQ(back->answers.size(), 2U);
  EXPECT_EQ(std::get<TXT>(back->answers[0].data).strings,
            (std::vector<std::string>{std::string(255, 'a'), std::string(45, 'a'),
                                      std::string(255, 'b'), std::string(255, 'b')}));
  EXPECT_EQ(std::get<TXT>(back->answers[1].data).strings, std::vector<std::string>{""});
}

TEST(SerializeTest, ExtendedRcodeWithoutEdnsGoesOutAsServfail) {
  Message m = response("x.clusterset.local", RType::kA);
  m.header.rcode = static_cast<Rcode>(16);
  auto plain = parse(serialize(m, 512));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->header.rcode, Rcode::kServFail);
  m.edns = Edns{};
  auto with_edns = parse(serialize(m, 512));
  ASSERT_TRUE(with_edns.ok());
  EXPECT_EQ(static_cast<int>(with_edns->header.rcode), 16);
  EXPECT_EQ(serialize(m, 512)[3] & 0xF, 0);  // the header keeps the low 4 bits
}

TEST(SerializeTest, WritesWhatUnboundWrites) {
  // unbound 1.17's answer to web.ns.svc.cluster.test A with EDNS, byte for byte.
  Message m;
  m.header = Header{0x1234, true, true, false, true, true, false, false, 0, Rcode::kNoError};
  m.questions.push_back({name("web.ns.svc.cluster.test"), 1, kClassIN});
  m.answers = {rr("web.ns.svc.cluster.test", a(10, 64, 0, 11), 5),
               rr("web.ns.svc.cluster.test", a(10, 64, 0, 10), 5)};
  m.edns = Edns{1232, 0, false};
  EXPECT_EQ(hex_of(serialize(m, 512)),
            "12348580000100020000000103776562026e730373766307636c757374657204746573740000010001"
            "c00c000100010000000500040a40000bc00c000100010000000500040a40000a00002904d000000000"
            "0000");
}

// --- response_to ---

TEST(ResponseToTest, EchoesIdOpcodeRdCdAndTheQuestionAndKeepsEdnsWithDo) {
  const Bytes packet = hex(
      "bb980130000100000000000103466f6f026e73037376630a636c7573746572736574056c6f63616c00000100"
      "0100002904d0000080000014000a0008ff3cdc6401f508a5fde90004deadbeef");
  auto q = parse(packet);
  ASSERT_TRUE(q.ok()) << q.error().message();
  q->header.aa = q->header.ra = q->header.tc = true;  // none of these is echoed
  q->answers.push_back(rr("x", a(1, 2, 3, 4)));
  const Message r = response_to(*q);
  EXPECT_EQ(describe(r),
            "id=bb98 opcode=0 rcode=0 qr rd cd\nedns udp=512 version=0 do\n"
            "Q Foo.ns.svc.clusterset.local. IN A\n");

  Message update = query("clusterset.local", RType::kSOA);
  update.header.opcode = 5;
  update.header.rd = false;
  EXPECT_EQ(describe(response_to(update)),
            "id=beef opcode=5 rcode=0 qr\nQ clusterset.local. IN SOA\n");
}

}  // namespace
}  // namespace cw::dns
