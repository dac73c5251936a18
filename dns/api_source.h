// Feeds a ServiceZone from the local Kubernetes API: informers on ServiceImports, on the
// imported EndpointSlices (those labelled multicluster.kubernetes.io/service-name) and on
// ClusterPeerings; every change marks the zone stale, and one thread rebuilds the snapshot
// (dns/snapshot.h) and swaps it in, at most once per `debounce` so that a burst of events
// costs one rebuild. Nothing is served from an unsynced cache: until every informer has
// synced, the zone stays as it was (empty at start: NXDOMAIN, not guesses).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/base/clock.h"
#include "common/kube/client.h"
#include "common/log/log.h"
#include "dns/zone.h"

namespace cw::dns {

struct ApiSourceOptions {
  std::string cluster_id;
  std::chrono::milliseconds resync_period{std::chrono::seconds(60)};
  std::chrono::milliseconds debounce{std::chrono::milliseconds(20)};
};

struct ApiSourceStats {
  bool synced = false;
  std::uint64_t rebuilds = 0;
  std::size_t services = 0;           // in the zone now
  std::vector<std::string> skipped;   // objects left out of the last rebuild, and why
  std::vector<std::string> waiting;   // informers not synced yet, with their last error
};

class ApiSource {
 public:
  ApiSource(kube::Client& local, std::shared_ptr<ServiceZone> zone, ApiSourceOptions options, Clock& clock,
            log::Logger logger);
  ~ApiSource();
  ApiSource(const ApiSource&) = delete;
  ApiSource& operator=(const ApiSource&) = delete;

  void start();
  void stop();
  ApiSourceStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cw::dns
