#include "lab/apiserver/store.h"

#include <algorithm>

#include "common/base/base64.h"

namespace cw::lab {
namespace {

constexpr std::size_t kMaxQueuedPerWatcher = 100000;  // a watcher this far behind is dropped

std::uint64_t parse_rv(const json& object) {
  const auto& m = object.value("metadata", json::object());
  const std::string rv = m.value("resourceVersion", "");
  return rv.empty() ? 0 : std::stoull(rv);
}

// What a watcher with `filter` is told of `event`: an object moving into its selection is
// ADDED, one moving out of it DELETED (as the real server does for selector watches), and
// nothing when the object was never selected.
const char* event_for(const StoreEvent& event, const ObjectFilter& filter) {
  const bool now = event.type != StoreEvent::Type::kDeleted && (!filter || filter(event.object));
  const bool before = !event.previous.is_null() && (!filter || filter(event.previous));
  if (event.type == StoreEvent::Type::kDeleted) return before ? "DELETED" : nullptr;
  if (now) return before ? "MODIFIED" : "ADDED";
  return before ? "DELETED" : nullptr;
}

bool in_namespace(const std::string& key, const std::string& ns) {
  return ns.empty() || key.compare(0, ns.size() + 1, ns + "/") == 0;
}

}  // namespace

const char* to_string(StoreEvent::Type type) {
  switch (type) {
    case StoreEvent::Type::kAdded: return "ADDED";
    case StoreEvent::Type::kModified: return "MODIFIED";
    case StoreEvent::Type::kDeleted: return "DELETED";
  }
  return "UNKNOWN";
}

json status_object(int code, const std::string& reason, const std::string& message) {
  return json{{"kind", "Status"},   {"apiVersion", "v1"}, {"metadata", json::object()},
              {"status", "Failure"}, {"message", message}, {"reason", reason},
              {"code", code}};
}

// ---- Watcher

std::optional<Watcher::Item> Watcher::next(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || closed_; });
  if (queue_.empty()) return std::nullopt;
  Item item = std::move(queue_.front());
  queue_.pop_front();
  if (queue_.empty()) seen_rv_ = queued_rv_;
  return item;
}

std::uint64_t Watcher::seen_rv() const {
  std::lock_guard lock(mu_);
  return seen_rv_;
}

bool Watcher::closed() const {
  std::lock_guard lock(mu_);
  return closed_ && queue_.empty();
}

void Watcher::push(Item item, std::uint64_t rv) {
  std::lock_guard lock(mu_);
  if (closed_) return;
  if (queue_.size() >= kMaxQueuedPerWatcher) {
    // Too slow a reader: end it, as the real server does; the client relists.
    queue_.clear();
    queue_.push_back({"ERROR", status_object(410, "Expired", "watcher fell too far behind")});
    closed_ = true;
  } else {
    queue_.push_back(std::move(item));
    queued_rv_ = std::max(queued_rv_, rv);
  }
  cv_.notify_all();
}

void Watcher::close_with(Item error) {
  std::lock_guard lock(mu_);
  if (closed_) return;
  if (!error.type.empty()) queue_.push_back(std::move(error));
  closed_ = true;
  cv_.notify_all();
}

// ---- Store

std::uint64_t Store::current_rv() const {
  std::lock_guard lock(mu_);
  return rv_;
}

Result<json> Store::get(const ObjectKey& key) const {
  std::lock_guard lock(mu_);
  auto b = buckets_.find(key.resource);
  if (b != buckets_.end()) {
    auto it = b->second.objects.find(storage_key(key));
    if (it != b->second.objects.end()) return it->second;
  }
  return Error(ErrorCode::kNotFound, key.resource + " \"" + key.name + "\" not found");
}

std::vector<ObjectKey> Store::keys(const std::string& resource, const std::string& ns) const {
  std::lock_guard lock(mu_);
  std::vector<ObjectKey> out;
  auto b = buckets_.find(resource);
  if (b == buckets_.end()) return out;
  for (const auto& [k, obj] : b->second.objects) {
    if (!in_namespace(k, ns)) continue;
    const auto& m = obj["metadata"];
    out.push_back({resource, m.value("namespace", ""), m.value("name", "")});
  }
  return out;
}

