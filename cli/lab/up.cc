// `cwctl lab up`: builds the lab step by step (docs/lab.md has the picture). Every process is
// started inside a lab namespace and recorded (pidfile and state.json, pid and start time) the
// moment it starts, so `down` can remove a lab that failed half-way; up itself does so when a
// step fails or it is interrupted (SIGINT, SIGTERM), unless --keep-on-failure.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "cli/lab/chart_rbac.h"
#include "cli/lab/cluster_api.h"
#include "cli/lab/down.h"
#include "cli/lab/lab.h"
#include "cli/lab/layout.h"
#include "cli/lab/process.h"
#include "cli/lab/state.h"
#include "cli/lab/text.h"
#include "cli/lab/world.h"

namespace cw::lab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct Binaries {
  std::string apiserver, op, agent, dns;
  bool have_dns = false;
};

class LabBuilder {
 public:
  // o.cni must parse (lab_up checks it first).
  LabBuilder(const LabOptions& o, const LabLayout& lab, std::ostream& out)
      : o_(o), lab_(lab), cni_(parse_cni(o.cni).value()), out_(out), progress_(out, 12) {}

  Result<void> build();
  const LabState& state() const { return state_; }
  // Whether build() got as far as making anything (a failure before that leaves nothing).
  bool created_anything() const { return created_; }

 private:
  Result<void> check_host();
  Result<void> make_state_dir();
  Result<void> make_namespaces();
  Result<void> make_router(const ClusterLayout& c);
  Result<void> start_api_servers();
  Result<void> apply_rbac();
  Result<void> apply_base_objects();
  Result<void> start_operators();
  Result<void> wait_node_cidrs();
  Result<void> start_cni();
  Result<void> start_bird();
  Result<void> make_vxlan();
  Result<void> start_wireguard();
  Result<void> start_node_agents();
  Result<void> make_pods();
  Result<void> start_dns();
  Result<void> apply_demo();
  Result<void> apply_peerings();

  // Waits until every Node of the cluster has the annotation; returns node name -> value.
  Result<std::map<std::string, std::string>> wait_node_annotation(const ClusterLayout& c, const std::string& key,
                                                                  const std::string& waiting_for,
                                                                  const std::string& log_of);

  Result<pid_t> start(const std::string& name, const std::vector<std::string>& argv,
                      const std::vector<std::string>& env = {});
  Result<void> ip(std::vector<std::string> args);
  Result<void> save() { return save_state(lab_, state_); }
  std::string log_tail(const std::string& process) const;

  // Node name -> its pod-cidr annotation (a block per family), for one cluster's nodes.
  std::map<std::string, std::string> blocks_of(const ClusterLayout& c) const;
  // The node's pod's addresses, IPv4 first.
  std::vector<std::string> pod_addresses(const NodeLayout& n) const {
    std::vector<std::string> out;
    for (const auto* m : {&state_.pod_ips, &state_.pod_ips6}) {
      if (auto it = m->find(n.node_name); it != m->end()) out.push_back(it->second);
    }
    return out;
  }

  const LabOptions& o_;
  const LabLayout& lab_;
  const Cni cni_;
  std::ostream& out_;
  Progress progress_;
  Binaries bin_;
  LabState state_;
  bool created_ = false;
};

Result<void> fail(const std::string& what) { return Error(ErrorCode::kUnavailable, what); }

bool executable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

bool on_path(const std::string& tool) {
  return run({"sh", "-c", "command -v \"$0\" >/dev/null", tool}, {.timeout = seconds(5)}).ok();
}

// Writes a whole small file (configuration for a tool the lab starts).
Result<void> write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.flush();
  if (!out) return Error(ErrorCode::kInternal, "cannot write " + path);
  return ok_result();
}

std::string strip_prefix_length(const std::string& cidr) { return cidr.substr(0, cidr.find('/')); }

Result<pid_t> LabBuilder::start(const std::string& name, const std::vector<std::string>& argv,
                                const std::vector<std::string>& env) {
  std::vector<std::string> full = argv;
  if (!env.empty()) {  // recorded as `env K=V ...` so a restart gets the same environment
    full.insert(full.begin(), env.begin(), env.end());
    full.insert(full.begin(), "env");
  }
  auto started = spawn_background(full, lab_.log_path(name));
  if (!started) return started.error().with_context("starting " + name);
  state_.processes[name] = {name, static_cast<int>(started->pid), started->start_ticks, full};
  if (auto r = write_pid_file(lab_, name, *started); !r) return r.error();
  if (auto r = save(); !r) return r.error();
  return started->pid;
}

Result<void> LabBuilder::ip(std::vector<std::string> args) {
  args.insert(args.begin(), "ip");
  auto r = run(args, {.timeout = seconds(15)});
  if (!r.ok()) {
    std::string cmd;
    for (const auto& a : args) cmd += (cmd.empty() ? "" : " ") + a;
    return fail(cmd + ": " + r.summary());
  }
  return ok_result();
}

std::string LabBuilder::log_tail(const std::string& process) const {
  std::string text = read_file_or_empty(lab_.log_path(process));
  std::istringstream in(text);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  std::string out;
  for (std::size_t i = lines.size() > 3 ? lines.size() - 3 : 0; i < lines.size(); ++i) out += "\n    | " + lines[i];
  return out + "\n    (log: " + lab_.log_path(process) + ")";
}

