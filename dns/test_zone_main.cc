// cw-dns-testserver: the DNS server over a fixed, in-memory clusterset.local, so that the
// transport can be tested with real clients and benchmarked without the service zone:
//
//   clusterset.local                      SOA, NS ns.dns.clusterset.local
//   ns.dns.clusterset.local               A 10.96.0.53
//   dns-version.clusterset.local          TXT "1.0.0"
//   web.default.svc.clusterset.local      A 10.96.0.10
//   big.default.svc.clusterset.local      A 10.97.0.1 ... 10.97.0.100 (over 1232 bytes: TC)
//
// Empty non-terminals (svc, default.svc, dns) answer NOERROR with no records, an unknown
// name NXDOMAIN and a known name without the type NODATA, both with the SOA in authority;
// names outside the zone are REFUSED. Prints "listening on ADDRESS:PORT" once serving, and
// per-rcode query counts on exit; --log-queries prints each query as it is answered ("query
// NAME TYPE RCODE udp|tcp", or "dropped"). Serves until SIGINT or SIGTERM.
#include <CLI/CLI.hpp>

#include <array>
#include <atomic>
#include <csignal>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "dns/message.h"
#include "dns/server.h"

namespace {

using namespace cw::dns;  // NOLINT: a small tool

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

constexpr std::uint32_t kTtl = 5;

ResourceRecord record(const std::string& name, RType type, RData data) {
  return ResourceRecord{Name::parse(name), static_cast<std::uint16_t>(type), kClassIN, kTtl,
                        std::move(data)};
}

A a(std::uint8_t x, std::uint8_t y, std::uint8_t z, std::uint8_t w) { return A{{x, y, z, w}}; }

class FixedZone final : public Zone {
 public:
  FixedZone() {
    const std::string apex = "clusterset.local";
    apex_ = Name::parse(apex);
    soa_ = record(apex, RType::kSOA,
                  SOA{Name::parse("ns.dns." + apex), Name::parse("hostmaster." + apex), 1, 7200,
                      1800, 86400, kTtl});
    add(soa_);
    add(record(apex, RType::kNS, NS{Name::parse("ns.dns." + apex)}));
    add(record("ns.dns." + apex, RType::kA, a(10, 96, 0, 53)));
    add(record("dns-version." + apex, RType::kTXT, TXT{{"1.0.0"}}));
    add(record("web.default.svc." + apex, RType::kA, a(10, 96, 0, 10)));
    for (int i = 1; i <= 100; ++i) {
      add(record("big.default.svc." + apex, RType::kA, a(10, 97, 0, static_cast<std::uint8_t>(i))));
    }
    // Every name between a record's owner and the apex exists, with no records of its own.
    for (const auto& [owner, rrs] : records_) {
      Name n = Name::parse(owner);
      while (n.labels.size() > apex_.labels.size()) {
        n.labels.erase(n.labels.begin());
        if (!records_.count(n.lower())) empty_non_terminals_.insert(n.lower());
      }
    }
  }

  std::optional<std::uint64_t> version() const override { return 0; }  // never changes

  Answer lookup(const Question& q) const override {
    Answer out;
    if (!q.name.ends_with(apex_)) {
      out.rcode = Rcode::kRefused;
      return out;
    }
    out.authoritative = true;
    const std::string key = q.name.lower();
    const auto it = records_.find(key);
    if (it == records_.end()) {
      if (!empty_non_terminals_.count(key)) out.rcode = Rcode::kNXDomain;
      out.authority.push_back(soa_);
      return out;
    }
    for (const auto& rr : it->second) {
      if (rr.type != q.type && q.type != static_cast<std::uint16_t>(RType::kANY)) continue;
      out.answers.push_back(rr);
      out.answers.back().name = q.name;  // the owner as the client wrote it
    }
    if (out.answers.empty()) out.authority.push_back(soa_);
    if (q.type == static_cast<std::uint16_t>(RType::kNS) && !out.answers.empty()) {
      out.additional = records_.at("ns.dns." + apex_.lower());
    }
    return out;
  }

 private:
  void add(ResourceRecord rr) { records_[rr.name.lower()].push_back(std::move(rr)); }

