#include "dns/handler.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "dns/message.h"

namespace cw::dns {
namespace {

constexpr std::uint8_t kOpcodeQuery = 0;
constexpr std::uint16_t kTypeIXFR = 251;
constexpr auto kBadVers = static_cast<Rcode>(16);  // RFC 6891: needs the OPT's upper bits

std::uint16_t our_udp_size(const HandlerOptions& options) {
  return std::max<std::uint16_t>(options.udp_payload_size, kMinUdpPayload);
}

std::vector<std::uint8_t> finish(Message& reply, std::size_t limit) {
  auto wire = serialize(reply, limit);
  if (wire.size() <= limit) return wire;
  // The codec promises to truncate; should it ever not, a bare TC reply keeps the promise of
  // never sending more than allowed (header, question and OPT are under 512 bytes).
  reply.answers.clear();
  reply.authority.clear();
  reply.additional.clear();
  reply.header.tc = true;
  wire = serialize(reply, limit);
  return wire.size() <= limit ? wire : std::vector<std::uint8_t>{};
}

// A reply to a packet that does not parse: what the header says, and the question when it
// can be read, so that the client can match the reply to its query. No OPT: we cannot know
// whether the client sent a sound one.
std::vector<std::uint8_t> unparsed_reply(std::span<const std::uint8_t> request, const Header& query,
                                         Rcode rcode) {
  Message reply;
  reply.header.id = query.id;
  reply.header.qr = true;
  reply.header.opcode = query.opcode;
  reply.header.rd = query.rd;
  reply.header.cd = query.cd;
  reply.header.rcode = rcode;
  if (auto question = parse_first_question(request)) {
    reply.questions.push_back(std::move(*question));
  }
  return finish(reply, kMinUdpPayload);
}

// The skeleton of every reply to a parsed query: response_to() echoes id, flags and the
// question, and OPT (with DO) when the query had one; we add our size and the rcode.
Message reply_to(const Message& query, Rcode rcode, const HandlerOptions& options) {
  Message reply = response_to(query);
  reply.header.aa = false;
  reply.header.ra = false;  // authoritative only: we never recurse
  reply.header.rcode = rcode;
  if (reply.edns) {
    reply.edns->udp_size = our_udp_size(options);
    reply.edns->version = 0;
  }
  return reply;
}

std::size_t limit_for(const Message& query, bool tcp, const HandlerOptions& options) {
  return response_limit(tcp, query.edns ? std::optional(query.edns->udp_size) : std::nullopt,
                        options);
}

// An error reply: the question echoed when there is exactly one, no records.
std::vector<std::uint8_t> error_reply(const Message& query, Rcode rcode, bool tcp,
                                      const HandlerOptions& options) {
  Message reply = reply_to(query, rcode, options);
  if (query.questions.size() != 1) reply.questions.clear();
  return finish(reply, limit_for(query, tcp, options));
}

}  // namespace

std::size_t response_limit(bool tcp, std::optional<std::uint16_t> client_udp_size,
                           const HandlerOptions& options) {
  if (tcp) return kMaxTcpMessage;
  if (!client_udp_size) return kMinUdpPayload;
  return std::min<std::size_t>(std::max<std::size_t>(kMinUdpPayload, *client_udp_size),
                               our_udp_size(options));
}

std::optional<Rcode> response_rcode(std::span<const std::uint8_t> response) {
  if (response.size() < 12) return std::nullopt;
  return static_cast<Rcode>(response[3] & 0x0F);
}

std::vector<std::uint8_t> handle(std::span<const std::uint8_t> request, bool tcp, const Zone& zone,
                                 const HandlerOptions& options) {
  const std::optional<Header> header = parse_header(request);
  if (!header || header->qr) return {};

  Result<Message> parsed = parse(request);
  if (header->opcode != kOpcodeQuery) {
    if (!parsed) return unparsed_reply(request, *header, Rcode::kNotImp);
    return error_reply(*parsed, Rcode::kNotImp, tcp, options);
  }
  if (!parsed) return unparsed_reply(request, *header, Rcode::kFormErr);
  const Message& query = *parsed;
  if (query.questions.size() != 1) return error_reply(query, Rcode::kFormErr, tcp, options);
  if (query.edns && query.edns->version != 0) return error_reply(query, kBadVers, tcp, options);

  const Question& question = query.questions.front();
  if (question.klass != kClassIN) return error_reply(query, Rcode::kRefused, tcp, options);
  if (question.type == static_cast<std::uint16_t>(RType::kAXFR) || question.type == kTypeIXFR) {
    return error_reply(query, Rcode::kRefused, tcp, options);
  }

  Answer answer;
  try {
    answer = zone.lookup(question);
  } catch (const std::exception&) {
    // A zone bug must cost one answer, not the server.
    return error_reply(query, Rcode::kServFail, tcp, options);
  }
  Message reply = reply_to(query, answer.rcode, options);
  reply.header.aa = answer.authoritative;
  reply.answers = std::move(answer.answers);
  reply.authority = std::move(answer.authority);
  reply.additional = std::move(answer.additional);
  return finish(reply, limit_for(query, tcp, options));
}

namespace {

// A request whose response depends on its bytes alone (ID aside): a plain query with one
// question, no compression in it and no upper-case letter in the name; at most one
// additional record (the OPT).
bool cacheable(std::span<const std::uint8_t> r) {
  if (r.size() < 17 || r.size() > kMinUdpPayload) return false;
  if ((r[2] & 0x80) != 0 || ((r[2] >> 3) & 0x0F) != kOpcodeQuery) return false;  // QR, opcode
  if (r[4] != 0 || r[5] != 1 || r[6] != 0 || r[7] != 0 || r[8] != 0 || r[9] != 0 || r[10] != 0 || r[11] > 1) {
    return false;
  }
  std::size_t i = 12;
  while (i < r.size() && r[i] != 0) {
    const std::size_t len = r[i];
    if (len > 63 || i + 1 + len > r.size()) return false;  // a pointer, or a bad label
    for (std::size_t j = i + 1; j <= i + len; ++j) {
      if (r[j] >= 'A' && r[j] <= 'Z') return false;
    }
    i += 1 + len;
  }
  return i + 5 <= r.size();  // the root label, type and class
}

}  // namespace

std::vector<std::uint8_t> AnswerCache::answer(std::span<const std::uint8_t> request, bool tcp, const Zone& zone,
                                              const HandlerOptions& options) {
  const std::optional<std::uint64_t> version = zone.version();
  if (!version || !cacheable(request)) return handle(request, tcp, zone, options);
  if (&zone != zone_ || *version != version_) {
    entries_.clear();
    zone_ = &zone;
    version_ = *version;
  }
  key_.assign(request.begin() + 2, request.end());
  key_.push_back(tcp ? 't' : 'u');
  if (auto it = entries_.find(key_); it != entries_.end()) {
    ++hits_;
    std::vector<std::uint8_t> response = it->second;
    response[0] = request[0];
    response[1] = request[1];
    return response;
  }
  std::vector<std::uint8_t> response = handle(request, tcp, zone, options);
  // Not kept: SERVFAIL (a failure, not the zone's answer) and large responses (a few big
  // TCP answers must not hold megabytes per worker).
  const bool servfail = response.size() >= 12 && (response[3] & 0x0F) == 2;
  if (response.size() >= 12 && response.size() <= kMaxCachedResponse && !servfail) {
    if (entries_.size() >= max_entries_) entries_.clear();
    entries_.emplace(key_, response);
  }
  return response;
}

}  // namespace cw::dns