Result<void> LabBuilder::check_host() {
  if (geteuid() != 0) {
    return Error(ErrorCode::kPermissionDenied,
                 "cwctl lab up needs root: it creates network namespaces, links and WireGuard devices "
                 "(run it with sudo)");
  }
  std::vector<std::string> missing;
  // tcpdump: verify records the underlay with it; sysctl: ip_forward in the node namespaces.
  for (const char* tool :
       {"ip", "kubectl", "wg", "socat", "ping", "unbound", "unbound-checkconf", "dig", "tcpdump", "sysctl"}) {
    if (!on_path(tool)) missing.push_back(tool);
  }
  // The world's own tools: nft for faults, iptables for the CNI's masquerade, bird2 or bridge(8).
  for (const char* tool : {"nft", "iptables-restore", "iptables-legacy"}) {
    if (!on_path(tool)) missing.push_back(tool);
  }
  if (cni_ == Cni::kBird && !on_path("bird")) missing.push_back("bird (bird2)");
  if (cni_ == Cni::kVxlan && !on_path("bridge")) missing.push_back("bridge (iproute2)");
  for (const char* plugin : {"bridge", "host-local", "loopback"}) {
    if (!executable(o_.cni_dir + "/" + plugin)) missing.push_back(o_.cni_dir + "/" + plugin);
  }
  bin_.apiserver = o_.bin_dir + "/lab/cw-lab-apiserver";
  bin_.op = o_.bin_dir + "/operator/cw-operator";
  bin_.agent = o_.bin_dir + "/node-agent/cw-node-agent";
  bin_.dns = o_.bin_dir + "/dns/cw-dns";
  for (const auto& b : {bin_.apiserver, bin_.op, bin_.agent}) {
    if (!executable(b)) missing.push_back(b);
  }
  bin_.have_dns = executable(bin_.dns);
  if (!fs::exists(o_.crds_dir)) missing.push_back(o_.crds_dir + " (the CRDs; --crds-dir)");
  if (!fs::exists(o_.chart_dir)) missing.push_back(o_.chart_dir + " (the Helm chart; --chart-dir)");
  if (!on_path("etcd")) missing.push_back("etcd (etcd-server)");
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += "\n  " + m;
    return Error(ErrorCode::kNotFound,
                 "missing (scripts/deps.sh installs the tools; build the binaries, or point --bin-dir at a "
                 "build directory):" + list);
  }
  auto namespaces = list_netns();
  if (!namespaces) return namespaces.error();
  for (const auto& ns : *namespaces) {
    if (is_lab_netns(lab_.name, ns)) {
      return Error(ErrorCode::kAlreadyExists, "lab \"" + lab_.name + "\" exists (namespace " + ns +
                                                  "): `cwctl lab down --name " + lab_.name + "` first");
    }
  }
  if (fs::exists(lab_.state_dir)) {
    return Error(ErrorCode::kAlreadyExists, lab_.state_dir + " exists: `cwctl lab down --name " + lab_.name +
                                                "` first");
  }
  for (const auto& c : lab_.clusters) {
    for (const auto& n : c.nodes) {
      const std::string sock = "/var/run/wireguard/" + n.wg_interface + ".sock";
      if (fs::exists(sock)) {
        return Error(ErrorCode::kAlreadyExists,
                     sock + " exists (another lab with the same interface names, or a stale socket): "
                            "`cwctl lab down --name " + lab_.name + "` removes a stale one");
      }
    }
  }
  return ok_result();
}

Result<void> LabBuilder::make_state_dir() {
  created_ = true;
  std::error_code ec;
  fs::create_directories(lab_.state_dir, ec);
  if (ec) return fail("cannot create " + lab_.state_dir + ": " + ec.message());
  if (chmod(lab_.state_dir.c_str(), 0700) != 0) {  // kubeconfigs and private keys live here
    return fail("chmod 0700 " + lab_.state_dir + ": " + std::strerror(errno));
  }
  for (const char* sub : {"logs", "pids", "keys", "cni", "unbound", "bird"}) {
    fs::create_directories(lab_.state_dir + "/" + sub, ec);
    if (ec) return fail("cannot create " + lab_.state_dir + "/" + sub + ": " + ec.message());
  }
  state_.name = lab_.name;
  state_.clusters = static_cast<int>(lab_.clusters.size());
  state_.nodes = static_cast<int>(lab_.clusters.front().nodes.size());
  state_.phase = "creating";
  state_.bin_dir = o_.bin_dir;
  state_.cni = cni_name(cni_);
  state_.underlay_mtu = o_.underlay_mtu;
  state_.ip_family = o_.ip_family;
  state_.world = lab_.nat ? "nat" : "flat";
  state_.gateways = lab_.gateways;
  return save();
}

// The nat world's router of one cluster: a leg on the underlay (the "internet") with a public
// address, the cluster's private bridge, masquerade of the nodes' traffic to the underlay, a
// port forward per gateway (as a load balancer or an elastic IP gives one), and a firewall
// that lets nothing else in.
Result<void> LabBuilder::make_router(const ClusterLayout& c) {
  const std::string& r = c.router_netns;
  const std::string mtu = std::to_string(o_.underlay_mtu);
  const std::string outside = "c" + std::to_string(c.index) + "rt";
  if (auto x = ip({"netns", "add", r}); !x) return x;
  if (auto x = ip({"-n", r, "link", "set", "lo", "up"}); !x) return x;
  if (auto x = ip({"-n", lab_.underlay_netns, "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", r}); !x) {
    return x;
  }
  if (auto x = ip({"-n", lab_.underlay_netns, "link", "set", outside, "mtu", mtu, "master", kUnderlayBridge, "up"}); !x) {
    return x;
  }
  if (auto x = ip({"-n", r, "addr", "add", c.router_ip + "/24", "dev", "eth0"}); !x) return x;
  if (auto x = ip({"-n", r, "link", "set", "eth0", "mtu", mtu, "up"}); !x) return x;
  if (auto x = ip({"-n", r, "link", "add", kNatBridge, "mtu", mtu, "type", "bridge"}); !x) return x;
  if (auto x = ip({"-n", r, "addr", "add", std::string(kNatRouterInside) + "/24", "dev", kNatBridge}); !x) return x;
  if (auto x = ip({"-n", r, "link", "set", kNatBridge, "up"}); !x) return x;
  auto s = in_netns(r, {"sysctl", "-qw", "net.ipv4.ip_forward=1"}, seconds(10));
  if (!s.ok()) return fail("sysctl in " + r + ": " + s.summary());
  auto nft = in_netns(r, {"nft", "-f", "-"}, seconds(10), nat_router_rules(c));
  if (!nft.ok()) return fail("the NAT router's rules in " + r + ": " + nft.summary() + " " + nft.err);
  return ok_result();
}

