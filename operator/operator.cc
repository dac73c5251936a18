#include "operator/operator.h"

#include <unistd.h>

#include <algorithm>
#include <regex>
#include <map>
#include <set>

#include "common/ipam/claim_name.h"
#include "common/kube/controller.h"
#include "common/kube/informer.h"
#include "common/kube/leader_election.h"
#include "common/metrics/health_server.h"
#include "common/net/prefix_pool.h"
#include "common/wireguard/device.h"
#include "operator/cluster_cidr.h"
#include "operator/model.h"
#include "operator/peering_status.h"
#include "operator/service_sync.h"

namespace cw::op {
namespace {

using namespace std::chrono_literals;
using kube::ReconcileResult;
namespace kres = kube::resources;

constexpr const char* kClusterKey = "cluster";
constexpr const char* kPublicKeyAnnotation = "clusterwire.io/public-key";
constexpr const char* kEndpointAnnotation = "clusterwire.io/endpoint";
constexpr const char* kDatapathAnnotation = "clusterwire.io/datapath";
constexpr const char* kPublicEndpointAnnotation = "clusterwire.io/public-endpoint";

std::string join(const std::vector<net::Prefix>& ps) {
  std::string out;
  for (const auto& p : ps) out += (out.empty() ? "" : ",") + p.to_string();
  return out;
}

std::string name_of(const json& o) { return o["metadata"].value("name", ""); }

// An annotation's value, or "".
std::string annotation(const json& o, const char* key) {
  const json& m = o["metadata"];
  if (!m.contains("annotations") || !m["annotations"].is_object()) return "";
  return m["annotations"].value(key, "");
}

// A label's value, or "".
std::string label(const json& o, const char* key) {
  const json& m = o["metadata"];
  if (!m.contains("labels") || !m["labels"].is_object()) return "";
  const json& v = m["labels"].value(key, json());
  return v.is_string() ? v.get<std::string>() : "";
}

}  // namespace

bool valid_endpoint(const std::string& text) {
  if (wg::Endpoint::parse(text)) return true;
  // A DNS name and a port, as cloud load balancers have (the CRD accepts them too).
  static const std::regex kHostPort(
      "([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\.)*[a-z]([-a-z0-9]{0,61}[a-z0-9])?:([1-9][0-9]{0,4})");
  std::smatch m;
  if (!std::regex_match(text, m, kHostPort)) return false;
  return std::stoi(m[4].str()) <= 65535;
}

Result<void> validate(const OperatorConfig& c) {
  if (auto why = ipam::check_dns_label(c.cluster_id)) {
    return Error(ErrorCode::kInvalidArgument, "--cluster-id \"" + c.cluster_id + "\" " + *why);
  }
  if (c.broker_namespace.empty()) return Error(ErrorCode::kInvalidArgument, "--broker-namespace is required");
  for (const auto* list : {&c.pod_cidrs, &c.service_cidrs}) {
    std::set<net::Family> seen;
    for (const auto& p : *list) {
      if (!seen.insert(p.family()).second) {
        return Error(ErrorCode::kInvalidArgument, "at most one " + std::string(net::to_string(p.family())) +
                                                      " CIDR per --pod-cidr / --service-cidr list");
      }
    }
  }
  if (c.heartbeat_interval < 1s) return Error(ErrorCode::kInvalidArgument, "--heartbeat-interval must be at least 1s");
  if (!c.dns_endpoint.empty() && !valid_endpoint(c.dns_endpoint)) {
    return Error(ErrorCode::kInvalidArgument, "--dns-endpoint \"" + c.dns_endpoint + "\" is not host:port");
  }
  if (!c.topology.empty() && c.topology != "mesh" && c.topology != "gateway") {
    return Error(ErrorCode::kInvalidArgument, "--topology \"" + c.topology + "\" is neither mesh nor gateway");
  }
  for (const auto& [node, endpoint] : c.gateway_endpoints) {
    if (node.empty() || !valid_endpoint(endpoint)) {
      return Error(ErrorCode::kInvalidArgument,
                   "--gateway-endpoint \"" + node + "=" + endpoint + "\" is not NODE=host:port");
    }
  }
  if (c.gateway_lease_name.empty() || c.gateway_lease_namespace.empty()) {
    return Error(ErrorCode::kInvalidArgument, "the gateway Lease needs a name and a namespace");
  }
  return ok_result();
}

struct Operator::Impl {
  OperatorConfig config;
  kube::Client& local;
  kube::Client& broker;
  Clock& clock;
  log::Logger log;
  metrics::Metrics* metrics;

  std::unique_ptr<kube::Informer> nodes;
  std::unique_ptr<kube::Informer> peerings;
  std::unique_ptr<kube::Informer> clustersets;
  std::unique_ptr<kube::Informer> claims;
  std::unique_ptr<kube::Informer> advertisements;
  std::unique_ptr<kube::Informer> leases;  // the gateway Lease's namespace, on the local API
  std::unique_ptr<kube::LeaderElector> elector;
  std::unique_ptr<ServiceSync> service_sync;  // the MCS ServiceExport → ServiceImport sync

  mutable std::mutex mu;  // guards the controllers and state
  std::unique_ptr<kube::Controller> cluster_controller;
  std::unique_ptr<kube::Controller> peering_controller;
  OperatorState state;
  std::string last_problem_report;
  std::chrono::system_clock::time_point last_heartbeat{};
  std::mutex unwritten_mu;
  std::map<std::string, std::string> unwritten_status;  // peering → the refusal last reported

