// libFuzzer target for the DNS codec (dns/message.h): whatever the bytes, parse() must return
// (no crash, no hang, no sanitizer report), and what it accepts must survive serialize():
// within the size limit, parsing back, with the questions intact and the same bytes when
// serialized again.
//
// Run: ctest -R dns_message_fuzz (20 s over tests/fuzz/dns_corpus), or by hand for longer:
//   ninja -C build dns_message_fuzz && mkdir -p /tmp/dns-corpus &&
//   build/tests/fuzz/dns_message_fuzz -max_total_time=600 /tmp/dns-corpus tests/fuzz/dns_corpus
// (new inputs go to the first directory; keep the shipped seeds read-only). Built with clang++
// -fsanitize=fuzzer,address,undefined by tests/CMakeLists.txt, outside the g++ build.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "dns/message.h"

namespace {

using cw::dns::Message;
using cw::dns::Question;

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "dns_message_fuzz: %s\n", what);
  std::abort();
}

bool same_question(const Question& a, const Question& b) {
  return a.name == b.name && a.type == b.type && a.klass == b.klass;
}

void round_trip(const Message& m, std::size_t limit) {
  const std::vector<std::uint8_t> wire = cw::dns::serialize(m, limit);
  check(wire.size() <= limit, "serialize() exceeded max_size");
  if (limit < 12) {
    check(wire.empty(), "a partial header");
    return;
  }
  auto back = cw::dns::parse(wire);
  check(back.ok(), "what serialize() wrote does not parse");
  // Questions go only when they do not fit, and then TC says so; the ones kept are the first
  // ones, the very first in the client's case (resolvers compare it byte for byte).
  check(back->questions.size() <= m.questions.size(), "questions appeared");
  check(back->questions.size() == m.questions.size() || back->header.tc, "questions lost");
  for (std::size_t i = 0; i < back->questions.size(); ++i) {
    check(same_question(back->questions[i], m.questions[i]), "a question changed");
  }
  if (!back->questions.empty()) {
    check(back->questions[0].name.labels == m.questions[0].name.labels,
          "the first question's case changed");
  }
  // The OPT is kept whenever a header and an OPT (12 + 11 bytes) fit.
  check(back->edns.has_value() == (m.edns.has_value() && limit >= 23), "EDNS appeared or vanished");
  check(back->header.id == m.header.id, "the id changed");
  // Parsing loses nothing serialize() wrote, so writing it again gives the same bytes.
  check(cw::dns::serialize(*back, limit) == wire, "serialize(parse(x)) != x");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> packet(data, size);
  const auto header = cw::dns::parse_header(packet);
  const auto first = cw::dns::parse_first_question(packet);
  auto m = cw::dns::parse(packet);
  if (!m.ok()) return 0;
  check(header.has_value() && header->id == m->header.id, "parse_header() disagrees");
  check(first.has_value() == !m->questions.empty(), "parse_first_question() disagrees");
  if (first) check(first->name.labels == m->questions[0].name.labels, "first question differs");
  round_trip(*m, 65535);
  round_trip(*m, 512);
  // A limit from the input itself, to reach every cut point.
  round_trip(*m, size < 2 ? 0 : (std::size_t{data[0]} << 8 | data[1]) % 1500);
  return 0;
}
