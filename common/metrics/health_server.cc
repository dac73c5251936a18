#include "common/metrics/health_server.h"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <exception>
#include <utility>

#include "common/http/server.h"

namespace cw::metrics {
namespace {

// ---------------------------------------------------------------------------------------------
// Checks

bool valid_check_name(std::string_view name) {
  if (name.empty() || name.front() == '-' || name.back() == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

void add_check(std::map<std::string, Check>& checks, const char* kind, std::string name,
               Check check) {
  const std::string what = std::string(kind) + " check \"" + name + "\"";
  if (!valid_check_name(name)) {
    die_on_misuse("adding a health check", what + ": want lowercase words joined by '-'");
  }
  if (!check) die_on_misuse("adding a health check", what + " has no function");
  if (!checks.emplace(std::move(name), std::move(check)).second) {
    die_on_misuse("adding a health check", what + " added twice");
  }
}

// Runs outside HealthChecks' lock, so a slow check delays only its own probe.
CheckReport run(const std::vector<std::pair<std::string, Check>>& checks) {
  CheckReport report;
  report.outcomes.reserve(checks.size());
  for (const auto& [name, check] : checks) {
    CheckOutcome outcome{.name = name};
    try {
      const Result<void> result = check();
      outcome.passed = result.ok();
      if (!result.ok()) outcome.message = result.error().message();
    } catch (const std::exception& e) {
      outcome.message = std::string("check threw: ") + e.what();
    } catch (...) {
      outcome.message = "check threw";
    }
    report.outcomes.push_back(std::move(outcome));
  }
  return report;
}

std::vector<std::pair<std::string, Check>> snapshot(std::mutex& mu,
                                                    const std::map<std::string, Check>& checks) {
  std::lock_guard lock(mu);
  return {checks.begin(), checks.end()};
}

// ---------------------------------------------------------------------------------------------
// Metrics

bool is_snake_word(std::string_view word) {
  return !word.empty() && std::all_of(word.begin(), word.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  });
}

std::vector<std::string_view> split_words(std::string_view name) {
  std::vector<std::string_view> words;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = name.find('_', start);
    words.push_back(name.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return words;
    start = end + 1;
  }
}

bool valid_label_name(std::string_view name, MetricKind kind) {
  if (name.empty() || name.front() < 'a' || name.front() > 'z') return false;
  // "le" is the histogram's own bucket label.
  if (kind == MetricKind::kHistogram && name == "le") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

void check_or_die(const std::string& name, const std::string& help, MetricKind kind) {
  if (auto r = check_metric_name(name, kind); !r) {
    die_on_misuse("declaring a metric", r.error().message());
  }
  if (help.empty()) die_on_misuse("declaring a metric", "metric " + name + " has no help text");
}

void check_labels_or_die(const std::string& name, const prometheus::Labels& labels,
                         MetricKind kind) {
  for (const auto& [label, value] : labels) {
    if (!valid_label_name(label, kind)) {
      die_on_misuse("declaring a metric",
                    "metric " + name + ": label name \"" + label + "\" is not snake_case" +
                        (kind == MetricKind::kHistogram ? " or is \"le\"" : ""));
    }
  }
}

void check_buckets_or_die(const std::string& name, const Buckets& buckets) {
  bool ok = !buckets.empty();
  for (std::size_t i = 0; ok && i < buckets.size(); ++i) {
    ok = std::isfinite(buckets[i]) && (i == 0 || buckets[i] > buckets[i - 1]);
  }
  if (!ok) {
    die_on_misuse("declaring a metric",
                  "histogram " + name + ": buckets must be finite and strictly increasing");
  }
}

// prometheus-cpp reports misuse (a name taken by another kind) by throwing; we abort instead,
// like every other programming mistake, and never let the exception out.
template <typename T>
prometheus::Family<T>& register_family(prometheus::Registry& registry,
                                       prometheus::detail::Builder<T> builder,
                                       const std::string& name, const std::string& help,
                                       MetricKind kind) {
  check_or_die(name, help, kind);
  try {
    return builder.Name(name).Help(help).Register(registry);
  } catch (const std::exception& e) {
    die_on_misuse("declaring a metric", name + ": " + e.what());
  }
}

template <typename T, typename... Args>
T& add_metric(prometheus::Family<T>& family, const prometheus::Labels& labels, MetricKind kind,
              Args&&... args) {
  check_labels_or_die(family.GetName(), labels, kind);
  try {
    return family.Add(labels, std::forward<Args>(args)...);
  } catch (const std::exception& e) {
    die_on_misuse("declaring a metric", family.GetName() + ": " + e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP

http::Response text_response(int status, std::string body) {
  return {.status = status,
          .headers = {{"Content-Type", "text/plain; charset=utf-8"},
                      {"Cache-Control", "no-store"}},
          .body = std::move(body)};
}

// kube-apiserver's format: "[+]name ok", "[-]name failed: why", then "<endpoint> check ...".
http::Response report_response(const CheckReport& report, std::string_view endpoint,
                               bool verbose) {
  const bool passed = report.passed();
  if (passed && !verbose) return text_response(200, "ok");
  std::string body;
  for (const CheckOutcome& outcome : report.outcomes) {
    if (outcome.passed) {
      body += "[+]" + outcome.name + " ok\n";
      continue;
    }
    std::string message = outcome.message;
    std::replace_if(  // one line per check
        message.begin(), message.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
    body += "[-]" + outcome.name + " failed: " + message + "\n";
  }
  body += std::string(endpoint) + (passed ? " check passed\n" : " check failed\n");
  return text_response(passed ? 200 : 503, std::move(body));
}

http::Handler make_handler(const HealthChecks& checks, const prometheus::Registry& registry) {
  return [&checks, &registry](const http::Request& request, http::Exchange& exchange) {
    auto target = http::parse_target(request.target);
    if (!target) {
      exchange.respond(text_response(400, target.error().message() + "\n"));
      return;
    }
    const std::string& path = target->path;
    if (path != "/healthz" && path != "/readyz" && path != "/metrics") {
      exchange.respond(text_response(404, "not found: " + path + "\n"));
      return;
    }
    if (request.method != "GET") {
      http::Response response = text_response(405, "method not allowed: " + request.method + "\n");
      response.headers.emplace_back("Allow", "GET");
      exchange.respond(std::move(response));
      return;
    }
    const bool verbose = target->query.contains("verbose");
    if (path == "/healthz") {
      exchange.respond(report_response(checks.liveness(), "healthz", verbose));
    } else if (path == "/readyz") {
      exchange.respond(report_response(checks.readiness(), "readyz", verbose));
    } else {
      exchange.respond({.status = 200,
                        .headers = {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}},
                        .body = prometheus::TextSerializer().Serialize(registry.Collect())});
    }
  };
}

}  // namespace

bool CheckReport::passed() const {
  return std::all_of(outcomes.begin(), outcomes.end(),
                     [](const CheckOutcome& outcome) { return outcome.passed; });
}

void HealthChecks::add_liveness(std::string name, Check check) {
  std::lock_guard lock(mu_);
  add_check(liveness_, "liveness", std::move(name), std::move(check));
}

void HealthChecks::add_readiness(std::string name, Check check) {
  std::lock_guard lock(mu_);
  add_check(readiness_, "readiness", std::move(name), std::move(check));
}

CheckReport HealthChecks::liveness() const { return run(snapshot(mu_, liveness_)); }
CheckReport HealthChecks::readiness() const { return run(snapshot(mu_, readiness_)); }

Buckets latency_buckets() { return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}; }

Buckets exponential_buckets(double start, double factor, int count) {
  if (!(start > 0) || !(factor > 1) || count < 1) {
    die_on_misuse("exponential_buckets", "want start > 0, factor > 1 and count >= 1");
  }
  Buckets buckets;
  buckets.reserve(static_cast<std::size_t>(count));
  double bound = start;
  for (int i = 0; i < count; ++i, bound *= factor) buckets.push_back(bound);
  return buckets;
}

Result<void> check_metric_name(std::string_view name, MetricKind kind) {
  const auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument, "metric name \"" + std::string(name) + "\": " + why);
  };
  const std::vector<std::string_view> words = split_words(name);
  if (!std::all_of(words.begin(), words.end(), is_snake_word)) {
    return bad("want lowercase letters and digits in words joined by single '_'");
  }
  if (words.front() != "clusterwire") return bad("want the prefix clusterwire_");
  const bool counter = kind == MetricKind::kCounter;
  if (counter != (words.back() == "total")) {
    return bad(counter ? "a counter's name ends in _total" : "only counters end in _total");
  }
  const std::size_t min_words = counter ? 4 : 3;  // clusterwire, component, thing[, total]
  if (words.size() < min_words) return bad("want clusterwire_<component>_<thing>[_<unit>]");
  const std::string_view last = words.back();
  if (last == "count" || last == "sum" || last == "bucket") {
    return bad("_count, _sum and _bucket are added by the exposition format");
  }
  static constexpr std::array<std::string_view, 10> kNonBaseUnits = {
      "ms",      "milliseconds", "microseconds", "nanoseconds", "minutes",
      "hours",   "kilobytes",    "megabytes",    "gigabytes",   "percent"};
  const std::string_view unit = counter ? words[words.size() - 2] : last;
  if (std::find(kNonBaseUnits.begin(), kNonBaseUnits.end(), unit) != kNonBaseUnits.end()) {
    return bad("use base units (_seconds, _bytes, _ratio), not _" + std::string(unit));
  }
  return ok_result();
}

prometheus::Family<prometheus::Counter>& Metrics::counter_family(const std::string& name,
                                                                 const std::string& help) {
  return register_family(registry_, prometheus::BuildCounter(), name, help, MetricKind::kCounter);
}

prometheus::Family<prometheus::Gauge>& Metrics::gauge_family(const std::string& name,
                                                             const std::string& help) {
  return register_family(registry_, prometheus::BuildGauge(), name, help, MetricKind::kGauge);
}

prometheus::Family<prometheus::Histogram>& Metrics::histogram_family(const std::string& name,
                                                                     const std::string& help) {
  return register_family(registry_, prometheus::BuildHistogram(), name, help,
                         MetricKind::kHistogram);
}

prometheus::Counter& Metrics::counter(const std::string& name, const std::string& help,
                                      const prometheus::Labels& labels) {
  return add_metric(counter_family(name, help), labels, MetricKind::kCounter);
}

prometheus::Gauge& Metrics::gauge(const std::string& name, const std::string& help,
                                  const prometheus::Labels& labels) {
  return add_metric(gauge_family(name, help), labels, MetricKind::kGauge);
}

prometheus::Histogram& Metrics::histogram(const std::string& name, const std::string& help,
                                          const Buckets& buckets,
                                          const prometheus::Labels& labels) {
  check_buckets_or_die(name, buckets);
  return add_metric(histogram_family(name, help), labels, MetricKind::kHistogram, buckets);
}

HealthServer::HealthServer(std::unique_ptr<http::Server> server)
    : server_(std::move(server)), port_(server_->port()) {}

HealthServer::~HealthServer() { stop(); }

Result<std::unique_ptr<HealthServer>> HealthServer::start(const std::string& address,
                                                          std::uint16_t port,
                                                          const HealthChecks& checks,
                                                          const prometheus::Registry& registry) {
  http::ServerOptions options;
  options.address = address;
  options.port = port;
  options.max_body_bytes = 64 * 1024;  // probes and scrapes send no body
  options.max_connections = 64;        // a kubelet and a few scrapers
  auto server = http::Server::start(std::move(options), make_handler(checks, registry));
  if (!server) return server.error().with_context("health server");
  return std::unique_ptr<HealthServer>(new HealthServer(std::move(server).value()));
}

std::uint16_t HealthServer::port() const { return port_; }

void HealthServer::stop() {
  if (server_ == nullptr) return;
  server_->stop();
  // Destroyed as well as stopped: http::Server::stop() called before its accept thread has
  // started leaves the listening socket open until the Server is destroyed.
  server_.reset();
}

}  // namespace cw::metrics