  Impl(OperatorConfig c, kube::Client& l, kube::Client& b, Clock& clk, log::Logger lg, metrics::Metrics* m)
      : config(std::move(c)), local(l), broker(b), clock(clk), log(std::move(lg)), metrics(m) {}

  // ---- wiring

  std::unique_ptr<kube::Informer> informer(kube::Client& client, const kube::Resource& r, const std::string& ns,
                                           std::function<void(bool)> on_connection_change = {}) {
    auto inf = std::make_unique<kube::Informer>(
        client,
        kube::InformerOptions{.resource = r, .ns = ns, .resync_period = config.resync_period,
                              .on_connection_change = std::move(on_connection_change)},
        clock);
    return inf;
  }

  // Non-empty while this operator cannot reach the broker: what failed.
  std::string broker_error() const {
    for (auto* inf : {advertisements.get(), claims.get(), clustersets.get()}) {
      if (const auto st = inf->stats(); st.failing) return st.last_error;
    }
    std::lock_guard lock(mu);
    return state.broker_error;
  }

  void enqueue_cluster() {
    std::lock_guard lock(mu);
    if (cluster_controller) cluster_controller->enqueue(kClusterKey);
  }

  void enqueue_peering(const std::string& name) {
    std::lock_guard lock(mu);
    if (peering_controller) peering_controller->enqueue(name);
  }

  void enqueue_all_peerings() {
    for (const auto& p : peerings->list()) enqueue_peering(name_of(p));
  }

  // Only the peerings that name `cluster_id`: with hundreds of clusters heart-beating, waking
  // every peering for every advertisement would be thousands of passes per second for nothing.
  void enqueue_peerings_of(const std::string& cluster_id) {
    for (const auto& p : peerings->list()) {
      if (p["spec"].value("remoteClusterID", "") == cluster_id) enqueue_peering(name_of(p));
    }
  }

  Result<void> start() {
    nodes = informer(local, kres::kNodes, "");
    peerings = informer(local, resources::kClusterPeerings, "");
    // Every peering's status says whether the broker can be reached: tell them at once.
    auto broker_connection = [this](bool failing) {
      log.warn(failing ? "the broker cannot be reached" : "the broker answers again");
      enqueue_all_peerings();
    };
    clustersets = informer(broker, resources::kClusterSets, config.broker_namespace, broker_connection);
    claims = informer(broker, resources::kCidrClaims, config.broker_namespace, broker_connection);
    advertisements = informer(broker, resources::kClusterAdvertisements, config.broker_namespace, broker_connection);

    auto any_cluster = [this](const json&) { enqueue_cluster(); };
    auto any_cluster2 = [this](const json&, const json&) { enqueue_cluster(); };
    for (auto* inf : {clustersets.get(), claims.get()}) {
      inf->add_handlers({.on_add = any_cluster, .on_update = any_cluster2, .on_delete = any_cluster});
    }
    // A node agent's datapath report changes the peerings' status, nothing of the cluster's.
    nodes->add_handlers({.on_add = any_cluster,
                         .on_update = [this](const json& before, const json& after) {
                           json a = before, b = after;
                           for (json* n : {&a, &b}) {
                             json& m = (*n)["metadata"];
                             m.erase("resourceVersion");
                             m.erase("managedFields");
                             if (m.contains("annotations") && m["annotations"].is_object()) {
                               m["annotations"].erase(kDatapathAnnotation);
                             }
                           }
                           if (a != b) enqueue_cluster();
                           if (annotation(before, kDatapathAnnotation) != annotation(after, kDatapathAnnotation)) {
                             enqueue_all_peerings();
                           }
                         },
                         .on_delete = [this](const json& o) {
                           enqueue_cluster();
                           if (!annotation(o, kDatapathAnnotation).empty()) enqueue_all_peerings();
                         }});
    // A peering changes this cluster's consent list (the advertisement) and its own status.
    peerings->add_handlers({
        .on_add = [this](const json& o) {
          enqueue_cluster();
          enqueue_peering(name_of(o));
          service_sync->peerings_changed();  // after a relist, one may arrive already Connected
        },
        .on_update = [this](const json& old, const json& o) {
          if (old["spec"] != o["spec"]) enqueue_cluster();
          enqueue_peering(name_of(o));
          service_sync->peerings_changed();  // a phase change changes what is imported
        },
        .on_delete = [this](const json&) {
          enqueue_cluster();
          service_sync->peerings_changed();
        },
    });
    // The gateway Lease's holder is advertised (a hint for remote clusters).
    leases = informer(local, kres::kLeases, config.gateway_lease_namespace);
    auto lease_changed = [this](const json& o) {
      if (name_of(o) == config.gateway_lease_name) enqueue_cluster();
    };
    leases->add_handlers({.on_add = lease_changed,
                          .on_update = [lease_changed](const json& before, const json& after) {
                            if (before["spec"].value("holderIdentity", json()) != after["spec"].value("holderIdentity", json())) {
                              lease_changed(after);
                            }
                          },
                          .on_delete = lease_changed});
    auto peerings_of = [this](const json& ad) { enqueue_peerings_of(name_of(ad)); };
    advertisements->add_handlers({.on_add = peerings_of,
                                  .on_update = [this](const json&, const json& ad) { enqueue_peerings_of(name_of(ad)); },
                                  .on_delete = peerings_of});
    service_sync = std::make_unique<ServiceSync>(
        ServiceSyncConfig{config.cluster_id, config.broker_namespace, config.resync_period}, local, broker, *peerings,
        clock, log);
    for (auto* inf : {nodes.get(), peerings.get(), clustersets.get(), claims.get(), advertisements.get(), leases.get()}) {
      inf->start();
    }
    service_sync->start_informers();

    if (!config.leader_election) {
      start_leading();
      return ok_result();
    }
    kube::LeaderElectionConfig le{
        .lease_namespace = config.lease_namespace,
        .lease_name = config.lease_name,
        .identity = config.identity,
        .lease_duration = config.lease_duration,
        .renew_deadline = config.renew_deadline,
        .retry_period = config.retry_period,
        .on_started_leading = [this] { start_leading(); },
        .on_stopped_leading = [this] { stop_leading(); },
        .on_new_leader = [this](const std::string& h) { log.info("leader", {{"holder", h}}); },
    };
    if (auto r = kube::validate(le); !r) return r;
    elector = std::make_unique<kube::LeaderElector>(local, le, clock);
    elector->start();
    return ok_result();
  }

