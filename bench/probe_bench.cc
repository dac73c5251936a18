// The datapath probes' cost and their detection times (node-agent/probe.h), as a synthetic run
// of the probe engine on simulated time: the schedule and verdicts as the agent runs them, and
// every probe and answer encoded and decoded as on the wire; only the sockets are left out
// (their cost is a sendmsg/recvmsg per packet, the same for any prober).
//
// Prints, each beside its baseline:
// - CPU per second of probing and bytes per second on the wire, at 100 and 1,000 remote nodes,
//   beside Submariner's health checker (one 64-byte ICMP ping per second per remote gateway);
// - detection and recovery time over 10 partitions (min/median/max), beside the anchors'
//   published settings (Submariner: error after 5 lost pings 1 s apart, status synced every
//   5 s; Liqo: down after 10 s, status written at most every 10 s);
// - writes of the Node report per minute at 1,000 nodes each probing 1,000 remote nodes, in
//   steady state and with a partition, beside one write per probe (what "a status per probe"
//   would cost).
//
// Usage: probe_bench [--seconds N]   (simulated seconds per cost run; default 60)
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "node-agent/probe.h"

namespace {

using namespace std::chrono_literals;
using cw::agent::probe::Attempt;
using cw::agent::probe::Schedule;
using cw::agent::probe::Settings;
using cw::agent::probe::Target;
using TimePoint = Schedule::TimePoint;

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

std::vector<Target> targets(int n) {
  std::vector<Target> out;
  for (int i = 0; i < n; ++i) {
    const auto bits = 0x0af10000U + 256U * static_cast<unsigned>(i);
    out.push_back({"c2", "c2-n" + std::to_string(i), cw::net::IpAddress::from_bits(cw::net::Family::kIPv4, bits)});
  }
  return out;
}

struct Run {
  double cpu = 0;
  std::uint64_t bytes = 0;  // both directions, IP packets inside the tunnel plus WireGuard's overhead
  std::uint64_t probes = 0;
  int report_writes = 0;
  std::vector<double> detect_ms, recover_ms;
};

// `n` remote nodes, all answering after 1 ms, except during the cuts [start, end).
// Report writes are counted from `count_from` on (after the start-up's Unknown → Up).
Run simulate(int n, std::chrono::seconds length, const std::vector<std::pair<TimePoint, TimePoint>>& cuts,
             TimePoint start_at, TimePoint count_from) {
  Run run;
  std::mt19937_64 rng(42);
  Schedule schedule(Settings{}, [&] { return rng(); });
  const auto self = cw::net::IpAddress::parse("10.240.0.0").value();
  TimePoint now = start_at;
  schedule.set_targets(targets(n), now);
  struct InFlight {
    TimePoint at;
    std::vector<std::uint8_t> reply;
    cw::net::IpAddress from;  // the address probed: the simulated network does no SNAT
  };
  std::vector<InFlight> in_flight;
  nlohmann::json last_report = cw::agent::probe::summarize(schedule.reports());
  (void)schedule.take_changed();
  constexpr std::size_t kTunnelMtu = 1420, kOverhead = 20 + 8 + 32;  // outer IPv4 + UDP + WireGuard
  const double cpu0 = cpu_seconds();
  const TimePoint end = start_at + length;
  bool was_down = false;
  bool dirty = false;
  TimePoint last_write = start_at - 1s;
  auto in_cut = [&](TimePoint t) {
    return std::any_of(cuts.begin(), cuts.end(), [&](const auto& c) { return t >= c.first && t < c.second; });
  };
  // The latest cut start (first) or end (second) at or before `t`.
  auto latest = [&](TimePoint t, bool start) {
    TimePoint best = start_at;
    for (const auto& c : cuts) {
      const TimePoint e = start ? c.first : c.second;
      if (e <= t) best = std::max(best, e);
    }
    return best;
  };
  while (now < end) {
    const bool cut_now = in_cut(now);
    for (const Attempt& a : schedule.due(now)) {
      const std::size_t size = a.large ? kTunnelMtu - 28 : cw::agent::probe::kHeaderSize;
      auto wire = cw::agent::probe::encode({cw::agent::probe::Kind::kRequest, a.nonce, self, std::nullopt}, size);
      run.bytes += wire.size() + 28 + kOverhead;
      ++run.probes;
      if (cut_now) continue;
      // The responder's side: decode, answer as large.
      auto request = cw::agent::probe::decode(wire).value();
      auto reply = cw::agent::probe::encode({cw::agent::probe::Kind::kReply, request.nonce, request.sender, self},
                                            wire.size());
      run.bytes += reply.size() + 28 + kOverhead;
      in_flight.push_back({now + 1ms, std::move(reply), a.target.address});
    }
    now += 5ms;
    std::erase_if(in_flight, [&](InFlight& f) {
      if (f.at > now) return false;
      auto m = cw::agent::probe::decode(f.reply).value();
      (void)schedule.answered(m.nonce, f.from, m.seen, self, now);
      return true;
    });
    // As the agent: a changed verdict is written at once, but at most once per 500 ms.
    if (schedule.take_changed()) dirty = true;
    if (dirty && now - last_write >= 500ms) {
      dirty = false;
      const auto report = cw::agent::probe::summarize(schedule.reports());
      if (cw::agent::probe::verdicts_differ(report, last_report)) {
        if (now >= count_from) ++run.report_writes;
        last_report = report;
        last_write = now;
      }
      // Detection: from a cut's start to the first Down; recovery: from its end to no Down.
      const bool down = report["c2"].value("down", 0) == n;  // every remote node: Unreachable
      if (down != was_down && (down || report["c2"].value("up", 0) == n)) {
        const auto since = now - latest(now, down);
        (down ? run.detect_ms : run.recover_ms).push_back(std::chrono::duration<double, std::milli>(since).count());
      }
      if (down || report["c2"].value("up", 0) == n) was_down = down;
    }
  }
  run.cpu = cpu_seconds() - cpu0;
  return run;
}

std::string stats(std::vector<double> v) {
  if (v.empty()) return "none";
  std::sort(v.begin(), v.end());
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.0f / %.0f / %.0f ms", v.front(), v[v.size() / 2], v.back());
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 60;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::max(10, std::atoi(argv[i + 1]));
  }
  const TimePoint t0{std::chrono::hours(1)};
  std::printf("probe engine, synthetic (schedule, verdicts and the wire format; no sockets), %d simulated s\n\n", seconds);
  std::printf("%-12s %16s %18s %14s   %s\n", "remote nodes", "CPU (% of a core)", "bytes/s (both ways)", "probes/s",
              "baseline: Submariner, 1 ICMP ping/s per gateway (84 B each way)");
  for (int n : {100, 1000}) {
    const Run r = simulate(n, std::chrono::seconds(seconds), {}, t0, t0);
    std::printf("%-12d %15.3f%% %18.0f %14.0f   %.0f B/s   (per remote node: %.0f B/s, baseline 168)\n", n,
                100.0 * r.cpu / seconds, static_cast<double>(r.bytes) / seconds,
                static_cast<double>(r.probes) / seconds, 2.0 * 84 * n, static_cast<double>(r.bytes) / seconds / n);
  }

