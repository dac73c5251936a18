// The health server over real loopback HTTP, with common/http's client.
#include "common/metrics/health_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <ostream>
#include <stdexcept>

#include "common/http/client.h"

namespace cw::metrics {
namespace {

using namespace std::chrono_literals;

class HealthServerTest : public testing::Test {
 protected:
  void SetUp() override {
    auto started = HealthServer::start("127.0.0.1", 0, checks_, metrics_.registry());
    ASSERT_TRUE(started.ok()) << started.error().message();
    server_ = std::move(started).value();
    const std::string url = "http://127.0.0.1:" + std::to_string(server_->port());
    auto client = http::Client::create({.url = url});
    ASSERT_TRUE(client.ok()) << client.error().message();
    client_ = std::move(client).value();
  }

  http::Response send(const std::string& method, const std::string& target) {
    auto response = client_->send({.method = method, .target = target}, 5s);
    EXPECT_TRUE(response.ok()) << method << " " << target << ": " << response.error().message();
    return response.ok() ? std::move(response).value() : http::Response{.status = 0};
  }
  http::Response get(const std::string& target) { return send("GET", target); }

  HealthChecks checks_;
  Metrics metrics_;
  std::unique_ptr<HealthServer> server_;
  std::unique_ptr<http::Client> client_;
};

TEST_F(HealthServerTest, HealthzAndReadyzAreOkWithNoChecks) {
  for (const char* path : {"/healthz", "/readyz"}) {
    const auto r = get(path);
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.body, "ok") << path;
    EXPECT_EQ(r.header("Content-Type"), "text/plain; charset=utf-8") << path;
  }
}

TEST_F(HealthServerTest, ReadyzLists503UntilTheFailingCheckPasses) {
  std::atomic<bool> synced{false};
  checks_.add_readiness("informers-synced", [&]() -> Result<void> {
    if (!synced) return Error(ErrorCode::kUnavailable, "2 of 3 informers have not synced");
    return ok_result();
  });
  checks_.add_readiness("api-reachable", [] { return ok_result(); });

  auto r = get("/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body,
            "[+]api-reachable ok\n"
            "[-]informers-synced failed: 2 of 3 informers have not synced\n"
            "readyz check failed\n");
  EXPECT_EQ(get("/healthz").status, 200);  // readiness does not touch liveness

  synced = true;
  r = get("/readyz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok");
  r = get("/readyz?verbose");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "[+]api-reachable ok\n[+]informers-synced ok\nreadyz check passed\n");
}

TEST_F(HealthServerTest, HealthzFailsWithItsLivenessChecks) {
  std::atomic<bool> stuck{true};
  checks_.add_liveness("reconcile-loop", [&]() -> Result<void> {
    if (stuck) return Error(ErrorCode::kInternal, "no progress for 300s\nsince 09:00");
    return ok_result();
  });
  auto r = get("/healthz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body,
            "[-]reconcile-loop failed: no progress for 300s since 09:00\nhealthz check failed\n");
  EXPECT_EQ(get("/readyz").status, 200);
  stuck = false;
  EXPECT_EQ(get("/healthz").body, "ok");
}

