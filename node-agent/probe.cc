#include "node-agent/probe.h"

#include <algorithm>
#include <cstring>

namespace cw::agent::probe {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;

constexpr std::uint8_t kMagic[4] = {'C', 'W', 'P', 'R'};
constexpr std::uint8_t kVersion = 1;
constexpr std::size_t kSenderAt = 16;
constexpr std::size_t kSeenAt = 36;
// A large probe is re-sent this many times in all before its round counts as lost.
constexpr int kLargeAttempts = 3;

void put_address(std::vector<std::uint8_t>& out, std::size_t at, const std::optional<net::IpAddress>& a) {
  if (!a) return;
  out[at] = a->is_v4() ? 4 : 6;
  const int bytes = a->is_v4() ? 4 : 16;
  const net::Uint128 bits = a->bits();
  for (int i = 0; i < bytes; ++i) {
    out[at + 4 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(bits >> (8 * (bytes - 1 - i)));
  }
}

Result<std::optional<net::IpAddress>> get_address(std::span<const std::uint8_t> in, std::size_t at) {
  const std::uint8_t family = in[at];
  if (family == 0) return std::optional<net::IpAddress>{};
  if (family != 4 && family != 6) return Error(ErrorCode::kInvalidArgument, "probe: bad address family");
  const int bytes = family == 4 ? 4 : 16;
  net::Uint128 bits = 0;
  for (int i = 0; i < bytes; ++i) bits = (bits << 8) | in[at + 4 + static_cast<std::size_t>(i)];
  for (std::size_t i = at + 4 + static_cast<std::size_t>(bytes); i < at + 20; ++i) {
    if (in[i] != 0) return Error(ErrorCode::kInvalidArgument, "probe: IPv4 address with trailing bytes");
  }
  return std::optional<net::IpAddress>{
      net::IpAddress::from_bits(family == 4 ? net::Family::kIPv4 : net::Family::kIPv6, bits)};
}

std::size_t spread(const std::string& key, std::size_t modulo) {
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a: stable across runs and builds
  for (char c : key) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  h ^= h >> 31;  // FNV's last bytes stir its low bits little: mix (splitmix64's finaliser)
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  return modulo == 0 ? 0 : static_cast<std::size_t>(h % modulo);
}

}  // namespace

std::vector<std::uint8_t> encode(const Message& m, std::size_t size) {
  std::vector<std::uint8_t> out(std::max(size, kHeaderSize), 0);
  std::memcpy(out.data(), kMagic, 4);
  out[4] = kVersion;
  out[5] = static_cast<std::uint8_t>(m.kind);
  for (int i = 0; i < 8; ++i) out[8 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(m.nonce >> (8 * (7 - i)));
  put_address(out, kSenderAt, m.sender);
  put_address(out, kSeenAt, m.seen);
  return out;
}

Result<Message> decode(std::span<const std::uint8_t> in) {
  if (in.size() < kHeaderSize) return Error(ErrorCode::kInvalidArgument, "probe: shorter than its header");
  if (std::memcmp(in.data(), kMagic, 4) != 0) return Error(ErrorCode::kInvalidArgument, "probe: bad magic");
  if (in[4] != kVersion) return Error(ErrorCode::kInvalidArgument, "probe: unknown version");
  if (in[5] != static_cast<std::uint8_t>(Kind::kRequest) && in[5] != static_cast<std::uint8_t>(Kind::kReply)) {
    return Error(ErrorCode::kInvalidArgument, "probe: unknown kind");
  }
  Message m;
  m.kind = static_cast<Kind>(in[5]);
  for (int i = 0; i < 8; ++i) m.nonce = (m.nonce << 8) | in[8 + static_cast<std::size_t>(i)];
  auto sender = get_address(in, kSenderAt);
  if (!sender) return sender.error();
  auto seen = get_address(in, kSeenAt);
  if (!seen) return seen.error();
  m.sender = *sender;
  m.seen = *seen;
  return m;
}

std::optional<net::IpAddress> probe_address(const std::vector<net::Prefix>& blocks, net::Family family) {
  for (const auto& b : blocks) {
    if (b.family() != family) continue;
    return family == net::Family::kIPv4 ? b.address() : b.last();
  }
  return std::nullopt;
}

Result<void> validate(const Settings& s) {
  using namespace std::chrono_literals;
  if (s.interval < 100ms) return Error(ErrorCode::kInvalidArgument, "--probe-interval must be at least 100ms");
  if (s.timeout < 10ms || s.timeout >= s.interval) {
    return Error(ErrorCode::kInvalidArgument, "--probe-timeout must be at least 10ms and below --probe-interval");
  }
  if (s.suspect_interval < 10ms || s.suspect_interval > s.interval) {
    return Error(ErrorCode::kInvalidArgument, "the suspect interval must be 10ms to --probe-interval");
  }
  if (s.down_after < 1 || s.up_after < 1 || s.mtu_every < 1 || s.mtu_down_after < 1 || s.window < 1) {
    return Error(ErrorCode::kInvalidArgument, "probe thresholds must be at least 1");
  }
  return ok_result();
}

const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::kUnknown: return "Unknown";
    case Verdict::kUp: return "Up";
    case Verdict::kDown: return "Down";
    case Verdict::kMtuBlackHole: return "MTUBlackHole";
    case Verdict::kSnat: return "SNAT";
  }
  return "Unknown";
}

