#include "common/kube/informer.h"

namespace cw::kube {
namespace {

using std::chrono::milliseconds;

std::string rv_of(const json& object) {
  if (!object.is_object() || !object.contains("metadata")) return "";
  return object["metadata"].value("resourceVersion", "");
}

}  // namespace

Informer::Informer(Client& client, InformerOptions options, Clock& clock)
    : client_(client), options_(std::move(options)), clock_(clock) {}

Informer::~Informer() { stop(); }

void Informer::add_handlers(InformerHandlers handlers) {
  if (started_) die_on_misuse("Informer::add_handlers", "after start()");
  handlers_.push_back(std::move(handlers));
}

void Informer::start() {
  if (started_.exchange(true)) return;
  watch_thread_ = std::thread([this] { run(); });
  dispatch_thread_ = std::thread([this] { dispatch_loop(); });
}

void Informer::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    if (active_watch_ != nullptr) active_watch_->cancel();
  }
  cv_.notify_all();
  if (watch_thread_.joinable()) watch_thread_.join();
  if (dispatch_thread_.joinable()) dispatch_thread_.join();
}

bool Informer::has_synced() const {
  std::lock_guard lock(mu_);
  return synced_;
}

bool Informer::wait_for_sync(milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return synced_ || stopping_; }) && synced_;
}

std::optional<json> Informer::get(const std::string& ns, const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = cache_.find(ns + "/" + name);
  if (it == cache_.end()) return std::nullopt;
  return it->second;
}

std::vector<json> Informer::list() const {
  std::lock_guard lock(mu_);
  std::vector<json> out;
  out.reserve(cache_.size());
  for (const auto& [k, v] : cache_) out.push_back(v);
  return out;
}

std::size_t Informer::size() const {
  std::lock_guard lock(mu_);
  return cache_.size();
}

Informer::Stats Informer::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

std::string Informer::key_of(const json& object) {
  const json& m = object["metadata"];
  return m.value("namespace", "") + "/" + m.value("name", "");
}

void Informer::record_error(const Error& error) {
  {
    std::lock_guard lock(mu_);
    ++stats_.errors;
    stats_.last_error = error.message();
  }
  set_failing(true);
}

void Informer::set_failing(bool failing) {
  {
    std::lock_guard lock(mu_);
    if (stats_.failing == failing) return;
    stats_.failing = failing;
  }
  if (options_.on_connection_change) options_.on_connection_change(failing);
}

// Sleeps the current backoff (interrupted by stop()), then doubles it up to the cap.
void Informer::backoff() {
  std::unique_lock lock(mu_);
  current_backoff_ = current_backoff_.count() == 0
                         ? options_.initial_backoff
                         : std::min(current_backoff_ * 2, options_.max_backoff);
  const auto deadline = clock_.now() + current_backoff_;
  while (!stopping_ && clock_.now() < deadline) clock_.wait_until(cv_, lock, deadline);
}

void Informer::notify(Notification n) {
  // Called with mu_ held.
  notifications_.push_back(std::move(n));
  ++enqueued_;
  cv_.notify_all();
}

void Informer::run() {
  bool need_list = true;
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    if (need_list) {
      if (!relist()) {
        backoff();
        continue;
      }
      need_list = false;
    }
    watch_once();
    std::unique_lock lock(mu_);
    if (stopping_) return;
    if (stats_.resource_version.empty()) need_list = true;  // 410: relist
  }
}

// Lists every page at one resourceVersion and replaces the cache, telling handlers the
// difference. False on failure (already recorded).
bool Informer::relist() {
  std::map<std::string, json> fresh;
  std::string rv;
  ListOptions lo{.label_selector = options_.label_selector,
                 .field_selector = options_.field_selector,
                 .limit = options_.page_size};
  while (true) {
    auto page = client_.list(options_.resource, options_.ns, lo);
    if (!page) {
      record_error(page.error());
      // An expired continue token: start the list over (after the backoff).
      return false;
    }
    for (auto& item : (*page)["items"]) fresh.emplace(key_of(item), std::move(item));
    if (rv.empty()) rv = (*page)["metadata"].value("resourceVersion", "");
    lo.continue_token = (*page)["metadata"].value("continue", "");
    if (lo.continue_token.empty()) break;
  }

  std::unique_lock lock(mu_);
  for (auto& [k, obj] : fresh) {
    auto it = cache_.find(k);
    if (it == cache_.end()) {
      notify({Notification::Kind::kAdd, json(), obj});
    } else if (rv_of(it->second) != rv_of(obj)) {
      notify({Notification::Kind::kUpdate, it->second, obj});
    }
  }
  for (const auto& [k, obj] : cache_) {
    if (!fresh.count(k)) notify({Notification::Kind::kDelete, json(), obj});
  }
  cache_ = std::move(fresh);
  stats_.resource_version = rv;
  ++stats_.lists;
  current_backoff_ = milliseconds(0);
  if (!listed_) {
    listed_ = true;
    pending_sync_mark_ = enqueued_;  // synced once these are dispatched
  }
  cv_.notify_all();
  lock.unlock();
  set_failing(false);
  return true;
}

