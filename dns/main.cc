// cw-dns: clusterwire's DNS server for one member cluster. Serves the exported zone
// (default clusterset.local) by the MCS DNS rules (dns/zone.h) from the local API's
// ServiceImports, imported EndpointSlices and ClusterPeerings (dns/api_source.h), over UDP
// and TCP (dns/server.h); /healthz, /readyz and /metrics on the health port. The cluster's
// CoreDNS forwards the zone here (docs/dns.md).
#include <CLI/CLI.hpp>

#include <array>
#include <csignal>
#include <iostream>
#include <thread>

#include "common/ipam/clusterset.h"
#include "common/kube/client.h"
#include "common/kube/kubeconfig.h"
#include "common/log/log.h"
#include "common/metrics/health_server.h"
#include "dns/api_source.h"
#include "dns/server.h"
#include "dns/zone.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cw-dns: clusterwire's DNS server for the clusterset zone of one member cluster"};
  std::string cluster_id, kubeconfig, zone_name = "clusterset.local", log_format = "text", log_level = "info";
  std::string address = "0.0.0.0", health_address = "0.0.0.0", nameserver;
  int port = 53, health_port = 8080, ttl = 5, resync_s = 60;
  unsigned threads = 0;
  app.add_option("--cluster-id", cluster_id, "This cluster's ID: its own exports are preferred")->required();
  app.add_option("--kubeconfig", kubeconfig, "The local cluster's API (default: in-cluster or $KUBECONFIG)");
  app.add_option("--zone", zone_name, "The zone served")->capture_default_str();
  app.add_option("--nameserver", nameserver, "The apex NS and SOA name (default: ns.dns.<zone>)");
  app.add_option("--ttl", ttl, "TTL of every answer, in seconds")->check(CLI::Range(0, 3600))->capture_default_str();
  app.add_option("--address", address, "Address to serve DNS on (UDP and TCP)")->capture_default_str();
  app.add_option("--port", port, "Port to serve DNS on (0: any free port)")->check(CLI::Range(0, 65535))->capture_default_str();
  app.add_option("--threads", threads, "Worker threads (0: one per CPU)")->capture_default_str();
  app.add_option("--resync-seconds", resync_s, "How often the caches are replayed in full")->capture_default_str();
  app.add_option("--health-address", health_address, "Address for /healthz, /readyz, /metrics")->capture_default_str();
  app.add_option("--health-port", health_port, "Port for /healthz, /readyz, /metrics (0: any)")->capture_default_str();
  app.add_option("--log-format", log_format, "text or json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  app.add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  cw::log::Logger log({.component = "dns",
                       .format = cw::log::parse_format(log_format).value(),
                       .level = cw::log::parse_level(log_level).ok() ? cw::log::parse_level(log_level).value()
                                                                      : cw::log::Level::kInfo});
  log = log.with("cluster", cluster_id);
  auto fail = [&](const std::string& what) {
    log.error(what);
    std::cerr << "cw-dns: " << what << "\n";
    return 1;
  };
  if (auto why = cw::ipam::check_dns_label(cluster_id)) return fail("--cluster-id \"" + cluster_id + "\" " + *why);
  while (!zone_name.empty() && zone_name.back() == '.') zone_name.pop_back();
  if (zone_name.empty()) return fail("--zone is empty");

  auto conn = cw::kube::load_client_config(kubeconfig);
  if (!conn) return fail(conn.error().with_context("the local API's configuration").message());
  auto client = cw::kube::Client::create(*conn);
  if (!client) return fail(client.error().message());

  cw::dns::ZoneOptions zone_options{.zone = zone_name, .ttl = static_cast<std::uint32_t>(ttl),
                                    .nameserver = nameserver.empty() ? "ns.dns." + zone_name : nameserver};
  auto zone = std::make_shared<cw::dns::ServiceZone>(zone_options);
  cw::SystemClock clock;
  cw::dns::ApiSource source(**client, zone,
                            {.cluster_id = cluster_id, .resync_period = std::chrono::seconds(resync_s)}, clock, log);

  cw::metrics::Metrics metrics;
  static constexpr std::array<const char*, 6> kRcodes = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"};
  std::array<prometheus::Counter*, 7> answered{};
  for (std::size_t i = 0; i < kRcodes.size(); ++i) {
    answered[i] = &metrics.counter("clusterwire_dns_responses_total", "Responses sent, by rcode", {{"rcode", kRcodes[i]}});
  }
  answered[6] = &metrics.counter("clusterwire_dns_responses_total", "Responses sent, by rcode", {{"rcode", "OTHER"}});
  auto& dropped = metrics.counter("clusterwire_dns_dropped_total", "Requests dropped unanswered (unreadable or oversized)");
  auto& truncated = metrics.counter("clusterwire_dns_truncated_total", "UDP responses sent with TC set");

  cw::dns::ServerOptions server_options;
  server_options.address = address;
  server_options.port = static_cast<std::uint16_t>(port);
  server_options.threads = threads;
  server_options.observer = [&](const cw::dns::QueryEvent& e) {
    if (!e.answered) {
      dropped.Increment();
      return;
    }
    const auto rcode = static_cast<std::size_t>(e.rcode);
    answered[rcode < kRcodes.size() ? rcode : 6]->Increment();
    if (e.truncated) truncated.Increment();
  };

  cw::metrics::HealthChecks checks;
  checks.add_readiness("caches", [&source]() -> cw::Result<void> {
    const auto s = source.stats();
    if (s.synced) return cw::ok_result();
    std::string why = "the ServiceImport, EndpointSlice and ClusterPeering caches are not synced yet";
    if (!s.waiting.empty()) why = "waiting for " + s.waiting.front();
    return cw::Error(cw::ErrorCode::kUnavailable, why);
  });
  auto health = cw::metrics::HealthServer::start(health_address, static_cast<std::uint16_t>(health_port), checks,
                                                 metrics.registry());
  if (!health) return fail("health server: " + health.error().message());

  source.start();
  auto server = cw::dns::Server::start(server_options, zone);
  if (!server) return fail("DNS server: " + server.error().message());
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  log.info("serving", {{"zone", zone_name}, {"address", address}, {"port", static_cast<int>((*server)->port())},
                       {"health_port", static_cast<int>((*health)->port())}});
  std::cout << "listening on " << address << ":" << (*server)->port() << std::endl;
  auto& services = metrics.gauge("clusterwire_dns_services", "Imported Services in the zone");
  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    services.Set(static_cast<double>(source.stats().services));
  }
  log.info("stopping");
  (*server)->stop();
  source.stop();
  return 0;
}