Result<ListPage> Store::list(const std::string& resource, const std::string& ns,
                             const ObjectFilter& filter, std::int64_t limit,
                             const std::string& continue_token) const {
  std::lock_guard lock(mu_);
  std::uint64_t at_rv = rv_;
  std::string start_after;
  if (!continue_token.empty()) {
    auto decoded = base64url_decode(continue_token);
    json token;
    if (decoded) token = json::parse(*decoded, nullptr, false);
    if (!decoded || !token.is_object() || !token.contains("rv") || !token.contains("start") ||
        !token["rv"].is_number_unsigned() || !token["start"].is_string()) {
      return Error(ErrorCode::kInvalidArgument, "continue key is not valid");
    }
    at_rv = token["rv"].get<std::uint64_t>();
    start_after = token["start"].get<std::string>();
    if (at_rv < compacted_rv_) {
      return Error(ErrorCode::kGone,
                   "The provided continue parameter is too old to display a consistent list "
                   "result. You can start a new list without the continue parameter.");
    }
  }

  // The objects as they were at `at_rv`: the current ones with later events undone.
  std::map<std::string, json> view;
  if (auto b = buckets_.find(resource); b != buckets_.end()) {
    for (const auto& [k, obj] : b->second.objects) {
      if (in_namespace(k, ns)) view.emplace(k, obj);
    }
  }
  for (auto it = history_.rbegin(); it != history_.rend() && it->rv > at_rv; ++it) {
    if (it->key.resource != resource || !in_namespace(storage_key(it->key), ns)) continue;
    const std::string k = storage_key(it->key);
    if (it->type == StoreEvent::Type::kAdded) {
      view.erase(k);
    } else {
      view[k] = it->previous;
    }
  }

  ListPage page;
  page.rv = at_rv;
  std::int64_t taken = 0;
  std::int64_t matching_after = 0;
  std::string last_key;
  for (const auto& [k, obj] : view) {
    if (!start_after.empty() && k <= start_after) continue;
    if (filter && !filter(obj)) continue;
    if (limit > 0 && taken >= limit) {
      ++matching_after;
      continue;
    }
    page.items.push_back(obj);
    last_key = k;
    ++taken;
  }
  if (limit > 0 && matching_after > 0) {
    page.continue_token =
        base64url_encode(json{{"rv", at_rv}, {"start", last_key}}.dump());
    page.remaining = matching_after;
  }
  return page;
}

Store::~Store() {
  stopping_ = true;
  if (backend_) backend_->stop_following();
  if (follower_.joinable()) follower_.join();
}

Result<std::size_t> Store::load() {
  if (!backend_) return std::size_t{0};
  auto snapshot = backend_->load();
  if (!snapshot) return snapshot.error();
  std::lock_guard lock(mu_);
  auto loaded = load_locked(std::move(*snapshot));
  if (!follower_.joinable()) follower_ = std::thread([this] { follow_backend(); });
  return loaded;
}

Result<std::size_t> Store::load_locked(StoreBackend::Snapshot snapshot) {
  buckets_.clear();
  history_.clear();
  for (auto& item : snapshot.items) {
    const auto& m = item.object["metadata"];
    const ObjectKey key{item.resource, m.value("namespace", ""), m.value("name", "")};
    buckets_[item.resource].objects[storage_key(key)] = std::move(item.object);
  }
  rv_ = std::max<std::uint64_t>(snapshot.revision, 1);
  compacted_rv_ = rv_;
  backend_compacted_rv_ = 0;
  applied_.notify_all();
  return snapshot.items.size();
}

// etcd's watch, for as long as the store lives: a stream that ends is reopened from the
// cache's revision; one compacted away means changes were missed, so everything is read again
// and every open watch ends with 410 (its client relists), as kube-apiserver's cache does.
void Store::follow_backend() {
  while (!stopping_) {
    std::uint64_t from = 0;
    {
      std::lock_guard lock(mu_);
      from = rv_;
    }
    auto followed = backend_->follow(from, [this](std::vector<StoreBackend::Change> c) { apply_changes(std::move(c)); });
    if (stopping_) return;
    if (followed) continue;
    if (followed.error().code() == ErrorCode::kGone) {
      if (auto snapshot = backend_->load()) {
        std::lock_guard lock(mu_);
        (void)load_locked(std::move(*snapshot));
        for (const auto& weak : watchers_) {
          if (auto w = weak.lock()) w->close_with({"ERROR", status_object(410, "Expired", "too old resource version")});
        }
        watchers_.clear();
        continue;
      }
    }
    std::unique_lock lock(mu_);
    applied_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stopping_.load(); });
  }
}

