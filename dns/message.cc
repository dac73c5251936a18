#include "dns/message.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <unordered_map>
#include <utility>

namespace cw::dns {
namespace {

constexpr std::size_t kHeaderSize = 12;
constexpr std::size_t kMaxMessage = 65535;
constexpr std::size_t kMaxNameWire = 255;
constexpr std::size_t kMaxLabel = 63;
constexpr std::size_t kMaxRdata = 65535;
constexpr std::size_t kMaxCharString = 255;
constexpr std::size_t kOptSize = 11;     // root, type, class, TTL, RDLENGTH 0
constexpr std::size_t kMinQuestion = 5;  // root, type, class
constexpr std::size_t kMinRecord = 11;   // root, type, class, TTL, RDLENGTH
constexpr std::size_t kSoaNumbers = 20;  // serial, refresh, retry, expire, minimum
constexpr std::size_t kMaxPointerTarget = 0x3FFF;
constexpr std::uint16_t kTypeOpt = static_cast<std::uint16_t>(RType::kOPT);
constexpr std::uint8_t kServFail = static_cast<std::uint8_t>(Rcode::kServFail);

Error invalid(std::string reason) { return Error(ErrorCode::kInvalidArgument, std::move(reason)); }

std::string at(std::size_t offset) { return "at offset " + std::to_string(offset); }

// The record as it sits in the packet, RDATA not yet decoded: the OPT needs its fields, every
// other type its RDATA bounds.
struct RawRecord {
  std::size_t offset = 0;
  Name name;
  std::uint16_t type = 0;
  std::uint16_t klass = 0;
  std::uint32_t ttl = 0;
  std::size_t rdata_begin = 0;
  std::size_t rdata_end = 0;
};

// Reads from one packet. Every read is bounds-checked against an explicit end before it
// happens; pointer targets are checked against the packet itself.
class Parser {
 public:
  explicit Parser(std::span<const std::uint8_t> packet) : p_(packet) {}

  std::uint16_t u16(std::size_t offset) const {
    return static_cast<std::uint16_t>((p_[offset] << 8) | p_[offset + 1]);
  }
  std::uint32_t u32(std::size_t offset) const {
    return (std::uint32_t{u16(offset)} << 16) | u16(offset + 2);
  }

  // A name starting at `pos`, whose uncompressed part must end by `end` (the packet's end,
  // or the RDATA's). Advances `pos` past the name's bytes at `pos`, not past what pointers
  // lead to.
  Result<Name> name(std::size_t& pos, std::size_t end) const {
    const std::size_t start = pos;
    Name name;
    std::size_t cursor = pos;
    // A pointer must point before the run of labels it ends, not merely before itself: "a"
    // then a pointer back to the "a" points backwards yet loops.
    std::size_t run_start = pos;
    std::size_t wire = 1;  // the root's zero byte
    int hops = 0;
    bool jumped = false;
    for (;;) {
      if (cursor >= end) return invalid("name " + at(start) + " runs past the end of its data");
      const std::uint8_t length = p_[cursor];
      if (length == 0) {
        if (!jumped) pos = cursor + 1;
        return name;
      }
      if ((length & 0xC0) == 0xC0) {
        if (cursor + 1 >= end) {
          return invalid("name " + at(start) + " ends in half a compression pointer");
        }
        const std::size_t target = u16(cursor) & kMaxPointerTarget;
        if (target >= run_start) {
          return invalid("name " + at(start) + ": compression pointer " + at(cursor) +
                         " to offset " + std::to_string(target) + " does not point backwards");
        }
        if (++hops > kMaxPointerHops) {
          return invalid("name " + at(start) + " follows more than " +
                         std::to_string(kMaxPointerHops) + " compression pointers");
        }
        if (!jumped) pos = cursor + 2;
        jumped = true;
        run_start = target;
        cursor = target;
        end = p_.size();  // the rest lies in earlier data, wherever that ends
        continue;
      }
      if ((length & 0xC0) != 0) {
        return invalid("name " + at(start) + ": length byte " + std::to_string(length) + " " +
                       at(cursor) + " is neither a label (1-63 bytes) nor a pointer");
      }
      wire += 1 + length;
      if (wire > kMaxNameWire) {
        return invalid("name " + at(start) + " is longer than 255 bytes");
      }
      if (cursor + 1 + length > end) {
        return invalid("name " + at(start) + ": label " + at(cursor) + " runs past the end");
      }
      name.labels.emplace_back(reinterpret_cast<const char*>(p_.data() + cursor + 1), length);
      cursor += 1 + length;
    }
  }