  Name apex_;
  ResourceRecord soa_;
  // Hash lookups on the lower-case name, as the service zone does (dns/zone.cc).
  std::unordered_map<std::string, std::vector<ResourceRecord>> records_;
  std::unordered_set<std::string> empty_non_terminals_;
};

// Query counts by rcode 0-5, [6] dropped; a cache line per thread, so that counting does not
// bounce one line between the workers' cores, which would show in the benchmark.
class Counters {
 public:
  void add(std::size_t i) {
    const std::size_t slot = std::hash<std::thread::id>{}(std::this_thread::get_id());
    slots_[slot % slots_.size()].n[i].fetch_add(1, std::memory_order_relaxed);
  }
  std::uint64_t total(std::size_t i) const {
    std::uint64_t sum = 0;
    for (const auto& s : slots_) sum += s.n[i].load(std::memory_order_relaxed);
    return sum;
  }

 private:
  struct alignas(64) Slot {
    std::array<std::atomic<std::uint64_t>, 7> n{};
  };
  std::array<Slot, 64> slots_{};
};

const char* rcode_name(int rcode) {
  static constexpr std::array<const char*, 6> kNames = {"NOERROR",  "FORMERR", "SERVFAIL",
                                                        "NXDOMAIN", "NOTIMP",  "REFUSED"};
  return rcode >= 0 && rcode < 6 ? kNames[static_cast<std::size_t>(rcode)] : "OTHER";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cw-dns-testserver: the clusterwire DNS server over a fixed test zone"};
  ServerOptions options;
  int port = 0;
  int udp_size = options.handler.udp_payload_size;
  std::string ready_file;
  bool log_queries = false;
  int idle_ms = static_cast<int>(options.tcp_idle_timeout.count());
  app.add_option("--address", options.address, "Address to listen on")->capture_default_str();
  app.add_option("--port", port, "UDP and TCP port (0: any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--threads", options.threads, "Worker threads (0: one per CPU)")
      ->capture_default_str();
  app.add_option("--udp-size", udp_size, "EDNS UDP payload size we advertise")
      ->check(CLI::Range(512, 65535))
      ->capture_default_str();
  std::string udp_sockets = "random";
  app.add_option("--udp-sockets", udp_sockets,
                 "random: a SO_REUSEPORT socket per thread, datagrams spread at random; hash: "
                 "the same, spread by client address; shared: one socket for all threads")
      ->check(CLI::IsMember({"random", "hash", "shared"}))
      ->capture_default_str();
  app.add_option("--tcp-idle-timeout-ms", idle_ms, "Close idle TCP connections after this")
      ->capture_default_str();
  app.add_option("--max-tcp-connections", options.max_tcp_connections, "TCP connection limit")
      ->capture_default_str();
  app.add_flag("--log-queries", log_queries, "Print every query as it is answered");
  app.add_option("--ready-file", ready_file, "Write the port here once serving");
  CLI11_PARSE(app, argc, argv);
  options.port = static_cast<std::uint16_t>(port);
  options.handler.udp_payload_size = static_cast<std::uint16_t>(udp_size);
  options.udp_sockets = udp_sockets == "shared" ? UdpSockets::kShared
                        : udp_sockets == "hash" ? UdpSockets::kPerWorkerHash
                                                : UdpSockets::kPerWorkerRandom;
  options.tcp_idle_timeout = std::chrono::milliseconds(idle_ms);

  Counters counters;
  std::mutex log_mu;
  options.observer = [&counters, &log_mu, log_queries](const QueryEvent& e) {
    const std::size_t i =
        e.answered ? std::min<std::size_t>(static_cast<std::size_t>(e.rcode), 5) : 6;
    counters.add(i);
    if (!log_queries) return;
    std::string line = "dropped";
    if (auto q = parse(e.request); q.ok() && q->questions.size() == 1 && e.answered) {
      line = "query " + q->questions[0].name.to_string() + " " +
             std::to_string(q->questions[0].type) + " " + rcode_name(static_cast<int>(e.rcode)) +
             (e.transport == Transport::kTcp ? " tcp" : " udp");
    } else if (e.answered) {
      line = std::string("answered ") + rcode_name(static_cast<int>(e.rcode));
    }
    std::lock_guard lock(log_mu);
    std::cout << line << std::endl;
  };
  auto server = Server::start(options, std::make_shared<FixedZone>());
  if (!server) {
    std::cerr << "cw-dns-testserver: " << server.error().message() << "\n";
    return 1;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::cout << "listening on " << options.address << ":" << (*server)->port() << std::endl;
  if (!ready_file.empty()) std::ofstream(ready_file) << (*server)->port() << "\n";
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (*server)->stop();
  std::cout << "queries:";
  for (int i = 0; i < 6; ++i) {
    std::cout << " " << rcode_name(i) << "=" << counters.total(static_cast<std::size_t>(i));
  }
  std::cout << " dropped=" << counters.total(6) << std::endl;
  return 0;
}
