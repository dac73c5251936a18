// An informer keeps a local cache of one kind of object in step with the API server, the
// way client-go's reflector + DeltaFIFO + indexer do:
//
//   list (paged) → replace the cache → watch from the list's resourceVersion → apply events
//   connection dropped or watch ended → watch again from the last resourceVersion seen
//                                       (events and BOOKMARKs both advance it)
//   410 Gone (a response, or an ERROR event) → list again and replace the cache, telling
//                                       handlers what was added, changed or deleted meanwhile
//   other failures → back off (exponentially, capped) and try again
//
// Handlers run on one dispatcher thread, in order, never concurrently with each other, and
// never under the cache's lock (they may read the cache). With a resync period, every cached
// object is handed to on_update(obj, obj) that often, so level-triggered controllers re-check
// the world even when nothing changed.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/base/clock.h"
#include "common/kube/client.h"

namespace cw::kube {

struct InformerOptions {
  Resource resource;
  std::string ns;  // "" for all namespaces (or a cluster-scoped resource)
  std::string label_selector;
  std::string field_selector;
  std::chrono::milliseconds resync_period{0};  // 0: never
  std::int64_t page_size = 500;
  std::chrono::seconds watch_timeout{300};  // asked of the server; a watch then ends cleanly
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{std::chrono::seconds(30)};
  // Called on the informer's thread when its requests start failing (true) or succeed again
  // (false): the cache is then going stale, or fresh again. Must not block.
  std::function<void(bool failing)> on_connection_change;
};

struct InformerHandlers {
  std::function<void(const json& object)> on_add;
  std::function<void(const json& old, const json& now)> on_update;
  std::function<void(const json& last)> on_delete;
};

class Informer {
 public:
  Informer(Client& client, InformerOptions options, Clock& clock);
  ~Informer();  // stops
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Before start().
  void add_handlers(InformerHandlers handlers);
  void start();
  void stop();

  // True once the first list is in the cache and its handlers have run.
  bool has_synced() const;
  bool wait_for_sync(std::chrono::milliseconds timeout) const;

  std::optional<json> get(const std::string& ns, const std::string& name) const;
  std::vector<json> list() const;  // ordered by namespace, then name
  std::size_t size() const;

  struct Stats {
    std::uint64_t lists = 0;             // full relists, the first one included
    std::uint64_t watches = 0;           // watch requests started
    std::uint64_t gone = 0;              // 410s that forced a relist
    std::uint64_t errors = 0;            // failed requests (then backed off)
    std::uint64_t events = 0;            // watch events applied
    std::string resource_version;        // last seen
    std::string last_error;
    bool failing = false;                // the last request failed; none succeeded since
  };
  Stats stats() const;

 private:
  struct Notification {
    enum class Kind { kAdd, kUpdate, kDelete } kind;
    json old_object;
    json object;
  };

  void run();
  void dispatch_loop();
  bool relist();
  void watch_once();
  void apply(const WatchEvent& event);
  void notify(Notification n);
  void backoff();
  void record_error(const Error& error);
  void set_failing(bool failing);  // called without mu_ held
  static std::string key_of(const json& object);

  Client& client_;
  InformerOptions options_;
  Clock& clock_;
  std::vector<InformerHandlers> handlers_;

  mutable std::mutex mu_;  // guards everything below
  mutable std::condition_variable cv_;
  std::map<std::string, json> cache_;
  Stats stats_;
  bool synced_ = false;      // the first list's notifications have been dispatched
  bool listed_ = false;      // the first list is in the cache
  std::uint64_t pending_sync_mark_ = 0;
  std::deque<Notification> notifications_;
  std::uint64_t dispatched_ = 0;
  std::uint64_t enqueued_ = 0;
  bool stopping_ = false;
  std::chrono::milliseconds current_backoff_{0};
  WatchStream* active_watch_ = nullptr;

  std::thread watch_thread_;
  std::thread dispatch_thread_;
  std::atomic<bool> started_{false};
};

}  // namespace cw::kube