Result<void> LabBuilder::make_namespaces() {
  const std::string& u = lab_.underlay_netns;
  if (auto r = ip({"netns", "add", u}); !r) return r;
  if (auto r = ip({"-n", u, "link", "set", "lo", "up"}); !r) return r;
  const std::string mtu = std::to_string(o_.underlay_mtu);
  if (auto r = ip({"-n", u, "link", "add", kUnderlayBridge, "mtu", mtu, "type", "bridge"}); !r) return r;
  if (auto r = ip({"-n", u, "addr", "add", std::string(kUnderlayGateway) + "/24", "dev", kUnderlayBridge}); !r) return r;
  if (auto r = ip({"-n", u, "link", "set", kUnderlayBridge, "up"}); !r) return r;
  for (const auto& c : lab_.clusters) {
    if (lab_.nat) {
      if (auto r = make_router(c); !r) return r;
    }
    // The node's link: to the underlay bridge, or in the nat world to its cluster's private
    // bridge in the router's namespace.
    const std::string& side = lab_.nat ? c.router_netns : u;
    const char* bridge = lab_.nat ? kNatBridge : kUnderlayBridge;
    for (const auto& n : c.nodes) {
      if (auto r = ip({"netns", "add", n.netns}); !r) return r;
      if (auto r = ip({"-n", n.netns, "link", "set", "lo", "up"}); !r) return r;
      // Both ends are created inside lab namespaces: the root namespace never holds a lab link.
      if (auto r = ip({"-n", side, "link", "add", n.underlay_veth, "type", "veth", "peer", "name", "eth0", "netns", n.netns});
          !r) {
        return r;
      }
      if (auto r = ip({"-n", side, "link", "set", n.underlay_veth, "mtu", mtu, "master", bridge, "up"}); !r) return r;
      if (auto r = ip({"-n", n.netns, "addr", "add", n.underlay_ip + "/24", "dev", "eth0"}); !r) return r;
      if (auto r = ip({"-n", n.netns, "addr", "add", n.underlay_ip6 + "/64", "dev", "eth0", "nodad"}); !r) return r;
      if (auto r = ip({"-n", n.netns, "link", "set", "eth0", "mtu", mtu, "up"}); !r) return r;
      if (lab_.nat) {  // everything beyond the private subnet (the API servers too) through the router
        if (auto r = ip({"-n", n.netns, "route", "add", "default", "via", kNatRouterInside}); !r) return r;
      }
      // Forwarding, and strict reverse-path filtering as RHEL-family nodes have it.
      auto s = in_netns(n.netns, {"sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
                                  "net.ipv4.conf.all.rp_filter=1"},
                        seconds(10));
      if (!s.ok()) return fail("sysctl in " + n.netns + ": " + s.summary());
      if (auto r = ip({"netns", "add", n.pod_netns}); !r) return r;
    }
  }
  return ok_result();
}

Result<void> LabBuilder::start_api_servers() {
  // Each cluster's control plane: an etcd on the underlay namespace's loopback, its data in
  // the lab's state directory (down removes it), and the API server keeping its objects there
  // and its CA in pki-<cluster>/, so that `cwctl lab restart apiserver-c1` changes nothing.
  for (const auto& c : lab_.clusters) {
    const int client_port = kFirstEtcdPort + 2 * (c.index - 1);
    const std::string client_url = "http://127.0.0.1:" + std::to_string(client_port);
    const std::string peer_url = "http://127.0.0.1:" + std::to_string(client_port + 1);
    const std::string data_dir = lab_.state_dir + "/etcd-" + c.id;
    std::error_code ec;
    fs::create_directories(data_dir, ec);
    fs::permissions(data_dir, fs::perms::owner_all, ec);  // etcd wants 0700
    auto etcd = start("etcd-" + c.id,
                      netns_exec(lab_.underlay_netns,
                                 {"etcd", "--name", c.id, "--data-dir", data_dir, "--listen-client-urls", client_url,
                                  "--advertise-client-urls", client_url, "--listen-peer-urls", peer_url,
                                  "--initial-advertise-peer-urls", peer_url, "--initial-cluster", c.id + "=" + peer_url,
                                  "--heartbeat-interval", "10", "--election-timeout", "100", "--log-level", "warn"}));
    if (!etcd) return etcd.error();
    auto pid = start("apiserver-" + c.id,
                     netns_exec(lab_.underlay_netns,
                                {bin_.apiserver, "--address", kUnderlayGateway, "--port", std::to_string(c.api_port),
                                 "--name", c.id, "--kubeconfig", lab_.kubeconfig(c), "--ready-file",
                                 lab_.state_dir + "/" + c.id + ".ready", "--service-cidr", c.service_cidr,
                                 "--etcd-servers", client_url, "--pki-dir", lab_.state_dir + "/pki-" + c.id}));
    if (!pid) return pid.error();
  }
  for (const auto& c : lab_.clusters) {
    const std::string ready = lab_.state_dir + "/" + c.id + ".ready";
    if (!wait_until([&] { return fs::exists(ready) && fs::file_size(ready) > 0; }, seconds(20))) {
      return fail("the API server of " + c.id + " did not start" + log_tail("apiserver-" + c.id));
    }
  }
  return ok_result();
}

json node_object(const NodeLayout& n) {
  // Both underlay addresses, as a dual-stack node reports them: IPv6 blocks are routed in-cluster
  // via the IPv6 one. A gateway candidate is labelled, and says where other clusters reach it.
  json metadata{{"name", n.node_name}, {"labels", {{"kubernetes.io/hostname", n.node_name}}}};
  if (n.gateway) {
    metadata["labels"]["clusterwire.io/gateway"] = "true";
    metadata["annotations"] = {{"clusterwire.io/public-endpoint", n.public_endpoint}};
  }
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", metadata},
          {"status",
           {{"addresses", json::array({{{"type", "InternalIP"}, {"address", n.underlay_ip}},
                                       {{"type", "InternalIP"}, {"address", n.underlay_ip6}},
                                       {{"type", "Hostname"}, {"address", n.node_name}}})},
            {"conditions", json::array({{{"type", "Ready"}, {"status", "True"}, {"reason", "KubeletReady"}}})}}}};
}

// The ClusterSet's pools for the families asked for.
json clusterset_spec(const std::string& ip_family, bool gateways) {
  json spec = json::object();
  // The nat world runs every cluster in gateway mode through the ClusterSet's default (no
  // operator flag): node addresses overlap across clusters, only gateways can meet.
  if (gateways) spec["defaultTopology"] = "gateway";
  if (ip_family != "ipv6") {
    spec["ipv4"] = {{"pools", json::array({kClusterSetPool})},
                    {"clusterPrefixLength", kClusterPrefixLength},
                    {"nodePrefixLength", kNodePrefixLength}};
  }
  if (ip_family != "ipv4") {
    spec["ipv6"] = {{"pools", json::array({kClusterSetPool6})},
                    {"clusterPrefixLength", kClusterPrefixLength6},
                    {"nodePrefixLength", kNodePrefixLength6}};
  }
  return spec;
}

Result<void> LabBuilder::apply_base_objects() {
  for (const auto& c : lab_.clusters) {
    auto r = kubectl(lab_, c, {"apply", "-f", o_.crds_dir});
    if (!r.ok()) return fail("applying the CRDs in " + c.id + ": " + r.summary());
  }
  // The first cluster is also the broker: its namespace and the ClusterSet (the address pool).
  const json broker = json::array(
      {{{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "clusterwire-broker"}}}},
       {{"apiVersion", "clusterwire.io/v1alpha1"},
        {"kind", "ClusterSet"},
        {"metadata", {{"name", "default"}, {"namespace", "clusterwire-broker"}}},
        {"spec", clusterset_spec(o_.ip_family, lab_.nat)}}});
  if (auto r = kubectl_apply(lab_, lab_.clusters.front(), broker); !r) return r;
  for (const auto& c : lab_.clusters) {
    json objects = json::array({{{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "demo"}}}}});
    for (const auto& n : c.nodes) objects.push_back(node_object(n));
    if (auto r = kubectl_apply(lab_, c, objects); !r) return r;
  }
  return ok_result();
}