  Result<Question> question(std::size_t& pos) const {
    const std::size_t start = pos;
    auto name = this->name(pos, p_.size());
    if (!name.ok()) return name.error();
    if (p_.size() - pos < 4) return invalid("question " + at(start) + " is cut short");
    Question q{std::move(*name), u16(pos), u16(pos + 2)};
    pos += 4;
    return q;
  }

  Result<RawRecord> record(std::size_t& pos) const {
    RawRecord r;
    r.offset = pos;
    auto name = this->name(pos, p_.size());
    if (!name.ok()) return name.error();
    r.name = std::move(*name);
    if (p_.size() - pos < 10) return invalid("record " + at(r.offset) + " is cut short");
    r.type = u16(pos);
    r.klass = u16(pos + 2);
    r.ttl = u32(pos + 4);
    const std::size_t rdlength = u16(pos + 8);
    pos += 10;
    if (p_.size() - pos < rdlength) {
      return invalid("record " + at(r.offset) + ": RDATA of " + std::to_string(rdlength) +
                     " bytes runs past the end");
    }
    r.rdata_begin = pos;
    r.rdata_end = pos + rdlength;
    pos = r.rdata_end;
    return r;
  }

  // The RDATA of the types clusterwire speaks, in class IN (A, AAAA and SRV mean something
  // else in other classes; and UPDATE's class ANY/NONE records have empty RDATA); the rest
  // verbatim.
  Result<RData> rdata(const RawRecord& r) const {
    const std::size_t begin = r.rdata_begin;
    const std::size_t end = r.rdata_end;
    const std::size_t size = end - begin;
    const auto bad = [&](const std::string& what) {
      return invalid("record " + at(r.offset) + " of type " + std::to_string(r.type) + ": " + what);
    };
    if (r.klass != kClassIN) return RData{opaque(begin, end)};
    switch (static_cast<RType>(r.type)) {
      case RType::kA: {
        if (size != 4) return bad("RDATA of " + std::to_string(size) + " bytes, not 4");
        A a;
        std::copy_n(p_.data() + begin, 4, a.address.begin());
        return RData{a};
      }
      case RType::kAAAA: {
        if (size != 16) return bad("RDATA of " + std::to_string(size) + " bytes, not 16");
        AAAA a;
        std::copy_n(p_.data() + begin, 16, a.address.begin());
        return RData{a};
      }
      case RType::kNS: {
        std::size_t pos = begin;
        auto host = name(pos, end);
        if (!host.ok()) return host.error();
        if (pos != end) return bad("bytes after the name");
        return RData{NS{std::move(*host)}};
      }
      case RType::kSRV: {
        if (size < 7) return bad("RDATA of " + std::to_string(size) + " bytes is too short");
        SRV srv;
        srv.priority = u16(begin);
        srv.weight = u16(begin + 2);
        srv.port = u16(begin + 4);
        // RFC 2782 forbids compressing the target, but decoders accept it (RFC 3597 §4).
        std::size_t pos = begin + 6;
        auto target = name(pos, end);
        if (!target.ok()) return target.error();
        if (pos != end) return bad("bytes after the target");
        srv.target = std::move(*target);
        return RData{std::move(srv)};
      }
      case RType::kSOA: {
        SOA soa;
        std::size_t pos = begin;
        auto mname = name(pos, end);
        if (!mname.ok()) return mname.error();
        auto rname = name(pos, end);
        if (!rname.ok()) return rname.error();
        if (end - pos != kSoaNumbers) return bad("not 20 bytes after the names");
        soa.mname = std::move(*mname);
        soa.rname = std::move(*rname);
        soa.serial = u32(pos);
        soa.refresh = u32(pos + 4);
        soa.retry = u32(pos + 8);
        soa.expire = u32(pos + 12);
        soa.minimum = u32(pos + 16);
        return RData{std::move(soa)};
      }
      case RType::kTXT: {
        if (size == 0) return bad("no character-string");  // one or more (RFC 1035 §3.3.14)
        TXT txt;
        std::size_t pos = begin;
        while (pos < end) {
          const std::size_t length = p_[pos];
          if (end - pos - 1 < length) return bad("a character-string runs past the RDATA");
          txt.strings.emplace_back(reinterpret_cast<const char*>(p_.data() + pos + 1), length);
          pos += 1 + length;
        }
        return RData{std::move(txt)};
      }
      default:
        return RData{opaque(begin, end)};
    }
  }

