#include "node-agent/agent.h"

#include <linux/ip.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <thread>

#include "common/kube/controller.h"
#include "common/kube/informer.h"
#include <fstream>

#include "common/metrics/health_server.h"
#include "common/netfilter/nftables.h"
#include "common/netlink/rtnetlink.h"
#include "node-agent/gateway_role.h"
#include "node-agent/device_diff.h"
#include "node-agent/key_store.h"
#include "node-agent/prober.h"
#include "node-agent/topology.h"
#include "node-agent/ingress_sync.h"
#include "node-agent/ingress_table.h"
#include "node-agent/tunnel_rules.h"

namespace cw::agent {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
namespace kres = kube::resources;

const kube::Resource kClusterPeerings{"clusterwire.io", "v1alpha1", "clusterpeerings", false};
constexpr const char* kPublicKeyAnnotation = "clusterwire.io/public-key";
constexpr const char* kEndpointAnnotation = "clusterwire.io/endpoint";
constexpr const char* kPodCidrAnnotation = "clusterwire.io/pod-cidr";
constexpr const char* kDatapathAnnotation = "clusterwire.io/datapath";
constexpr const char* kReportKey = "report";
constexpr const char* kAgentErrorAnnotation = "clusterwire.io/agent-error";
// A peer whose last handshake is older than this (WireGuard's REJECT_AFTER_TIME) is not
// completing handshakes: with traffic flowing (probes), one is made every 2 minutes.
constexpr auto kHandshakeStale = std::chrono::seconds(180);
// A report whose verdicts did not change is still rewritten this often, when its figures
// (loss, RTT) did: status shows them, and a few writes an hour per node cost nothing.
constexpr auto kReportRefresh = std::chrono::minutes(5);
// Verdicts of many remote nodes change within a second of each other when a path is cut (their
// probes are spread over the interval): one write per this gap carries them all.
constexpr auto kReportMinGap = std::chrono::milliseconds(500);
constexpr std::uint32_t kWireGuardOverhead = 80;  // IPv6 outer header + UDP + WireGuard

std::string str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

std::vector<net::Prefix> prefixes(const json& value) {
  std::vector<net::Prefix> out;
  std::vector<std::string> texts;
  if (value.is_string()) {
    std::string s = value.get<std::string>();
    std::size_t start = 0;
    while (start <= s.size()) {
      const auto comma = s.find(',', start);
      texts.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  } else if (value.is_array()) {
    for (const auto& v : value) {
      if (v.is_string()) texts.push_back(v.get<std::string>());
    }
  }
  for (const auto& t : texts) {
    if (auto p = net::Prefix::parse(t)) out.push_back(*p);
  }
  return out;
}

std::string annotation(const json& object, const char* key) {
  const json& m = object["metadata"];
  return m.contains("annotations") ? str(m["annotations"], key) : "";
}

// Every InternalIP of a Node, in the order the Node lists them (one per family on dual-stack).
std::vector<net::IpAddress> internal_ips(const json& node) {
  std::vector<net::IpAddress> out;
  if (!node.contains("status") || !node["status"].contains("addresses")) return out;
  for (const auto& a : node["status"]["addresses"]) {
    if (str(a, "type") == "InternalIP") {
      if (auto ip = net::IpAddress::parse(str(a, "address"))) out.push_back(*ip);
    }
  }
  return out;
}

// The address other nodes reach this one at: its first InternalIP, IPv4 if it has one (the
// WireGuard endpoint and the underlay MTU are taken from it).
std::optional<net::IpAddress> internal_ip(const json& node) {
  const auto all = internal_ips(node);
  for (const auto& ip : all) {
    if (ip.is_v4()) return ip;
  }
  if (all.empty()) return std::nullopt;
  return all.front();
}

std::string label(const json& object, const char* key) {
  const json& m = object["metadata"];
  return m.contains("labels") ? str(m["labels"], key) : "";
}

RemoteNode remote_node(const json& n) {
  return {str(n, "name"), str(n, "endpoint"), str(n, "publicKey"), prefixes(n.value("podCIDRs", json::array()))};
}

// One integer from /proc/sys; nullopt when it cannot be read.
std::optional<int> read_sysctl(const std::string& path) {
  std::ifstream in(path);
  int value = 0;
  if (!(in >> value)) return std::nullopt;
  return value;
}

// A Node update that changed only datapath reports (ours or another node's) changes nothing
// the agent computes from: without this, every report written would wake every agent.
bool only_report_changed(const json& before, const json& after) {
  auto strip = [](json n) {
    json& m = n["metadata"];
    m.erase("resourceVersion");
    m.erase("managedFields");
    if (m.contains("annotations") && m["annotations"].is_object()) {
      m["annotations"].erase(kDatapathAnnotation);
      m["annotations"].erase("clusterwire.io/agent-error");
    }
    return n;
  };
  return strip(before) == strip(after);
}

std::string describe(const std::vector<net::Prefix>& list) {
  std::string s;
  for (const auto& p : list) s += (s.empty() ? "" : ", ") + p.to_string();
  return s;
}

}  // namespace

Result<InClusterRoutes> parse_in_cluster_routes(const std::string& text) {
  if (text == "auto") return InClusterRoutes::kAuto;
  if (text == "on") return InClusterRoutes::kOn;
  if (text == "off") return InClusterRoutes::kOff;
  return Error(ErrorCode::kInvalidArgument, "--in-cluster-routes \"" + text + "\": expected auto, on or off");
}

Result<void> validate(const AgentConfig& c) {
  // Node names are RFC 1123 subdomains: labels joined by dots.
  const bool name_ok = !c.node_name.empty() && c.node_name.size() <= 253 &&
                       c.node_name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-.") == std::string::npos &&
                       c.node_name.front() != '.' && c.node_name.back() != '.' && c.node_name.front() != '-';
  if (!name_ok) {
    return Error(ErrorCode::kInvalidArgument, "--node-name \"" + c.node_name +
                                                  "\" is not a Kubernetes node name (set it, or $NODE_NAME)");
  }
  if (c.interface.empty() || c.interface.size() > 15) {
    return Error(ErrorCode::kInvalidArgument, "--interface must be 1-15 characters");
  }
  if (c.listen_port == 0) return Error(ErrorCode::kInvalidArgument, "--listen-port must be 1-65535");
  if (!c.endpoint.empty() && !wg::Endpoint::parse(c.endpoint)) {
    return Error(ErrorCode::kInvalidArgument, "--endpoint \"" + c.endpoint + "\" is not address:port");
  }
  if (c.mtu != 0 && (c.mtu < 1280 || c.mtu > 65535)) return Error(ErrorCode::kInvalidArgument, "--mtu must be 1280-65535");
  if (c.probe_port != 0 && c.probe_port == c.listen_port) {
    return Error(ErrorCode::kInvalidArgument, "--probe-port must differ from --listen-port");
  }
  if (c.gateway_port == 0 || c.gateway_port == c.listen_port || c.gateway_port == c.probe_port) {
    return Error(ErrorCode::kInvalidArgument, "--gateway-port must be 1-65535 and differ from the WireGuard and probe ports");
  }
  if (auto r = gateway::validate(c.gateway); !r) return r.error().with_context("gateway election");
  if (c.probe_port != 0) return probe::validate(c.probe);
  return ok_result();
}

struct Agent::Impl {
  AgentConfig config;
  kube::Client& local;
  wg::DeviceControl& wireguard;
  netfilter::Nftables& nftables;
  Clock& clock;
  log::Logger log;
  metrics::Metrics* metrics;