Result<void> LabBuilder::apply_rbac() {
  return apply_chart_rbac(lab_, o_.helm, o_.chart_dir);
}

Result<void> LabBuilder::start_operators() {
  // As the chart runs it: two replicas under the operator's ServiceAccount, one leading
  // (the Lease clusterwire-operator in the release namespace); `operator-c1-b` is the second.
  for (const auto& c : lab_.clusters) {
    const auto& dns = c.dns_node();
    for (const char* replica : {"", "-b"}) {
      auto pid = start("operator-" + c.id + replica,
                       netns_exec(lab_.underlay_netns,
                                  {bin_.op, "--cluster-id", c.id, "--kubeconfig", component_kubeconfig(lab_, c, "operator"),
                                   "--broker-kubeconfig", component_kubeconfig(lab_, c, "broker"), "--service-cidr",
                                   c.service_cidr, "--node-cidrs", "allocate", "--dns-endpoint",
                                   dns.underlay_ip + ":" + std::to_string(kDnsServerPort), "--lease-namespace",
                                   kChartNamespace, "--health-address", "127.0.0.1", "--health-port", "0",
                                   "--heartbeat-seconds", "5"}));
      if (!pid) return pid.error();
    }
  }
  return ok_result();
}

Result<std::map<std::string, std::string>> LabBuilder::wait_node_annotation(const ClusterLayout& c,
                                                                              const std::string& key,
                                                                              const std::string& waiting_for,
                                                                              const std::string& log_of) {
  std::map<std::string, std::string> values;
  const bool done = wait_until(
      [&] {
        auto nodes = kubectl_get_json(lab_, c, {"nodes"});
        if (!nodes) return false;
        values.clear();
        for (const auto& item : nodes->value("items", json::array())) {
          const auto annotations = item["metadata"].value("annotations", json::object());
          auto it = annotations.find(key);
          if (it != annotations.end() && it->is_string()) values[item["metadata"].value("name", "")] = it->get<std::string>();
        }
        return std::all_of(c.nodes.begin(), c.nodes.end(), [&](const NodeLayout& n) { return values.count(n.node_name) > 0; });
      },
      seconds(30), milliseconds(200));
  if (!done) {
    std::string missing;
    for (const auto& n : c.nodes) {
      if (!values.count(n.node_name)) missing += (missing.empty() ? "" : ", ") + n.node_name;
    }
    return Error(ErrorCode::kUnavailable,
                 waiting_for + " in " + c.id + " within 30 s: no " + key + " on " + missing + log_tail(log_of));
  }
  return values;
}

Result<void> LabBuilder::wait_node_cidrs() {
  const bool want4 = o_.ip_family != "ipv6", want6 = o_.ip_family != "ipv4";
  for (const auto& c : lab_.clusters) {
    // Until every Node has a block of every family asked for.
    std::map<std::string, std::string> cidrs;
    std::string waiting;
    const bool all = wait_until(
        [&] {
          auto got = wait_node_annotation(c, "clusterwire.io/pod-cidr", "the operator gave no pod CIDR to every Node",
                                          "operator-" + c.id);
          if (!got) return false;
          cidrs = *got;
          waiting.clear();
          for (const auto& n : c.nodes) {
            const std::string& a = cidrs[n.node_name];
            if ((want4 && family_block(a, false).empty()) || (want6 && family_block(a, true).empty())) {
              waiting += " " + n.node_name + " (" + a + ")";
            }
          }
          return waiting.empty();
        },
        seconds(30), milliseconds(200));
    if (!all) {
      return fail("the operator of " + c.id + " gave not every Node a block of each family (" + o_.ip_family + "):" +
                  waiting + log_tail("operator-" + c.id));
    }
    std::string line;
    for (const auto& n : c.nodes) {
      state_.node_cidrs[n.node_name] = cidrs.at(n.node_name);
      line += (line.empty() ? "" : ", ") + n.node_name + " " + cidrs.at(n.node_name);
    }
    progress_.note(c.id + ": " + line);
  }
  return save();
}

std::map<std::string, std::string> LabBuilder::blocks_of(const ClusterLayout& c) const {
  std::map<std::string, std::string> out;
  for (const auto& n : c.nodes) {
    auto it = state_.node_cidrs.find(n.node_name);
    if (it != state_.node_cidrs.end()) out[n.node_name] = it->second;
  }
  return out;
}

Result<void> LabBuilder::start_cni() {
  switch (cni_) {
    case Cni::kBird: return start_bird();
    case Cni::kVxlan: return make_vxlan();
    case Cni::kClusterwire: progress_.note("none: the node agents route in-cluster, nothing masquerades"); return ok_result();
  }
  return ok_result();
}

// bird2 per node, an iBGP full mesh per cluster; done when every node has a `proto bird` route
// to every other node's block of its cluster.
Result<void> LabBuilder::start_bird() {
  for (const auto& c : lab_.clusters) {
    const auto blocks = blocks_of(c);
    for (const auto& n : c.nodes) {
      const std::string base = lab_.state_dir + "/bird/" + n.node_name;
      if (auto w = write_text(base + ".conf", bird_config(c, n, blocks)); !w) return w;
      auto check = run({"bird", "-p", "-c", base + ".conf"}, {.timeout = seconds(10)});
      if (!check.ok()) return fail("bird -p " + base + ".conf: " + check.summary() + " " + check.err);
      auto pid = start("bird-" + n.node_name, netns_exec(n.netns, {"bird", "-f", "-c", base + ".conf", "-s", base + ".ctl",
                                                                   "-P", base + ".pid"}));
      if (!pid) return pid.error();
    }
  }
  for (const auto& c : lab_.clusters) {
    if (c.nodes.size() < 2) continue;
    const auto blocks = blocks_of(c);
    std::string missing;
    const bool done = wait_until(
        [&] {
          missing.clear();
          for (const auto& n : c.nodes) {
            const std::string routes = in_netns(n.netns, {"ip", "-4", "route", "show", "proto", "bird"}, seconds(5)).out +
                                       in_netns(n.netns, {"ip", "-6", "route", "show", "proto", "bird"}, seconds(5)).out;
            for (const auto& [name, annotation] : blocks) {
              for (const bool v6 : {false, true}) {
                const std::string block = family_block(annotation, v6);
                if (name != n.node_name && !block.empty() && routes.find(block + " via") == std::string::npos) {
                  missing += " " + n.node_name + "->" + block;
                }
              }
            }
          }
          return missing.empty();
        },
        seconds(40), milliseconds(200));
    if (!done) return fail("BGP in " + c.id + " did not converge within 40 s; no route for" + missing + log_tail("bird-" + c.nodes.front().node_name));
  }
  progress_.note("BIRD: every node has a proto bird route to each other node's block of its cluster");
  return ok_result();
}

