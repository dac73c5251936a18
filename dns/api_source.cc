#include "dns/api_source.h"

#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "common/kube/informer.h"
#include "common/kube/mcs_api.h"
#include "dns/snapshot.h"

namespace cw::dns {
namespace {
const kube::Resource kClusterPeerings{"clusterwire.io", "v1alpha1", "clusterpeerings", false};
}  // namespace

struct ApiSource::Impl {
  kube::Client& local;
  std::shared_ptr<ServiceZone> zone;
  ApiSourceOptions options;
  Clock& clock;
  log::Logger log;

  std::unique_ptr<kube::Informer> imports, slices, peerings;

  mutable std::mutex mu;
  std::condition_variable cv;
  bool dirty = true;
  bool stopping = false;
  bool was_synced = false;
  ApiSourceStats stats;
  std::string last_skipped;
  std::optional<ZoneSnapshot> last_snapshot;  // the rebuild thread's only
  std::thread rebuilder;

  Impl(kube::Client& l, std::shared_ptr<ServiceZone> z, ApiSourceOptions o, Clock& c, log::Logger lg)
      : local(l), zone(std::move(z)), options(std::move(o)), clock(c), log(std::move(lg)) {}

  void mark_dirty() {
    {
      std::lock_guard lock(mu);
      dirty = true;
    }
    cv.notify_one();
  }

  void start() {
    auto make = [&](const kube::Resource& r, std::string selector) {
      return std::make_unique<kube::Informer>(
          local,
          kube::InformerOptions{.resource = r, .label_selector = std::move(selector), .resync_period = options.resync_period},
          clock);
    };
    imports = make(kube::mcs::kServiceImports, "");
    slices = make(kube::resources::kEndpointSlices, kube::mcs::kServiceNameLabel);  // imported slices only
    peerings = make(kClusterPeerings, "");
    for (auto* inf : {imports.get(), slices.get(), peerings.get()}) {
      inf->add_handlers({.on_add = [this](const nlohmann::json&) { mark_dirty(); },
                         .on_update = [this](const nlohmann::json&, const nlohmann::json&) { mark_dirty(); },
                         .on_delete = [this](const nlohmann::json&) { mark_dirty(); }});
      inf->start();
    }
    rebuilder = std::thread([this] { run(); });
  }

  bool all_synced() const { return imports->has_synced() && slices->has_synced() && peerings->has_synced(); }

  void run() {
    std::unique_lock lock(mu);
    while (!stopping) {
      // Wake on a change, or every 200 ms until synced (a sync is not an event).
      cv.wait_for(lock, std::chrono::milliseconds(200), [this] { return stopping || (dirty && was_synced); });
      if (stopping) break;
      if (!all_synced()) {
        std::vector<std::string> waiting;
        const std::pair<const char*, const kube::Informer*> all[] = {
            {"ServiceImports", imports.get()}, {"EndpointSlices", slices.get()}, {"ClusterPeerings", peerings.get()}};
        for (const auto& [what, inf] : all) {
          if (inf->has_synced()) continue;
          const auto s = inf->stats();
          waiting.push_back(std::string(what) + (s.last_error.empty() ? ": listing" : ": " + s.last_error));
        }
        stats.waiting = std::move(waiting);
        continue;
      }
      if (!was_synced) {
        was_synced = true;
        stats.waiting.clear();
        log.info("caches synced: serving the clusterset's Services");
      }
      if (!dirty) continue;
      dirty = false;
      lock.unlock();
      rebuild();
      std::this_thread::sleep_for(options.debounce);  // let a burst of events land
      lock.lock();
    }
  }

  void rebuild() {
    SnapshotInput in{options.cluster_id, imports->list(), slices->list(), peerings->list()};
    BuiltSnapshot built = build_snapshot(in);
    // An informer's resync replays everything: an unchanged snapshot must not bump the SOA
    // serial or empty every worker's answer cache.
    if (!last_snapshot || !(*last_snapshot == built.snapshot)) {
      zone->update(built.snapshot);
      last_snapshot = built.snapshot;
    }
    std::string skipped;
    for (const auto& s : built.skipped) skipped += s + "\n";
    std::lock_guard lock(mu);
    stats.synced = true;
    stats.rebuilds++;
    stats.services = built.snapshot.services.size();
    if (skipped != last_skipped) {
      for (const auto& s : built.skipped) log.warn("left out of the zone", {{"why", s}});
      last_skipped = skipped;
    }
    stats.skipped = std::move(built.skipped);
  }

  void stop() {
    {
      std::lock_guard lock(mu);
      if (stopping) return;
      stopping = true;
    }
    cv.notify_all();
    if (rebuilder.joinable()) rebuilder.join();
    for (auto* inf : {imports.get(), slices.get(), peerings.get()}) {
      if (inf) inf->stop();
    }
  }
};

ApiSource::ApiSource(kube::Client& local, std::shared_ptr<ServiceZone> zone, ApiSourceOptions options, Clock& clock,
                     log::Logger logger)
    : impl_(std::make_unique<Impl>(local, std::move(zone), std::move(options), clock, std::move(logger))) {}

ApiSource::~ApiSource() { stop(); }

void ApiSource::start() { impl_->start(); }
void ApiSource::stop() { impl_->stop(); }

ApiSourceStats ApiSource::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

}  // namespace cw::dns