Schedule::Schedule(Settings settings, std::function<std::uint64_t()> nonces)
    : settings_(settings), nonces_(std::move(nonces)) {}

void Schedule::set_targets(const std::vector<Target>& targets, TimePoint now) {
  std::map<std::string, Peer> next;
  for (const auto& t : targets) {
    const std::string key = key_of(t);
    auto it = peers_.find(key);
    if (it != peers_.end()) {
      next.emplace(key, std::move(it->second));
      continue;
    }
    Peer p{.target = t};
    const auto offset = std::chrono::milliseconds(spread(key, static_cast<std::size_t>(settings_.interval.count())));
    p.next_scheduled = now + offset;
    p.next_attempt = p.next_scheduled;
    next.emplace(key, std::move(p));
    changed_ = true;
  }
  for (const auto& [key, p] : peers_) {
    if (!next.contains(key)) changed_ = true;
  }
  peers_ = std::move(next);
}

std::uint64_t Schedule::remember(const std::string& key, TimePoint now, bool large) {
  std::uint64_t nonce = nonces_();
  while (outstanding_.contains(nonce)) nonce = nonces_();
  outstanding_.emplace(nonce, Outstanding{key, now, large});
  return nonce;
}

void Schedule::record(Peer& p, bool answered, std::optional<microseconds> rtt) {
  p.window.push_back(answered);
  while (p.window.size() > settings_.window) p.window.pop_front();
  if (rtt) {
    p.rtts.push_back(*rtt);
    while (p.rtts.size() > settings_.window) p.rtts.pop_front();
  }
}

void Schedule::decide(Peer& p) {
  const Verdict healthy = p.snat ? Verdict::kSnat : p.mtu_bad ? Verdict::kMtuBlackHole : Verdict::kUp;
  Verdict next = p.verdict;
  if (p.lost_in_row >= settings_.down_after) {
    next = Verdict::kDown;
  } else if (p.verdict == Verdict::kDown) {
    if (p.answered_in_row >= settings_.up_after) next = healthy;
  } else if (p.verdict == Verdict::kUnknown) {
    if (p.answered_in_row >= 1) next = healthy;
  } else if (p.lost_in_row == 0) {
    next = healthy;  // a suspect keeps its verdict until it is Down or answers again
  }
  if (next != p.verdict) {
    p.verdict = next;
    changed_ = true;
  }
}

