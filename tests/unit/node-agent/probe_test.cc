// The probe wire format and the schedule's verdicts, on simulated time: loss patterns,
// hysteresis, MTU black holes and SNAT, with the network played by the test.
#include "node-agent/probe.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace cw::agent::probe {
namespace {

using namespace std::chrono_literals;
using TimePoint = Schedule::TimePoint;

net::IpAddress ip(const char* text) { return net::IpAddress::parse(text).value(); }

TEST(ProbeMessage, RoundTripsAndPads) {
  Message m{Kind::kReply, 0x0102030405060708ULL, ip("10.240.1.0"), ip("fd10:240::ffff")};
  const auto bytes = encode(m, 1400);
  ASSERT_EQ(bytes.size(), 1400U);
  auto back = decode(bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->kind, Kind::kReply);
  EXPECT_EQ(back->nonce, m.nonce);
  EXPECT_EQ(back->sender, m.sender);
  EXPECT_EQ(back->seen, m.seen);
  EXPECT_EQ(encode(m, 10).size(), kHeaderSize);  // never shorter than the header
}

TEST(ProbeMessage, RefusesWhatIsNotAProbe) {
  auto good = encode({Kind::kRequest, 7, ip("10.0.0.1"), std::nullopt}, kHeaderSize);
  EXPECT_FALSE(decode(std::span(good.data(), kHeaderSize - 1)).ok());  // short
  auto bad = good;
  bad[0] = 'X';
  EXPECT_FALSE(decode(bad).ok());  // magic
  bad = good;
  bad[4] = 2;
  EXPECT_FALSE(decode(bad).ok());  // version
  bad = good;
  bad[5] = 9;
  EXPECT_FALSE(decode(bad).ok());  // kind
  bad = good;
  bad[16] = 5;
  EXPECT_FALSE(decode(bad).ok());  // address family
  bad = good;
  bad[30] = 1;
  EXPECT_FALSE(decode(bad).ok());  // bytes after an IPv4 address
  // Random bytes never crash it.
  std::mt19937 rng(1);
  for (int i = 0; i < 2000; ++i) {
    std::vector<std::uint8_t> junk(rng() % 120);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    if (junk.size() >= 6) std::copy(good.begin(), good.begin() + 6, junk.begin());
    (void)decode(junk);
  }
}

TEST(ProbeAddress, FirstIPv4AddressLastIPv6Address) {
  const std::vector<net::Prefix> blocks{net::Prefix::parse("fd10:240:1:2::/64").value(),
                                        net::Prefix::parse("10.240.3.0/24").value()};
  EXPECT_EQ(probe_address(blocks, net::Family::kIPv4), ip("10.240.3.0"));
  EXPECT_EQ(probe_address(blocks, net::Family::kIPv6), ip("fd10:240:1:2:ffff:ffff:ffff:ffff"));
  EXPECT_EQ(probe_address({}, net::Family::kIPv4), std::nullopt);
}

TEST(ProbeSettings, Validated) {
  EXPECT_TRUE(validate(Settings{}).ok());
  Settings s;
  s.timeout = s.interval;
  EXPECT_FALSE(validate(s).ok());
  s = Settings{};
  s.down_after = 0;
  EXPECT_FALSE(validate(s).ok());
}

// One target, a network that answers or not as the test says, on simulated time.
class Network {
 public:
  explicit Network(Settings s = Settings{}) : schedule(s, [this] { return ++nonce; }) {
    schedule.set_targets({target}, now);
    (void)schedule.take_changed();
  }

  // Runs `d` of simulated time in 10 ms steps; `answer(attempt)` says whether it is answered
  // (after `rtt`).
  void run(std::chrono::milliseconds d, const std::function<bool(const Attempt&)>& answer,
           std::chrono::milliseconds rtt = 1ms) {
    const TimePoint end = now + d;
    while (now < end) {
      for (const auto& a : schedule.due(now)) {
        ++sent;
        if (answer(a)) in_flight.push_back({now + rtt, a.nonce});
      }
      now += 10ms;
      std::erase_if(in_flight, [&](const auto& f) {
        if (f.first > now) return false;
        schedule.answered(f.second, reply_from, seen, source, now);
        return true;
      });
      if (schedule.take_changed()) {
        const Verdict v = schedule.reports().front().verdict;
        if (changes.empty() || changes.back().second != v) changes.push_back({now, v});
      }
    }
  }
  Verdict verdict() const { return schedule.reports().front().verdict; }

