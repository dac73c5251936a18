// The lab API server's storage: objects as JSON, versioned by one global resourceVersion as
// etcd's revision is, with a bounded history of changes that serves watches and paged lists.
//
// Semantics mirrored from Kubernetes (api-concepts):
// - every write takes the next resourceVersion and records an event (ADDED, MODIFIED,
//   DELETED) carrying the object after and before the change;
// - a watch from resourceVersion N replays the events after N, then follows live ones; N
//   older than the history kept is 410 Gone (reason Expired);
// - a list answers at one resourceVersion; a continued list (limit/continue) answers at the
//   first page's resourceVersion, rebuilt by undoing later events, or 410 if they are gone;
// - an update carrying a stale resourceVersion is 409 Conflict.
//
// Thread-safe: one mutex serialises writes and snapshots; watchers have their own queues.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/base/result.h"

namespace cw::lab {

using nlohmann::json;

// Where an object lives: its group-resource ("deployments.apps", "nodes"), namespace ("" when
// cluster-scoped) and name.
struct ObjectKey {
  std::string resource;
  std::string ns;
  std::string name;
};

struct StoreEvent {
  enum class Type { kAdded, kModified, kDeleted };
  Type type;
  std::uint64_t rv;
  ObjectKey key;
  json object;    // after the change (for kDeleted: the object as deleted)
  json previous;  // before the change (null for kAdded)
};
const char* to_string(StoreEvent::Type type);

// Decides whether an object belongs in a list or watch (label and field selectors).
using ObjectFilter = std::function<bool(const json& object)>;

// A live watch. The store pushes matching events; the reader pops them.
class Watcher {
 public:
  struct Item {
    std::string type;  // ADDED, MODIFIED, DELETED, or ERROR (object is a Status)
    json object;
  };
  // Waits up to `timeout` for the next event. nullopt on time-out; an ERROR item ends it.
  std::optional<Item> next(std::chrono::milliseconds timeout);
  // The resourceVersion up to which this watcher has been given every event (for bookmarks).
  std::uint64_t seen_rv() const;
  bool closed() const;

 private:
  friend class Store;
  void push(Item item, std::uint64_t rv);
  void close_with(Item error);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  std::uint64_t queued_rv_ = 0;  // rv of the newest event queued
  std::uint64_t seen_rv_ = 0;    // rv given out; equals queued_rv_ once drained
  bool closed_ = false;
  std::string resource_;
  std::string ns_;
  ObjectFilter filter_;
};

// Where a Store keeps its objects beyond its own memory: etcd (lab/apiserver/etcd.h). The
// Store's memory is then a cache of it, as kube-apiserver's watch cache is of etcd: every
// write goes to the backend first, in a transaction guarded by the revision the cache holds,
// and takes the backend's revision as its resourceVersion; the cache follows the backend's
// own watch, so writes by anyone else (a second API server on the same etcd, etcdctl) reach
// it too; reads, lists and watches are served from memory.
class StoreBackend {
 public:
  // One change, as etcd's watch reports it.
  struct Change {
    StoreEvent::Type type = StoreEvent::Type::kModified;
    ObjectKey key;
    json object;    // the value after the change; for kDeleted the value before
    json previous;  // the value before (null when created)
    std::uint64_t revision = 0;
  };
  struct Item {
    std::string resource;  // group-resource
    json object;           // metadata.resourceVersion set to the item's revision
  };
  struct Snapshot {
    std::vector<Item> items;
    std::uint64_t revision = 0;  // the backend's revision when read
  };
  virtual ~StoreBackend() = default;
  virtual Result<Snapshot> load() = 0;
  // Writes the object if the key's revision is `expected` (0: the key must not exist).
  // Returns the write's revision; kConflict when the key is not as expected; kInternal with
  // etcd's own message when the object is too large.
  virtual Result<std::uint64_t> put(const ObjectKey& key, const json& object, std::uint64_t expected) = 0;
  virtual Result<std::uint64_t> remove(const ObjectKey& key, std::uint64_t expected) = 0;
  // Forgets history up to `revision` (etcd's compaction).
  virtual Result<void> compact(std::uint64_t revision) = 0;
  // Every change after revision `after`, in revision order, handed to `apply` a batch at a
  // time, until the stream ends (it is reopened by the caller), fails (kUnavailable), is
  // compacted away (kGone), or stop_following() is called.
  virtual Result<void> follow(std::uint64_t after, const std::function<void(std::vector<Change>)>& apply) = 0;
  // From any thread: ends follow() promptly, now and for good.
  virtual void stop_following() = 0;
  virtual std::string describe() const = 0;
};

// etcd's limit on one request (--max-request-bytes, 1.5 MiB), which is what limits an object's
// size on a real cluster; the in-memory store refuses the same objects with the same error.
constexpr std::size_t kMaxObjectBytes = 1572864;
constexpr const char* kTooLargeMessage = "etcdserver: request is too large";

struct ListPage {
  std::vector<json> items;  // ordered by namespace, then name
  std::uint64_t rv = 0;     // the list's resourceVersion
  std::string continue_token;
  std::optional<std::int64_t> remaining;  // remainingItemCount when paged
};

class Store {
 public:
  explicit Store(std::size_t history_limit = 10000, std::unique_ptr<StoreBackend> backend = nullptr)
      : history_limit_(history_limit), backend_(std::move(backend)) {}
  ~Store();