TEST_F(HealthServerTest, ACheckThatThrowsFails) {
  checks_.add_readiness("peers", []() -> Result<void> { throw std::runtime_error("bad state"); });
  const auto r = get("/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "[-]peers failed: check threw: bad state\nreadyz check failed\n");
}

TEST_F(HealthServerTest, MetricsServesTheRegistryInTextFormat) {
  auto& added = metrics_.counter("clusterwire_agent_peers_added_total", "Peers added.");
  added.Increment(3);
  metrics_.gauge("clusterwire_agent_peers", "Peers configured.", {{"cluster", "east"}}).Set(2);
  metrics_.histogram("clusterwire_agent_sync_duration_seconds", "Time to apply a peer set.",
                     {0.1, 1}).Observe(0.5);

  const auto r = get("/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const auto contains = [&](const std::string& text) {
    return r.body.find(text) != std::string::npos;
  };
  EXPECT_TRUE(contains("# HELP clusterwire_agent_peers_added_total Peers added.\n"
                       "# TYPE clusterwire_agent_peers_added_total counter\n"
                       "clusterwire_agent_peers_added_total 3\n"))
      << r.body;
  EXPECT_TRUE(contains("# TYPE clusterwire_agent_peers gauge\n"
                       "clusterwire_agent_peers{cluster=\"east\"} 2\n"))
      << r.body;
  EXPECT_TRUE(contains("# TYPE clusterwire_agent_sync_duration_seconds histogram\n")) << r.body;
  EXPECT_TRUE(contains("clusterwire_agent_sync_duration_seconds_bucket{le=\"0.1\"} 0\n")) << r.body;
  EXPECT_TRUE(contains("clusterwire_agent_sync_duration_seconds_bucket{le=\"1\"} 1\n")) << r.body;
  EXPECT_TRUE(contains("clusterwire_agent_sync_duration_seconds_count 1\n")) << r.body;

  // Later increments show on the next scrape.
  added.Increment();
  EXPECT_NE(get("/metrics").body.find("clusterwire_agent_peers_added_total 4\n"),
            std::string::npos);
}

TEST_F(HealthServerTest, UnknownPathsAre404AndOtherMethods405) {
  for (const char* path : {"/", "/healthz/extra", "/metricsz", "/readyz/peers"}) {
    EXPECT_EQ(get(path).status, 404) << path;
  }
  for (const char* method : {"POST", "PUT", "DELETE"}) {
    const auto r = send(method, "/metrics");
    EXPECT_EQ(r.status, 405) << method;
    EXPECT_EQ(r.header("Allow"), "GET") << method;
  }
  EXPECT_EQ(send("POST", "/nowhere").status, 404);
}

// Stopped straight after starting, before any request: the listener must still close.
TEST_F(HealthServerTest, StopClosesThePortAndIsIdempotent) {
  const auto port = server_->port();
  server_->stop();
  server_->stop();
  auto client = http::Client::create({.url = "http://127.0.0.1:" + std::to_string(port)}).value();
  auto r = client->send({.method = "GET", .target = "/healthz"}, 2s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
}

TEST(HealthServerStartTest, ABusyPortOrBadAddressIsAnError) {
  HealthChecks checks;
  Metrics metrics;
  auto first = HealthServer::start("127.0.0.1", 0, checks, metrics.registry()).value();
  auto busy = HealthServer::start("127.0.0.1", first->port(), checks, metrics.registry());
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(busy.error().message().find("health server"), std::string::npos);
  auto bad = HealthServer::start("not-an-address", 0, checks, metrics.registry());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
}

TEST(MetricsTest, AskingAgainReturnsTheSameMetric) {
  Metrics metrics;
  auto& a = metrics.counter("clusterwire_dns_queries_total", "Queries.", {{"rcode", "ok"}});
  auto& b = metrics.counter("clusterwire_dns_queries_total", "Queries.", {{"rcode", "ok"}});
  auto& c = metrics.counter("clusterwire_dns_queries_total", "Queries.", {{"rcode", "nxdomain"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  auto& family = metrics.counter_family("clusterwire_dns_queries_total", "Queries.");
  EXPECT_TRUE(family.Has({{"rcode", "nxdomain"}}));
}

TEST(MetricsTest, Buckets) {
  EXPECT_EQ(exponential_buckets(0.001, 2, 4), (Buckets{0.001, 0.002, 0.004, 0.008}));
  EXPECT_EQ(latency_buckets().front(), 0.005);
  EXPECT_EQ(latency_buckets().back(), 10);
}

struct NameCase {
  std::string name;
  MetricKind kind;
  bool valid;
};
void PrintTo(const NameCase& c, std::ostream* os) {
  static constexpr const char* kKinds[] = {"counter", "gauge", "histogram"};
  *os << kKinds[static_cast<int>(c.kind)] << " " << c.name << (c.valid ? " (valid)" : " (invalid)");
}

class MetricNameTest : public testing::TestWithParam<NameCase> {};

TEST_P(MetricNameTest, FollowsTheConventions) {
  const auto r = check_metric_name(GetParam().name, GetParam().kind);
  EXPECT_EQ(r.ok(), GetParam().valid) << (r.ok() ? "accepted" : r.error().message());
  if (!r.ok()) {
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  }
}

constexpr auto kCounter = MetricKind::kCounter;
constexpr auto kGauge = MetricKind::kGauge;
constexpr auto kHistogram = MetricKind::kHistogram;

INSTANTIATE_TEST_SUITE_P(
    Names, MetricNameTest,
    testing::Values(NameCase{"clusterwire_agent_peers_added_total", kCounter, true},
                    NameCase{"clusterwire_gateway_tx_bytes_total", kCounter, true},
                    NameCase{"clusterwire_agent_peers", kGauge, true},
                    NameCase{"clusterwire_operator_reconcile_duration_seconds", kHistogram, true},
                    NameCase{"clusterwire_dns_ipv6_answers_total", kCounter, true},
                    NameCase{"agent_peers_added_total", kCounter, false},
                    NameCase{"clusterwire_agent_peers_added", kCounter, false},
                    NameCase{"clusterwire_agent_total", kCounter, false},
                    NameCase{"clusterwire_agent", kGauge, false},
                    NameCase{"clusterwire_agent_peers_total", kGauge, false},
                    NameCase{"clusterwire_agent_Peers", kGauge, false},
                    NameCase{"clusterwire_agent__peers", kGauge, false},
                    NameCase{"clusterwire_agent_peers_", kGauge, false},
                    NameCase{"clusterwire_agent-peers", kGauge, false},
                    NameCase{"clusterwire_agent_sync_ms", kHistogram, false},
                    NameCase{"clusterwire_agent_sync_milliseconds_total", kCounter, false},
                    NameCase{"clusterwire_agent_sync_count", kGauge, false},
                    NameCase{"clusterwire_agent_sync_bucket", kHistogram, false}));

// Misuse aborts with the reason, like Result::value() on an error.
TEST(MetricsDeathTest, MisuseAbortsWithTheReason) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(Metrics().counter("clusterwire_agent_peers", "Peers."), "ends in _total");
  EXPECT_DEATH(Metrics().gauge("clusterwire_agent_peers", ""), "no help text");
  EXPECT_DEATH(Metrics().gauge("clusterwire_agent_peers", "P.", {{"Bad-Label", "x"}}),
               "Bad-Label");
  EXPECT_DEATH(Metrics().histogram("clusterwire_agent_sync_seconds", "S.", {1, 0.5}),
               "strictly increasing");
  EXPECT_DEATH(
      {
        Metrics metrics;
        metrics.gauge("clusterwire_agent_peers", "Peers.");
        metrics.histogram("clusterwire_agent_peers", "Peers.", latency_buckets());
      },
      "clusterwire_agent_peers");
  EXPECT_DEATH(
      {
        HealthChecks checks;
        checks.add_readiness("peers", [] { return ok_result(); });
        checks.add_readiness("peers", [] { return ok_result(); });
      },
      "readiness check \"peers\" added twice");
  EXPECT_DEATH(HealthChecks().add_liveness("Not OK", [] { return ok_result(); }),
               "lowercase words");
}

}  // namespace
}  // namespace cw::metrics