// flannel.1 and flanneld's masquerade on every node, as flanneld would set them up.
Result<void> LabBuilder::make_vxlan() {
  for (const auto& c : lab_.clusters) {
    const auto blocks = blocks_of(c);
    for (const auto& n : c.nodes) {
      for (const auto& cmd : vxlan_commands(c, n, blocks, o_.underlay_mtu)) {
        auto r = in_netns(n.netns, cmd, seconds(10));
        if (!r.ok()) {
          std::string line;
          for (const auto& a : cmd) line += (line.empty() ? "" : " ") + a;
          return fail(line + " in " + n.netns + ": " + r.summary());
        }
      }
      for (const bool v6 : {false, true}) {
        const std::string block = family_block(blocks.at(n.node_name), v6);
        if (block.empty()) continue;
        auto range = cluster_range_of(block);
        if (!range) return range.error();
        auto r = in_netns(n.netns, {v6 ? "ip6tables-restore" : "iptables-restore", "--noflush"}, seconds(10),
                          flannel_masquerade_rules(*range, block));
        if (!r.ok()) return fail("flanneld's masquerade rules in " + n.netns + ": " + r.summary());
      }
    }
  }
  progress_.note("flannel.1 (VXLAN 1, UDP " + std::to_string(kVxlanPort) + ") and flanneld's masquerade on every node");
  return ok_result();
}

Result<void> LabBuilder::start_wireguard() {
  // The kernel's WireGuard where it has one (probed inside the underlay namespace), else
  // wireguard-go, started by us so that `down` knows its pid.
  const std::string probe = lab_.interface_prefix + "probe";
  if (run({"ip", "-n", lab_.underlay_netns, "link", "add", probe, "type", "wireguard"}, {.timeout = seconds(10)}).ok()) {
    (void)run({"ip", "-n", lab_.underlay_netns, "link", "del", probe}, {.timeout = seconds(10)});
    state_.backend = "kernel";
    return save();
  }
  state_.backend = "uapi";
  if (!on_path(o_.wireguard_go) && !executable(o_.wireguard_go)) {
    return fail("the kernel has no WireGuard and " + o_.wireguard_go + " is not installed (scripts/deps.sh)");
  }
  for (const auto& c : lab_.clusters) {
    for (const auto& n : c.nodes) {
      auto pid = start("wireguard-go-" + n.node_name, netns_exec(n.netns, {o_.wireguard_go, "-f", n.wg_interface}),
                       {"WG_PROCESS_FOREGROUND=1"});
      if (!pid) return pid.error();
    }
  }
  for (const auto& c : lab_.clusters) {
    for (const auto& n : c.nodes) {
      const std::string sock = "/var/run/wireguard/" + n.wg_interface + ".sock";
      if (!wait_until([&] { return fs::exists(sock); }, seconds(10))) {
        return fail("wireguard-go made no " + sock + log_tail("wireguard-go-" + n.node_name));
      }
    }
  }
  return save();
}

Result<void> LabBuilder::start_node_agents() {
  for (const auto& c : lab_.clusters) {
    for (const auto& n : c.nodes) {
      auto pid = start("node-agent-" + n.node_name,
                       netns_exec(n.netns, {bin_.agent, "--node-name", n.node_name, "--kubeconfig",
                                            component_kubeconfig(lab_, c, "node-agent"),
                                            "--key-path", lab_.state_dir + "/keys/" + n.node_name + "/private.key",
                                            "--interface", n.wg_interface, "--backend", state_.backend,
                                            "--wireguard-go", "", "--service-cidr", c.service_cidr,
                                            "--health-address", "127.0.0.1", "--health-port", "0",
                                            "--resync-seconds", "10", "--cluster-id", c.id,
                                            "--gateway-health-trigger", o_.gateway_lease_only ? "false" : "true"}));
      if (!pid) return pid.error();
    }
  }
  for (const auto& c : lab_.clusters) {
    auto keys = wait_node_annotation(c, "clusterwire.io/public-key", "the node agents did not publish their keys",
                                     "node-agent-" + c.nodes.front().node_name);
    if (!keys) return keys.error();
  }
  return ok_result();
}

Result<void> LabBuilder::make_pods() {
  for (const auto& c : lab_.clusters) {
    for (const auto& n : c.nodes) {
      const std::string cidr = state_.node_cidrs[n.node_name];
      const json bridge = bridge_config(cni_, cidr, o_.underlay_mtu, lab_.state_dir + "/cni/" + n.node_name);  // every family
      const json loopback = {{"cniVersion", "1.0.0"}, {"name", "cwlab-lo"}, {"type", "loopback"}};
      auto cni = [&](const std::string& plugin, const std::string& ifname, const json& config) {
        return run(netns_exec(n.netns, {o_.cni_dir + "/" + plugin}),
                   {.timeout = seconds(20),
                    .input = config.dump(),
                    .env = {"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + lab_.name + "-" + n.pod_name,
                            "CNI_NETNS=/run/netns/" + n.pod_netns, "CNI_IFNAME=" + ifname, "CNI_PATH=" + o_.cni_dir}});
      };
      auto r = cni("bridge", "eth0", bridge);
      if (!r.ok()) return fail("CNI bridge for " + n.pod_name + ": " + r.summary() + " " + r.out);
      auto result = json::parse(r.out, nullptr, false);
      std::string address;  // every address, for the progress line
      if (!result.is_discarded() && result.contains("ips") && result["ips"].is_array()) {
        for (const auto& ipc : result["ips"]) {
          const std::string a = strip_prefix_length(ipc.value("address", ""));
          if (a.empty()) continue;
          (a.find(':') == std::string::npos ? state_.pod_ips : state_.pod_ips6)[n.node_name] = a;
          address += (address.empty() ? "" : " ") + a;
        }
      }
      if (address.empty()) return fail("CNI bridge for " + n.pod_name + " returned no address: " + r.out);
      auto lo = cni("loopback", "lo", loopback);
      if (!lo.ok()) return fail("CNI loopback for " + n.pod_name + ": " + lo.summary());
      // The pod's resolver is its cluster's unbound (ip netns exec bind-mounts this file).
      const std::string etc = "/etc/netns/" + n.pod_netns;
      std::error_code ec;
      fs::create_directories(etc, ec);
      if (ec) return fail("cannot create " + etc + ": " + ec.message());
      // An IPv6-only pod reaches the resolver at its IPv6 address only: that one first then.
      const std::string v4 = "nameserver " + c.dns_node().underlay_ip + "\n", v6 = "nameserver " + c.dns_node().underlay_ip6 + "\n";
      if (auto w = write_text(etc + "/resolv.conf", (o_.ip_family == "ipv6" ? v6 + v4 : v4 + v6) +
                                                        "search demo.svc.cluster.local svc.cluster.local\n");
          !w) {
        return w;
      }
      // socat -t 10: after the client's end of input, wait up to 10 s for the answer (socat's
      // default, 0.5 s, cut answers short on a loaded machine: "no answer" rows).
      auto pid = start("echo-" + n.node_name, netns_exec(n.pod_netns, {"socat", "-t", "10", "TCP6-LISTEN:" + std::to_string(kPodEchoPort) + ",ipv6only=0" +
                                                                                     ",fork,reuseaddr",
                                                                                 "EXEC:cat"}));
      if (!pid) return pid.error();
      // "web": answers with the pod's name and the address it saw the client at (source
      // preservation); "sink": counts what it receives (large transfers).
      pid = start("web-" + n.node_name,
                  netns_exec(n.pod_netns, {"socat", "-t", "10", "TCP6-LISTEN:" + std::to_string(kPodWebPort) + ",ipv6only=0,fork,reuseaddr",
                                           "SYSTEM:echo " + n.pod_name + " $SOCAT_PEERADDR"}));
      if (!pid) return pid.error();
      pid = start("sink-" + n.node_name,
                  netns_exec(n.pod_netns, {"socat", "-t", "10", "TCP6-LISTEN:" + std::to_string(kPodSinkPort) + ",ipv6only=0,fork,reuseaddr",
                                           "SYSTEM:wc -c"}));
      if (!pid) return pid.error();
      progress_.note(n.pod_name + " " + address + " on " + n.node_name);
    }
  }
  return save();
}