void Store::apply_changes(std::vector<StoreBackend::Change> changes) {
  std::lock_guard lock(mu_);
  for (auto& c : changes) {
    if (c.revision <= rv_) continue;  // this server's own write, applied when it was made
    auto& bucket = buckets_[c.key.resource];
    auto it = bucket.objects.find(storage_key(c.key));
    json previous = it != bucket.objects.end() ? it->second : std::move(c.previous);
    StoreEvent::Type type = c.type;
    if (type != StoreEvent::Type::kDeleted) type = previous.is_null() ? StoreEvent::Type::kAdded : StoreEvent::Type::kModified;
    if (type == StoreEvent::Type::kDeleted && c.object.is_null()) c.object = previous;
    if (type == StoreEvent::Type::kDeleted && c.object.is_null()) {
      rv_ = c.revision;  // a key this cache never held: nothing to tell
      continue;
    }
    write_locked(StoreEvent{type, c.revision, c.key, std::move(c.object), std::move(previous)});
  }
  applied_.notify_all();
}

Result<json> Store::commit_locked(std::unique_lock<std::mutex>& lock, StoreEvent event) {
  const std::uint64_t rv = event.rv;
  json written = event.object;
  written["metadata"]["resourceVersion"] = std::to_string(rv);
  if (!backend_ || rv == rv_ + 1) {
    write_locked(std::move(event));
    return written;
  }
  // Someone else wrote in between: the backend's watch brings their changes and this one.
  if (!applied_.wait_for(lock, std::chrono::seconds(10), [&] { return rv_ >= rv || stopping_.load(); }) || rv_ < rv) {
    return Error(ErrorCode::kUnavailable, "the write is in " + backend_->describe() + " at revision " +
                                              std::to_string(rv) + ", but its watch has not brought it yet");
  }
  return written;
}

Result<std::uint64_t> Store::persist_locked(const StoreEvent& event, std::uint64_t expected) {
  if (!backend_) {
    if (event.type != StoreEvent::Type::kDeleted &&
        event.object.dump().size() + event.key.resource.size() + event.key.ns.size() + event.key.name.size() > kMaxObjectBytes) {
      return Error(ErrorCode::kInternal, kTooLargeMessage);
    }
    return rv_ + 1;
  }
  auto written = event.type == StoreEvent::Type::kDeleted ? backend_->remove(event.key, expected)
                                                          : backend_->put(event.key, event.object, expected);
  if (!written) return written.error();
  return *written;
}

void Store::write_locked(StoreEvent event) {
  rv_ = event.rv;
  auto& bucket = buckets_[event.key.resource];
  const std::string k = storage_key(event.key);
  if (event.type == StoreEvent::Type::kDeleted) {
    bucket.objects.erase(k);
    // The deleted object carries the deletion's resourceVersion, as the real server sends.
    event.object["metadata"]["resourceVersion"] = std::to_string(event.rv);
  } else {
    event.object["metadata"]["resourceVersion"] = std::to_string(event.rv);
    bucket.objects[k] = event.object;
  }
  notify_locked(event);
  history_.push_back(std::move(event));
  while (history_.size() > history_limit_) {
    compacted_rv_ = history_.front().rv;
    history_.pop_front();
  }
  // etcd forgets what the cache forgot, in steps, as kube-apiserver compacts it periodically.
  if (backend_ && compacted_rv_ >= backend_compacted_rv_ + 1000) {
    if (backend_->compact(compacted_rv_)) backend_compacted_rv_ = compacted_rv_;
  }
}

void Store::notify_locked(const StoreEvent& event) {
  const std::string k = storage_key(event.key);
  watchers_.erase(std::remove_if(watchers_.begin(), watchers_.end(),
                                 [](const auto& w) { return w.expired(); }),
                  watchers_.end());
  for (const auto& weak : watchers_) {
    auto w = weak.lock();
    if (!w || w->resource_ != event.key.resource || !in_namespace(k, w->ns_)) continue;
    if (const char* type = event_for(event, w->filter_)) w->push({type, event.object}, event.rv);
  }
}

Result<json> Store::create(const ObjectKey& key, json object) {
  std::unique_lock lock(mu_);
  auto& bucket = buckets_[key.resource];
  if (bucket.objects.count(storage_key(key))) {
    return Error(ErrorCode::kAlreadyExists, key.resource + " \"" + key.name + "\" already exists");
  }
  StoreEvent event{StoreEvent::Type::kAdded, 0, key, std::move(object), json()};
  auto rv = persist_locked(event, 0);
  if (!rv) return rv.error();
  event.rv = *rv;
  return commit_locked(lock, std::move(event));
}