  std::optional<wg::Key> private_key;
  std::string public_key;
  std::unique_ptr<kube::Informer> nodes;
  std::unique_ptr<kube::Informer> peerings;
  std::unique_ptr<kube::Informer> leases;  // the gateway Lease's namespace
  std::unique_ptr<kube::Controller> controller;
  std::unique_ptr<IngressEnforcer> ingress;  // with config.ingress_policy
  std::unique_ptr<GatewayRole> gateway_role;  // gateway mode (docs/gateway.md)
  std::optional<netlink::Rtnetlink> rt;  // opened on the reconcile thread, used only there
  std::optional<std::uint32_t> detected_mtu;
  std::unique_ptr<Prober> prober;
  json last_report;  // as last written to our Node
  std::map<std::string, std::string> probed_peers;  // public key (base64) → remote cluster
  // Remote gateway candidates this node has an endpoint for: "cluster/node" → public key; and
  // when each one's session was last reset (docs/gateway.md, "Stale sessions").
  std::map<std::string, std::string> resettable_peers;
  std::map<std::string, Clock::TimePoint> last_reset;
  std::optional<std::string> published_error;  // clusterwire.io/agent-error as our Node has it
  std::optional<Clock::TimePoint> last_report_at;

  mutable std::mutex mu;
  AgentState state;

  Impl(AgentConfig c, kube::Client& l, wg::DeviceControl& w, netfilter::Nftables& nft, Clock& clk, log::Logger lg,
       metrics::Metrics* m)
      : config(std::move(c)), local(l), wireguard(w), nftables(nft), clock(clk), log(std::move(lg)), metrics(m) {}

  Result<void> start() {
    auto key = load_or_create_private_key(config.key_path);
    if (!key) return key.error();
    private_key = *key;
    auto pub = wg::public_key_of(*key);
    if (!pub) return pub.error();
    public_key = pub->to_base64();
    {
      std::lock_guard lock(mu);
      state.public_key = public_key;
    }
    log.info("key loaded", {{"public_key", public_key}, {"path", config.key_path}});

    nodes = std::make_unique<kube::Informer>(local, kube::InformerOptions{.resource = kres::kNodes,
                                                                          .resync_period = config.resync_period},
                                             clock);
    peerings = std::make_unique<kube::Informer>(local, kube::InformerOptions{.resource = kClusterPeerings,
                                                                             .resync_period = config.resync_period},
                                                clock);
    controller = std::make_unique<kube::Controller>(
        kube::ControllerOptions{.name = "node", .workers = 1,
                                .on_reconciled = [this](const std::string&, Clock::Duration took,
                                                        const Result<kube::ReconcileResult>& r) { observe(took, r); }},
        [this](const std::string& which) { return which == kReportKey ? write_report() : reconcile(); }, clock);
    auto kick = [this](const json&) { controller->enqueue("node"); };
    auto kick2 = [this](const json&, const json&) { controller->enqueue("node"); };
    nodes->add_handlers({.on_add = kick,
                         .on_update = [this](const json& before, const json& after) {
                           if (!only_report_changed(before, after)) controller->enqueue("node");
                         },
                         .on_delete = kick});
    peerings->add_handlers({.on_add = kick, .on_update = kick2, .on_delete = kick});
    leases = std::make_unique<kube::Informer>(
        local, kube::InformerOptions{.resource = kres::kLeases, .ns = config.gateway_lease_namespace,
                                     .resync_period = config.resync_period},
        clock);
    gateway_role = std::make_unique<GatewayRole>(
        GatewayRoleOptions{config.cluster_id, config.node_name, config.gateway_port, config.gateway_lease_namespace,
                           config.gateway_lease_name, config.gateway},
        local, clock, log, [this] { controller->enqueue("node"); }, [this] { return gateway_lease(); });
    auto lease_changed = [this](const json& o) {
      if (str(o["metadata"], "name") != config.gateway_lease_name) return;
      gateway_role->lease_changed();
      controller->enqueue("node");
    };
    leases->add_handlers({.on_add = lease_changed,
                          .on_update = [lease_changed](const json&, const json& o) { lease_changed(o); },
                          .on_delete = lease_changed});
    if (config.probe_port == 0) {
      // No probes: a report left from when there were would be read as current.
      (void)local.merge_patch(kres::kNodes, "", config.node_name,
                              {{"metadata", {{"annotations", {{kDatapathAnnotation, nullptr}}}}}});
    } else {
      auto started = Prober::start({config.interface, config.probe_port, config.probe,
                                    [this](const gateway::Message& m, const net::IpAddress& from) {
                                      gateway_role->heard_beacon(m, from);
                                    }},
                                   clock, log, [this] { controller->enqueue(kReportKey); });
      if (!started) return started.error();
      prober = std::move(*started);
      gateway_role->set_prober(prober.get());
      log.info("probing the datapath", {{"port", static_cast<int>(prober->port())},
                                        {"interval_ms", static_cast<std::int64_t>(config.probe.interval.count())}});
    }
    if (config.ingress_policy) {
      ingress = IngressEnforcer::start(local, nftables, clock, log, config.node_name,
                                       std::chrono::duration_cast<std::chrono::milliseconds>(config.resync_period),
                                       [this] { controller->enqueue("node"); });
    }
    if (auto r = controller->start(); !r) return r;
    nodes->start();
    peerings->start();
    leases->start();
    controller->enqueue("node");
    return ok_result();
  }