  void start_leading() {
    log.info("leading: starting controllers");
    auto observe = [this](const std::string& key, Clock::Duration took, const Result<ReconcileResult>& r) {
      // A failed pass is retried with backoff; say why, or a stuck controller is silent.
      if (!r) log.warn("reconcile failed; retrying with backoff", {{"key", key}, {"error", r.error().message()}});
      if (!metrics) return;
      metrics->histogram("clusterwire_operator_reconcile_duration_seconds", "Time spent in one reconcile pass",
                         metrics::latency_buckets())
          .Observe(std::chrono::duration<double>(took).count());
      if (!r) metrics->counter("clusterwire_operator_reconcile_errors_total", "Reconcile passes that failed").Increment();
    };
    auto cc = std::make_unique<kube::Controller>(
        kube::ControllerOptions{.name = "cluster", .workers = 1, .on_reconciled = observe},
        [this](const std::string&) { return reconcile_cluster(); }, clock);
    auto pc = std::make_unique<kube::Controller>(
        kube::ControllerOptions{.name = "peerings", .workers = 2, .on_reconciled = observe},
        [this](const std::string& name) { return reconcile_peering(name); }, clock);
    for (auto* c : {cc.get(), pc.get()}) {
      if (auto r = c->start(); !r) log.error("controller did not start", {{"controller", c->name()}, {"error", r.error().message()}});
    }
    {
      std::lock_guard lock(mu);
      cluster_controller = std::move(cc);
      peering_controller = std::move(pc);
      state.leading = true;
    }
    service_sync->start_controllers(observe);
    enqueue_cluster();
    enqueue_all_peerings();
  }

  void stop_leading() {
    std::unique_ptr<kube::Controller> cc, pc;
    {
      std::lock_guard lock(mu);
      cc = std::move(cluster_controller);
      pc = std::move(peering_controller);
      state.leading = false;
    }
    if (cc) cc->stop();
    if (pc) pc->stop();
    if (service_sync) service_sync->stop_controllers();
    log.info("not leading: controllers stopped");
  }

  void stop() {
    if (elector) elector->stop(true);
    stop_leading();
    if (service_sync) service_sync->stop();
    for (auto* inf : {nodes.get(), peerings.get(), clustersets.get(), claims.get(), advertisements.get(), leases.get()}) {
      if (inf) inf->stop();
    }
  }

  // ---- the cluster: blocks, node blocks, advertisement

  void set_problems(std::vector<std::string> problems) {
    std::string report;
    for (const auto& p : problems) report += p + "\n";
    std::lock_guard lock(mu);
    if (report != last_problem_report) {
      for (const auto& p : problems) log.warn("cluster problem", {{"problem", p}});
      last_problem_report = report;
    }
    state.problems = std::move(problems);
  }

  // Deciding on a cache that is still filling would be deciding on wrong facts ("no
  // ClusterSet", "no peerings"): wait, as controller-runtime does, until every informer synced.
  bool local_synced() const { return nodes->has_synced() && peerings->has_synced(); }
  bool broker_synced() const {
    return clustersets->has_synced() && claims->has_synced() && advertisements->has_synced();
  }
  bool caches_synced() const { return local_synced() && broker_synced(); }

  // While an informer cannot fill its cache, say why (an unreachable broker, say).
  void report_unsynced() {
    std::vector<std::string> waiting;
    const std::pair<const char*, const kube::Informer*> all[] = {
        {"the local API (Nodes)", nodes.get()}, {"the local API (ClusterPeerings)", peerings.get()},
        {"the broker (ClusterSets)", clustersets.get()}, {"the broker (CIDRClaims)", claims.get()},
        {"the broker (ClusterAdvertisements)", advertisements.get()}};
    for (const auto& [what, inf] : all) {
      const auto stats = inf->stats();
      if (!inf->has_synced() && !stats.last_error.empty()) {
        waiting.push_back(std::string("cannot read ") + what + ": " + stats.last_error);
      }
    }
    if (!waiting.empty()) set_problems(waiting);
  }