  // The OPT's RDATA is a list of {code, length, data}; each must fit, whatever its code.
  Result<void> check_options(const RawRecord& r) const {
    std::size_t pos = r.rdata_begin;
    while (pos < r.rdata_end) {
      if (r.rdata_end - pos < 4) {
        return invalid("OPT record " + at(r.offset) + ": option cut short");
      }
      const std::size_t length = u16(pos + 2);
      if (r.rdata_end - pos - 4 < length) {
        return invalid("OPT record " + at(r.offset) + ": option " + std::to_string(u16(pos)) +
                       " runs past the RDATA");
      }
      pos += 4 + length;
    }
    return ok_result();
  }

 private:
  Opaque opaque(std::size_t begin, std::size_t end) const {
    return Opaque{std::vector<std::uint8_t>(p_.data() + begin, p_.data() + end)};
  }

  std::span<const std::uint8_t> p_;
};

Header decode_header(const Parser& p) {
  const std::uint16_t flags = p.u16(2);
  Header h;
  h.id = p.u16(0);
  h.qr = (flags & 0x8000) != 0;
  h.opcode = static_cast<std::uint8_t>((flags >> 11) & 0xF);
  h.aa = (flags & 0x0400) != 0;
  h.tc = (flags & 0x0200) != 0;
  h.rd = (flags & 0x0100) != 0;
  h.ra = (flags & 0x0080) != 0;
  h.ad = (flags & 0x0020) != 0;
  h.cd = (flags & 0x0010) != 0;
  h.rcode = static_cast<Rcode>(flags & 0xF);
  return h;
}

// --- Serializing ---

bool encodable(const Name& name) {
  return name.wire_length() <= kMaxNameWire &&
         std::all_of(name.labels.begin(), name.labels.end(), [](const std::string& label) {
           return !label.empty() && label.size() <= kMaxLabel;
         });
}

std::size_t txt_size(const TXT& txt) {
  if (txt.strings.empty()) return 1;
  std::size_t size = 0;
  for (const auto& s : txt.strings) {
    const std::size_t pieces = s.empty() ? 1 : (s.size() + kMaxCharString - 1) / kMaxCharString;
    size += pieces + s.size();
  }
  return size;
}

std::uint16_t wire_type(const ResourceRecord& rr) {
  struct Visitor {
    std::uint16_t opaque_type;
    std::uint16_t operator()(const A&) const { return static_cast<std::uint16_t>(RType::kA); }
    std::uint16_t operator()(const AAAA&) const { return static_cast<std::uint16_t>(RType::kAAAA); }
    std::uint16_t operator()(const NS&) const { return static_cast<std::uint16_t>(RType::kNS); }
    std::uint16_t operator()(const SRV&) const { return static_cast<std::uint16_t>(RType::kSRV); }
    std::uint16_t operator()(const TXT&) const { return static_cast<std::uint16_t>(RType::kTXT); }
    std::uint16_t operator()(const SOA&) const { return static_cast<std::uint16_t>(RType::kSOA); }
    std::uint16_t operator()(const Opaque&) const { return opaque_type; }
  };
  return std::visit(Visitor{rr.type}, rr.data);
}

// Whether the record can go on the wire as it is; checked before writing so that nothing
// has to be taken back for it.
bool encodable(const ResourceRecord& rr) {
  if (!encodable(rr.name) || wire_type(rr) == kTypeOpt) return false;
  if (const auto* ns = std::get_if<NS>(&rr.data)) return encodable(ns->host);
  if (const auto* srv = std::get_if<SRV>(&rr.data)) return encodable(srv->target);
  if (const auto* soa = std::get_if<SOA>(&rr.data)) {
    return encodable(soa->mname) && encodable(soa->rname);
  }
  if (const auto* txt = std::get_if<TXT>(&rr.data)) return txt_size(*txt) <= kMaxRdata;
  if (const auto* opaque = std::get_if<Opaque>(&rr.data)) return opaque->rdata.size() <= kMaxRdata;
  return true;
}

class Writer {
 public:
  std::vector<std::uint8_t>& out() { return out_; }