  // ---- gateway mode (docs/gateway.md)

  std::optional<json> gateway_lease() const {
    auto lease = leases->get(config.gateway_lease_namespace, config.gateway_lease_name);
    return lease ? std::optional<json>(*lease) : std::nullopt;
  }

  // What came out of the tunnel for another local node's pods goes back into it, on a
  // candidate: table 119 and the rule that sends packets from the tunnel device there.
  Result<bool> apply_gateway_routes(const Topology& topology) {
    const bool candidate = topology.role == Role::kActiveGateway || topology.role == Role::kStandbyGateway;
    std::vector<netlink::Route> table;
    for (const auto& r : topology.gateway_routes) {
      netlink::Route route{r.destination, config.interface, std::nullopt};
      route.table = kGatewayTable;
      table.push_back(route);
    }
    bool changed = false;
    // The rule first when adding, last when removing: never a rule to an empty table's routes
    // for packets that the main table would have carried.
    for (net::Family f : {net::Family::kIPv4, net::Family::kIPv6}) {
      if (!candidate) continue;
      auto r = rt->set_iif_rule({f, config.interface, kGatewayTable, kGatewayRulePriority}, true);
      if (!r) return r.error();
      changed = changed || *r;
    }
    auto diff = rt->set_routes(table, kGatewayTable);
    if (!diff) return diff.error();
    changed = changed || !diff->unchanged();
    for (net::Family f : {net::Family::kIPv4, net::Family::kIPv6}) {
      if (candidate) continue;
      auto r = rt->set_iif_rule({f, config.interface, kGatewayTable, kGatewayRulePriority}, false);
      if (!r) return r.error();
      changed = changed || *r;
    }
    return changed;
  }

  void stop() {
    // The controller first: its worker uses the prober. (The prober's callback may still
    // enqueue on the stopped controller, which then does nothing.)
    if (controller) controller->stop();
    if (gateway_role) gateway_role->stop();  // its runner's callbacks use the prober and the controller
    prober.reset();
    if (ingress) ingress->stop();
    if (leases) leases->stop();
    if (peerings) peerings->stop();
    if (nodes) nodes->stop();
  }

  void observe(Clock::Duration took, const Result<kube::ReconcileResult>& r) {
    if (!metrics) return;
    metrics->histogram("clusterwire_node_agent_apply_duration_seconds", "Time to bring the device and routes to the desired state",
                       metrics::latency_buckets())
        .Observe(std::chrono::duration<double>(took).count());
    if (!r) metrics->counter("clusterwire_node_agent_apply_errors_total", "Passes that failed").Increment();
  }

  void set_error(const std::string& e) {
    {
      std::lock_guard lock(mu);
      if (state.last_error != e && !e.empty()) log.warn("apply failed", {{"error", e}});
      state.last_error = e;
    }
    publish_error(e);
  }

  // The last apply error on our Node (clusterwire.io/agent-error), for `cwctl status` and
  // `cwctl diagnose`; removed once a pass succeeds. Best effort: the API may be the trouble.
  void publish_error(const std::string& e) {
    if (!published_error && nodes) {  // after a restart: what an earlier run left
      for (const auto& n : nodes->list()) {
        if (str(n["metadata"], "name") == config.node_name) published_error = annotation(n, kAgentErrorAnnotation);
      }
    }
    if (published_error && e == *published_error) return;
    const json value = e.empty() ? json(nullptr) : json(e);
    if (local.merge_patch(kres::kNodes, "", config.node_name, {{"metadata", {{"annotations", {{kAgentErrorAnnotation, value}}}}}})) {
      published_error = e;
    }
  }

  // The device must exist: the kernel makes it on request; a userspace one is started.
  Result<void> ensure_device() {
    auto dev = wireguard.get(config.interface);
    if (dev) return ok_result();
    if (dev.error().code() != ErrorCode::kNotFound) return dev.error();
    if (std::string(wireguard.backend()) == "kernel") {
      if (auto r = rt->create_link(config.interface, "wireguard"); !r && r.error().code() != ErrorCode::kAlreadyExists) {
        return r;
      }
      log.info("created the kernel WireGuard device", {{"interface", config.interface}});
      return ok_result();
    }
    if (config.wireguard_go.empty()) {
      return Error(ErrorCode::kNotFound, "no WireGuard device " + config.interface + " and none may be started");
    }
    // wireguard-go daemonises: the process we start exits once the device is up, and the
    // daemon outlives the agent (traffic keeps flowing across agent restarts).
    const pid_t pid = fork();
    if (pid < 0) return Error(ErrorCode::kUnavailable, "fork failed starting wireguard-go");
    if (pid == 0) {
      setsid();
      execlp(config.wireguard_go.c_str(), config.wireguard_go.c_str(), config.interface.c_str(), nullptr);
      _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return Error(ErrorCode::kUnavailable, "starting " + config.wireguard_go + " " + config.interface +
                                                " failed (exit status " + std::to_string(WEXITSTATUS(status)) + ")");
    }
    for (int i = 0; i < 100; ++i) {
      if (wireguard.get(config.interface)) {
        log.info("started userspace WireGuard", {{"interface", config.interface}, {"program", config.wireguard_go}});
        return ok_result();
      }
      std::this_thread::sleep_for(50ms);
    }
    return Error(ErrorCode::kUnavailable, "wireguard-go started but its UAPI socket did not appear");
  }