  Result<ReconcileResult> reconcile_cluster() {
    if (!caches_synced()) {
      report_unsynced();
      return ReconcileResult{.requeue_after = 200ms};
    }
    std::vector<std::string> problems;
    // The ClusterSet.
    auto set_obj = clustersets->get(config.broker_namespace, config.clusterset_name);
    if (!set_obj) {
      problems.push_back("no ClusterSet \"" + config.clusterset_name + "\" in namespace " + config.broker_namespace +
                         " on the broker: install the chart with broker.enabled=true on the broker cluster");
      set_problems(problems);
      return ReconcileResult{.requeue_after = std::chrono::duration_cast<std::chrono::milliseconds>(config.heartbeat_interval)};
    }
    auto set = parse_clusterset(*set_obj);
    if (!set) {
      problems.push_back(set.error().message() + ": fix the ClusterSet; nothing is claimed meanwhile");
      set_problems(problems);
      return ReconcileResult{};
    }

    // Every claim, read from the broker now: a claim just made by someone else must count.
    auto listed = broker.list(resources::kCidrClaims, config.broker_namespace);
    if (!listed) {
      problems.push_back("cannot list CIDRClaims on the broker: " + listed.error().message());
      // What this cluster holds is still known from the claims informer's last view: keep it,
      // so that a new leader (or a restarted operator) does not take the cluster's blocks
      // away from its peerings while the broker cannot be read. Nothing is claimed meanwhile.
      std::vector<net::Prefix> held;
      for (const auto& item : claims->list()) {
        auto c = parse_claim(item);
        if (c && c->cluster_id == config.cluster_id && c->purpose == "pods") held.push_back(c->cidr);
      }
      std::sort(held.begin(), held.end());
      bool learned = false;
      {
        std::lock_guard lock(mu);
        if (state.pod_blocks.empty() && !held.empty()) {
          state.pod_blocks = held;
          learned = true;
        }
      }
      if (learned) enqueue_all_peerings();
      set_problems(problems);
      return listed.error();
    }
    std::vector<Claim> all_claims;
    for (const auto& item : (*listed)["items"]) {
      auto c = parse_claim(item);
      if (c) {
        all_claims.push_back(*c);
      } else {
        problems.push_back("ignoring a malformed claim: " + c.error().message());
      }
    }

    const std::vector<NodeState> node_states = observe_nodes();
    ClusterCidrInput in{config.cluster_id, set->spec, all_claims, config.pod_cidrs, {}};
    for (const auto& n : node_states) {
      in.node_pod_cidrs.insert(in.node_pod_cidrs.end(), n.spec_pod_cidrs.begin(), n.spec_pod_cidrs.end());
    }

    std::vector<net::Prefix> blocks;
    bool retry_soon = false;
    for (const auto& d : decide_cluster_cidrs(in)) {
      switch (d.kind) {
        case FamilyDecision::Kind::kHeld:
          blocks.push_back(*d.block);
          break;
        case FamilyDecision::Kind::kClaim: {
          auto r = create_claim(*d.block, "pods");
          if (r) {
            log.info("claimed pod block", {{"cidr", d.block->to_string()}, {"why", d.message}});
            blocks.push_back(*d.block);
          } else if (r.error().code() == ErrorCode::kAlreadyExists) {
            retry_soon = true;  // someone was faster: decide again with their claim in view
          } else {
            problems.push_back("claiming " + d.block->to_string() + ": " + r.error().message());
            retry_soon = true;
          }
          break;
        }
        case FamilyDecision::Kind::kConflict:
        case FamilyDecision::Kind::kExhausted:
          problems.push_back(d.message);
          break;
      }
    }
    // Service ranges: reserved when nobody has them yet; sharing one is reported by peerings.
    for (const auto& s : config.service_cidrs) {
      const bool covered = std::any_of(all_claims.begin(), all_claims.end(), [&](const Claim& c) {
        return c.cidr.contains(s) || (c.cluster_id == config.cluster_id && c.cidr == s);
      });
      const bool overlaps = std::any_of(all_claims.begin(), all_claims.end(),
                                        [&](const Claim& c) { return c.cidr.overlaps(s); });
      if (!covered && !overlaps) (void)create_claim(s, "services");
    }
    std::sort(blocks.begin(), blocks.end());
    bool blocks_changed = false;
    {
      std::lock_guard lock(mu);
      blocks_changed = state.pod_blocks != blocks;
      state.pod_blocks = blocks;
    }
    if (blocks_changed) enqueue_all_peerings();  // their conflict checks use our blocks
    if (retry_soon) {
      set_problems(problems);
      return ReconcileResult{.requeue_after = 50ms};
    }

    // Node blocks.
    std::map<net::Family, int> node_len;
    for (net::Family f : {net::Family::kIPv4, net::Family::kIPv6}) {
      if (const auto& fp = set->spec.pools_for(f)) node_len[f] = fp->node_prefix_length;
    }
    const auto plan = plan_node_cidrs(blocks, node_len, node_states, config.node_cidr_mode);
    for (const auto& p : plan.problems) problems.push_back(p);
    for (const auto& [node, cidrs] : plan.writes) {
      if (auto r = write_node_cidrs(node, cidrs, node_states); !r) {
        problems.push_back("writing node " + node + "'s pod CIDR: " + r.error().message());
      }
    }

    // The advertisement and its heartbeat.
    const std::string topology = config.topology.empty() ? set->default_topology : config.topology;
    bool topology_changed = false;
    {
      std::lock_guard lock(mu);
      topology_changed = state.topology != topology;
      state.topology = topology;
    }
    if (topology_changed) {
      log.info("topology", {{"topology", topology}, {"from", config.topology.empty() ? "the ClusterSet" : "--topology"}});
      enqueue_all_peerings();  // they tell the node agents
    }
    auto published = publish_advertisement(blocks, plan.assigned, topology, problems);
    if (!published) problems.push_back("publishing the advertisement: " + published.error().message());
    bool broker_changed = false;
    {
      std::lock_guard lock(mu);
      const std::string broker_error = published ? "" : published.error().message();
      broker_changed = broker_error.empty() != state.broker_error.empty();
      state.broker_error = broker_error;
      state.nodes_with_blocks = static_cast<std::size_t>(std::count_if(
          plan.assigned.begin(), plan.assigned.end(), [](const auto& kv) { return !kv.second.empty(); }));
      state.advertised = published.ok();
    }
    update_metrics(*set, all_claims);
    const bool problems_changed = [&] {
      std::lock_guard lock(mu);
      return state.problems != problems;
    }();
    set_problems(problems);
    if (problems_changed || broker_changed) enqueue_all_peerings();  // they show local problems
    if (!published) return published.error();
    return ReconcileResult{.requeue_after = std::chrono::duration_cast<std::chrono::milliseconds>(config.heartbeat_interval)};
  }

