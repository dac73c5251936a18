// An informer over 5,000 Nodes from the lab API server (TLS on loopback, server in process),
// on each of the server's stores: in memory, and on etcd (as the lab runs it; Debian's
// etcd-server, its data on disk under --etcd-dir). Prints, each beside a baseline measured in
// the same run:
//   - time to a synced cache      vs a bare paged list of the same objects (no cache);
//   - watch events applied per s  vs a bare watch stream reading the same events;
//   - memory: resident size before and after the cache fills, and the peak;
// and then the etcd store's figures beside the in-memory store's.
//
// Run: ./scripts/bench.sh informer   (or build-bench/bench/informer_bench [--nodes N] [--etcd-dir D])
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <unistd.h>
#include <fstream>
#include <string>
#include <thread>

#include "common/kube/informer.h"
#include "lab/apiserver/api_server.h"
#include "lab/apiserver/etcd.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using cw::kube::json;
namespace res = cw::kube::resources;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// From /proc/self/status: "VmRSS" (now) or "VmHWM" (peak), in MiB.
double memory_mib(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return std::stod(line.substr(line.find(':') + 1)) / 1024.0;
  }
  return 0;
}

// A Node about the size of a real one's interesting parts (~1.5 KB of JSON).
json make_node(int i) {
  const std::string name = "node-" + std::to_string(10000 + i);
  json conditions = json::array();
  for (const char* t : {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}) {
    conditions.push_back({{"type", t}, {"status", std::string(t) == "Ready" ? "True" : "False"},
                          {"lastHeartbeatTime", "2026-11-21T09:00:00Z"},
                          {"reason", "KubeletReady"}, {"message", "kubelet is posting ready status"}});
  }
  return {{"apiVersion", "v1"}, {"kind", "Node"},
          {"metadata", {{"name", name},
                        {"labels", {{"kubernetes.io/hostname", name}, {"kubernetes.io/os", "linux"},
                                    {"topology.kubernetes.io/zone", "zone-" + std::to_string(i % 3)}}},
                        {"annotations", {{"clusterwire.io/public-key", "9YtV7g8b1oV6YQe0fM0cZ3y8Jm3x7b2KZ0v5yq3u8Xo="},
                                         {"clusterwire.io/endpoint", "192.0.2." + std::to_string(i % 250) + ":51820"}}}}},
          {"spec", {{"podCIDR", "10.64." + std::to_string(i % 256) + ".0/24"}}},
          {"status", {{"addresses", {{{"type", "InternalIP"}, {"address", "192.0.2." + std::to_string(i % 250)}},
                                     {{"type", "Hostname"}, {"address", name}}}},
                      {"conditions", conditions},
                      {"nodeInfo", {{"kubeletVersion", "v1.32.0"}, {"osImage", "Debian GNU/Linux 12"}}}}}};
}

struct Figures {
  double populate_s = 0, bare_list_s = 0, sync_s = 0, write_s = 0, informer_eps = 0, bare_eps = 0;
  bool complete = false;
};