Result<json> Store::update(const ObjectKey& key, json object,
                           std::optional<std::uint64_t> expected_rv) {
  std::unique_lock lock(mu_);
  auto& bucket = buckets_[key.resource];
  auto it = bucket.objects.find(storage_key(key));
  if (it == bucket.objects.end()) {
    return Error(ErrorCode::kNotFound, key.resource + " \"" + key.name + "\" not found");
  }
  if (expected_rv && *expected_rv != parse_rv(it->second)) {
    return Error(ErrorCode::kConflict,
                 "Operation cannot be fulfilled on " + key.resource + " \"" + key.name +
                     "\": the object has been modified; please apply your changes to the "
                     "latest version and try again");
  }
  StoreEvent event{StoreEvent::Type::kModified, 0, key, std::move(object), it->second};
  auto rv = persist_locked(event, parse_rv(it->second));
  if (!rv) return rv.error();
  event.rv = *rv;
  return commit_locked(lock, std::move(event));
}

Result<json> Store::remove(const ObjectKey& key, std::optional<std::uint64_t> expected_rv) {
  std::unique_lock lock(mu_);
  auto& bucket = buckets_[key.resource];
  auto it = bucket.objects.find(storage_key(key));
  if (it == bucket.objects.end()) {
    return Error(ErrorCode::kNotFound, key.resource + " \"" + key.name + "\" not found");
  }
  if (expected_rv && *expected_rv != parse_rv(it->second)) {
    return Error(ErrorCode::kConflict, "Operation cannot be fulfilled on " + key.resource + " \"" +
                                           key.name + "\": the resourceVersion does not match");
  }
  json last = it->second;
  StoreEvent event{StoreEvent::Type::kDeleted, 0, key, last, last};
  auto rv = persist_locked(event, parse_rv(last));
  if (!rv) return rv.error();
  event.rv = *rv;
  // The deleted object carries the deletion's resourceVersion, as the real server sends.
  return commit_locked(lock, std::move(event));
}

Result<std::shared_ptr<Watcher>> Store::watch(const std::string& resource, const std::string& ns,
                                              ObjectFilter filter, std::uint64_t from_rv) {
  std::lock_guard lock(mu_);
  auto w = std::make_shared<Watcher>();
  w->resource_ = resource;
  w->ns_ = ns;
  w->filter_ = std::move(filter);
  if (from_rv == 0) {
    // "Get state and start at most recent": the current objects as ADDED, then live events.
    if (auto b = buckets_.find(resource); b != buckets_.end()) {
      for (const auto& [k, obj] : b->second.objects) {
        if (in_namespace(k, ns) && (!w->filter_ || w->filter_(obj))) w->push({"ADDED", obj}, rv_);
      }
    }
    w->queued_rv_ = rv_;
    if (w->queue_.empty()) w->seen_rv_ = rv_;
  } else {
    if (from_rv < compacted_rv_) {
      return Error(ErrorCode::kGone, "too old resource version: " + std::to_string(from_rv) +
                                         " (" + std::to_string(compacted_rv_ + 1) + ")");
    }
    w->queued_rv_ = w->seen_rv_ = std::min(from_rv, rv_);
    for (const auto& event : history_) {
      if (event.rv <= from_rv || event.key.resource != resource ||
          !in_namespace(storage_key(event.key), ns)) {
        continue;
      }
      if (const char* type = event_for(event, w->filter_)) w->push({type, event.object}, event.rv);
    }
    w->queued_rv_ = std::max(w->queued_rv_, rv_);
    if (w->queue_.empty()) w->seen_rv_ = w->queued_rv_;
  }
  watchers_.push_back(w);
  return w;
}

void Store::expire_history() {
  std::lock_guard lock(mu_);
  history_.clear();
  compacted_rv_ = rv_;
  if (backend_ && backend_->compact(rv_)) backend_compacted_rv_ = rv_;
  for (const auto& weak : watchers_) {
    if (auto w = weak.lock()) {
      w->close_with({"ERROR", status_object(410, "Expired", "too old resource version")});
    }
  }
  watchers_.clear();
}

void Store::drop_watches() {
  std::lock_guard lock(mu_);
  for (const auto& weak : watchers_) {
    if (auto w = weak.lock()) w->close_with({});
  }
  watchers_.clear();
}

std::size_t Store::watcher_count() const {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (const auto& w : watchers_) n += w.expired() ? 0U : 1U;
  return n;
}

}  // namespace cw::lab
