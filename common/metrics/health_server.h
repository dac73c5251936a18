// What every clusterwire binary serves for its kubelet probes and Prometheus:
//
//   GET /healthz   liveness:  200 "ok" while every liveness check passes, else 503
//   GET /readyz    readiness: 200 "ok" while every readiness check passes, else 503
//   GET /metrics   the Registry in the Prometheus text format 0.0.4
//
// A failing /healthz or /readyz lists every check, as kube-apiserver's verbose readyz does:
//
//   [+]informers-synced ok
//   [-]peers-configured failed: 2 of 5 peers have no endpoint
//   readyz check failed
//
// `?verbose` gives that listing when everything passes too. Anything else is 404; any method
// but GET is 405. Check messages and label values are readable by whoever can reach the port
// (usually the whole cluster network): they never carry secrets.
//
// main.cc owns a Metrics and a HealthChecks, passes them to the components that declare
// metrics or checks, and starts the HealthServer on them.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/labels.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"

namespace cw::http {
class Server;
}

namespace cw::metrics {

// ---------------------------------------------------------------------------------------------
// Checks

// A check says whether one part of the process is healthy; its Error's message says why not.
// Checks are called on server threads, possibly several at once, on every probe: they must be
// thread-safe and quick (read state the component keeps, e.g. an atomic flag; no I/O).
// A check that throws counts as failed.
using Check = std::function<Result<void>()>;

struct CheckOutcome {
  std::string name;
  bool passed = false;
  std::string message;  // why it failed; empty when it passed
};

// The outcome of every check of one kind, in name order.
struct CheckReport {
  std::vector<CheckOutcome> outcomes;
  bool passed() const;  // true with no checks at all
};

// The named liveness and readiness checks of one process. Thread-safe: components may add
// checks while the server runs them. Names are lowercase words joined by '-'
// ("informers-synced"); a bad or repeated name is a programming mistake and aborts.
class HealthChecks {
 public:
  // Liveness: failing means the process is stuck and should be restarted. Keep these few.
  void add_liveness(std::string name, Check check);
  // Readiness: failing means the process should not get traffic or be counted on yet.
  void add_readiness(std::string name, Check check);

  CheckReport liveness() const;
  CheckReport readiness() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, Check> liveness_;
  std::map<std::string, Check> readiness_;
};

// ---------------------------------------------------------------------------------------------
// Metrics

using Buckets = std::vector<double>;  // a histogram's upper bounds, strictly increasing

// Request and reconcile durations in seconds, 5 ms to 10 s (Prometheus' defaults).
Buckets latency_buckets();
// count bounds: start, start*factor, start*factor^2, ... (start > 0, factor > 1, count >= 1).
Buckets exponential_buckets(double start, double factor, int count);

enum class MetricKind { kCounter, kGauge, kHistogram };

// Whether `name` follows Prometheus' conventions as clusterwire spells them:
// clusterwire_<component>_<thing>[_<unit>] in lowercase snake_case, counters ending in _total
// and nothing else doing so, base units only (_seconds, _bytes; not _ms or _milliseconds), and
// none of the suffixes the exposition format adds (_count, _sum, _bucket).
Result<void> check_metric_name(std::string_view name, MetricKind kind);

// Owns the Registry that /metrics serves and declares metrics on it in one call each:
//
//   auto& added = metrics.counter("clusterwire_agent_peers_added_total", "Peers added.");
//   added.Increment();
//   auto& syncs = metrics.histogram("clusterwire_agent_sync_duration_seconds",
//                                   "Time to apply a peer set.", latency_buckets());
//
// Asking again for the same name returns the same family (and, with the same labels, the same
// metric), so components need not keep references around. A name that breaks the conventions,
// a label name that is not snake_case, or a name reused for another kind is a programming
// mistake and aborts with the reason. Label values must come from a small, bounded set (cluster
// or peer names, result codes); never addresses of flows or anything per request.
// Thread-safe; references stay valid as long as the Metrics.
class Metrics {
 public:
  Metrics() = default;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  prometheus::Registry& registry() { return registry_; }
  const prometheus::Registry& registry() const { return registry_; }

  // One metric: the family's series with these labels (none by default).
  prometheus::Counter& counter(const std::string& name, const std::string& help,
                               const prometheus::Labels& labels = {});
  prometheus::Gauge& gauge(const std::string& name, const std::string& help,
                           const prometheus::Labels& labels = {});
  prometheus::Histogram& histogram(const std::string& name, const std::string& help,
                                   const Buckets& buckets, const prometheus::Labels& labels = {});

  // The family, for series added and removed as things come and go (Add(labels), Remove()).
  // Label names passed to Add() later are not checked here.
  prometheus::Family<prometheus::Counter>& counter_family(const std::string& name,
                                                          const std::string& help);
  prometheus::Family<prometheus::Gauge>& gauge_family(const std::string& name,
                                                      const std::string& help);
  prometheus::Family<prometheus::Histogram>& histogram_family(const std::string& name,
                                                              const std::string& help);

 private:
  prometheus::Registry registry_;
};

// ---------------------------------------------------------------------------------------------
// The server

class HealthServer {
 public:
  // Serves on address:port (port 0: any free port; see port()). `checks` and `registry` are
  // read on every request and must outlive the server. Errors: kInvalidArgument for an
  // address that is not an IP address, kUnavailable when the port cannot be bound.
  static Result<std::unique_ptr<HealthServer>> start(const std::string& address,
                                                     std::uint16_t port,
                                                     const HealthChecks& checks,
                                                     const prometheus::Registry& registry);
  ~HealthServer();  // stops
  HealthServer(const HealthServer&) = delete;
  HealthServer& operator=(const HealthServer&) = delete;

  std::uint16_t port() const;  // the bound port, also after stop()
  // Closes the listener and waits for requests in flight. Idempotent; not to be called from
  // two threads at once.
  void stop();

 private:
  explicit HealthServer(std::unique_ptr<http::Server> server);
  std::unique_ptr<http::Server> server_;
  std::uint16_t port_;
};

}  // namespace cw::metrics