  // The Nodes' pod CIDRs as they are: spec.podCIDRs (or the older spec.podCIDR) and our
  // annotation. Unparseable values count as absent.
  std::vector<NodeState> observe_nodes() const {
    std::vector<NodeState> out;
    for (const auto& n : nodes->list()) {
      NodeState ns{name_of(n), {}, {}};
      const json spec = n.value("spec", json::object());
      if (auto p = parse_prefixes(spec.contains("podCIDRs") ? spec["podCIDRs"] : spec.value("podCIDR", json()))) {
        ns.spec_pod_cidrs = *p;
      }
      if (auto p = parse_prefixes(json(annotation(n, kPodCidrAnnotation)))) ns.annotated = *p;
      out.push_back(std::move(ns));
    }
    return out;
  }

  Result<void> create_claim(const net::Prefix& block, const std::string& purpose) {
    json claim{{"apiVersion", kGroupVersion},
               {"kind", "CIDRClaim"},
               {"metadata", {{"name", ipam::claim_name(block)},
                             {"namespace", config.broker_namespace},
                             {"labels", {{"clusterwire.io/cluster-id", config.cluster_id}}}}},
               {"spec", {{"cidr", block.to_string()}, {"clusterID", config.cluster_id}, {"purpose", purpose}}}};
    auto r = broker.create(resources::kCidrClaims, config.broker_namespace, claim);
    if (!r) return r.error();
    return ok_result();
  }

  Result<void> write_node_cidrs(const std::string& node, const std::vector<net::Prefix>& cidrs,
                                const std::vector<NodeState>& states) {
    json patch{{"metadata", {{"annotations", {{kPodCidrAnnotation, join(cidrs)}}}}}};
    const auto it = std::find_if(states.begin(), states.end(), [&](const NodeState& s) { return s.name == node; });
    if (config.node_cidr_mode == NodeCidrMode::kAllocate && it != states.end() && it->spec_pod_cidrs.empty()) {
      json list = json::array();
      for (const auto& c : cidrs) list.push_back(c.to_string());
      patch["spec"] = {{"podCIDR", cidrs.front().to_string()}, {"podCIDRs", list}};
    }
    auto r = local.merge_patch(kres::kNodes, "", node, patch);
    if (!r) return r.error();
    log.info("node pod CIDR", {{"node", node}, {"cidrs", join(cidrs)}});
    return ok_result();
  }

  // The gateway Lease's holder, "" when none (or released).
  std::string gateway_holder() const {
    auto lease = leases->get(config.gateway_lease_namespace, config.gateway_lease_name);
    if (!lease || !(*lease)["spec"].is_object()) return "";
    const json& h = (*lease)["spec"].value("holderIdentity", json());
    return h.is_string() ? h.get<std::string>() : "";
  }