std::vector<Attempt> Schedule::due(TimePoint now) {
  std::vector<Attempt> out;
  for (auto& [key, p] : peers_) {
    // A small attempt that timed out.
    if (p.waiting && now >= p.waiting_since) {
      p.waiting = false;
      ++p.lost_in_row;
      p.answered_in_row = 0;
      p.large_lost_in_row = 0;  // large losses count only while the small ones are answered
      record(p, false, std::nullopt);
      decide(p);
      // Suspect: probe again at once, then every suspect_interval. Down: back to the schedule.
      if (p.verdict != Verdict::kDown) p.next_attempt = now;
    }
    // The large twin's attempts.
    if (p.large_waiting && now >= p.large_deadline) {
      if (p.large_attempts < kLargeAttempts) {
        ++p.large_attempts;
        p.large_deadline = now + settings_.timeout * 2;
        out.push_back({p.target, remember(key, now, true), true});
      } else {
        p.large_waiting = false;
        if (p.lost_in_row == 0) ++p.large_lost_in_row;
        p.mtu_bad = p.large_lost_in_row >= settings_.mtu_down_after;
        decide(p);
      }
    }
    if (!p.waiting && now >= p.next_attempt) {
      const bool scheduled = now >= p.next_scheduled;
      const bool suspect = p.lost_in_row > 0 && p.verdict != Verdict::kDown;
      p.waiting = true;
      p.waiting_since = now + (suspect ? settings_.suspect_interval : settings_.timeout);
      p.waiting_nonce = remember(key, now, false);
      out.push_back({p.target, p.waiting_nonce, false});
      if (scheduled) {
        if (p.scheduled_count++ % settings_.mtu_every == 0 && !p.large_waiting && p.verdict != Verdict::kDown) {
          p.large_waiting = true;
          p.large_attempts = 1;
          p.large_deadline = now + settings_.timeout * 2;
          out.push_back({p.target, remember(key, now, true), true});
        }
        p.next_scheduled += settings_.interval;
        if (p.next_scheduled <= now) p.next_scheduled = now + settings_.interval;
      }
      p.next_attempt = p.next_scheduled;
    }
  }
  // Forget attempts too old to be answered: a probe's answer is due within the interval, and
  // a few intervals cover any queue on the path.
  const auto horizon = settings_.interval * 5;
  std::erase_if(outstanding_, [&](const auto& kv) { return now - kv.second.sent > horizon; });
  return out;
}

Schedule::TimePoint Schedule::next_due() const {
  TimePoint next = TimePoint::max();
  for (const auto& [key, p] : peers_) {
    next = std::min(next, p.waiting ? p.waiting_since : p.next_attempt);
    if (p.large_waiting) next = std::min(next, p.large_deadline);
  }
  return next;
}

bool Schedule::answered(std::uint64_t nonce, const net::IpAddress& from, const std::optional<net::IpAddress>& seen,
                        const net::IpAddress& our_source, TimePoint now) {
  auto o = outstanding_.find(nonce);
  if (o == outstanding_.end()) return false;
  const Outstanding what = o->second;
  outstanding_.erase(o);
  auto it = peers_.find(what.key);
  if (it == peers_.end()) return false;  // no longer a target
  Peer& p = it->second;
  if (from != p.target.address) {
    p.snat = "answered from " + from.to_string() + ", not from the address probed (" + p.target.address.to_string() + ")";
  } else if (seen && *seen != our_source) {
    p.snat = "the remote node saw the probe come from " + seen->to_string() + ", not from " + our_source.to_string();
  } else {
    p.snat.reset();
  }
  if (what.large) {
    p.large_waiting = false;
    p.large_lost_in_row = 0;
    p.mtu_bad = false;
    decide(p);
    return true;
  }
  const auto rtt = duration_cast<microseconds>(now - what.sent);
  if (p.waiting && nonce == p.waiting_nonce) {
    p.waiting = false;
    record(p, true, rtt);
  } else {
    p.rtts.push_back(rtt);  // late: counted lost in the window already
    while (p.rtts.size() > settings_.window) p.rtts.pop_front();
  }
  p.lost_in_row = 0;
  ++p.answered_in_row;
  decide(p);
  // A Down peer that answers is confirmed at once rather than a whole interval later: a
  // healed path is Up in about one suspect interval after its first answer.
  p.next_attempt = p.verdict == Verdict::kDown ? now + settings_.suspect_interval : p.next_scheduled;
  return true;
}