  void u8(std::uint8_t v) { out_.push_back(v); }
  void u16(std::uint16_t v) {
    out_.push_back(static_cast<std::uint8_t>(v >> 8));
    out_.push_back(static_cast<std::uint8_t>(v));
  }
  void u32(std::uint32_t v) {
    u16(static_cast<std::uint16_t>(v >> 16));
    u16(static_cast<std::uint16_t>(v));
  }
  void bytes(const void* data, std::size_t size) {
    const auto* b = static_cast<const std::uint8_t*>(data);
    out_.insert(out_.end(), b, b + size);
  }
  void patch_u16(std::size_t at, std::uint16_t v) {
    out_[at] = static_cast<std::uint8_t>(v >> 8);
    out_[at + 1] = static_cast<std::uint8_t>(v);
  }

  // Writes `name` (checked encodable), pointing at the longest suffix already written when
  // `compress`, and remembers the suffixes it writes out in full for later names.
  void name(const Name& name, bool compress) {
    const std::size_t n = name.labels.size();
    // keys[i]: the suffix from label i, lower-cased, in wire form (labels may hold dots).
    std::vector<std::string> keys(n);
    for (std::size_t i = n; i-- > 0;) {
      const std::string& label = name.labels[i];
      std::string key;
      key.reserve(1 + label.size() + (i + 1 < n ? keys[i + 1].size() : 0));
      key.push_back(static_cast<char>(label.size()));
      for (const char c : label) {
        key.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
      }
      if (i + 1 < n) key += keys[i + 1];
      keys[i] = std::move(key);
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (compress) {
        if (const auto it = suffixes_.find(keys[i]); it != suffixes_.end()) {
          u16(static_cast<std::uint16_t>(0xC000 | it->second));
          return;
        }
      }
      if (out_.size() <= kMaxPointerTarget) {
        suffixes_.try_emplace(keys[i], static_cast<std::uint16_t>(out_.size()));
      }
      u8(static_cast<std::uint8_t>(name.labels[i].size()));
      bytes(name.labels[i].data(), name.labels[i].size());
    }
    u8(0);
  }

  void rdata(const RData& data) {
    struct Visitor {
      Writer& w;
      void operator()(const A& a) const { w.bytes(a.address.data(), a.address.size()); }
      void operator()(const AAAA& a) const { w.bytes(a.address.data(), a.address.size()); }
      void operator()(const NS& ns) const { w.name(ns.host, true); }
      void operator()(const SRV& srv) const {
        w.u16(srv.priority);
        w.u16(srv.weight);
        w.u16(srv.port);
        w.name(srv.target, false);
      }
      void operator()(const TXT& txt) const {
        if (txt.strings.empty()) w.u8(0);
        for (const auto& s : txt.strings) {
          std::size_t pos = 0;
          do {
            const std::size_t piece = std::min(kMaxCharString, s.size() - pos);
            w.u8(static_cast<std::uint8_t>(piece));
            w.bytes(s.data() + pos, piece);
            pos += piece;
          } while (pos < s.size());
        }
      }
      void operator()(const SOA& soa) const {
        w.name(soa.mname, true);
        w.name(soa.rname, true);
        w.u32(soa.serial);
        w.u32(soa.refresh);
        w.u32(soa.retry);
        w.u32(soa.expire);
        w.u32(soa.minimum);
      }
      void operator()(const Opaque& o) const { w.bytes(o.rdata.data(), o.rdata.size()); }
    };
    std::visit(Visitor{*this}, data);
  }