  std::uint64_t nonce = 0;
  TimePoint now{std::chrono::hours(1)};
  Target target{"c2", "c2-n1", ip("10.240.2.0")};
  net::IpAddress source = ip("10.240.1.0");
  net::IpAddress reply_from = ip("10.240.2.0");
  std::optional<net::IpAddress> seen = ip("10.240.1.0");
  Schedule schedule;
  std::vector<std::pair<TimePoint, std::uint64_t>> in_flight;
  std::vector<std::pair<TimePoint, Verdict>> changes;
  int sent = 0;
};

const auto kAll = [](const Attempt&) { return true; };
const auto kNone = [](const Attempt&) { return false; };

TEST(ProbeSchedule, UpOnFirstAnswerAtAboutOneProbePerSecond) {
  Network net;
  net.run(60s, kAll);
  EXPECT_EQ(net.verdict(), Verdict::kUp);
  ASSERT_EQ(net.changes.size(), 1U);
  // 60 scheduled probes, a tenth of them with a large twin.
  EXPECT_GE(net.sent, 60 + 6);
  EXPECT_LE(net.sent, 61 + 7);
  const auto r = net.schedule.reports().front();
  EXPECT_EQ(r.loss, 0);
  EXPECT_EQ(r.rtt_p50, std::chrono::microseconds(10000));  // answers are seen at the next 10 ms step
}

TEST(ProbeSchedule, CutPathIsDownWithinTwoAndAHalfSecondsAndUpWithinTwoAfterHealing) {
  Network net;
  net.run(10s, kAll);
  const TimePoint cut = net.now;
  net.run(5s, kNone);
  ASSERT_EQ(net.verdict(), Verdict::kDown);
  const auto down_after = net.changes.back().first - cut;
  EXPECT_LE(down_after, 2000ms);
  EXPECT_GE(down_after, 950ms);  // 8 attempts: one timeout and seven fast re-probes
  const TimePoint healed = net.now;
  net.run(5s, kAll);
  ASSERT_EQ(net.verdict(), Verdict::kUp);
  EXPECT_LE(net.changes.back().first - healed, 1300ms);  // the next probe, and its confirmation at once
  EXPECT_EQ(net.schedule.reports().front().detail, "");
}

TEST(ProbeSchedule, DownPeerIsProbedOncePerInterval) {
  Network net;
  net.run(10s, kNone);
  ASSERT_EQ(net.verdict(), Verdict::kDown);
  const int before = net.sent;
  net.run(30s, kNone);
  EXPECT_LE(net.sent - before, 31);  // no fast re-probing of a peer known to be down
  EXPECT_EQ(net.schedule.reports().front().detail, "no answer to 8 probes in a row");
}

TEST(ProbeSchedule, FivePercentLossEachWayNeverFlapsInFiveMinutes) {
  double total_loss = 0;
  for (unsigned seed = 1; seed <= 20; ++seed) {
    Network net;
    std::mt19937 rng(seed);
    std::bernoulli_distribution lost(1 - 0.95 * 0.95);
    net.run(300s, [&](const Attempt&) { return !lost(rng); });
    EXPECT_EQ(net.changes.size(), 1U) << "seed " << seed;
    EXPECT_EQ(net.verdict(), Verdict::kUp);
    const auto r = net.schedule.reports().front();
    total_loss += r.loss;
    EXPECT_LT(r.loss, 0.35);
  }
  EXPECT_GT(total_loss / 20, 0.03);  // the loss figure sees the loss (the window is the last minute)
}

TEST(ProbeSchedule, SlowAnswersAreNotLoss) {
  Network net;
  net.run(30s, kAll, 400ms);  // slower than the 250 ms timeout: re-probed, but answered
  EXPECT_EQ(net.verdict(), Verdict::kUp);
  EXPECT_EQ(net.changes.size(), 1U);
}

TEST(ProbeSchedule, LargeProbesLostWhileSmallOnesAnsweredIsAnMtuBlackHole) {
  Network net;
  net.run(5s, kAll);
  const TimePoint hole = net.now;
  net.run(30s, [](const Attempt& a) { return !a.large; });
  ASSERT_EQ(net.verdict(), Verdict::kMtuBlackHole);
  EXPECT_LE(net.changes.back().first - hole, 22s);  // two large rounds, 10 s apart
  EXPECT_NE(net.schedule.reports().front().detail.find("MTU"), std::string::npos);
  net.run(10s, kAll);
  EXPECT_EQ(net.verdict(), Verdict::kUp);
}

TEST(ProbeSchedule, ACutPathIsDownNotMtu) {
  Network net;
  net.run(5s, kAll);
  net.run(30s, kNone);
  EXPECT_EQ(net.verdict(), Verdict::kDown);
  net.run(3s, kAll);
  EXPECT_EQ(net.verdict(), Verdict::kUp);  // large losses during the cut are not held against it
}

TEST(ProbeSchedule, RewrittenAddressesAreSnat) {
  Network net;
  net.seen = ip("192.168.7.1");  // the responder saw the node's underlay address
  net.run(3s, kAll);
  ASSERT_EQ(net.verdict(), Verdict::kSnat);
  EXPECT_NE(net.schedule.reports().front().detail.find("192.168.7.1"), std::string::npos);
  net.seen = net.source;
  net.reply_from = ip("10.240.2.77");  // answered from another address than probed
  net.run(3s, kAll);
  EXPECT_EQ(net.verdict(), Verdict::kSnat);
  EXPECT_NE(net.schedule.reports().front().detail.find("10.240.2.77"), std::string::npos);
  net.reply_from = net.target.address;
  net.run(3s, kAll);
  EXPECT_EQ(net.verdict(), Verdict::kUp);
}

TEST(ProbeSchedule, ASnatThatGoesWhileSmallProbesAreLostLeavesAReadableReport) {
  Network net;
  net.seen = ip("192.168.7.1");
  net.run(3s, kAll);
  ASSERT_EQ(net.verdict(), Verdict::kSnat);
  net.seen = net.source;  // the rewrite is gone, but only large probes get through for a while
  for (int i = 0; i < 40; ++i) {
    net.run(100ms, [](const Attempt& a) { return a.large; });
    const auto r = net.schedule.reports().front();  // never reads a cleared detail
    if (r.verdict == Verdict::kSnat) {
      EXPECT_FALSE(r.detail.empty());
    }
  }
}

TEST(ProbeSchedule, ALateAnswerDoesNotSettleTheProbeWaitedFor) {
  Network net;
  net.run(3s, kAll);
  net.run(3s, kAll, 400ms);  // every answer late: re-probes keep going out, and all get answered
  EXPECT_EQ(net.verdict(), Verdict::kUp);
  const auto r = net.schedule.reports().front();
  EXPECT_GT(r.loss, 0.0);  // late answers count as lost in the figures
}

TEST(ProbeSchedule, UnknownAndForgedNoncesAreIgnored) {
  Network net;
  EXPECT_FALSE(net.schedule.answered(12345, net.reply_from, net.seen, net.source, net.now));
  EXPECT_EQ(net.verdict(), Verdict::kUnknown);
}

TEST(ProbeSchedule, TargetsSpreadOverTheIntervalAndKeepStateWhenKept) {
  Schedule s(Settings{}, [n = std::uint64_t{0}]() mutable { return ++n; });
  TimePoint t{std::chrono::hours(1)};
  std::vector<Target> targets;
  for (int i = 0; i < 100; ++i) {
    targets.push_back({"c2", "n" + std::to_string(i), net::IpAddress::from_bits(net::Family::kIPv4, 0x0af00000U + 256U * static_cast<unsigned>(i))});
  }
  s.set_targets(targets, t);
  // In any 100 ms of the first second, only a fraction of the targets is due.
  // (Nobody answers here, so later buckets also hold re-probes: count first probes only.)
  std::size_t max_burst = 0;
  std::set<std::string> probed;
  for (int step = 0; step < 10; ++step) {
    t += 100ms;
    std::size_t first = 0;
    for (const auto& a : s.due(t)) first += probed.insert(a.target.node).second ? 1U : 0U;
    max_burst = std::max(max_burst, first);
  }
  EXPECT_EQ(probed.size(), 100U);
  EXPECT_LT(max_burst, 25U);
  EXPECT_TRUE(s.take_changed());
  s.set_targets(targets, t);
  EXPECT_FALSE(s.take_changed());  // the same targets: nothing changed
  targets.pop_back();
  s.set_targets(targets, t);
  EXPECT_TRUE(s.take_changed());
  EXPECT_EQ(s.target_count(), 99U);
}

TEST(ProbeReport, SummarisesPerClusterAndComparesVerdictsOnly) {
  std::vector<PeerReport> reports{
      {{"c2", "c2-n1", ip("10.240.2.0")}, Verdict::kUp, 0.0, std::chrono::microseconds(400), std::chrono::microseconds(900), ""},
      {{"c2", "c2-n2", ip("10.240.3.0")}, Verdict::kDown, 1.0, std::nullopt, std::nullopt, "no answer to 8 probes in a row"},
      {{"c3", "c3-n1", ip("10.241.2.0")}, Verdict::kUp, 0.05, std::chrono::microseconds(300), std::chrono::microseconds(300), ""},
  };
  const auto j = summarize(reports);
  EXPECT_EQ(j["c2"]["up"], 1);
  EXPECT_EQ(j["c2"]["down"], 1);
  EXPECT_EQ(j["c2"]["lossPercent"], 100);
  EXPECT_EQ(j["c2"]["failing"][0]["node"], "c2-n2");
  EXPECT_EQ(j["c2"]["rttMaxMicros"], 900);
  EXPECT_EQ(j["c3"]["failing"].size(), 0U);
  auto figures = reports;
  figures[2].rtt_p50 = std::chrono::microseconds(9000);
  EXPECT_FALSE(verdicts_differ(j, summarize(figures)));
  auto verdict = reports;
  verdict[1].verdict = Verdict::kUp;
  EXPECT_TRUE(verdicts_differ(j, summarize(verdict)));
}

}  // namespace
}  // namespace cw::agent::probe