bool Schedule::take_changed() {
  const bool c = changed_;
  changed_ = false;
  return c;
}

std::vector<PeerReport> Schedule::reports() const {
  std::vector<PeerReport> out;
  for (const auto& [key, p] : peers_) {
    PeerReport r{p.target, p.verdict, 0, std::nullopt, std::nullopt, ""};
    if (!p.window.empty()) {
      r.loss = static_cast<double>(std::count(p.window.begin(), p.window.end(), false)) /
               static_cast<double>(p.window.size());
    }
    if (!p.rtts.empty()) {
      std::vector<microseconds> sorted(p.rtts.begin(), p.rtts.end());
      std::sort(sorted.begin(), sorted.end());
      r.rtt_p50 = sorted[sorted.size() / 2];
      r.rtt_max = sorted.back();
    }
    if (p.verdict == Verdict::kDown) {
      r.detail = "no answer to " + std::to_string(settings_.down_after) + " probes in a row";
    } else if (p.verdict == Verdict::kSnat) {
      r.detail = p.snat.value_or("answers come back with rewritten addresses");
    } else if (p.verdict == Verdict::kMtuBlackHole) {
      r.detail = "small probes are answered, probes as large as the tunnel's MTU are not";
    }
    out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(), [](const PeerReport& a, const PeerReport& b) {
    return std::tie(a.target.cluster, a.target.node) < std::tie(b.target.cluster, b.target.node);
  });
  return out;
}


nlohmann::json summarize(const std::vector<PeerReport>& reports, std::size_t max_listed) {
  using nlohmann::json;
  json out = json::object();
  std::map<std::string, std::vector<const PeerReport*>> by_cluster;
  for (const auto& r : reports) by_cluster[r.target.cluster].push_back(&r);
  for (const auto& [cluster, list] : by_cluster) {
    json c{{"up", 0}, {"down", 0}, {"mtu", 0}, {"snat", 0}, {"unknown", 0}, {"failing", json::array()}};
    double worst_loss = 0;
    std::vector<std::int64_t> p50s;
    std::int64_t max_us = -1;
    for (const PeerReport* r : list) {
      const char* counter = r->verdict == Verdict::kUp             ? "up"
                            : r->verdict == Verdict::kDown         ? "down"
                            : r->verdict == Verdict::kMtuBlackHole ? "mtu"
                            : r->verdict == Verdict::kSnat         ? "snat"
                                                                   : "unknown";
      c[counter] = c[counter].get<int>() + 1;
      worst_loss = std::max(worst_loss, r->loss);
      if (r->rtt_p50) p50s.push_back(r->rtt_p50->count());
      if (r->rtt_max) max_us = std::max<std::int64_t>(max_us, r->rtt_max->count());
      const bool failing = r->verdict == Verdict::kDown || r->verdict == Verdict::kMtuBlackHole ||
                           r->verdict == Verdict::kSnat;
      if (failing && c["failing"].size() < max_listed) {
        c["failing"].push_back({{"node", r->target.node}, {"verdict", to_string(r->verdict)}, {"detail", r->detail}});
      }
    }
    c["lossPercent"] = static_cast<int>(worst_loss * 100 + 0.5);
    if (!p50s.empty()) {
      std::sort(p50s.begin(), p50s.end());
      c["rttP50Micros"] = p50s[p50s.size() / 2];
    }
    if (max_us >= 0) c["rttMaxMicros"] = max_us;
    out[cluster] = c;
  }
  return out;
}

bool verdicts_differ(const nlohmann::json& a, const nlohmann::json& b) {
  auto strip = [](nlohmann::json j) {
    if (!j.is_object()) return j;
    for (auto& [cluster, c] : j.items()) {
      if (!c.is_object()) continue;
      c.erase("lossPercent");
      c.erase("rttP50Micros");
      c.erase("rttMaxMicros");
    }
    return j;
  };
  return strip(a) != strip(b);
}

}  // namespace cw::agent::probe
