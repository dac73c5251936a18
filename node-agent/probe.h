// Datapath probes (docs/node-agent.md, "Datapath probes"): each node agent sends small UDP
// probes through the tunnel to every remote node it routes to and is answered by that node's
// agent. An answer proves the whole path: encryption (both ends accept a probe only when it
// arrived on the WireGuard device, where only a peer's key can put a packet with that peer's
// source), the remote routing, and the return path.
//
// This header is the pure part: the wire format, and the schedule and verdicts of all
// targets as a function of the time and the answers. prober.h does the sockets.
//
// Every scheduled probe (one per target per interval) that goes unanswered for `timeout`
// makes the target "suspect": it is then probed every `suspect_interval`, and it is Down only
// when `down_after` attempts in a row went unanswered. So a lost packet costs a few fast
// re-probes and a verdict never rests on one packet: with 10% of round trips lost, a false
// Down needs 8 losses in a row (1e-8), while a cut path is Down within about 2 s. Down
// becomes Up after `up_after` answers in a row (after the first, the next is asked for at
// once). Every `mtu_every`th probe goes with a second one as large as the tunnel's MTU with
// don't-fragment set: when the small ones are answered
// and the large ones are not, the path is an MTU black hole. An answer that came from
// another address than the one probed, or that saw another source than the one sent, means
// something rewrote the addresses on the path (SNAT).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/result.h"
#include "common/net/ip_address.h"
#include "common/net/prefix.h"

namespace cw::agent::probe {

constexpr std::uint16_t kDefaultPort = 51821;
constexpr std::size_t kHeaderSize = 56;

// ---- wire format: "CWPR", version 1, kind, 2 reserved, nonce, sender, seen, then padding.

enum class Kind : std::uint8_t { kRequest = 1, kReply = 2 };

struct Message {
  Kind kind = Kind::kRequest;
  std::uint64_t nonce = 0;
  // A request: the source address the sender used. A reply: copied from the request.
  std::optional<net::IpAddress> sender;
  // A reply: the source address the responder saw on the request.
  std::optional<net::IpAddress> seen;
};

// `size` bytes (at least kHeaderSize): the header, then zeros.
std::vector<std::uint8_t> encode(const Message& message, std::size_t size);
// kInvalidArgument for anything that is not a well-formed probe message.
Result<Message> decode(std::span<const std::uint8_t> bytes);

// The address a node answers probes at: its first IPv4 pod block's first address (as
// flannel's VTEP holds it), else its first IPv6 block's last address (an IPv6 subnet's first
// address is its routers' anycast address). nullopt for a node without a block.
std::optional<net::IpAddress> probe_address(const std::vector<net::Prefix>& node_blocks, net::Family family);

// ---- schedule and verdicts

struct Settings {
  std::chrono::milliseconds interval{1000};         // between scheduled probes of one target
  std::chrono::milliseconds timeout{250};           // unanswered this long: the target is suspect
  std::chrono::milliseconds suspect_interval{100};  // between probes of a suspect target
  int down_after = 8;                               // unanswered attempts in a row
  int up_after = 2;                                 // answers in a row, from Down
  int mtu_every = 10;                               // every Nth scheduled probe has a large twin
  int mtu_down_after = 2;                           // large probes unanswered in a row (each retried)
  std::size_t window = 60;                          // attempts behind loss and RTT figures
};

// kInvalidArgument naming the bad setting.
Result<void> validate(const Settings& settings);

enum class Verdict { kUnknown, kUp, kDown, kMtuBlackHole, kSnat };
const char* to_string(Verdict verdict);  // "Unknown", "Up", "Down", "MTUBlackHole", "SNAT"

struct Target {
  std::string cluster;  // the remote cluster's ID
  std::string node;     // the remote node's name
  net::IpAddress address;
  friend bool operator==(const Target&, const Target&) = default;
};

struct Attempt {
  Target target;
  std::uint64_t nonce = 0;
  bool large = false;  // the MTU-sized twin
};

struct PeerReport {
  Target target;
  Verdict verdict = Verdict::kUnknown;
  double loss = 0;  // unanswered share of the window's small probes, 0..1
  std::optional<std::chrono::microseconds> rtt_p50, rtt_max;
  std::string detail;  // for Down/MTU/SNAT: what was seen ("answered by 10.0.0.9, not 10.1.0.0")
};

class Schedule {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  // `nonces` gives a fresh unpredictable 64-bit number per attempt.
  Schedule(Settings settings, std::function<std::uint64_t()> nonces);

  // The targets to probe from now on; kept targets keep their state, new ones start at a
  // point of the interval derived from their address, so that probes spread over time.
  void set_targets(const std::vector<Target>& targets, TimePoint now);

  // The attempts due at `now`: send each one.
  std::vector<Attempt> due(TimePoint now);
  // When due() next has something to do.
  TimePoint next_due() const;

  // An answer: `nonce` as received, `from` the reply's source, `seen` the source the
  // responder saw. Unknown nonces (late beyond memory, forged) are ignored: false.
  bool answered(std::uint64_t nonce, const net::IpAddress& from, const std::optional<net::IpAddress>& seen,
                const net::IpAddress& our_source, TimePoint now);

  // True when some verdict changed since the last call (and clears that).
  bool take_changed();
  std::vector<PeerReport> reports() const;  // sorted by cluster, node
  std::size_t target_count() const { return peers_.size(); }

 private:
  struct Outstanding {
    std::string key;
    TimePoint sent;
    bool large;
  };
  struct Peer {
    Target target;
    Verdict verdict = Verdict::kUnknown;
    TimePoint next_scheduled;
    TimePoint next_attempt;  // == next_scheduled unless suspect
    TimePoint suspect_since{};
    bool waiting = false;    // a small attempt is outstanding and not yet timed out
    TimePoint waiting_since{};  // (the deadline of the attempt waited for)
    std::uint64_t waiting_nonce = 0;
    int lost_in_row = 0;
    int answered_in_row = 0;
    int scheduled_count = 0;
    // The large twin.
    bool large_waiting = false;
    TimePoint large_deadline{};
    int large_attempts = 0;   // of the current large round
    int large_lost_in_row = 0;
    bool mtu_bad = false;
    std::optional<std::string> snat;
    std::deque<bool> window;  // true: answered
    std::deque<std::chrono::microseconds> rtts;
  };

  static std::string key_of(const Target& t) { return t.cluster + "/" + t.node + "/" + t.address.to_string(); }
  void decide(Peer& peer);
  void record(Peer& peer, bool answered, std::optional<std::chrono::microseconds> rtt);
  std::uint64_t remember(const std::string& key, TimePoint now, bool large);

  Settings settings_;
  std::function<std::uint64_t()> nonces_;
  std::map<std::string, Peer> peers_;
  std::map<std::uint64_t, Outstanding> outstanding_;
  bool changed_ = false;
};

// The node's datapath report, the value of its Node annotation clusterwire.io/datapath
// (docs/api.md): per remote cluster, how many of its probed nodes are in each verdict, the
// worst loss, the RTT (median of the nodes' medians, and the largest), and the first
// `max_listed` nodes that fail, with why.
nlohmann::json summarize(const std::vector<PeerReport>& reports, std::size_t max_listed = 5);
// Whether two reports differ in their verdicts (counts and failing nodes), figures aside.
bool verdicts_differ(const nlohmann::json& a, const nlohmann::json& b);

}  // namespace cw::agent::probe