  // Ten partitions of 10 s, 20 s apart, against 10 remote nodes.
  std::vector<std::pair<TimePoint, TimePoint>> cuts;
  for (int i = 0; i < 10; ++i) {
    const auto jitter = std::chrono::milliseconds(97 * i);  // cuts at every phase of the probe interval
    cuts.push_back({t0 + std::chrono::seconds(15 + 30 * i) + jitter, t0 + std::chrono::seconds(25 + 30 * i) + jitter});
  }
  const Run p = simulate(10, std::chrono::seconds(15 + 30 * 10), cuts, t0, t0);
  std::printf("\n10 partitions of 10 remote nodes (min / median / max), from the fault to all 10 Down, from the heal to all 10 Up:\n");
  std::printf("  detection  %s   (Submariner: 5 lost pings 1 s apart = ~5 s, then up to 5 s to status; Liqo: 10 s)\n",
              stats(p.detect_ms).c_str());
  std::printf("  recovery   %s   (Submariner: first ping answered + up to 5 s; Liqo: up to 10 s)\n",
              stats(p.recover_ms).c_str());
  std::printf("  (add the report write and the operator's status write: ~10-100 ms in the lab; lab_test.sh prints the end-to-end figure)\n");

  // Report writes: one node probing 1,000 remote nodes; every node of a 1,000-node cluster alike.
  const Run steady = simulate(1000, std::chrono::seconds(130), {}, t0, t0 + 10s);
  const Run cut = simulate(1000, std::chrono::seconds(130), {{t0 + 40s, t0 + 100s}}, t0, t0 + 10s);
  const double per_probe = static_cast<double>(steady.probes) / 2.0;  // per minute, one node
  std::printf("\nNode report writes per minute, 1,000 nodes each probing 1,000 remote nodes:\n");
  std::printf("  steady state      %8.0f   (verdict changes; plus at most one refresh per node per 5 min when figures move: <= 200)\n",
              1000.0 * steady.report_writes / 2.0);
  std::printf("  with a partition  %8.0f   (%d writes per node for the cut and the heal, in 2 minutes)\n",
              1000.0 * cut.report_writes / 2.0, cut.report_writes);
  std::printf("  baseline: a write per probe %8.0f\n", 1000.0 * per_probe);
  return 0;
}