  // The underlay's MTU: configured, or that of the link holding this Node's InternalIP
  // (looked up once it is known), or Ethernet's 1500.
  std::uint32_t underlay_mtu() {
    if (config.underlay_mtu != 0) return config.underlay_mtu;
    if (detected_mtu) return *detected_mtu;
    std::optional<net::IpAddress> mine;
    for (const auto& n : nodes->list()) {
      if (str(n["metadata"], "name") == config.node_name) mine = internal_ip(n);
    }
    if (!mine) return 1500;
    if (auto links = rt->list_links()) {
      for (const auto& link : *links) {
        auto addrs = rt->list_addresses(link.name);
        if (!addrs) continue;
        for (const auto& a : *addrs) {
          if (a.address == *mine) {
            detected_mtu = link.mtu;
            log.info("underlay MTU", {{"link", link.name}, {"mtu", link.mtu}});
            return link.mtu;
          }
        }
      }
    }
    return 1500;
  }

  Result<kube::ReconcileResult> reconcile() {
    // Never on a cache still filling: an empty peering list would remove every peer and cut
    // every tunnel right after an agent restart.
    if (!nodes->has_synced() || !peerings->has_synced() || !leases->has_synced()) {
      return kube::ReconcileResult{.requeue_after = 100ms};
    }
    if (!rt) {
      auto opened = netlink::Rtnetlink::open();
      if (!opened) return opened.error().with_context("opening rtnetlink");
      rt.emplace(std::move(*opened));
    }
    if (auto r = ensure_device(); !r) {
      set_error(r.error().message());
      return r.error();
    }
    // MTU and up: idempotent, cheap.
    const std::uint32_t mtu = config.mtu != 0 ? config.mtu : underlay_mtu() - kWireGuardOverhead;
    if (auto link = rt->get_link(config.interface); link && link->mtu != mtu) (void)rt->set_mtu(config.interface, mtu);
    if (auto link = rt->get_link(config.interface); link && !link->up) (void)rt->set_up(config.interface);

    // Observe.
    TopologyInput in;
    in.node_name = config.node_name;
    in.local_service_cidrs = config.service_cidrs;
    in.default_keepalive = config.persistent_keepalive;
    std::optional<json> self;
    for (const auto& n : nodes->list()) {
      LocalNode ln{str(n["metadata"], "name"), internal_ips(n), prefixes(json(annotation(n, kPodCidrAnnotation))),
                   annotation(n, kPublicKeyAnnotation), annotation(n, kEndpointAnnotation),
                   label(n, config.gateway_label.c_str()) == "true"};
      // The cluster's pod space, as far as a node can see it: every node's block.
      in.local_pod_cidrs.insert(in.local_pod_cidrs.end(), ln.pod_cidrs.begin(), ln.pod_cidrs.end());
      if (ln.name == config.node_name) self = n;
      in.local_nodes.push_back(std::move(ln));
    }
    for (const auto& p : peerings->list()) {
      if (!p.contains("status")) continue;
      const json& st = p["status"];
      const json remote = st.value("remote", json::object());
      RemoteCluster rc;
      rc.cluster_id = str(p["spec"], "remoteClusterID");
      rc.phase = str(st, "phase");
      rc.pod_cidrs = prefixes(remote.value("podCIDRs", json::array()));
      rc.service_cidrs = prefixes(remote.value("serviceCIDRs", json::array()));
      for (const auto& n : remote.value("nodes", json::array())) rc.nodes.push_back(remote_node(n));
      if (str(remote, "topology") == "gateway") {
        rc.mode = Mode::kGateway;
        std::vector<std::string> names;
        for (const auto& g : remote.value("gateways", json::array())) {
          rc.gateways.push_back(remote_node(g));
          names.push_back(rc.gateways.back().name);
        }
        rc.active_gateway = gateway_role->remote_active(rc.cluster_id, names, str(remote, "activeGateway"));
      }
      // Every peering's status carries this cluster's topology, as the operator runs it.
      if (str(st, "localTopology") == "gateway") in.mode = Mode::kGateway;
      const json keepalive = p["spec"].value("persistentKeepaliveSeconds", json());
      if (keepalive.is_number_integer()) rc.persistent_keepalive = static_cast<std::uint16_t>(keepalive.get<int>());
      in.remotes.push_back(std::move(rc));
    }
    in.in_cluster_routes = config.in_cluster_routes;
    if (config.in_cluster_routes == InClusterRoutes::kAuto) {
      auto all = rt->list_routes(RT_TABLE_MAIN, /*only_ours=*/false);
      if (!all) {
        set_error("reading the routing table: " + all.error().message());
        return all.error();
      }
      for (const auto& r : *all) {
        if (r.protocol != netlink::kRouteProtocol) in.foreign_routes.push_back(r.destination);
      }
    }
    // Gateway mode: this node's part in the election, and the active gateway it follows.
    const bool candidate = in.mode == Mode::kGateway && self && label(*self, config.gateway_label.c_str()) == "true";
    std::vector<net::IpAddress> other_candidates;
    for (const auto& n : in.local_nodes) {
      if (n.gateway_candidate && n.name != config.node_name && !n.internal_ips.empty()) {
        other_candidates.push_back(n.internal_ips.front());
      }
    }
    gateway_role->update(candidate, other_candidates);
    if (in.mode == Mode::kGateway) in.active_gateway = gateway_role->local_active();
    const Topology topology = compute_topology(in);

    // The device: only the difference.
    auto current = wireguard.get(config.interface);
    if (!current) {
      set_error(current.error().message());
      return current.error();
    }
    DesiredDevice desired{*private_key, config.listen_port, 0, topology.peers};
    const DeviceDiff diff = diff_device(desired, *current);
    if (!diff.empty()) {
      if (auto r = wireguard.set(config.interface, diff.update); !r) {
        set_error("configuring " + config.interface + ": " + r.error().message());
        return r.error();
      }
      log.info("device updated", {{"added", diff.added}, {"changed", diff.changed}, {"removed", diff.removed}});
    }

    // Netfilter first: no SNAT towards remote ranges, MSS clamping, no strict rp_filter on the
    // tunnel. Before the routes, because a NAT decision lasts as long as its connection: a
    // connection started through a new route before its exemption would stay masqueraded.
    auto rules_changed = apply_tunnel_rules(topology, config.clamp_mss ? mtu : 0);
    if (!rules_changed) {
      set_error("nftables: " + rules_changed.error().message());
      return rules_changed.error();
    }
    relax_rp_filter();

    auto gateway_changed = apply_gateway_routes(topology);
    if (!gateway_changed) {
      set_error("gateway routes: " + gateway_changed.error().message());
      return gateway_changed.error();
    }

    // Routes: exactly ours.
    std::vector<netlink::Route> routes;
    for (const auto& r : topology.routes) {
      netlink::Route route{r.destination, r.via_tunnel ? config.interface : "", r.gateway};
      routes.push_back(route);
    }
    auto route_diff = rt->set_routes(routes);
    if (!route_diff) {
      set_error("routes: " + route_diff.error().message());
      return route_diff.error();
    }
    if (!route_diff->unchanged()) {
      log.info("routes updated", {{"added", route_diff->added.size()}, {"changed", route_diff->changed.size()},
                                  {"removed", route_diff->removed.size()}});
    }

    update_probes(self, in, topology, mtu);

    // ClusterSet ingress policy for this node's pods (docs/policy.md). Until its caches are
    // full it waits: the table the kernel holds (from before a restart) stays in force.
    bool ingress_pending = false;
    if (ingress) {
      if (!ingress->synced()) {
        ingress_pending = true;
      } else if (auto r = apply_ingress(self); !r) {
        set_error("ingress policy: " + r.error().message());
        return r.error();
      }
    }

    // This node's annotations.
    if (self) {
      std::string endpoint = config.endpoint;
      if (endpoint.empty()) {
        if (auto ip = internal_ip(*self)) {
          endpoint = wg::Endpoint{*ip, config.listen_port}.to_string();
        }
      }
      if (annotation(*self, kPublicKeyAnnotation) != public_key ||
          (!endpoint.empty() && annotation(*self, kEndpointAnnotation) != endpoint)) {
        json ann{{kPublicKeyAnnotation, public_key}};
        if (!endpoint.empty()) ann[kEndpointAnnotation] = endpoint;
        if (auto r = local.merge_patch(kres::kNodes, "", config.node_name, {{"metadata", {{"annotations", ann}}}}); !r) {
          set_error("annotating node " + config.node_name + ": " + r.error().message());
          return r.error();
        }
      }
    }

    {
      std::lock_guard lock(mu);
      if (state.refused != topology.refused) {
        for (const auto& why : topology.refused) log.warn("not routed", {{"reason", why}});
      }
      if (state.left_to_cni != topology.left_to_cni && !topology.left_to_cni.empty()) {
        log.info("in-cluster blocks routed by someone else (the CNI); clusterwire adds no route for them",
                 {{"blocks", describe(topology.left_to_cni)}});
      }
      state.left_to_cni = topology.left_to_cni;
      state.rule_writes += *rules_changed ? 1U : 0U;
      state.applied = true;
      state.peers = topology.peers.size();
      state.routes = routes.size();
      state.refused = topology.refused;
      state.last_error.clear();
      state.device_writes += diff.empty() ? 0U : 1U;
      state.route_writes += route_diff->unchanged() ? 0U : 1U;
      if (state.role != to_string(topology.role) || state.active_gateway != in.active_gateway) {
        log.info("topology role", {{"role", to_string(topology.role)}, {"active_gateway", in.active_gateway}});
      }
      state.role = to_string(topology.role);
      state.active_gateway = in.active_gateway;
      state.remote_active.clear();
      for (const auto& rc : in.remotes) {
        if (rc.mode == Mode::kGateway) state.remote_active[rc.cluster_id] = rc.active_gateway;
      }
    }
    update_metrics(*current, topology.refused.size());
    update_gateway_metrics(topology.role, in);
    publish_error("");
    if (!last_report_at && prober) controller->enqueue(kReportKey);  // replaces what an earlier run left
    if (ingress_pending) return kube::ReconcileResult{.requeue_after = 200ms};
    return kube::ReconcileResult{.requeue_after = std::chrono::duration_cast<std::chrono::milliseconds>(config.resync_period)};
  }

