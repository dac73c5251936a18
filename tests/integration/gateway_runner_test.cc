// Gateway candidates at work on loopback: real heartbeat sockets, a real (lab) API server
// holding the Lease. Each candidate listens on an address of its own (127.0.0.x), the same
// port, as candidates on different nodes do.
#include "gateway/runner.h"

#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "lab/apiserver/api_server.h"

namespace cw::gateway {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
namespace kres = kube::resources;

bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return cond();
}

class GatewayRunnerTest : public testing::Test {
 protected:
  void SetUp() override {
    server_ = lab::ApiServer::start({}).value();
    kube::ClusterConnection c;
    c.server = server_->url();
    c.ca_pem = server_->ca_pem();
    c.token = "lab-admin-token";
    client_ = kube::Client::create(c).value();
    port_ = static_cast<std::uint16_t>(30000 + getpid() % 20000);
  }

  std::unique_ptr<Runner> candidate(int i, const std::vector<int>& peers, Settings settings = {}) {
    RunnerOptions o;
    o.cluster_id = "c1";
    o.node_name = "gw-" + std::to_string(i);
    o.port = port_;
    o.bind_address = address(i);
    o.settings = settings;
    o.beacon_interval = 200ms;
    auto r = Runner::start(o, *client_, clock_, log_, [] {}, [this](const Heartbeat&) { ++beacons_; });
    EXPECT_TRUE(r.ok()) << r.error().message();
    if (!r) return nullptr;
    std::vector<net::IpAddress> addresses;
    for (int p : peers) addresses.push_back(address(p));
    (*r)->set_peers(addresses);
    (*r)->set_score(1);
    (*r)->set_candidate(true);
    return std::move(*r);
  }

  static net::IpAddress address(int i) { return net::IpAddress::parse("127.0.0." + std::to_string(i)).value(); }

  // The Lease as an informer would deliver it, to every runner, every 20 ms.
  void feed(const std::vector<Runner*>& runners) {
    auto lease = client_->get(kres::kLeases, "kube-system", "clusterwire-gateway");
    for (auto* r : runners) {
      if (r) r->observe_lease(lease ? std::optional<json>(*lease) : std::nullopt);
    }
  }

  std::int64_t epoch() {
    auto lease = client_->get(kres::kLeases, "kube-system", "clusterwire-gateway");
    return lease ? (*lease)["spec"].value("leaseTransitions", std::int64_t{-1}) : -1;
  }

  std::unique_ptr<lab::ApiServer> server_;
  std::unique_ptr<kube::Client> client_;
  SystemClock clock_;
  log::Logger log_;
  std::uint16_t port_ = 0;
  std::atomic<int> beacons_{0};
};

TEST_F(GatewayRunnerTest, OneIsActiveAndAStandbyTakesOverWithinHalfASecondOfItsDeath) {
  auto a = candidate(11, {12});
  auto b = candidate(12, {11});
  ASSERT_TRUE(a && b);
  std::vector<Runner*> both{a.get(), b.get()};
  ASSERT_TRUE(wait_for([&] {
    feed(both);
    return a->state().active != b->state().active;
  }, 5s));
  EXPECT_EQ(epoch(), 1);
  ASSERT_TRUE(wait_for([&] { return a->stats().heartbeats_received > 3 && b->stats().heartbeats_received > 3; }, 2s))
      << "heartbeats flow both ways";
  EXPECT_GT(beacons_.load(), 0);

  // The active one dies (its process, sockets and all).
  auto& active = a->state().active ? a : b;
  auto& standby = a->state().active ? b : a;
  const std::string standby_name = standby->state().node;
  active.reset();
  const auto died = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_for([&] {
    feed({standby.get()});
    return standby->state().active;
  }, 5s));
  const auto took = std::chrono::steady_clock::now() - died;
  EXPECT_LT(took, 800ms) << "dead-after is 400 ms; the Lease lasts 10 s";
  EXPECT_EQ(standby->holder(), standby_name);
  EXPECT_EQ(epoch(), 2);
  EXPECT_EQ(standby->stats().takeovers, 1U);
}

TEST_F(GatewayRunnerTest, AnUnlabelledCandidateNeverHoldsTheLease) {
  auto a = candidate(21, {22});
  auto b = candidate(22, {21});
  ASSERT_TRUE(a && b);
  b->set_candidate(false);
  std::vector<Runner*> both{a.get(), b.get()};
  ASSERT_TRUE(wait_for([&] {
    feed(both);
    return a->state().active;
  }, 5s));
  a.reset();
  const auto until = std::chrono::steady_clock::now() + 1500ms;
  while (std::chrono::steady_clock::now() < until) {
    feed({b.get()});
    ASSERT_FALSE(b->state().active);
    std::this_thread::sleep_for(20ms);
  }
}

TEST_F(GatewayRunnerTest, WithoutAnApiServerNothingMovesAndTheFailuresAreCounted) {
  auto a = candidate(31, {32});
  ASSERT_TRUE(a);
  ASSERT_TRUE(wait_for([&] {
    feed({a.get()});
    return a->state().active;
  }, 5s));
  server_.reset();  // the API server is gone
  std::this_thread::sleep_for(2500ms);  // past a renew interval
  EXPECT_TRUE(a->state().active) << "the data plane keeps its gateway while the API is down";
  EXPECT_GE(a->stats().lease_write_failures, 1U);
}

TEST_F(GatewayRunnerTest, JunkOnTheHeartbeatPortIsRefused) {
  auto a = candidate(41, {42});
  ASSERT_TRUE(a);
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(a->port());
  to.sin_addr.s_addr = htonl(0x7f000029);  // 127.0.0.41
  sockaddr_in from{};
  from.sin_family = AF_INET;
  from.sin_addr.s_addr = htonl(0x7f00002a);  // 127.0.0.42, a known peer
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from), 0);
  const std::string junk = "CWGW not really";
  const auto forged = encode({Kind::kHeartbeat, "c2", {"gw-42", true, 99, 5}});  // another cluster
  sendto(fd, junk.data(), junk.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  sendto(fd, forged.data(), forged.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  close(fd);
  EXPECT_TRUE(wait_for([&] { return a->stats().refused >= 2; }, 2s));
  EXPECT_EQ(a->stats().heartbeats_received, 0U);
}

}  // namespace
}  // namespace cw::gateway
