// One DNS request in, one response out, as pure bytes: the server's whole protocol logic, kept
// apart from sockets so that every rule is a table test. The rules, in order:
//
//   header unreadable (< 12 bytes)          drop
//   QR set (a response)                     drop: answering responses invites reflection loops
//   opcode other than QUERY                 NOTIMP (parsed or not)
//   the message does not parse              FORMERR: id and flags, the question if readable
//   QDCOUNT other than 1                    FORMERR
//   EDNS version other than 0               BADVERS (RFC 6891 6.1.3)
//   class other than IN                     REFUSED
//   AXFR, IXFR                              REFUSED: no zone transfers
//   otherwise                               the zone's answer, AA from it, RA clear
//
// The question is echoed as the client wrote it (case included: some resolvers check it).
// A query with OPT gets OPT back, advertising our UDP size. Size limits: TCP 65535; UDP 512
// without EDNS, else the client's size clamped to [512, ours]. A response over the limit is
// truncated by the codec with TC set, so a UDP response is never larger than allowed: the
// server cannot be used to amplify.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "dns/records.h"

namespace cw::dns {

struct HandlerOptions {
  // Advertised in OPT and the most a UDP response may hold. 1232 fits an IPv6 minimum MTU
  // path without fragmentation (DNS flag day 2020); values below 512 count as 512.
  std::uint16_t udp_payload_size = 1232;
};

inline constexpr std::size_t kMinUdpPayload = 512;    // RFC 1035: always allowed
inline constexpr std::size_t kMaxTcpMessage = 65535;  // the 2-byte length prefix's limit

// The response to `request`, or an empty vector when nothing must be sent. `tcp` selects the
// size limit. Safe to call from many threads at once if `zone` is.
std::vector<std::uint8_t> handle(std::span<const std::uint8_t> request, bool tcp, const Zone& zone,
                                 const HandlerOptions& options);

// The most a response may hold, from the transport and the query's EDNS size (nullopt: no OPT).
std::size_t response_limit(bool tcp, std::optional<std::uint16_t> client_udp_size,
                           const HandlerOptions& options);

// Responses already made, for requests that will get the same bytes again: the same request
// (after its ID), the same transport, and a zone whose version() has not changed. Only
// requests with one all-lower-case question and no compression are kept (a mixed-case name,
// as resolvers using 0x20 send, must be echoed as sent), and only responses of at most
// kMaxCachedResponse bytes that are not SERVFAIL; at most `max_entries` (so at most 4096 x
// 1232 bytes, about 5 MiB, per worker by default), cleared whole when full or when the zone
// changes. Not thread-safe: one per worker thread.
class AnswerCache {
 public:
  static constexpr std::size_t kMaxCachedResponse = 1232;

  explicit AnswerCache(std::size_t max_entries = 4096) : max_entries_(max_entries) {}

  // The response to `request`: from the cache when it holds one (the request's ID set in
  // it), else from handle(), kept for next time when it may be.
  std::vector<std::uint8_t> answer(std::span<const std::uint8_t> request, bool tcp, const Zone& zone,
                                   const HandlerOptions& options);

  std::uint64_t hits() const { return hits_; }
  std::size_t size() const { return entries_.size(); }

 private:
  std::size_t max_entries_;
  const Zone* zone_ = nullptr;
  std::uint64_t version_ = 0;
  std::uint64_t hits_ = 0;
  std::string key_;  // reused: no allocation per lookup
  std::unordered_map<std::string, std::vector<std::uint8_t>> entries_;
};

// The RCODE of a response `handle` produced, for metrics: the header's 4 bits only (so
// BADVERS, 16, reads as NOERROR); nullopt if it is shorter than a header.
std::optional<Rcode> response_rcode(std::span<const std::uint8_t> response);

}  // namespace cw::dns