  // The peered clusters as ingress policy sees them: those whose tunnels carry traffic
  // (Connected, Degraded), with their ranges and the posture in force.
  Result<void> apply_ingress(const std::optional<json>& self) {
    std::vector<PeeredCluster> clusters;
    for (const auto& p : peerings->list()) {
      const json st = p.value("status", json::object());
      const std::string phase = str(st, "phase");
      if (phase != "Connected" && phase != "Degraded") continue;
      PeeredCluster c;
      c.id = str(p["spec"], "remoteClusterID");
      std::string posture = str(st, "ingress");
      if (posture.empty()) posture = str(p["spec"], "ingress");
      auto parsed = parse_ingress_posture(posture.empty() ? "All" : posture);
      c.posture = parsed ? *parsed : IngressPosture::kAll;  // the CRD allows no other value
      const json remote = st.value("remote", json::object());
      c.ranges = prefixes(remote.value("podCIDRs", json::array()));
      auto services = prefixes(remote.value("serviceCIDRs", json::array()));
      c.ranges.insert(c.ranges.end(), services.begin(), services.end());
      clusters.push_back(std::move(c));
    }
    std::vector<net::Prefix> own = self ? prefixes(json(annotation(*self, kPodCidrAnnotation))) : std::vector<net::Prefix>{};
    std::set<std::string> cluster_nodes;
    for (const auto& n : nodes->list()) cluster_nodes.insert(str(n["metadata"], "name"));
    auto applied = ingress->apply(std::move(own), std::move(clusters), std::move(cluster_nodes));
    if (!applied) return applied.error();
    return ok_result();
  }