  // In mesh mode every node is advertised; in gateway mode only the candidates, so that a
  // node joining or leaving writes nothing here (docs/gateway.md).
  Result<void> publish_advertisement(const std::vector<net::Prefix>& blocks,
                                     const std::map<std::string, std::vector<net::Prefix>>& assigned,
                                     const std::string& topology, std::vector<std::string>& problems) {
    const bool gateway_mode = topology == "gateway";
    Advertisement ad;
    ad.cluster_id = config.cluster_id;
    ad.pod_cidrs = blocks;
    ad.service_cidrs = config.service_cidrs;
    ad.dns_endpoint = config.dns_endpoint;
    ad.topology = topology;
    for (const auto& n : nodes->list()) {
      const std::string name = name_of(n);
      if (gateway_mode && label(n, config.gateway_label.c_str()) != "true") continue;
      auto it = assigned.find(name);
      // A malformed annotation is left out, not copied: the broker would refuse the whole
      // advertisement for it, and every peering with this cluster would go stale.
      // A gateway's endpoint is its public one: its in-cluster address means nothing to
      // other clusters (and is often the same private address as one of theirs).
      const char* endpoint_source = gateway_mode ? kPublicEndpointAnnotation : kEndpointAnnotation;
      std::string endpoint = annotation(n, endpoint_source);
      if (gateway_mode) {
        if (auto configured = config.gateway_endpoints.find(name); configured != config.gateway_endpoints.end()) {
          endpoint = configured->second;
          endpoint_source = "--gateway-endpoint";
        }
      }
      std::string key = annotation(n, kPublicKeyAnnotation);
      if (!endpoint.empty() && !valid_endpoint(endpoint)) {
        problems.push_back("node " + name + ": " + endpoint_source + " \"" + endpoint +
                           "\" is not host:port; left out of the advertisement");
        endpoint.clear();
      }
      if (!key.empty() && !wg::Key::from_base64(key)) {
        problems.push_back("node " + name + ": annotation " + kPublicKeyAnnotation +
                           " is not a WireGuard public key; left out of the advertisement");
        key.clear();
      }
      (gateway_mode ? ad.gateways : ad.nodes)
          .push_back({name, endpoint, key, it == assigned.end() ? std::vector<net::Prefix>{} : it->second});
    }
    if (gateway_mode) {
      const std::string holder = gateway_holder();
      if (std::any_of(ad.gateways.begin(), ad.gateways.end(), [&](const NodeEntry& g) { return g.name == holder; })) {
        ad.active_gateway = holder;
      }
      if (ad.gateways.empty()) {
        problems.push_back("topology is gateway but no node is labelled " + config.gateway_label +
                           "=true: other clusters cannot reach this one");
      }
      std::vector<std::string> names;
      for (const auto& g : ad.gateways) names.push_back(g.name);
      std::lock_guard lock(mu);
      state.gateways = names;
    }
    std::set<std::string> consent;
    for (const auto& p : peerings->list()) {
      const std::string remote = p["spec"].value("remoteClusterID", "");
      if (!remote.empty()) consent.insert(remote);
    }
    ad.peers.assign(consent.begin(), consent.end());

    const auto now = clock.wall_now();
    auto current = advertisements->get(config.broker_namespace, config.cluster_id);
    json desired = to_json(ad);
    if (current) {
      json current_spec = (*current)["spec"];
      const auto beat = parse_rfc3339(current_spec.value("heartbeat", ""));
      current_spec.erase("heartbeat");
      json without = desired;
      without.erase("heartbeat");
      const bool fresh = beat && now - *beat < config.heartbeat_interval;
      if (current_spec == without && fresh) return ok_result();  // nothing to write
    }
    desired["heartbeat"] = rfc3339(now);
    json object{{"apiVersion", kGroupVersion},
                {"kind", "ClusterAdvertisement"},
                {"metadata", {{"name", config.cluster_id}, {"namespace", config.broker_namespace}}},
                {"spec", desired}};
    if (current) {
      object["metadata"]["resourceVersion"] = (*current)["metadata"]["resourceVersion"];
      auto r = broker.update(resources::kClusterAdvertisements, config.broker_namespace, object);
      if (!r) return r.error();
    } else {
      auto r = broker.create(resources::kClusterAdvertisements, config.broker_namespace, object);
      if (!r && r.error().code() != ErrorCode::kAlreadyExists) return r.error();
    }
    return ok_result();
  }

  void update_metrics(const ClusterSetView& set, const std::vector<Claim>& all_claims) {
    if (!metrics) return;
    metrics->gauge("clusterwire_operator_claims_held", "CIDRClaims this cluster holds")
        .Set(static_cast<double>(std::count_if(all_claims.begin(), all_claims.end(),
                                               [&](const Claim& c) { return c.cluster_id == config.cluster_id; })));
    for (net::Family f : {net::Family::kIPv4, net::Family::kIPv6}) {
      const auto& fp = set.spec.pools_for(f);
      if (!fp) continue;
      auto pool = net::PrefixPool::create(fp->pools);
      if (!pool) continue;
      for (const auto& c : all_claims) {
        for (const auto& q : fp->pools) {
          if (auto part = net::intersection(c.cidr, q)) (void)pool->claim(*part, c.cluster_id);
        }
      }
      metrics->gauge("clusterwire_operator_pool_free_blocks", "Cluster-sized blocks still free in the ClusterSet pools",
                     {{"family", f == net::Family::kIPv4 ? "ipv4" : "ipv6"}})
          .Set(static_cast<double>(pool->free_blocks(f, fp->cluster_prefix_length)));
    }
  }

  // ---- peerings

