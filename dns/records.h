// DNS as values, shared by the codec (message.h), the server (server.h) and the zone
// (zone.h): names, questions, resource records and answers. Nothing here touches the wire.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace cw::dns {

// RR types and classes clusterwire serves or must recognise.
enum class RType : std::uint16_t {
  kA = 1,
  kNS = 2,
  kCNAME = 5,
  kSOA = 6,
  kPTR = 12,
  kMX = 15,
  kTXT = 16,
  kAAAA = 28,
  kSRV = 33,
  kOPT = 41,
  kAXFR = 252,
  kANY = 255,
};
constexpr std::uint16_t kClassIN = 1;

enum class Rcode : std::uint8_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNXDomain = 3,
  kNotImp = 4,
  kRefused = 5,
};

// A domain name as a list of labels, kept as the sender wrote them (case preserved, so that
// answers echo the query's case); compared case-insensitively. The root is no labels.
// Labels may hold any byte (RFC 2181); each is 1-63 bytes, the whole name at most 255 on
// the wire.
struct Name {
  std::vector<std::string> labels;

  static Name parse(const std::string& dotted);  // "a.b.c" or "a.b.c."; no escapes
  std::string to_string() const;                  // "a.b.c." (root: ".")
  std::string lower() const;                      // to_string() in lower case, for lookups
  bool ends_with(const Name& suffix) const;       // case-insensitive, label-wise
  std::size_t wire_length() const;                // bytes uncompressed, with the root's 0
  friend bool operator==(const Name& a, const Name& b);  // case-insensitive
};

struct Question {
  Name name;
  std::uint16_t type = 0;  // an RType value, or anything else the client asked
  std::uint16_t klass = kClassIN;
};

struct A {
  std::array<std::uint8_t, 4> address{};
};
struct AAAA {
  std::array<std::uint8_t, 16> address{};
};
struct NS {
  Name host;
};
struct SRV {
  std::uint16_t priority = 0;
  std::uint16_t weight = 0;
  std::uint16_t port = 0;
  Name target;
};
struct TXT {
  std::vector<std::string> strings;  // each at most 255 bytes
};
struct SOA {
  Name mname;
  Name rname;
  std::uint32_t serial = 0;
  std::uint32_t refresh = 0;
  std::uint32_t retry = 0;
  std::uint32_t expire = 0;
  std::uint32_t minimum = 0;  // the negative-caching TTL (RFC 2308)
};
// Any other type, kept as raw RDATA (read from a message; never produced by the zone).
struct Opaque {
  std::vector<std::uint8_t> rdata;
};

using RData = std::variant<A, AAAA, NS, SRV, TXT, SOA, Opaque>;

struct ResourceRecord {
  Name name;
  std::uint16_t type = 0;
  std::uint16_t klass = kClassIN;
  std::uint32_t ttl = 0;
  RData data;
};

// What the zone says to a question, before it goes on the wire.
struct Answer {
  Rcode rcode = Rcode::kNoError;
  bool authoritative = false;
  std::vector<ResourceRecord> answers;
  std::vector<ResourceRecord> authority;   // SOA for NXDOMAIN/NODATA (RFC 2308), NS at the apex
  std::vector<ResourceRecord> additional;  // addresses of SRV targets
};

// The source of answers. Implementations must be safe to call from many threads.
class Zone {
 public:
  virtual ~Zone() = default;
  virtual Answer lookup(const Question& question) const = 0;
  // A number that changes whenever an answer may have changed, raised only once the new
  // answers are visible; nullopt: answers may change at any time, never reuse one (the
  // server's answer cache, handler.h, relies on this).
  virtual std::optional<std::uint64_t> version() const { return std::nullopt; }
};

}  // namespace cw::dns
