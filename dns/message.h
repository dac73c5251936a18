// The DNS wire format (RFC 1035, with the OPT pseudo-record of RFC 6891): packets to the
// values of records.h and back. The parser faces whatever arrives on port 53, so it is
// strict and bounded: it never reads past the packet, never follows a compression pointer
// that could loop, and never reserves memory for counts the packet cannot back with bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/base/result.h"
#include "dns/records.h"

namespace cw::dns {

struct Header {
  std::uint16_t id = 0;
  bool qr = false;  // a response
  bool aa = false;  // authoritative answer
  bool tc = false;  // truncated: the client should retry over TCP
  bool rd = false;  // recursion desired (echoed, never acted on)
  bool ra = false;  // recursion available
  bool ad = false;  // authentic data (DNSSEC)
  bool cd = false;  // checking disabled (DNSSEC)
  std::uint8_t opcode = 0;  // 0 QUERY; anything else is the server's to refuse (NOTIMP)
  // The full RCODE: the header's 4 bits plus, with an OPT, its 8 upper bits (RFC 6891 §6.1.3),
  // e.g. 16 BADVERS. Values beyond the Rcode enumerators are carried as they are.
  Rcode rcode = Rcode::kNoError;
};

// What the OPT record says. In a query: the client's limits. In a response built by the
// server: the server's own (udp_size is what it advertises). A udp_size below 512 must be
// treated as 512 (RFC 6891 §6.2.5); parse() reports it as sent.
struct Edns {
  std::uint16_t udp_size = 512;
  std::uint8_t version = 0;  // anything but 0 is answered with BADVERS (16)
  bool do_bit = false;       // DNSSEC OK; copied into the response (RFC 3225 §3)
};

struct Message {
  Header header;
  std::vector<Question> questions;
  std::vector<ResourceRecord> answers;
  std::vector<ResourceRecord> authority;
  std::vector<ResourceRecord> additional;  // without the OPT: that one is `edns`
  std::optional<Edns> edns;
};

// Compression pointers may only point before the start of the label run they end, so every
// hop moves strictly backwards and no chain can loop; the cap bounds the work a 64 KiB packet
// full of pointer chains can cause. A name has at most 127 labels, so a compressor that
// points each name at the previous one never needs more.
constexpr int kMaxPointerHops = 127;

// Parses a DNS message (RFC 1035 + RFC 6891 OPT). Strict and safe: compression pointers only
// backwards and at most kMaxPointerHops hops, labels 1-63 bytes (the 0x40/0x80 label types are
// refused), names at most 255 bytes on the wire, section counts the packet can hold, RDATA
// checked per type (A, AAAA, NS, SRV, TXT, SOA in class IN; every other type or class is
// Opaque, kept verbatim, names inside it not decompressed), at most one OPT (in additional,
// owner root, options well-formed; unknown options ignored), no bytes after the last record,
// at most 65535 bytes. Errors are kInvalidArgument with a short reason naming the offset:
// the server answers FORMERR when parse_header() can read the header, and drops otherwise.
Result<Message> parse(std::span<const std::uint8_t> packet);

// The header alone (RCODE without the OPT's upper bits), for a FORMERR reply to a packet
// that does not fully parse; nullopt when the packet is shorter than a header.
std::optional<Header> parse_header(std::span<const std::uint8_t> packet);

// The first question, read by the same rules as parse(), for echoing in a FORMERR reply
// when the header and the question are sound but something later is not. nullopt when the
// packet has no question or it does not parse.
std::optional<Question> parse_first_question(std::span<const std::uint8_t> packet);

// Serializes `message`, at most `max_size` bytes: 512 for plain UDP, the client's EDNS size
// (at least 512) or 65535 for TCP; larger values count as 65535, a message's limit.
//
// Names are compressed against every earlier name, case-insensitively, so a later name takes
// the case of the first one written: answers carry the case of the question. SRV targets are
// not compressed (RFC 2782) but others may point into them. Pointers only go to offsets below
// 0x4000, which is all 14 bits can say.
//
// When the message does not fit, records are dropped from the end (additional, then
// authority, then answers; whole records, and every record after the first that does not
// fit) and the question is kept. TC is set when an answer or authority record, or a
// question, had to go, and not when only additional records did: additional data is a
// courtesy, and TC would send the client to TCP for nothing it asked for (RFC 2181 §9).
// TC is also set when message.header.tc is.
//
// With message.edns an OPT is always written (room for it is kept before any record), with
// the extended RCODE bits. Without one, an RCODE above 15 cannot be said and goes out as
// SERVFAIL rather than as its low 4 bits, which would mean something else.
//
// What cannot be encoded is left out rather than written wrong: records and questions whose
// names have an empty or over-63-byte label or exceed 255 bytes, RDATA over 65535 bytes,
// and records of type OPT (the OPT comes only from `edns`). TXT strings longer than 255 bytes
// are split into 255-byte character-strings; a TXT without strings gets one empty string.
// The RR type written is the one the RData alternative implies; `type` is used for Opaque.
// Below 12 bytes (no room for a header) the result is empty; below 12 + 11 there is no OPT.
std::vector<std::uint8_t> serialize(const Message& message, std::size_t max_size);

// The response skeleton for a query: id, opcode, RD and CD copied, QR set, the questions
// echoed as the client wrote them (case included: resolvers check it, draft-vixie-dnsext-
// dns0x20). With an OPT in the query, the response has one (RFC 6891 §7) with DO copied and
// udp_size left at the Edns default for the server to set to what it advertises.
Message response_to(const Message& query);

}  // namespace cw::dns