  // The probe addresses on the tunnel device (docs/node-agent.md, "Datapath probes"), and
  // what to probe: one address of every node of every remote cluster routed through the
  // tunnel, in the family both ends have (IPv4 first).
  void update_probes(const std::optional<json>& self, const TopologyInput& in, const Topology& topology,
                     std::uint32_t mtu) {
    if (!prober) return;
    std::vector<net::Prefix> own_blocks;
    if (self) own_blocks = prefixes(json(annotation(*self, kPodCidrAnnotation)));
    const auto source_v4 = probe::probe_address(own_blocks, net::Family::kIPv4);
    const auto source_v6 = probe::probe_address(own_blocks, net::Family::kIPv6);
    std::vector<netlink::InterfaceAddress> addresses;
    std::vector<net::IpAddress> listed;
    if (source_v4) addresses.push_back({*source_v4, 32});
    if (source_v6) addresses.push_back({*source_v6, 128});
    for (const auto& a : addresses) listed.push_back(a.address);
    if (auto r = rt->set_addresses(config.interface, addresses); !r) {
      log.warn("cannot put the probe addresses on the tunnel device", {{"error", r.error().message()}});
    } else if (!r->unchanged()) {
      log.info("probe addresses on the tunnel device", {{"interface", config.interface}, {"added", r->added.size()},
                                                       {"removed", r->removed.size()}});
    }
    auto routed = [&](const net::IpAddress& a) {
      return std::any_of(topology.routes.begin(), topology.routes.end(),
                         [&](const DesiredRoute& r) { return r.via_tunnel && r.destination.contains(a); });
    };
    std::vector<probe::Target> targets;
    std::map<net::IpAddress, std::pair<std::string, std::string>> sources;
    probed_peers.clear();
    resettable_peers.clear();
    // A member of a gateway cluster probes nothing: its gateways do, for the whole cluster
    // (thousands of members probing every remote gateway would be a flood).
    for (const auto& rc : in.remotes) {
      if (topology.role == Role::kMember) break;
      if (rc.phase != "Connected" && rc.phase != "Degraded") continue;
      const bool gateways = rc.mode == Mode::kGateway;
      for (const auto& n : gateways ? rc.gateways : rc.nodes) {
        if (n.public_key.empty() || (!gateways && n.endpoint.empty())) continue;
        std::optional<net::IpAddress> address;
        if (source_v4) address = probe::probe_address(n.pod_cidrs, net::Family::kIPv4);
        if (!address && source_v6) address = probe::probe_address(n.pod_cidrs, net::Family::kIPv6);
        if (address && routed(*address)) {
          targets.push_back({rc.cluster_id, n.name, *address});
          probed_peers[n.public_key] = rc.cluster_id;
          if (gateways) sources[*address] = {rc.cluster_id, n.name};
          if (gateways && !n.endpoint.empty()) resettable_peers[rc.cluster_id + "/" + n.name] = n.public_key;
        }
      }
    }
    prober->set_targets(targets, source_v4, source_v6, mtu);
    const bool candidate = topology.role == Role::kActiveGateway || topology.role == Role::kStandbyGateway;
    std::vector<std::string> clusters;
    for (const auto& rc : in.remotes) clusters.push_back(rc.cluster_id);
    // A candidate tells every remote node it probes which gateway is active here.
    std::vector<net::IpAddress> beacon_targets;
    if (candidate) {
      for (const auto& t : targets) beacon_targets.push_back(t.address);
    }
    gateway_role->set_beacon_paths(std::move(sources), std::move(beacon_targets), clusters);
    std::lock_guard lock(mu);
    state.probe_addresses = listed;
  }

  // A remote gateway whose probes go unanswered may have restarted its device: WireGuard on
  // this side keeps sending into the old session and starts a new handshake only after 15 s
  // without an answer. Behind NAT that is also how long the other side waits to learn where
  // we are. So the peer is removed (and re-added by the next pass, at once): the next packet
  // starts a handshake. Only for peers this node has an endpoint for (an endpoint learned from
  // the other side's handshakes would be lost), at most every 15 s each.
  // Returns how soon to look again: while such a peer stays Down, it is reset every 15 s (the
  // report is otherwise re-checked only every 30 s).
  std::chrono::milliseconds reset_stale_gateway_sessions(const std::vector<probe::PeerReport>& reports) {
    constexpr auto kEvery = std::chrono::seconds(15);
    std::chrono::milliseconds next = 30s;
    bool removed = false;
    const auto now = clock.now();
    for (const auto& r : reports) {
      if (r.verdict != probe::Verdict::kDown) continue;
      auto it = resettable_peers.find(r.target.cluster + "/" + r.target.node);
      if (it == resettable_peers.end()) continue;
      auto& last = last_reset[it->second];
      if (last != Clock::TimePoint{} && now - last < kEvery) {
        next = std::min(next, std::chrono::duration_cast<std::chrono::milliseconds>(kEvery - (now - last)) + 1ms);
        continue;
      }
      next = std::min<std::chrono::milliseconds>(next, kEvery);
      auto key = wg::Key::from_base64(it->second);
      if (!key) continue;
      wg::DeviceUpdate update;
      wg::PeerUpdate u;
      u.peer.public_key = *key;
      u.remove = true;
      update.peers.push_back(u);
      if (auto done = wireguard.set(config.interface, update); !done) {
        log.warn("resetting a remote gateway's session", {{"gateway", r.target.node}, {"error", done.error().message()}});
        continue;
      }
      last = now;
      removed = true;
      log.info("reset the session with a remote gateway whose probes go unanswered (a restarted device keeps a "
               "stale session for 15 s)",
               {{"cluster", r.target.cluster}, {"gateway", r.target.node}});
    }
    if (removed) controller->enqueue("node");  // re-added at once
    return next;
  }