  Result<ReconcileResult> reconcile_peering(const std::string& name) {
    if (!local_synced()) return ReconcileResult{.requeue_after = 100ms};
    auto obj = peerings->get("", name);
    if (!obj) return ReconcileResult{};  // gone
    const json& spec = (*obj)["spec"];
    PeeringInput in;
    in.remote_cluster_id = spec.value("remoteClusterID", "");
    in.generation = (*obj)["metadata"].value("generation", std::int64_t{1});
    in.cluster_id = config.cluster_id;
    in.now = clock.wall_now();
    in.old_status = obj->value("status", json::object());
    in.local_service_cidrs = config.service_cidrs;
    in.ingress = spec.contains("ingress") && spec["ingress"].is_string() ? spec["ingress"].get<std::string>()
                                                                         : config.default_ingress;
    std::vector<std::string> local_problems;
    {
      std::lock_guard lock(mu);
      in.local_pod_cidrs = state.pod_blocks;
      local_problems = state.problems;
      in.local_topology = state.topology;
    }
    if (in.local_topology == "gateway") {
      for (const auto& n : nodes->list()) {
        if (label(n, config.gateway_label.c_str()) == "true" &&
            (config.gateway_endpoints.count(name_of(n)) || !annotation(n, kPublicEndpointAnnotation).empty())) {
          in.local_gateway_reachable = true;
        }
      }
    }
    if (auto set_obj = clustersets->get(config.broker_namespace, config.clusterset_name)) {
      if (auto set = parse_clusterset(*set_obj)) in.heartbeat_timeout_seconds = set->heartbeat_timeout_seconds;
    }
    if (auto ad_obj = advertisements->get(config.broker_namespace, in.remote_cluster_id)) {
      auto ad = parse_advertisement(*ad_obj);
      if (ad) {
        in.remote = *ad;
      } else {
        in.remote_error = ad.error().message();
      }
    }
    in.broker_error = broker_error();
    for (const auto& n : nodes->list()) {
      const std::string text = annotation(n, kDatapathAnnotation);
      if (text.empty()) continue;
      const json report = json::parse(text, nullptr, false);
      if (report.is_object() && report.contains(in.remote_cluster_id)) {
        in.datapath.push_back({name_of(n), report[in.remote_cluster_id]});
      }
    }
    json status = peering_status(in);
    const std::string last_phase = in.old_status.value("phase", "");
    if (!broker_synced() && (last_phase == "Connected" || last_phase == "Degraded") && in.old_status.contains("remote")) {
      // A peering that worked keeps its last known remote side while this operator cannot
      // read the broker (it started while the broker was down): the node agents keep the
      // tunnel, and BrokerReachable says why nothing is refreshed.
      status = in.old_status;
      const std::string why = "this operator cannot reach the broker" +
                              (local_problems.empty() ? std::string() : ": " + local_problems.front()) +
                              "; the peering keeps its last known remote side";
      json conditions = json::array();
      bool replaced = false;
      for (const auto& c : status.value("conditions", json::array())) {
        if (c.value("type", "") != "BrokerReachable") {
          conditions.push_back(c);
          continue;
        }
        json b = c;
        if (b.value("status", "") != "False") b["lastTransitionTime"] = rfc3339(in.now);
        b["status"] = "False";
        b["reason"] = "BrokerUnreachable";
        b["message"] = why;
        conditions.push_back(b);
        replaced = true;
      }
      if (!replaced) {
        conditions.push_back({{"type", "BrokerReachable"}, {"status", "False"}, {"reason", "BrokerUnreachable"},
                              {"message", why}, {"lastTransitionTime", rfc3339(in.now)}, {"observedGeneration", in.generation}});
      }
      status["conditions"] = conditions;
    } else if (!broker_synced()) {
      // Nothing about the remote side can be known: say so rather than guess.
      const std::string why = local_problems.empty() ? "waiting for the broker's objects" : local_problems.front();
      status = {{"phase", "Pending"}, {"observedGeneration", in.generation}, {"conflicts", json::array()},
                {"conditions", json::array({{{"type", "Ready"}, {"status", "False"}, {"reason", "BrokerUnavailable"},
                                             {"message", why}, {"lastTransitionTime", rfc3339(in.now)},
                                             {"observedGeneration", in.generation}}})}};
      if (in.old_status.value("phase", "") == "Pending" && in.old_status.contains("conditions") &&
          in.old_status["conditions"].size() == 1 && in.old_status["conditions"][0].value("message", "") == why) {
        status = in.old_status;  // unchanged: keep the transition time, write nothing
      }
    } else if (in.local_pod_cidrs.empty()) {
      // Nothing of ours may be routed before we hold a block.
      status["phase"] = "Pending";
      const std::string why = local_problems.empty() ? "this cluster holds no pod block yet" : local_problems.front();
      status["conditions"].push_back({{"type", "LocalCIDRReady"}, {"status", "False"}, {"reason", "NoLocalBlock"},
                                      {"message", why}, {"lastTransitionTime", rfc3339(in.now)},
                                      {"observedGeneration", in.generation}});
    }
    const std::string old_phase = in.old_status.value("phase", "");
    if (status != in.old_status) {
      json updated = *obj;
      updated["status"] = status;
      auto r = local.update_status(resources::kClusterPeerings, "", updated);
      if (!r) {
        if (r.error().code() == ErrorCode::kConflict) return ReconcileResult{.requeue = true};
        report_unwritten_status(*obj, r.error());
        return r.error();
      }
      {
        std::lock_guard lock(unwritten_mu);
        unwritten_status.erase(name);
      }
      if (old_phase != status["phase"]) record_transition(*obj, old_phase, status);
    }
    update_phase_metrics();
    update_datapath_metrics(name, datapath_verdict(in.remote_cluster_id, in.datapath));
    if (!broker_synced()) return ReconcileResult{.requeue_after = 1000ms};
    // Re-check before a heartbeat can go stale.
    return ReconcileResult{.requeue_after = std::chrono::seconds(std::max(1, in.heartbeat_timeout_seconds / 2))};
  }

  // The API server answered and refused the peering's status (the object over etcd's 1.5 MiB,
  // say, grown by a user's annotations): the status cannot say so, so a Warning Event on the
  // peering does, once per distinct refusal, beside the log's retries.
  void report_unwritten_status(const json& peering, const Error& error) {
    if (error.http_status() == 0) return;  // no answer: the log says it, and the next pass retries
    const std::string name = name_of(peering);
    {
      std::lock_guard lock(unwritten_mu);
      if (unwritten_status[name] == error.message()) return;
      unwritten_status[name] = error.message();
    }
    log.warn("the API server refused the peering's status", {{"peering", name}, {"error", error.message()}});
    const std::string now = rfc3339(clock.wall_now());
    json event{{"apiVersion", "v1"},
               {"kind", "Event"},
               {"metadata", {{"generateName", name + "."}, {"namespace", "default"}}},
               {"involvedObject", {{"apiVersion", kGroupVersion}, {"kind", "ClusterPeering"},
                                   {"name", name}, {"uid", peering["metadata"].value("uid", "")}}},
               {"reason", "StatusNotWritten"},
               {"message", "the API server refused this peering's status (HTTP " + std::to_string(error.http_status()) +
                               "): " + error.message()},
               {"type", "Warning"},
               {"source", {{"component", "clusterwire-operator"}}},
               {"firstTimestamp", now},
               {"lastTimestamp", now},
               {"count", 1}};
    (void)local.create(kres::kEvents, "default", event);
  }

