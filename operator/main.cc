// cw-operator: the clusterwire operator of one member cluster. Wires configuration, clients,
// logging, health and metrics to operator::Operator; `cw-operator leave` releases the
// cluster's claims when it leaves the clusterset (the chart's uninstall hook).
#include <CLI/CLI.hpp>

#include <csignal>
#include <iostream>
#include <thread>

#include "common/kube/client.h"
#include "common/kube/kubeconfig.h"
#include "common/log/log.h"
#include "common/metrics/health_server.h"
#include "operator/model.h"
#include "operator/operator.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

cw::Result<std::unique_ptr<cw::kube::Client>> connect(const std::string& kubeconfig, const char* which,
                                                      const cw::log::Logger& log) {
  auto conn = cw::kube::load_client_config(kubeconfig);
  if (!conn) return conn.error().with_context(std::string("the ") + which + " API's configuration");
  if (conn->insecure_skip_tls_verify) {
    log.warn("TLS verification is OFF for this API server (insecure-skip-tls-verify in the kubeconfig)",
             {{"api", which}, {"server", conn->server}});
  }
  return cw::kube::Client::create(*conn);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cw-operator: clusterwire's operator for one member cluster"};
  app.require_subcommand(0, 1);
  cw::op::OperatorConfig config;
  std::string kubeconfig, broker_kubeconfig, node_cidrs = "allocate", log_format = "text", log_level = "info";
  std::vector<std::string> pod_cidrs, service_cidrs;
  std::string health_address = "0.0.0.0";
  int health_port = 8080;
  int heartbeat_s = 15;
  app.add_option("--cluster-id", config.cluster_id, "This cluster's ID (an RFC 1123 label)")->required();
  app.add_option("--kubeconfig", kubeconfig, "The local cluster's API (default: in-cluster or $KUBECONFIG)");
  app.add_option("--broker-kubeconfig", broker_kubeconfig, "The broker's API (default: same as the local one)");
  app.add_option("--broker-namespace", config.broker_namespace, "Broker namespace")->capture_default_str();
  app.add_option("--pod-cidr", pod_cidrs, "A pod CIDR this cluster already uses (adopted exactly; one per family)");
  app.add_option("--service-cidr", service_cidrs, "This cluster's Service CIDR (one per family)");
  app.add_option("--node-cidrs", node_cidrs, "allocate: clusterwire gives Nodes their blocks; adopt: Kubernetes does")
      ->check(CLI::IsMember({"allocate", "adopt"}))->capture_default_str();
  app.add_option("--dns-endpoint", config.dns_endpoint, "host:port other clusters reach this cluster's DNS at");
  app.add_option("--heartbeat-seconds", heartbeat_s, "How often the advertisement's heartbeat is refreshed")->capture_default_str();
  app.add_flag("!--no-leader-election", config.leader_election, "Run without leader election (one replica only)");
  app.add_option("--lease-namespace", config.lease_namespace, "Namespace of the leader Lease")->capture_default_str();
  std::vector<std::string> gateway_endpoints;
  app.add_option("--topology", config.topology,
                 "mesh (every node peers with remote nodes) or gateway (only nodes labelled "
                 "clusterwire.io/gateway=true do); default: the ClusterSet's defaultTopology")
      ->check(CLI::IsMember({"mesh", "gateway"}));
  app.add_option("--gateway-endpoint", gateway_endpoints,
                 "NODE=host:port: where other clusters reach that gateway (a load balancer, an elastic IP); "
                 "wins over its clusterwire.io/public-endpoint annotation");
  app.add_option("--gateway-lease-namespace", config.gateway_lease_namespace,
                 "Namespace of the gateway candidates' Lease")->capture_default_str();
  app.add_option("--gateway-lease-name", config.gateway_lease_name, "Name of the gateway candidates' Lease")
      ->capture_default_str();
  app.add_option("--gateway-label", config.gateway_label, "The Node label (=true) that makes a gateway candidate")
      ->capture_default_str();
  app.add_option("--default-ingress", config.default_ingress,
                 "The ingress posture of a ClusterPeering without spec.ingress: All, ExportedServices or None "
                 "(docs/policy.md)")
      ->check(CLI::IsMember({"All", "ExportedServices", "None"}))
      ->capture_default_str();
  app.add_option("--health-address", health_address, "Address for /healthz, /readyz, /metrics")->capture_default_str();
  app.add_option("--health-port", health_port, "Port for /healthz, /readyz, /metrics (0: any)")->capture_default_str();
  app.add_option("--log-format", log_format, "text or json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  app.add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();
  auto* leave = app.add_subcommand("leave", "Release this cluster's claims and advertisement on the broker, then exit");
  CLI11_PARSE(app, argc, argv);

  cw::log::Logger log({.component = "operator",
                       .format = cw::log::parse_format(log_format).value(),
                       .level = cw::log::parse_level(log_level).ok() ? cw::log::parse_level(log_level).value()
                                                                      : cw::log::Level::kInfo});
  log = log.with("cluster", config.cluster_id);
  auto fail = [&](const std::string& what) {
    log.error(what);
    std::cerr << "cw-operator: " << what << "\n";
    return 1;
  };
  for (const auto& text : pod_cidrs) {
    auto p = cw::net::Prefix::parse(text);
    if (!p) return fail("--pod-cidr: " + p.error().message());
    config.pod_cidrs.push_back(*p);
  }
  for (const auto& text : service_cidrs) {
    auto p = cw::net::Prefix::parse(text);
    if (!p) return fail("--service-cidr: " + p.error().message());
    config.service_cidrs.push_back(*p);
  }
  for (const auto& text : gateway_endpoints) {
    const auto eq = text.find('=');
    if (eq == std::string::npos) return fail("--gateway-endpoint \"" + text + "\" is not NODE=host:port");
    config.gateway_endpoints[text.substr(0, eq)] = text.substr(eq + 1);
  }
  config.node_cidr_mode = node_cidrs == "adopt" ? cw::op::NodeCidrMode::kAdopt : cw::op::NodeCidrMode::kAllocate;
  config.heartbeat_interval = std::chrono::seconds(heartbeat_s);
  if (auto r = cw::op::validate(config); !r) return fail(r.error().message());

  auto broker = connect(broker_kubeconfig.empty() ? kubeconfig : broker_kubeconfig, "broker", log);
  if (!broker) return fail(broker.error().message());
  if (*leave) {
    auto r = cw::op::Operator::leave(config, **broker, log);
    return r ? 0 : fail(r.error().message());
  }
  auto local = connect(kubeconfig, "local", log);
  if (!local) return fail(local.error().message());

  cw::SystemClock clock;
  cw::metrics::Metrics metrics;
  cw::metrics::HealthChecks checks;
  cw::op::Operator op(config, **local, **broker, clock, log, &metrics);
  checks.add_readiness("cluster-cidr", [&op]() -> cw::Result<void> {
    const auto s = op.state();
    if (!s.leading) return cw::ok_result();  // a follower is ready to take over
    if (s.pod_blocks.empty()) {
      return cw::Error(cw::ErrorCode::kUnavailable, s.problems.empty() ? "no pod block yet" : s.problems.front());
    }
    return cw::ok_result();
  });
  auto health = cw::metrics::HealthServer::start(health_address, static_cast<std::uint16_t>(health_port), checks,
                                                 metrics.registry());
  if (!health) return fail("health server: " + health.error().message());
  if (auto r = op.start(); !r) return fail(r.error().message());
  log.info("started", {{"health_port", static_cast<int>((*health)->port())}});

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  log.info("stopping");
  op.stop();
  return 0;
}