std::optional<Figures> measure(int nodes, const std::string& etcd_url) {
  Figures f;
  cw::lab::ApiServerOptions so;
  so.history_limit = static_cast<std::size_t>(nodes) * 3;
  so.etcd_url = etcd_url;
  auto started = cw::lab::ApiServer::start(so);
  if (!started) {
    std::fprintf(stderr, "server: %s\n", started.error().message().c_str());
    return std::nullopt;
  }
  auto server = std::move(*started);
  cw::kube::ClusterConnection conn;
  conn.server = server->url();
  conn.ca_pem = server->ca_pem();
  conn.token = "lab-admin-token";
  auto client = cw::kube::Client::create(conn).value();

  std::printf("\nInformer over %d Nodes from the lab API server (TLS on loopback, in process), store: %s\n", nodes,
              server->store().describe().c_str());
  auto t0 = Clock::now();
  for (int i = 0; i < nodes; ++i) {
    if (auto r = client->create(res::kNodes, "", make_node(i)); !r) {
      std::fprintf(stderr, "populate failed at %d: %s\n", i, r.error().message().c_str());
      return std::nullopt;
    }
  }
  f.populate_s = seconds_since(t0);
  std::printf("  populated with %d creates in %.2f s (%.0f/s)\n", nodes, f.populate_s, nodes / f.populate_s);
  // Baseline 1: a bare paged list, objects parsed, nothing cached.
  t0 = Clock::now();
  std::size_t listed = 0;
  cw::kube::ListOptions lo{.limit = 500};
  while (true) {
    auto page = client->list(res::kNodes, "", lo).value();
    listed += page["items"].size();
    lo.continue_token = page["metadata"].value("continue", "");
    if (lo.continue_token.empty()) break;
  }
  const double bare_list_s = f.bare_list_s = seconds_since(t0);

  const double rss_before = memory_mib("VmRSS");
  cw::SystemClock clock;
  cw::kube::Informer informer(*client, {.resource = res::kNodes, .page_size = 500}, clock);
  std::atomic<int> updates{0};
  std::atomic<Clock::rep> informer_done{0};  // when the last change reached the handlers
  informer.add_handlers({.on_update = [&](const json&, const json&) {
    if (++updates == nodes) informer_done = Clock::now().time_since_epoch().count();
  }});
  t0 = Clock::now();
  informer.start();
  if (!informer.wait_for_sync(120s)) {
    std::fprintf(stderr, "informer did not sync\n");
    return std::nullopt;
  }
  const double sync_s = f.sync_s = seconds_since(t0);
  const double rss_synced = memory_mib("VmRSS");

  // The same burst of changes for both readers: written into the store directly, so that
  // the writer is never the bottleneck; then read back by a bare watch and by the informer.
  const std::string from_rv = std::to_string(server->store().current_rv());
  auto bare = client->watch(res::kNodes, "", {.resource_version = from_rv, .allow_bookmarks = false}).value();
  t0 = Clock::now();
  for (int i = 0; i < nodes; ++i) {
    const cw::lab::ObjectKey key{"nodes", "", "node-" + std::to_string(10000 + i)};
    json node = server->store().get(key).value();
    node["metadata"]["annotations"]["clusterwire.io/heartbeat"] = std::to_string(i);
    (void)server->store().update(key, std::move(node), std::nullopt);
  }
  const double write_s = f.write_s = seconds_since(t0);

  // Both readers consume while the writes go on; each is timed from the first write to the
  // moment it has the last change.
  const auto read_start = t0;
  int bare_events = 0;
  while (bare_events < nodes) {
    auto e = bare->next(30s);
    if (!e.ok() || !e->has_value()) break;
    ++bare_events;
  }
  const double bare_watch_s = seconds_since(read_start);
  while (updates.load() < nodes && seconds_since(read_start) < 120) std::this_thread::sleep_for(1ms);
  const double informer_watch_s =
      std::chrono::duration<double>(Clock::time_point(Clock::duration(informer_done.load())) - read_start).count();

  const double informer_eps = f.informer_eps = updates.load() / informer_watch_s;
  const double bare_eps = f.bare_eps = bare_events / bare_watch_s;
  std::printf("\n  %-34s %12s %12s %10s\n", "", "informer", "baseline", "ratio");
  std::printf("  %-34s %11.3fs %11.3fs %9.2fx   (baseline: bare paged list, %zu objects)\n",
              "time to a synced cache", sync_s, bare_list_s, sync_s / bare_list_s, listed);
  std::printf("  %-34s %11.0f/s %10.0f/s %9.2fx   (baseline: bare watch stream, %d events)\n",
              "watch events applied", informer_eps, bare_eps, informer_eps / bare_eps, bare_events);
  std::printf("  (the %d changes were written into the server in %.3f s, %.0f/s, while both read;\n"
              "   each reader is timed from the first write to holding the last change)\n",
              nodes, write_s, nodes / write_s);
  std::printf("\n  memory: resident %.1f MiB before the informer, %.1f MiB synced (+%.1f MiB for %zu "
              "cached Nodes, server included in the process); peak %.1f MiB\n",
              rss_before, rss_synced, rss_synced - rss_before, informer.size(), memory_mib("VmHWM"));
  informer.stop();
  const bool ok = informer.size() == static_cast<std::size_t>(nodes) && updates.load() >= nodes;
  std::printf("  %s\n", ok ? "cache complete: every Node and every change seen" : "INCOMPLETE");
  f.complete = ok;
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  int nodes = 5000;
  std::string etcd_dir = "/var/tmp";  // on disk, as a real etcd's data
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--nodes") nodes = std::stoi(argv[i + 1]);
    if (std::string(argv[i]) == "--etcd-dir") etcd_dir = argv[i + 1];
  }
  auto memory = measure(nodes, "");
  const std::string dir = etcd_dir + "/cw-informer-bench-etcd-" + std::to_string(::getpid());
  auto etcd = cw::lab::EtcdProcess::start(dir + "/data", dir + ".log");
  if (!etcd) {
    std::fprintf(stderr, "etcd: %s\n", etcd.error().message().c_str());
    return 1;
  }
  auto on_etcd = measure(nodes, (*etcd)->url());
  etcd->reset();
  std::filesystem::remove_all(dir);
  std::filesystem::remove(dir + ".log");
  if (!memory || !on_etcd) return 1;
  std::printf("\nThe etcd store beside the in-memory store (%d Nodes; etcd's data in %s)\n", nodes, etcd_dir.c_str());
  std::printf("  %-34s %12s %12s %10s\n", "", "etcd", "memory", "ratio");
  auto row = [](const char* what, double e, double m, const char* unit) {
    std::printf("  %-34s %10.3f%-2s %10.3f%-2s %9.2fx\n", what, e, unit, m, unit, e / m);
  };
  row("populate (creates through the API)", on_etcd->populate_s, memory->populate_s, "s");
  row("bare paged list", on_etcd->bare_list_s, memory->bare_list_s, "s");
  row("time to a synced cache", on_etcd->sync_s, memory->sync_s, "s");
  row("changes written into the store", on_etcd->write_s, memory->write_s, "s");
  std::printf("  %-34s %10.0f/s %10.0f/s %9.2fx\n", "watch events applied (informer)", on_etcd->informer_eps,
              memory->informer_eps, on_etcd->informer_eps / memory->informer_eps);
  std::printf("  %-34s %10.0f/s %10.0f/s %9.2fx\n", "bare watch stream", on_etcd->bare_eps, memory->bare_eps,
              on_etcd->bare_eps / memory->bare_eps);
  std::printf("  (reads, lists and watches come from the server's cache on both; writes go to etcd first)\n");
  return memory->complete && on_etcd->complete ? 0 : 1;
}