Result<void> LabBuilder::start_dns() {
  for (const auto& c : lab_.clusters) {
    const auto& n = c.dns_node();
    const std::string dns_addr = n.underlay_ip + "@" + std::to_string(kDnsServerPort);
    if (bin_.have_dns) {
      auto pid = start("dns-" + c.id, netns_exec(n.netns, {bin_.dns, "--cluster-id", c.id, "--kubeconfig",
                                                           component_kubeconfig(lab_, c, "dns"), "--address", n.underlay_ip, "--port",
                                                           std::to_string(kDnsServerPort), "--threads", "1",
                                                           "--health-address", "127.0.0.1", "--health-port", "0"}));
      if (!pid) return pid.error();
    }
    const std::string dir = lab_.state_dir + "/unbound";
    const std::string conf = dir + "/" + c.id + ".conf";
    std::ostringstream text;
    text << "server:\n"
                        << "  interface: " << n.underlay_ip << "@" << kResolverPort << "\n"
                        << "  interface: " << n.underlay_ip6 << "@" << kResolverPort << "\n"
                        << "  do-daemonize: no\n  chroot: \"\"\n  username: \"\"\n"
                        << "  directory: \"" << dir << "\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n"
                        << "  do-ip6: yes\n  access-control: 0.0.0.0/0 allow\n  access-control: ::/0 allow\n"
                        << "  do-not-query-localhost: no\n"
                        << "  module-config: \"iterator\"\n  domain-insecure: \"clusterset.local.\"\n"
                        << "  serve-expired: no\n  infra-host-ttl: 5\n"
                        << "forward-zone:\n  name: \"clusterset.local.\"\n  forward-addr: " << dns_addr << "\n"
                        << "forward-zone:\n  name: \".\"\n  forward-addr: " << dns_addr << "\n"
                        << "remote-control:\n  control-enable: no\n";
    if (auto w = write_text(conf, text.str()); !w) return w;
    auto check = run({"unbound-checkconf", conf}, {.timeout = seconds(10)});
    if (!check.ok()) return fail("unbound-checkconf " + conf + ": " + check.summary());
    auto pid = start("unbound-" + c.id, netns_exec(n.netns, {"unbound", "-d", "-c", conf}));
    if (!pid) return pid.error();
  }
  for (const auto& c : lab_.clusters) {
    const auto& n = c.dns_node();
    if (bin_.have_dns) {
      const bool listening = wait_until(
          [&] { return read_file_or_empty(lab_.log_path("dns-" + c.id)).find("listening on") != std::string::npos; },
          seconds(10));
      if (listening) state_.dns = true;
      else progress_.note("cw-dns of " + c.id + " is not serving:" + log_tail("dns-" + c.id));
    }
    const bool up = wait_until(
        [&] {
          return in_netns(n.netns, {"dig", "@" + n.underlay_ip, "+time=1", "+tries=1", "localhost", "A"},
                          seconds(3))
              .ok();
        },
        seconds(10), milliseconds(200));
    if (!up) return fail("unbound of " + c.id + " does not answer" + log_tail("unbound-" + c.id));
  }
  if (!bin_.have_dns) {
    state_.notes = "cw-dns is not built (" + bin_.dns + " is missing): names in clusterset.local do not resolve";
    progress_.note(state_.notes);
  }
  return save();
}

// The Pod objects of the lab's pods, as a kubelet would report them: where they run, their
// address, Running and Ready. Pods on the first two nodes of a cluster back the demo Service
// "web"; c1-n1's pod backs "echo".
json pod_object(const NodeLayout& n, const std::vector<std::string>& ips) {
  json pod_ips = json::array();
  for (const auto& ip : ips) pod_ips.push_back({{"ip", ip}});
  json labels = {{"lab.clusterwire.io/node", n.node_name}};
  if (n.index <= 2) labels["app"] = "web";
  if (n.cluster == 1 && n.index == 1) labels["demo.clusterwire.io/echo"] = "true";
  const json ports = json::array({{{"name", "http"}, {"containerPort", kPodWebPort}, {"protocol", "TCP"}},
                                  {{"name", "echo"}, {"containerPort", kPodEchoPort}, {"protocol", "TCP"}},
                                  {{"name", "sink"}, {"containerPort", kPodSinkPort}, {"protocol", "TCP"}}});
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", n.pod_name}, {"namespace", "demo"}, {"labels", labels}}},
          {"spec", {{"nodeName", n.node_name}, {"containers", json::array({{{"name", "socat"}, {"image", "cwlab/socat"}, {"ports", ports}}})}}},
          {"status",
           {{"phase", "Running"},
            {"hostIP", n.underlay_ip},
            {"podIP", ips.empty() ? "" : ips.front()},
            {"podIPs", pod_ips},
            {"conditions", json::array({{{"type", "Ready"}, {"status", "True"}}})},
            {"containerStatuses", json::array({{{"name", "socat"}, {"image", "cwlab/socat"}, {"ready", true},
                                                {"started", true}, {"restartCount", 0},
                                                {"state", {{"running", json::object()}}}}})}}}};
}