  // Writes this node's datapath report when a verdict changed (or, rarely, its figures).
  Result<kube::ReconcileResult> write_report() {
    if (!prober) return kube::ReconcileResult{};
    const auto peer_reports = prober->reports();
    const auto recheck = reset_stale_gateway_sessions(peer_reports);
    json report = probe::summarize(peer_reports);
    // Handshakes: a peer that completes none is unreachable over UDP (or has our key wrong),
    // which is what `cwctl diagnose` tells from a path that answers nothing inside the tunnel.
    if (auto device = wireguard.get(config.interface)) {
      const auto wall = clock.wall_now();
      for (auto& [cluster, entry] : report.items()) entry["handshakeStale"] = 0;
      for (const auto& peer : device->peers) {
        auto it = probed_peers.find(peer.public_key.to_base64());
        if (it == probed_peers.end() || !report.contains(it->second)) continue;
        if (!peer.last_handshake || wall - *peer.last_handshake > kHandshakeStale) {
          report[it->second]["handshakeStale"] = report[it->second]["handshakeStale"].get<int>() + 1;
        }
      }
    }
    update_probe_metrics(report);
    {
      // A candidate's score: the remote clusters it can forward to (some target answers).
      int score = 0;
      for (const auto& [cluster, entry] : report.items()) score += entry.value("up", 0) > 0 ? 1 : 0;
      gateway_role->set_score(score);
    }
    const auto now = clock.now();
    if (!last_report_at) {
      // After a restart: what our Node already says, so that an unchanged report is not rewritten.
      for (const auto& n : nodes->list()) {
        if (str(n["metadata"], "name") != config.node_name) continue;
        const json written = json::parse(annotation(n, kDatapathAnnotation), nullptr, false);
        if (written.is_object() && written == report) {
          last_report = report;
          last_report_at = now;
        }
      }
    }
    const bool verdicts = probe::verdicts_differ(report, last_report) || !last_report_at;
    const bool figures = last_report_at && report != last_report && now - *last_report_at >= kReportRefresh;
    // Re-checked every 30 s: handshakes go stale without any verdict changing.
    if (!verdicts && !figures) return kube::ReconcileResult{.requeue_after = recheck};
    if (last_report_at && now - *last_report_at < kReportMinGap) {
      return kube::ReconcileResult{.requeue_after = std::chrono::duration_cast<std::chrono::milliseconds>(
                                       kReportMinGap - (now - *last_report_at)) + std::chrono::milliseconds(1)};
    }
    json patch{{"metadata", {{"annotations", {{kDatapathAnnotation, report.dump()}}}}}};
    if (auto r = local.merge_patch(kres::kNodes, "", config.node_name, patch); !r) {
      log.warn("writing the datapath report", {{"error", r.error().message()}});
      return r.error();
    }
    if (verdicts) log.info("datapath report", {{"report", report.dump()}});
    last_report = report;
    last_report_at = now;
    {
      std::lock_guard lock(mu);
      ++state.report_writes;
    }
    return kube::ReconcileResult{.requeue_after = recheck};
  }

  void update_probe_metrics(const json& report) {
    if (!metrics) return;
    auto& peers = metrics->gauge_family("clusterwire_node_agent_datapath_peers",
                                        "Remote nodes probed through the tunnel, by cluster and verdict");
    auto& rtt = metrics->gauge_family("clusterwire_node_agent_datapath_rtt_seconds",
                                      "Probe round-trip time to a remote cluster's nodes: the median of their medians");
    auto& loss = metrics->gauge_family("clusterwire_node_agent_datapath_loss_ratio",
                                       "The largest share of unanswered probes among a remote cluster's nodes");
    for (const auto& [cluster, c] : report.items()) {
      for (const char* v : {"up", "down", "mtu", "snat", "unknown"}) {
        peers.Add({{"cluster", cluster}, {"verdict", v}}).Set(c.value(v, 0));
      }
      if (c.contains("rttP50Micros")) rtt.Add({{"cluster", cluster}}).Set(c["rttP50Micros"].get<double>() / 1e6);
      loss.Add({{"cluster", cluster}}).Set(c.value("lossPercent", 0) / 100.0);
    }
    if (auto stats = prober->stats(); true) {
      metrics->gauge("clusterwire_node_agent_probes_sent", "Probes this node sent").Set(static_cast<double>(stats.sent));
      metrics->gauge("clusterwire_node_agent_probes_answered", "Remote nodes' probes this node answered")
          .Set(static_cast<double>(stats.requests));
    }
  }

  // Makes clusterwire's nftables table match the ranges routed through the tunnel; true when
  // it wrote something.
  Result<bool> apply_tunnel_rules(const Topology& topology, std::uint32_t clamp_to_mtu) {
    std::vector<net::Prefix> remote;
    for (const auto& r : topology.routes) {
      if (r.via_tunnel) remote.push_back(r.destination);
    }
    const TunnelRules desired = make_tunnel_rules(config.interface, remote, clamp_to_mtu);
    std::optional<ObservedRules> observed;
    auto listing = nftables.list_table(kNftFamily, kNftTable);
    if (listing) observed = parse_listing(*listing);
    else if (listing.error().code() != ErrorCode::kNotFound) return listing.error();
    const std::string script = plan_tunnel_rules(desired, observed);
    if (script.empty()) return false;
    const std::string whole = render_tunnel_rules(desired);
    auto r = nftables.run(script);
    if (!r && script != whole) {
      // An element update the kernel refused (someone edited our sets): replace the table.
      log.warn("nftables element update refused; replacing clusterwire's table", {{"error", r.error().message()}});
      r = nftables.run(whole);
    }
    if (!r) return r.error();
    log.info("nftables updated", {{"table", std::string(kNftFamily) + " " + kNftTable},
                                  {"remote_ranges", desired.remote_v4.size() + desired.remote_v6.size()},
                                  {"whole_table", script == whole}});
    return true;
  }