  void record_transition(const json& peering, const std::string& from, const json& status) {
    const std::string to = status["phase"];
    std::string message = "phase " + (from.empty() ? std::string("(new)") : from) + " → " + to;
    for (const auto& c : status["conditions"]) {
      if (c.value("type", "") == "Ready") message += " (" + c.value("reason", "") + "): " + c.value("message", "");
    }
    log.info("peering phase", {{"peering", name_of(peering)}, {"from", from}, {"to", to}});
    const std::string now = rfc3339(clock.wall_now());
    json event{{"apiVersion", "v1"},
               {"kind", "Event"},
               {"metadata", {{"generateName", name_of(peering) + "."}, {"namespace", "default"}}},
               {"involvedObject", {{"apiVersion", kGroupVersion}, {"kind", "ClusterPeering"},
                                   {"name", name_of(peering)}, {"uid", peering["metadata"].value("uid", "")}}},
               {"reason", to},
               {"message", message},
               {"type", to == "Connected" || to == "Connecting" || to == "Pending" ? "Normal" : "Warning"},
               {"source", {{"component", "clusterwire-operator"}}},
               {"firstTimestamp", now},
               {"lastTimestamp", now},
               {"count", 1}};
    (void)local.create(kres::kEvents, "default", event);  // best effort: an event is not state
  }

  void update_datapath_metrics(const std::string& peering, const DatapathVerdict& d) {
    if (!metrics) return;
    metrics->gauge("clusterwire_operator_peering_failing_pairs",
                   "Node pairs whose probes through the tunnel fail, per peering", {{"peering", peering}})
        .Set(d.failing_pairs);
    metrics->gauge("clusterwire_operator_peering_probed_pairs", "Node pairs with a probe verdict, per peering",
                   {{"peering", peering}})
        .Set(d.probed_pairs);
    if (d.rtt_p50_seconds) {
      metrics->gauge("clusterwire_operator_peering_rtt_seconds",
                     "Probe round-trip time to the remote cluster: p50 (median of the node pairs') and max",
                     {{"peering", peering}, {"stat", "p50"}})
          .Set(*d.rtt_p50_seconds);
    }
    if (d.rtt_max_seconds) {
      metrics->gauge("clusterwire_operator_peering_rtt_seconds",
                     "Probe round-trip time to the remote cluster: p50 (median of the node pairs') and max",
                     {{"peering", peering}, {"stat", "max"}})
          .Set(*d.rtt_max_seconds);
    }
  }

  void update_phase_metrics() {
    if (!metrics) return;
    std::map<std::string, int> by_phase = {{"Pending", 0}, {"Connecting", 0}, {"Connected", 0}, {"Degraded", 0}, {"Conflict", 0}};
    for (const auto& p : peerings->list()) {
      if (p.contains("status")) by_phase[p["status"].value("phase", "Pending")]++;
    }
    for (const auto& [phase, n] : by_phase) {
      metrics->gauge("clusterwire_operator_peerings", "ClusterPeerings by phase", {{"phase", phase}}).Set(n);
    }
  }
};

Operator::Operator(OperatorConfig config, kube::Client& local, kube::Client& broker, Clock& clock,
                   log::Logger logger, metrics::Metrics* metrics) {
  if (config.identity.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    config.identity = config.cluster_id + "-" + host + "-" + std::to_string(getpid());
  }
  impl_ = std::make_unique<Impl>(std::move(config), local, broker, clock, std::move(logger), metrics);
}

Operator::~Operator() { stop(); }

Result<void> Operator::start() {
  if (auto r = validate(impl_->config); !r) return r;
  return impl_->start();
}

void Operator::stop() {
  if (impl_) impl_->stop();
}

OperatorState Operator::state() const {
  std::lock_guard lock(impl_->mu);
  return impl_->state;
}

Result<void> Operator::leave(const OperatorConfig& config, kube::Client& broker, log::Logger logger) {
  auto listed = broker.list(resources::kCidrClaims, config.broker_namespace,
                            {.label_selector = "clusterwire.io/cluster-id=" + config.cluster_id});
  if (!listed) return listed.error().with_context("listing this cluster's claims");
  for (const auto& item : (*listed)["items"]) {
    auto c = parse_claim(item);
    if (!c || c->cluster_id != config.cluster_id) continue;  // never someone else's
    auto r = broker.remove(resources::kCidrClaims, config.broker_namespace, c->name);
    if (!r && r.error().code() != ErrorCode::kNotFound) return r.error();
    logger.info("released claim", {{"cidr", c->cidr.to_string()}});
  }
  auto exported = broker.list(resources::kExportedServices, config.broker_namespace,
                              {.label_selector = "clusterwire.io/cluster-id=" + config.cluster_id});
  if (!exported) return exported.error().with_context("listing this cluster's exported Services");
  for (const auto& item : (*exported)["items"]) {
    if (item["spec"].value("clusterID", "") != config.cluster_id) continue;  // never someone else's
    const std::string name = name_of(item);
    auto r = broker.remove(resources::kExportedServices, config.broker_namespace, name);
    if (!r && r.error().code() != ErrorCode::kNotFound) return r.error();
    logger.info("withdrew export", {{"record", name}});
  }
  auto r = broker.remove(resources::kClusterAdvertisements, config.broker_namespace, config.cluster_id);
  if (!r && r.error().code() != ErrorCode::kNotFound) return r.error();
  logger.info("left the clusterset", {{"cluster", config.cluster_id}});
  return ok_result();
}

}  // namespace cw::op