Result<void> LabBuilder::apply_demo() {
  // The Pods, then the stand-ins that turn them into EndpointSlices and kube-proxy rules.
  for (const auto& c : lab_.clusters) {
    json pods = json::array();
    for (const auto& n : c.nodes) pods.push_back(pod_object(n, pod_addresses(n)));
    if (auto r = kubectl_apply(lab_, c, pods); !r) return r;
    for (const auto& pod : pods) {  // status is the kubelet's, through the status subresource
      auto r = kubectl(lab_, c, {"patch", "pod", "-n", "demo", pod["metadata"]["name"].get<std::string>(),
                                 "--subresource=status", "--type=merge", "-p", json{{"status", pod["status"]}}.dump()});
      if (!r.ok()) return fail("the status of Pod " + pod["metadata"]["name"].get<std::string>() + ": " + r.summary());
    }
  }
  std::error_code ec;
  const std::string self = fs::read_symlink("/proc/self/exe", ec).string();
  if (ec) return fail("cannot find cwctl's own binary: " + ec.message());
  for (const auto& c : lab_.clusters) {
    auto pid = start("services-" + c.id, netns_exec(lab_.underlay_netns, {self, "lab", "--name", lab_.name, "services", c.id}));
    if (!pid) return pid.error();
  }
  const json echo_port = {{"name", "echo"}, {"port", kPodEchoPort}, {"targetPort", "echo"}, {"protocol", "TCP"}};
  const json web_port = {{"name", "http"}, {"port", 80}, {"targetPort", "http"}, {"protocol", "TCP"}};
  auto service = [](const std::string& name, const json& spec) {
    return json{{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", {{"name", name}, {"namespace", "demo"}}}, {"spec", spec}};
  };
  auto service_export = [](const std::string& name) {
    return json{{"apiVersion", "multicluster.x-k8s.io/v1alpha1"},
                {"kind", "ServiceExport"},
                {"metadata", {{"name", name}, {"namespace", "demo"}}}};
  };
  for (const auto& c : lab_.clusters) {
    json objects = json::array({service("web", {{"selector", {{"app", "web"}}}, {"ports", json::array({web_port})}})});
    if (c.index == 1) {
      objects.push_back(service("echo", {{"clusterIP", "None"},
                                         {"selector", {{"demo.clusterwire.io/echo", "true"}}},
                                         {"ports", json::array({echo_port})}}));
      objects.push_back(service_export("echo"));
    }
    if (c.index <= 2) objects.push_back(service_export("web"));
    if (auto r = kubectl_apply(lab_, c, objects); !r) return r;
  }
  // Ready when every cluster's first pod reaches its own web ClusterIP through kube-proxy's rules
  // (IPv4: an IPv6-only lab has no ClusterIP its pods can reach).
  for (const auto& c : lab_.clusters) {
    if (o_.ip_family == "ipv6") break;
    auto svc = kubectl_get_json(lab_, c, {"service", "web", "-n", "demo"});
    if (!svc) return svc.error();
    const std::string ip = svc->value("spec", json::object()).value("clusterIP", "");
    state_.web_ips[c.id] = ip;
    const auto& n = c.nodes.front();
    const bool served = wait_until(
        [&] {
          return in_netns(n.pod_netns, {"socat", "-T", "2", "-", "TCP:" + ip + ":80,connect-timeout=1"}, seconds(5)).out.find(
                     "-pod ") != std::string::npos;
        },
        seconds(20), milliseconds(200));
    if (!served) return fail("web." + c.id + " (" + ip + ":80) is not served through the kube-proxy stand-in" + log_tail("services-" + c.id));
  }
  progress_.note(o_.ip_family == "ipv6" ? "Pods and EndpointSlices written (IPv6 only: no ClusterIP is served)"
                                        : "Pods and EndpointSlices written; kube-proxy's rules serve web:80 in every cluster");
  return save();
}

bool pod_pings(const NodeLayout& from, const std::string& ip, const char* wait = "1") {
  return in_netns(from.pod_netns, {"ping", "-n", "-q", "-c", "1", "-W", wait, ip}, seconds(5)).ok();
}

Result<void> LabBuilder::apply_peerings() {
  // Every cluster peers with every other; the pair that becomes complete last is (any cluster,
  // the last one), when the last cluster's ClusterPeerings are applied. The clock starts when
  // that apply starts (the API server accepts the objects during kubectl's run, whose own
  // ~0.1 s is therefore included: an upper bound) and stops at the first ping reply from
  // c1-n1's pod to the last cluster's first pod.
  auto applied = std::chrono::steady_clock::now();
  for (const auto& c : lab_.clusters) {
    applied = std::chrono::steady_clock::now();
    json objects = json::array();
    for (const auto& other : lab_.clusters) {
      if (other.id == c.id) continue;
      objects.push_back({{"apiVersion", "clusterwire.io/v1alpha1"},
                         {"kind", "ClusterPeering"},
                         {"metadata", {{"name", other.id}}},
                         {"spec", {{"remoteClusterID", other.id}}}});
    }
    if (auto r = kubectl_apply(lab_, c, objects); !r) return r;
  }
  const auto& from = lab_.clusters.front().nodes.front();
  const auto& to = lab_.clusters.back().nodes.front();
  const std::string to_ip = pod_addresses(to).empty() ? "" : pod_addresses(to).front();
  if (!wait_until([&] { return pod_pings(from, to_ip, "0.5"); }, seconds(60), milliseconds(50))) {
    return fail("no ping from " + from.pod_name + " to " + to.pod_name + " (" + to_ip +
                ") within 60 s of the peerings" + log_tail("node-agent-" + from.node_name));
  }
  state_.convergence_ms =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - applied).count();
  // Then every pod to every pod of the other clusters, so that verify starts from a settled lab.
  // (from, to, the address pinged): every family.
  std::vector<std::tuple<const NodeLayout*, const NodeLayout*, std::string>> pending;
  for (const auto& c : lab_.clusters) {
    for (const auto& n : c.nodes) {
      for (const auto& oc : lab_.clusters) {
        if (oc.id == c.id) continue;
        for (const auto& on : oc.nodes) {
          for (const auto& a : pod_addresses(on)) pending.emplace_back(&n, &on, a);
        }
      }
    }
  }
  const std::size_t pairs = pending.size();
  wait_until(
      [&] {
        std::erase_if(pending, [&](const auto& p) { return pod_pings(*std::get<0>(p), std::get<2>(p)); });
        return pending.empty();
      },
      seconds(30), milliseconds(100));
  if (!pending.empty()) {
    std::string list;
    for (const auto& [a, b, addr] : pending) list += "\n    " + a->pod_name + " -> " + b->pod_name + " " + addr;
    return fail(std::to_string(pending.size()) + " of " + std::to_string(pairs) +
                " cross-cluster pod pairs do not reach each other 30 s after the first did:" + list +
                log_tail("node-agent-" + std::get<0>(pending.front())->node_name));
  }
  progress_.note("every pod pings every pod of the other clusters, every family (" + std::to_string(pairs) + " pairs)");
  return save();
}

Result<void> LabBuilder::build() {
  struct Step {
    const char* what;
    Result<void> (LabBuilder::*run)();
  };
  if (auto r = check_host(); !r) return r;
  if (auto r = make_state_dir(); !r) return r;
  const Step steps[] = {
      {"namespaces, underlay bridge and veths", &LabBuilder::make_namespaces},
      {"lab API servers (one per cluster; c1 is also the broker)", &LabBuilder::start_api_servers},
      {"CRDs, broker ClusterSet, Nodes (kubectl apply)", &LabBuilder::apply_base_objects},
      {"the chart's ServiceAccounts and RBAC (helm template), a token per component", &LabBuilder::apply_rbac},
      {"operators (two leader-elected replicas per cluster)", &LabBuilder::start_operators},
      {"node pod CIDRs from the operators", &LabBuilder::wait_node_cidrs},
      {"the cluster's own CNI routing and masquerade (--cni)", &LabBuilder::start_cni},
      {"WireGuard devices", &LabBuilder::start_wireguard},
      {"node agents", &LabBuilder::start_node_agents},
      {"pods (CNI bridge, host-local, loopback) with TCP echo servers", &LabBuilder::make_pods},
      {"DNS: cw-dns and unbound per cluster", &LabBuilder::start_dns},
      {"demo: Pods, Services echo (c1) and web (c1, c2, exported), EndpointSlices and kube-proxy rules",
       &LabBuilder::apply_demo},
      {"ClusterPeerings (kubectl apply), waiting for the first cross-cluster packet", &LabBuilder::apply_peerings},
  };
  for (const auto& step : steps) {
    progress_.begin(step.what);
    auto r = (this->*step.run)();
    if (const int sig = interrupt_signal(); sig != 0) {
      progress_.end("INTERRUPTED");
      return Error(ErrorCode::kUnavailable, std::string("interrupted by ") + (sig == SIGINT ? "SIGINT" : "SIGTERM"));
    }
    if (!r) {
      progress_.end("FAILED");
      return r;
    }
    progress_.end(step.run == &LabBuilder::start_wireguard ? "ok, " + std::string(state_.backend == "kernel"
                                                                                        ? "kernel WireGuard"
                                                                                        : "wireguard-go (userspace)")
                  : step.run == &LabBuilder::apply_peerings ? "ok, converged in " + std::to_string(state_.convergence_ms) + " ms"
                                                            : "ok");
  }
  state_.phase = "up";
  return save();
}

void print_summary(const LabLayout& lab, const LabState& s, std::ostream& out) {
  out << "\nlab " << lab.name << " is up: " << lab.clusters.size() << " clusters x " << s.nodes << " nodes, CNI world "
      << s.cni << ", underlay MTU " << s.underlay_mtu << ", "
      << (s.backend == "kernel" ? "kernel WireGuard" : "wireguard-go") << ", first ping " << lab.clusters.front().id
      << " -> " << lab.clusters.back().id << " " << s.convergence_ms << " ms after the last ClusterPeering apply\n";
  for (const auto& c : lab.clusters) {
    out << "  cluster " << c.id << ": services " << c.service_cidr << ", API https://" << kUnderlayGateway << ":"
        << c.api_port << (c.index == 1 ? " (also the broker)" : "") << ", resolver " << c.dns_node().underlay_ip
        << "\n";
    for (const auto& n : c.nodes) {
      auto cidr = s.node_cidrs.find(n.node_name);
      auto ip = s.pod_ips.find(n.node_name);
      out << "    " << n.node_name << "  " << n.underlay_ip << "  pods " << (cidr != s.node_cidrs.end() ? cidr->second : "?")
          << "  " << n.pod_name << " " << (ip != s.pod_ips.end() ? ip->second : "?") << "  wg " << n.wg_interface << "\n";
    }
  }
  if (!s.notes.empty()) out << "note: " << s.notes << "\n";
  const auto& c1 = lab.clusters.front();
  out << "\nkubectl (the API servers listen inside " << lab.underlay_netns << "):\n"
      << "  cwctl lab kubectl --name " << lab.name << " " << c1.id << " -- get clusterpeerings\n"
      << "  ip netns exec " << lab.underlay_netns << " kubectl --kubeconfig " << lab.kubeconfig(c1) << " get nodes\n"
      << "a pod's shell:  ip netns exec " << c1.nodes.front().pod_netns << " bash\n"
      << "next:  cwctl lab verify --name " << lab.name << "   |   cwctl lab status --name " << lab.name
      << "   |   cwctl lab down --name " << lab.name << "\n";
}

}  // namespace