void Informer::watch_once() {
  std::string from;
  {
    std::lock_guard lock(mu_);
    from = stats_.resource_version;
    ++stats_.watches;
  }
  auto stream = client_.watch(options_.resource, options_.ns,
                              {.resource_version = from,
                               .label_selector = options_.label_selector,
                               .field_selector = options_.field_selector,
                               .allow_bookmarks = true,
                               .timeout = options_.watch_timeout});
  if (!stream) {
    if (stream.error().code() == ErrorCode::kGone) {
      std::lock_guard lock(mu_);
      ++stats_.gone;
      stats_.resource_version.clear();
      return;
    }
    record_error(stream.error());
    backoff();
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    active_watch_ = stream->get();
  }
  set_failing(false);
  // No event at all for longer than the server's own timeout means the connection is dead.
  const auto idle = std::chrono::duration_cast<milliseconds>(options_.watch_timeout) +
                    std::chrono::seconds(30);
  bool clean = false;
  while (true) {
    auto event = (*stream)->next(idle);
    if (!event) {
      record_error(event.error());
      break;
    }
    if (!event->has_value()) {
      clean = true;  // the server ended it: resume at once
      break;
    }
    const WatchEvent& e = **event;
    if (e.type == WatchEvent::Type::kError) {
      std::lock_guard lock(mu_);
      if (e.object.value("code", 0) == 410) {
        ++stats_.gone;
        stats_.resource_version.clear();
        clean = true;
      } else {
        ++stats_.errors;
        stats_.last_error = "watch error event: " + e.object.value("message", "");
      }
      break;  // (an error event is an answer: the server is there)
    }
    apply(e);
  }
  {
    std::lock_guard lock(mu_);
    active_watch_ = nullptr;
    if (stopping_) return;
    if (clean) current_backoff_ = milliseconds(0);
  }
  if (!clean) backoff();
}

void Informer::apply(const WatchEvent& e) {
  std::lock_guard lock(mu_);
  const std::string rv = rv_of(e.object);
  if (!rv.empty()) stats_.resource_version = rv;
  if (e.type == WatchEvent::Type::kBookmark) return;
  ++stats_.events;
  current_backoff_ = milliseconds(0);
  const std::string k = key_of(e.object);
  auto it = cache_.find(k);
  if (e.type == WatchEvent::Type::kDeleted) {
    if (it == cache_.end()) return;
    notify({Notification::Kind::kDelete, json(), e.object});
    cache_.erase(it);
  } else if (it == cache_.end()) {
    notify({Notification::Kind::kAdd, json(), e.object});
    cache_.emplace(k, e.object);
  } else {
    notify({Notification::Kind::kUpdate, it->second, e.object});
    it->second = e.object;
  }
}

void Informer::dispatch_loop() {
  auto next_resync = clock_.now() + options_.resync_period;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (listed_ && !synced_ && dispatched_ >= pending_sync_mark_) {
      synced_ = true;
      cv_.notify_all();
    }
    if (notifications_.empty()) {
      const bool resync = options_.resync_period.count() > 0 && listed_;
      if (resync && clock_.now() >= next_resync) {
        for (const auto& [k, obj] : cache_) notify({Notification::Kind::kUpdate, obj, obj});
        next_resync = clock_.now() + options_.resync_period;
        continue;
      }
      clock_.wait_until(cv_, lock, resync ? next_resync : clock_.now() + std::chrono::seconds(1));
      continue;
    }
    Notification n = std::move(notifications_.front());
    notifications_.pop_front();
    lock.unlock();
    for (const auto& h : handlers_) {
      switch (n.kind) {
        case Notification::Kind::kAdd:
          if (h.on_add) h.on_add(n.object);
          break;
        case Notification::Kind::kUpdate:
          if (h.on_update) h.on_update(n.old_object, n.object);
          break;
        case Notification::Kind::kDelete:
          if (h.on_delete) h.on_delete(n.object);
          break;
      }
    }
    lock.lock();
    ++dispatched_;
  }
}

}  // namespace cw::kube