  // With a backend: reads every object from it, once, before serving, then follows its
  // changes in a thread of its own. The history starts empty at the backend's revision, so a
  // watch or continue token from before gets 410 Gone and its client relists (as after a
  // kube-apiserver restart whose watch cache is new).
  Result<std::size_t> load();
  bool persistent() const { return backend_ != nullptr; }
  std::string describe() const { return backend_ ? backend_->describe() : "memory"; }

  std::uint64_t current_rv() const;

  Result<json> get(const ObjectKey& key) const;
  // `ns` empty lists every namespace. `limit` 0: no paging.
  Result<ListPage> list(const std::string& resource, const std::string& ns,
                        const ObjectFilter& filter, std::int64_t limit,
                        const std::string& continue_token) const;

  // Stores a new object (metadata already filled in but for resourceVersion).
  // kAlreadyExists if the key is taken.
  Result<json> create(const ObjectKey& key, json object);
  // Replaces an object. `expected_rv` set: kConflict unless it is the stored version.
  Result<json> update(const ObjectKey& key, json object, std::optional<std::uint64_t> expected_rv);
  // Removes an object; `deleted` is what watchers see as the final state.
  Result<json> remove(const ObjectKey& key, std::optional<std::uint64_t> expected_rv);
  // Every object of a resource, optionally in one namespace (for cascades).
  std::vector<ObjectKey> keys(const std::string& resource, const std::string& ns) const;

  // A watch from `from_rv` (0: start with ADDED events for every current object).
  // kGone when the history no longer reaches back to `from_rv`.
  Result<std::shared_ptr<Watcher>> watch(const std::string& resource, const std::string& ns,
                                         ObjectFilter filter, std::uint64_t from_rv);

  // Fault injection: forget all history (older watches and continue tokens get 410), and
  // end every open watch with an in-stream 410 ERROR event, as a compacted etcd would.
  void expire_history();
  // Fault injection: close every open watch as if the connection had dropped.
  void drop_watches();
  std::size_t watcher_count() const;

 private:
  struct Bucket {
    std::map<std::string, json> objects;  // "ns/name" → object
  };
  static std::string storage_key(const ObjectKey& key) { return key.ns + "/" + key.name; }
  // The backend's write (or the next revision in memory).
  Result<std::uint64_t> persist_locked(const StoreEvent& event, std::uint64_t expected);
  // Then the cache and the watchers: at once when the write directly follows what the cache
  // holds, else once the backend's watch has brought every change up to it, in order.
  // Returns the object as written, with its resourceVersion.
  Result<json> commit_locked(std::unique_lock<std::mutex>& lock, StoreEvent event);
  void write_locked(StoreEvent event);
  Result<std::size_t> load_locked(StoreBackend::Snapshot snapshot);
  void follow_backend();
  void apply_changes(std::vector<StoreBackend::Change> changes);
  void notify_locked(const StoreEvent& event);

  mutable std::mutex mu_;
  std::map<std::string, Bucket> buckets_;
  std::uint64_t rv_ = 1;
  std::deque<StoreEvent> history_;
  std::uint64_t compacted_rv_ = 0;  // history holds every event with rv > this
  std::size_t history_limit_;
  std::vector<std::weak_ptr<Watcher>> watchers_;
  std::unique_ptr<StoreBackend> backend_;
  std::uint64_t backend_compacted_rv_ = 0;
  std::condition_variable applied_;  // rv_ moved on
  std::atomic<bool> stopping_{false};
  std::thread follower_;
};

// A Kubernetes Status object: {"kind":"Status", ..., "code", "reason", "message"}.
json status_object(int code, const std::string& reason, const std::string& message);

}  // namespace cw::lab
