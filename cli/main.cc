// cwctl: the command-line tool for people who run a clusterwire mesh.
// This file only wires subcommands to their implementations.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <map>

#include "cli/lab/lab.h"
#include "cli/mesh/commands.h"
#include "cli/plan_command.h"

namespace {
// The build directory this cwctl came from (<build>/cli/cwctl): where the lab finds the other
// binaries unless --bin-dir says otherwise.
std::string default_bin_dir() {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("build") : self.parent_path().parent_path().string();
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cwctl: plan, run and inspect a clusterwire mesh"};
  app.set_version_flag("--version", std::string("cwctl ") + CW_VERSION);
  app.require_subcommand(1);

  std::string plan_file;
  std::string plan_output = "text";
  auto* plan = app.add_subcommand(
      "plan",
      "Print the address plan for a clusterset: each cluster's pod block, node blocks, and "
      "every conflict. Exit status: 0 no conflicts, 1 conflicts, 2 bad input.");
  plan->add_option("file", plan_file, "Clusterset description (YAML); see examples/plan.yaml")
      ->required();
  plan->add_option("-o,--output", plan_output, "Output format")
      ->check(CLI::IsMember({"text", "json"}));

  // status | diagnose | graph: the clusterset through kubeconfig contexts, as kubectl takes them.
  cw::mesh::FetchOptions mesh_options;
  std::string mesh_output = "text", graph_output = "dot";
  auto mesh_flags = [&](CLI::App* sub) {
    sub->add_option("--kubeconfig", mesh_options.kubeconfig,
                    "Kubeconfig file(s), ':'-separated as $KUBECONFIG (default: $KUBECONFIG, ~/.kube/config)");
    sub->add_option("--context", mesh_options.contexts,
                    "A member cluster's context; repeat it for each cluster (default: the current context)");
    sub->add_option("--broker-context", mesh_options.broker_context,
                    "The broker's context (default: the first context whose API holds advertisements)");
    sub->add_option("--broker-namespace", mesh_options.broker_namespace, "The broker's namespace")
        ->capture_default_str();
  };
  auto* status = app.add_subcommand(
      "status", "Every cluster of the clusterset as its API and the broker see it: CIDRs, peerings with phase and "
                "datapath health, nodes with their probe results, the problems the components report");
  mesh_flags(status);
  status->add_option("-o,--output", mesh_output, "text or json")->check(CLI::IsMember({"text", "json"}));
  auto* diagnose = app.add_subcommand(
      "diagnose", "Check every known fault (blocked UDP, MTU black hole, SNAT on the path, CIDR overlap, one-sided "
                  "peering, broker out of reach, a silent remote operator, failing node agents, clock skew) and say "
                  "what to do. Exit status: 0 nothing wrong, 1 something is, 2 nothing could be read.");
  mesh_flags(diagnose);
  diagnose->add_option("-o,--output", mesh_output, "text or json")->check(CLI::IsMember({"text", "json"}));
  auto* graph = app.add_subcommand("graph", "The clusterset as a Graphviz graph, edges coloured by datapath health");
  mesh_flags(graph);
  graph->add_option("-o,--output", graph_output, "dot, or svg (rendered with Graphviz's dot)")
      ->check(CLI::IsMember({"dot", "svg"}));

  cw::lab::LabOptions lab_options;
  lab_options.bin_dir = default_bin_dir();
  lab_options.crds_dir = std::string(CW_SOURCE_DIR) + "/crds";
  lab_options.chart_dir = std::string(CW_SOURCE_DIR) + "/charts/clusterwire";
  lab_options.helm = std::string(CW_SOURCE_DIR) + "/scripts/helm.sh";
  auto* lab = app.add_subcommand("lab", "A multi-cluster clusterwire lab on this machine, in network namespaces "
                                        "(root; docs/lab.md)");
  lab->require_subcommand(1);
  lab->add_option("--name", lab_options.name, "The lab's name: prefix of everything it makes")
      ->capture_default_str();
  auto* lab_up = lab->add_subcommand("up", "Build the lab: clusters of namespaces running the real binaries");
  lab_up->add_option("--clusters", lab_options.clusters, "Clusters (2-9)")->capture_default_str();
  lab_up->add_option("--nodes", lab_options.nodes, "Nodes per cluster (1-9)")->capture_default_str();
  lab_up->add_option("--bin-dir", lab_options.bin_dir, "Build directory with the binaries")->capture_default_str();
  lab_up->add_option("--crds-dir", lab_options.crds_dir, "The CRD manifests")->capture_default_str();
  lab_up->add_option("--chart-dir", lab_options.chart_dir, "The Helm chart whose RBAC the components run under")
      ->capture_default_str();
  lab_up->add_option("--helm", lab_options.helm, "How to run helm")->capture_default_str();
  lab_up->add_option("--cni-dir", lab_options.cni_dir, "The CNI plugins")->capture_default_str();
  lab_up->add_option("--wireguard-go", lab_options.wireguard_go, "Userspace WireGuard (without kernel WireGuard)")
      ->capture_default_str();
  lab_up->add_flag("--keep-on-failure", lab_options.keep_on_failure,
                   "Leave a lab whose up failed as it is, for a look (default: remove it)");
  lab_up->add_option("--cni", lab_options.cni,
                     "Who routes inside a cluster: bird (Calico's way: BGP, bridge ipMasq), vxlan (flannel's way), "
                     "clusterwire (the node agents, no masquerade)")
      ->check(CLI::IsMember({"bird", "vxlan", "clusterwire"}))->capture_default_str();
  lab_up->add_option("--ip-family", lab_options.ip_family,
                     "Pod addresses: ipv4, ipv6 or dual (pools, node blocks and pods for each family asked for)")
      ->check(CLI::IsMember({"ipv4", "ipv6", "dual"}))->capture_default_str();
  lab_up->add_option("--underlay-mtu", lab_options.underlay_mtu, "MTU of the underlay's links (node eth0 included)")
      ->check(CLI::Range(1280, 9000))->capture_default_str();
  lab_up->add_option("--world", lab_options.world,
                     "flat (every node on one underlay, mesh) or nat (each cluster's nodes on a private subnet, the "
                     "same in every cluster, behind a NAT router; gateway mode)")
      ->check(CLI::IsMember({"flat", "nat"}))->capture_default_str();
  lab_up->add_option("--gateways", lab_options.gateways,
                     "The nat world: gateway candidates per cluster, its first nodes (default 2, or fewer nodes)");
  lab_up->add_flag("--gateway-lease-only", lab_options.gateway_lease_only,
                   "The nat world: gateways fail over only when the Lease expires (health trigger off: a baseline "
                   "for bench/gateway_failover.sh)");
  auto* lab_verify = lab->add_subcommand(
      "verify", "Check the lab end to end; a pass/fail table, exit status 0 only if every check passes");
  auto* lab_status = lab->add_subcommand("status", "Clusters, CIDRs, peerings, WireGuard peers and handshakes");
  auto* lab_down = lab->add_subcommand("down", "Remove every namespace, process and file of the lab");
  std::string restart_process;
  bool restart_hard = false;
  auto* lab_restart = lab->add_subcommand("restart", "Stop one of the lab's processes and start it again");
  lab_restart->add_option("process", restart_process, "e.g. operator-c1, node-agent-c1-n2, dns-c2")->required();
  lab_restart->add_flag("--kill", restart_hard, "SIGKILL instead of SIGTERM (a crash)");
  std::vector<std::string> impair_words;
  bool impair_clear = false;
  auto* lab_impair = lab->add_subcommand(
      "impair", "Inject a fault: drop-icmp-frag | partition C1 C2 | masquerade C | snat C | mtu-black-hole C1 C2 | "
                "loss C1 C2 PERCENT; "
                "--clear [FAULT] removes them; no words lists them");
  lab_impair->add_option("fault", impair_words,
                         "drop-icmp-frag, partition c1 c2, masquerade c1, snat c1, mtu-black-hole c1 c2, loss c1 c2 5");
  lab_impair->add_flag("--clear", impair_clear, "Remove the named fault (or kind of fault), or all of them");
  std::string services_cluster;
  auto* lab_services = lab->add_subcommand(
      "services", "(run by up) the EndpointSlice controller and kube-proxy stand-ins of one cluster, until SIGTERM");
  lab_services->add_option("cluster", services_cluster, "c1, c2, ...")->required();
  std::string kubectl_cluster;
  std::vector<std::string> kubectl_args;
  auto* lab_kubectl = lab->add_subcommand("kubectl", "kubectl against one cluster: cwctl lab kubectl c1 -- get nodes");
  lab_kubectl->add_option("cluster", kubectl_cluster, "c1, c2, ... (or 1, 2, ...)")->required();
  lab_kubectl->add_option("args", kubectl_args, "kubectl's arguments (after --)");

  // --name may also follow the action: `cwctl lab up --name x`.
  for (auto* sub : {lab_up, lab_verify, lab_status, lab_down, lab_restart, lab_impair, lab_services, lab_kubectl}) {
    sub->fallthrough();
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : cw::cli::kPlanBadInput;
  }

  if (*plan) {
    const auto format =
        plan_output == "json" ? cw::cli::OutputFormat::kJson : cw::cli::OutputFormat::kText;
    return cw::cli::run_plan(plan_file, format, std::cout, std::cerr);
  }
  if (*status) return cw::mesh::run_status(mesh_options, mesh_output, std::cout, std::cerr);
  if (*diagnose) return cw::mesh::run_diagnose(mesh_options, mesh_output, std::cout, std::cerr);
  if (*graph) return cw::mesh::run_graph(mesh_options, graph_output, std::cout, std::cerr);
  if (*lab_up) return cw::lab::lab_up(lab_options, std::cout, std::cerr);
  if (*lab_verify) return cw::lab::lab_verify(lab_options, std::cout, std::cerr);
  if (*lab_status) return cw::lab::lab_status(lab_options, std::cout, std::cerr);
  if (*lab_down) return cw::lab::lab_down(lab_options, std::cout, std::cerr);
  if (*lab_restart) return cw::lab::lab_restart(lab_options, restart_process, restart_hard, std::cout, std::cerr);
  if (*lab_impair) return cw::lab::lab_impair(lab_options, impair_words, impair_clear, std::cout, std::cerr);
  if (*lab_services) return cw::lab::lab_services(lab_options, services_cluster, std::cout, std::cerr);
  if (*lab_kubectl) return cw::lab::lab_kubectl(lab_options, kubectl_cluster, kubectl_args, std::cout, std::cerr);
  return 0;
}