  // Strict reverse-path filtering would drop tunnel traffic on asymmetric paths: make it at
  // most loose on our device (the kernel takes the larger of "all" and the device's value).
  // Read from /proc/sys (readable in a container), written through rtnetlink (which is not
  // read-only there).
  void relax_rp_filter() {
    const std::string dir = "/proc/sys/net/ipv4/conf/";
    const auto all = read_sysctl(dir + "all/rp_filter");
    const auto dev = read_sysctl(dir + config.interface + "/rp_filter");
    if (!all || !dev) return;
    const auto want = tunnel_rp_filter(*all, *dev);
    if (!want) return;
    if (auto r = rt->set_ipv4_conf(config.interface, IPV4_DEVCONF_RP_FILTER, static_cast<std::uint32_t>(*want)); r) {
      log.info("reverse-path filtering on the tunnel set to loose", {{"interface", config.interface}, {"all", *all}});
    } else {
      log.warn("cannot relax rp_filter on the tunnel", {{"interface", config.interface}, {"error", r.error().message()}});
    }
  }

  // Gateway mode: this node's role, and on a candidate its claim and the election's counters;
  // which gateway of each remote gateway cluster this node follows.
  void update_gateway_metrics(Role role, const TopologyInput& in) {
    if (!metrics) return;
    auto& roles = metrics->gauge_family("clusterwire_node_agent_role",
                                        "This node's role: mesh, active-gateway, standby-gateway or member (1: current)");
    for (Role r : {Role::kMesh, Role::kActiveGateway, Role::kStandbyGateway, Role::kMember}) {
      roles.Add({{"role", to_string(r)}}).Set(r == role ? 1 : 0);
    }
    auto& remote = metrics->gauge_family("clusterwire_node_agent_remote_active_gateway",
                                         "The active gateway this node follows, per remote gateway cluster (1: followed)");
    for (const auto& rc : in.remotes) {
      for (const auto& g : rc.gateways) {
        remote.Add({{"cluster", rc.cluster_id}, {"gateway", g.name}}).Set(g.name == rc.active_gateway ? 1 : 0);
      }
    }
    if (auto figures = gateway_role->runner_figures()) {
      const auto& [claim, stats] = *figures;
      metrics->gauge("clusterwire_gateway_active", "1 while this candidate holds the gateway Lease").Set(claim.active ? 1 : 0);
      metrics->gauge("clusterwire_gateway_epoch", "The gateway Lease's transitions as this candidate last saw them")
          .Set(static_cast<double>(claim.epoch));
      metrics->gauge("clusterwire_gateway_score", "Remote clusters this candidate can forward to (its probes are answered)")
          .Set(claim.score);
      metrics->gauge("clusterwire_gateway_takeovers", "Health-triggered takeovers by this candidate")
          .Set(static_cast<double>(stats.takeovers));
      metrics->gauge("clusterwire_gateway_heartbeats_received", "Heartbeats heard from the other candidates")
          .Set(static_cast<double>(stats.heartbeats_received));
      metrics->gauge("clusterwire_gateway_lease_write_failures", "Gateway Lease writes that failed")
          .Set(static_cast<double>(stats.lease_write_failures));
    }
  }

  void update_metrics(const wg::Device& device, std::size_t refused) {
    if (!metrics) return;
    metrics->gauge("clusterwire_node_agent_refused_routes",
                   "Remote ranges not routed because they overlap a local range, or are invalid")
        .Set(static_cast<double>(refused));
    metrics->gauge("clusterwire_node_agent_peers", "WireGuard peers on this node's device").Set(static_cast<double>(device.peers.size()));
    auto& age = metrics->gauge_family("clusterwire_node_agent_handshake_age_seconds", "Seconds since the last handshake with each peer");
    auto& rx = metrics->gauge_family("clusterwire_node_agent_peer_received_bytes", "Bytes received from each peer");
    auto& tx = metrics->gauge_family("clusterwire_node_agent_peer_sent_bytes", "Bytes sent to each peer");
    const auto now = clock.wall_now();
    for (const auto& p : device.peers) {
      const prometheus::Labels labels{{"peer", p.public_key.to_base64()}};
      if (p.last_handshake) age.Add(labels).Set(std::chrono::duration<double>(now - *p.last_handshake).count());
      rx.Add(labels).Set(static_cast<double>(p.rx_bytes));
      tx.Add(labels).Set(static_cast<double>(p.tx_bytes));
    }
  }
};

Agent::Agent(AgentConfig config, kube::Client& local, wg::DeviceControl& wireguard, netfilter::Nftables& nftables,
             Clock& clock, log::Logger logger, metrics::Metrics* metrics)
    : impl_(std::make_unique<Impl>(std::move(config), local, wireguard, nftables, clock, std::move(logger), metrics)) {}

Agent::~Agent() { stop(); }

Result<void> Agent::start() {
  if (auto r = validate(impl_->config); !r) return r;
  return impl_->start();
}

void Agent::stop() {
  if (impl_) impl_->stop();
}

AgentState Agent::state() const {
  std::lock_guard lock(impl_->mu);
  return impl_->state;
}

Result<void> Agent::cleanup(const AgentConfig& config, netfilter::Nftables& nftables, log::Logger logger) {
  auto rt = netlink::Rtnetlink::open();
  if (!rt) return rt.error();
  auto routes = rt->set_routes({});
  if (!routes) return routes.error().with_context("removing clusterwire's routes");
  for (net::Family f : {net::Family::kIPv4, net::Family::kIPv6}) {
    if (auto r = rt->set_iif_rule({f, config.interface, kGatewayTable, kGatewayRulePriority}, false); !r) {
      return r.error().with_context("removing the gateway's rule");
    }
  }
  if (auto r = rt->set_routes({}, kGatewayTable); !r) return r.error().with_context("removing the gateway's routes");
  logger.info("routes removed", {{"count", routes->removed.size()}});
  if (auto r = nftables.run(delete_tunnel_rules()); !r) return r.error().with_context("removing clusterwire's nftables table");
  logger.info("nftables table removed", {{"table", std::string(kNftFamily) + " " + kNftTable}});
  if (auto r = nftables.run(delete_ingress_table()); !r) return r.error().with_context("removing clusterwire's ingress table");
  logger.info("nftables table removed", {{"table", std::string("inet ") + kIngressTable}});
  auto gone = rt->delete_link(config.interface);
  if (!gone && gone.error().code() != ErrorCode::kNotFound) return gone.error();
  logger.info("device removed", {{"interface", config.interface}});
  return ok_result();
}

}  // namespace cw::agent