int lab_up(const LabOptions& options, std::ostream& out, std::ostream& err) {
  ignore_sigpipe();
  const bool nat = options.world == "nat";
  const int gateways = nat ? (options.gateways < 0 ? std::min(2, options.nodes) : options.gateways)
                           : std::max(0, options.gateways);
  auto lab = make_layout(options.name, options.clusters, options.nodes, nat, gateways);
  if (!lab) {
    err << "cwctl lab up: " << lab.error().message() << "\n";
    return 2;
  }
  catch_interrupts();  // from here, SIGINT and SIGTERM end up in the clean-up below
  if (auto cni = parse_cni(options.cni); !cni) {
    err << "cwctl lab up: " << cni.error().message() << "\n";
    return 2;
  }
  out << "cwctl lab up: lab " << lab->name << ", " << options.clusters << " clusters x " << options.nodes
      << " nodes, --cni " << options.cni << ", state in " << lab->state_dir << "\n";
  LabBuilder builder(options, *lab, out);
  auto r = builder.build();
  const int sig = interrupt_signal();
  release_interrupts();  // a second Ctrl-C during the clean-up stops cwctl at once
  if (!r) {
    err << "cwctl lab up: " << r.error().message() << "\n";
    if (!builder.created_anything()) return 1;  // refused before making anything (exists, root, tools)
    if (options.keep_on_failure && sig == 0) {
      err << "the lab is left as it is for a look (--keep-on-failure; logs in " << lab->state_dir
          << "/logs); `cwctl lab --name " << lab->name << " down` removes it\n";
      return 1;
    }
    err << "removing what up made" << (sig != 0 ? "" : " (--keep-on-failure keeps it for a look)") << ":\n";
    if (remove_lab(lab->name, err, err) != 0) {
      err << "cwctl lab up: the clean-up was incomplete: `cwctl lab --name " << lab->name << " down` again\n";
    }
    return sig != 0 ? 128 + sig : 1;
  }
  print_summary(*lab, builder.state(), out);
  return 0;
}

}  // namespace cw::lab
