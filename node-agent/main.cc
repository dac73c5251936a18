// cw-node-agent: clusterwire's agent on one node. Wires configuration, the WireGuard backend,
// the local API client, logging, health and metrics to agent::Agent; `cleanup` removes what
// clusterwire made on the node.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "common/kube/client.h"
#include "common/kube/kubeconfig.h"
#include "common/log/log.h"
#include "common/metrics/health_server.h"
#include "common/netfilter/nftables.h"
#include "common/wireguard/uapi_control.h"
#include "node-agent/agent.h"
#include "node-agent/backend.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cw-node-agent: clusterwire's WireGuard mesh on one node"};
  cw::agent::AgentConfig config;
  if (const char* n = std::getenv("NODE_NAME")) config.node_name = n;
  std::string kubeconfig, backend = "auto", uapi_dir = "/var/run/wireguard", log_format = "text", log_level = "info";
  std::vector<std::string> service_cidrs;
  std::string health_address = "0.0.0.0", in_cluster_routes = "auto";
  int health_port = 8081, listen_port = 51820, keepalive = 0, resync_s = 30, probe_port = cw::agent::probe::kDefaultPort;
  int probe_interval_ms = 1000, probe_timeout_ms = 250;
  app.add_option("--node-name", config.node_name, "This node's name (default: $NODE_NAME)");
  app.add_option("--kubeconfig", kubeconfig, "The local API (default: in-cluster or $KUBECONFIG)");
  app.add_option("--key-path", config.key_path, "The WireGuard private key (created 0600 if absent)")->capture_default_str();
  app.add_option("--interface", config.interface, "The WireGuard interface")->capture_default_str();
  app.add_option("--listen-port", listen_port, "WireGuard UDP port")->capture_default_str();
  app.add_option("--endpoint", config.endpoint, "address:port other clusters reach this node at (default: InternalIP)");
  app.add_option("--mtu", config.mtu, "The interface MTU (default: underlay MTU - 80)");
  app.add_option("--underlay-mtu", config.underlay_mtu,
                 "The underlay's MTU (default: the link holding the Node's InternalIP)");
  app.add_option("--persistent-keepalive", keepalive, "Seconds between keepalives (0: off), unless a peering sets it")
      ->capture_default_str();
  app.add_option("--service-cidr", service_cidrs, "The local cluster's Service CIDR (never routed to a remote)");
  app.add_option("--in-cluster-routes", in_cluster_routes,
                 "Route other nodes' pod blocks: auto (only those no route of the CNI's reaches), on, off")
      ->check(CLI::IsMember({"auto", "on", "off"}))->capture_default_str();
  app.add_option("--clamp-mss", config.clamp_mss, "Lower the MSS of TCP SYNs entering the tunnel to the route's MTU")
      ->capture_default_str();
  app.add_option("--ingress-policy", config.ingress_policy,
                 "Enforce ClusterSet ingress policy for this node's pods (table inet clusterwire_ingress; "
                 "docs/policy.md)")
      ->capture_default_str();
  app.add_option("--probe-port", probe_port,
                 "UDP port of the datapath probes through the tunnel (0: no probes; the same on every node)")
      ->check(CLI::Range(0, 65535))->capture_default_str();
  app.add_option("--probe-interval-ms", probe_interval_ms, "Milliseconds between probes of one remote node")
      ->capture_default_str();
  app.add_option("--probe-timeout-ms", probe_timeout_ms,
                 "Milliseconds without an answer before a remote node is re-probed fast (it is Down after 8 in a row)")
      ->capture_default_str();
  int gateway_port = cw::gateway::kDefaultHeartbeatPort, gateway_dead_after_ms = 400, gateway_lease_s = 10;
  bool gateway_health_trigger = true;
  app.add_option("--cluster-id", config.cluster_id, "This cluster's ID (names the gateway candidates' messages)");
  app.add_option("--gateway-port", gateway_port,
                 "Gateway mode: UDP port of the candidates' heartbeats over the underlay (the same on every node)")
      ->check(CLI::Range(1, 65535))->capture_default_str();
  app.add_option("--gateway-lease-namespace", config.gateway_lease_namespace,
                 "Gateway mode: namespace of the candidates' Lease")->capture_default_str();
  app.add_option("--gateway-lease-name", config.gateway_lease_name, "Gateway mode: name of the candidates' Lease")
      ->capture_default_str();
  app.add_option("--gateway-label", config.gateway_label, "Gateway mode: the Node label (=true) of gateway candidates")
      ->capture_default_str();
  app.add_option("--gateway-dead-after-ms", gateway_dead_after_ms,
                 "Gateway mode: a silent active gateway is taken over after this many milliseconds")
      ->capture_default_str();
  app.add_option("--gateway-lease-seconds", gateway_lease_s,
                 "Gateway mode: the Lease's duration (the fallback when heartbeats cannot decide)")
      ->capture_default_str();
  app.add_option("--gateway-health-trigger", gateway_health_trigger,
                 "Gateway mode: take over on silence or a worse score, not only on the Lease's expiry")
      ->capture_default_str();
  app.add_option("--backend", backend, "auto (kernel when it has WireGuard), kernel, or uapi")
      ->check(CLI::IsMember({"auto", "kernel", "uapi"}))->capture_default_str();
  app.add_option("--uapi-socket-dir", uapi_dir, "Where userspace WireGuard's sockets are")->capture_default_str();
  app.add_option("--wireguard-go", config.wireguard_go, "Userspace WireGuard to start when the device is missing (\"\": never)")
      ->capture_default_str();
  app.add_option("--resync-seconds", resync_s, "Full re-check period")->capture_default_str();
  app.add_option("--health-address", health_address, "Address for /healthz, /readyz, /metrics")->capture_default_str();
  app.add_option("--health-port", health_port, "Port for /healthz, /readyz, /metrics (0: any)")->capture_default_str();
  app.add_option("--log-format", log_format, "text or json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  app.add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();
  auto* cleanup = app.add_subcommand("cleanup", "Remove clusterwire's routes and WireGuard device from this node");
  CLI11_PARSE(app, argc, argv);
  config.gateway_port = static_cast<std::uint16_t>(gateway_port);
  config.gateway.dead_after = std::chrono::milliseconds(gateway_dead_after_ms);
  config.gateway.lease_duration = std::chrono::seconds(gateway_lease_s);
  config.gateway.renew_interval = std::min(config.gateway.renew_interval, config.gateway.lease_duration / 3);
  config.gateway.health_trigger = gateway_health_trigger;

  auto level = cw::log::parse_level(log_level);
  cw::log::Logger log({.component = "node-agent",
                       .format = cw::log::parse_format(log_format).value(),
                       .level = level ? *level : cw::log::Level::kInfo});
  log = log.with("node", config.node_name);
  auto fail = [&](const std::string& what) {
    log.error(what);
    std::cerr << "cw-node-agent: " << what << "\n";
    return 1;
  };
  config.listen_port = static_cast<std::uint16_t>(listen_port);
  config.persistent_keepalive = static_cast<std::uint16_t>(keepalive);
  config.resync_period = std::chrono::seconds(resync_s);
  config.probe_port = static_cast<std::uint16_t>(probe_port);
  config.probe.interval = std::chrono::milliseconds(probe_interval_ms);
  config.probe.timeout = std::chrono::milliseconds(probe_timeout_ms);
  config.in_cluster_routes = cw::agent::parse_in_cluster_routes(in_cluster_routes).value();
  auto nftables = cw::netfilter::make_nftables();
  for (const auto& t : service_cidrs) {
    auto p = cw::net::Prefix::parse(t);
    if (!p) return fail("--service-cidr: " + p.error().message());
    config.service_cidrs.push_back(*p);
  }
  if (*cleanup) {
    auto r = cw::agent::Agent::cleanup(config, *nftables, log);
    return r ? 0 : fail(r.error().message());
  }
  if (auto r = cw::agent::validate(config); !r) return fail(r.error().message());

  auto wireguard = cw::agent::choose_backend(backend, uapi_dir);
  if (!wireguard) return fail(wireguard.error().message());
  log.info("WireGuard backend", {{"backend", (*wireguard)->backend()}});
  auto conn = cw::kube::load_client_config(kubeconfig);
  if (!conn) return fail(conn.error().message());
  if (conn->insecure_skip_tls_verify) log.warn("TLS verification is OFF for the API server (insecure-skip-tls-verify)");
  auto client = cw::kube::Client::create(*conn);
  if (!client) return fail(client.error().message());

  cw::SystemClock clock;
  cw::metrics::Metrics metrics;
  cw::metrics::HealthChecks checks;
  cw::agent::Agent agent(config, **client, **wireguard, *nftables, clock, log, &metrics);
  checks.add_readiness("device-configured", [&agent]() -> cw::Result<void> {
    const auto s = agent.state();
    if (!s.applied) return cw::Error(cw::ErrorCode::kUnavailable, s.last_error.empty() ? "not applied yet" : s.last_error);
    return cw::ok_result();
  });
  auto health = cw::metrics::HealthServer::start(health_address, static_cast<std::uint16_t>(health_port), checks,
                                                 metrics.registry());
  if (!health) return fail("health server: " + health.error().message());
  if (auto r = agent.start(); !r) return fail(r.error().message());
  log.info("started", {{"health_port", static_cast<int>((*health)->port())}});

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  log.info("stopping; the device and routes stay as they are");
  agent.stop();
  return 0;
}