  void record(const ResourceRecord& rr) {
    name(rr.name, true);
    u16(wire_type(rr));
    u16(rr.klass);
    u32(rr.ttl);
    const std::size_t length_at = out_.size();
    u16(0);
    rdata(rr.data);
    patch_u16(length_at, static_cast<std::uint16_t>(out_.size() - length_at - 2));
  }

 private:
  std::vector<std::uint8_t> out_;
  std::unordered_map<std::string, std::uint16_t> suffixes_;  // suffix key -> offset
};

}  // namespace

Result<Message> parse(std::span<const std::uint8_t> packet) {
  if (packet.size() < kHeaderSize) {
    return invalid("packet of " + std::to_string(packet.size()) +
                   " bytes is shorter than a header");
  }
  if (packet.size() > kMaxMessage) {
    return invalid("packet of " + std::to_string(packet.size()) + " bytes is over 65535");
  }
  const Parser p(packet);
  Message m;
  m.header = decode_header(p);
  const std::size_t qdcount = p.u16(4);
  const std::array<std::size_t, 3> counts = {p.u16(6), p.u16(8), p.u16(10)};
  // Before reserving anything: the smallest question and record the counts could mean must
  // fit in what follows the header.
  const std::size_t least =
      qdcount * kMinQuestion + (counts[0] + counts[1] + counts[2]) * kMinRecord;
  if (least > packet.size() - kHeaderSize) {
    return invalid("the header counts " + std::to_string(qdcount) + " questions and " +
                   std::to_string(counts[0] + counts[1] + counts[2]) + " records, more than " +
                   std::to_string(packet.size() - kHeaderSize) + " bytes can hold");
  }

  std::size_t pos = kHeaderSize;
  m.questions.reserve(qdcount);
  for (std::size_t i = 0; i < qdcount; ++i) {
    auto q = p.question(pos);
    if (!q.ok()) return q.error();
    m.questions.push_back(std::move(*q));
  }

  const std::array<std::vector<ResourceRecord>*, 3> sections = {&m.answers, &m.authority,
                                                                &m.additional};
  const std::array<const char*, 3> section_names = {"answer", "authority", "additional"};
  std::uint8_t extended_rcode = 0;  // the OPT's upper 8 bits
  for (std::size_t s = 0; s < sections.size(); ++s) {
    sections[s]->reserve(counts[s]);
    for (std::size_t i = 0; i < counts[s]; ++i) {
      auto raw = p.record(pos);
      if (!raw.ok()) return raw.error();
      if (raw->type == kTypeOpt) {
        if (s != 2) {
          return invalid(std::string("OPT record ") + at(raw->offset) + " in the " +
                         section_names[s] + " section");
        }
        if (m.edns) return invalid("second OPT record " + at(raw->offset));
        if (!raw->name.labels.empty()) {
          return invalid("OPT record " + at(raw->offset) + " is owned by " +
                         raw->name.to_string() + ", not the root");
        }
        if (auto checked = p.check_options(*raw); !checked.ok()) return checked.error();
        Edns edns;
        edns.udp_size = raw->klass;
        extended_rcode = static_cast<std::uint8_t>(raw->ttl >> 24);
        edns.version = static_cast<std::uint8_t>(raw->ttl >> 16);
        edns.do_bit = (raw->ttl & 0x8000) != 0;
        m.edns = edns;
        continue;
      }
      auto data = p.rdata(*raw);
      if (!data.ok()) return data.error();
      sections[s]->push_back(ResourceRecord{std::move(raw->name), raw->type, raw->klass,
                                            raw->ttl, std::move(*data)});
    }
  }
  if (pos != packet.size()) {
    return invalid(std::to_string(packet.size() - pos) + " bytes after the last record " +
                   at(pos));
  }
  // Rcode holds 8 bits; the 12-bit extended RCODEs above 255 are unassigned or private.
  const unsigned rcode = (unsigned{extended_rcode} << 4) | static_cast<unsigned>(m.header.rcode);
  if (rcode > 0xFF) return invalid("extended RCODE " + std::to_string(rcode) + " is out of range");
  m.header.rcode = static_cast<Rcode>(rcode);
  return m;
}

std::optional<Header> parse_header(std::span<const std::uint8_t> packet) {
  if (packet.size() < kHeaderSize) return std::nullopt;
  return decode_header(Parser(packet));
}

std::optional<Question> parse_first_question(std::span<const std::uint8_t> packet) {
  if (packet.size() < kHeaderSize || packet.size() > kMaxMessage) return std::nullopt;
  const Parser p(packet);
  if (p.u16(4) == 0) return std::nullopt;
  std::size_t pos = kHeaderSize;
  auto q = p.question(pos);
  if (!q.ok()) return std::nullopt;
  return std::move(*q);
}

std::vector<std::uint8_t> serialize(const Message& message, std::size_t max_size) {
  max_size = std::min(max_size, kMaxMessage);
  if (max_size < kHeaderSize) return {};
  const bool with_opt = message.edns.has_value() && max_size >= kHeaderSize + kOptSize;
  // Room for the OPT is kept from the start; records fill what is left.
  const std::size_t budget = max_size - (with_opt ? kOptSize : 0);

  Writer w;
  w.out().reserve(std::min<std::size_t>(max_size, 512));
  w.out().resize(kHeaderSize);
  std::array<std::uint16_t, 4> counts{};
  bool full = false;       // something did not fit: nothing after it is written
  bool truncated = false;  // what did not fit was asked for: TC

  for (const auto& q : message.questions) {
    if (!encodable(q.name)) continue;
    const std::size_t mark = w.out().size();
    w.name(q.name, true);
    w.u16(q.type);
    w.u16(q.klass);
    if (w.out().size() > budget) {
      // The suffixes the table learned past `mark` are never pointed at: no name follows.
      w.out().resize(mark);
      full = truncated = true;
      break;
    }
    ++counts[0];
  }
  const std::array<const std::vector<ResourceRecord>*, 3> sections = {
      &message.answers, &message.authority, &message.additional};
  for (std::size_t s = 0; s < sections.size() && !full; ++s) {
    for (const auto& rr : *sections[s]) {
      if (!encodable(rr)) continue;
      const std::size_t mark = w.out().size();
      w.record(rr);
      if (w.out().size() > budget) {
        w.out().resize(mark);
        full = true;
        truncated = s < 2;  // answer or authority (RFC 2181 §9)
        break;
      }
      ++counts[s + 1];
    }
  }

  std::uint8_t rcode = static_cast<std::uint8_t>(message.header.rcode);
  if (with_opt) {
    const auto& edns = *message.edns;
    w.u8(0);
    w.u16(kTypeOpt);
    w.u16(edns.udp_size);
    w.u32((std::uint32_t{rcode} >> 4) << 24 | std::uint32_t{edns.version} << 16 |
          (edns.do_bit ? 0x8000U : 0U));
    w.u16(0);
    ++counts[3];
  } else if (rcode > 0xF) {
    rcode = kServFail;
  }

  const Header& h = message.header;
  const auto bit = [](bool b, unsigned shift) { return b ? 1U << shift : 0U; };
  const unsigned flags = bit(h.qr, 15) | (unsigned{h.opcode} & 0xFU) << 11 | bit(h.aa, 10) |
                         bit(h.tc || truncated, 9) | bit(h.rd, 8) | bit(h.ra, 7) |
                         bit(h.ad, 5) | bit(h.cd, 4) | (unsigned{rcode} & 0xFU);
  w.patch_u16(0, h.id);
  w.patch_u16(2, static_cast<std::uint16_t>(flags));
  for (std::size_t i = 0; i < counts.size(); ++i) w.patch_u16(4 + 2 * i, counts[i]);
  return std::move(w.out());
}

Message response_to(const Message& query) {
  Message response;
  response.header.id = query.header.id;
  response.header.qr = true;
  response.header.opcode = query.header.opcode;
  response.header.rd = query.header.rd;
  response.header.cd = query.header.cd;
  response.questions = query.questions;
  if (query.edns) {
    Edns edns;
    edns.do_bit = query.edns->do_bit;
    response.edns = edns;
  }
  return response;
}

}  // namespace cw::dns
