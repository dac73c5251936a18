#include "gateway/runner.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "common/kube/leader_election.h"

namespace cw::gateway {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace kres = kube::resources;

// A failed Lease write is retried after this (the API may be down: no busy loop).
constexpr auto kWriteBackoff = 200ms;

// An IPv4 address as an IPv6 socket sends to it (::ffff:a.b.c.d), or an IPv6 one.
sockaddr_in6 to_sockaddr6(const net::IpAddress& a, std::uint16_t port) {
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  if (a.is_v4()) {
    const auto v4 = static_cast<std::uint32_t>(a.bits());
    sin6.sin6_addr.s6_addr[10] = 0xff;
    sin6.sin6_addr.s6_addr[11] = 0xff;
    for (int i = 0; i < 4; ++i) sin6.sin6_addr.s6_addr[12 + i] = static_cast<std::uint8_t>(v4 >> (24 - 8 * i));
  } else {
    const net::Uint128 bits = a.bits();
    for (int i = 0; i < 16; ++i) sin6.sin6_addr.s6_addr[i] = static_cast<std::uint8_t>(bits >> (8 * (15 - i)));
  }
  return sin6;
}

std::optional<net::IpAddress> from_sockaddr(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    return net::IpAddress::from_bits(net::Family::kIPv4, ntohl(sin->sin_addr.s_addr));
  }
  if (ss.ss_family != AF_INET6) return std::nullopt;
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
  const auto& b = sin6->sin6_addr.s6_addr;
  const bool mapped = std::all_of(b, b + 10, [](std::uint8_t x) { return x == 0; }) && b[10] == 0xff && b[11] == 0xff;
  if (mapped) {
    const std::uint32_t v4 = (std::uint32_t{b[12]} << 24) | (std::uint32_t{b[13]} << 16) | (std::uint32_t{b[14]} << 8) | b[15];
    return net::IpAddress::from_bits(net::Family::kIPv4, v4);
  }
  net::Uint128 bits = 0;
  for (std::uint8_t x : b) bits = (bits << 8) | x;
  return net::IpAddress::from_bits(net::Family::kIPv6, bits);
}

}  // namespace

std::optional<LeaseRecord> lease_record(const json& lease) {
  if (!lease.is_object()) return std::nullopt;
  LeaseRecord r;
  const json spec = lease.value("spec", json::object());
  if (spec.is_object()) {
    const json holder = spec.value("holderIdentity", json());
    if (holder.is_string()) r.holder = holder.get<std::string>();
    const json transitions = spec.value("leaseTransitions", json());
    if (transitions.is_number_integer()) r.transitions = transitions.get<std::int64_t>();
  }
  const json meta = lease.value("metadata", json::object());
  if (meta.is_object()) {
    const json version = meta.value("resourceVersion", json());
    if (version.is_string()) r.version = version.get<std::string>();
  }
  return r;
}

Result<std::unique_ptr<Runner>> Runner::start(RunnerOptions options, kube::Client& local, Clock& clock,
                                              log::Logger logger, std::function<void()> on_change,
                                              std::function<void(const Heartbeat&)> on_beacon) {
  if (auto r = validate(options.settings); !r) return r.error();
  if (options.node_name.empty()) return Error(ErrorCode::kInvalidArgument, "a gateway needs its node's name");
  std::unique_ptr<Runner> r(new Runner(std::move(options), local, clock, std::move(logger)));
  r->on_change_ = std::move(on_change);
  r->on_beacon_ = std::move(on_beacon);
  // One socket for both families where the kernel has IPv6, else IPv4 only.
  const bool v4_only = r->options_.bind_address && r->options_.bind_address->is_v4();
  if (!v4_only) r->fd_ = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (r->fd_ >= 0) {
    const int off = 0;
    setsockopt(r->fd_, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    sockaddr_in6 any{};
    if (r->options_.bind_address) any = to_sockaddr6(*r->options_.bind_address, r->options_.port);
    any.sin6_family = AF_INET6;
    any.sin6_port = htons(r->options_.port);
    if (bind(r->fd_, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0) {
      const int e = errno;
      close(r->fd_);
      r->fd_ = -1;
      if (e == EADDRINUSE) {
        return Error(ErrorCode::kUnavailable, "the gateway heartbeat port " + std::to_string(r->options_.port) +
                                                  " is taken: " + std::strerror(e));
      }
    } else {
      r->v6_socket_ = true;
    }
  }
  if (r->fd_ < 0) {
    r->fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in any{};
    any.sin_family = AF_INET;
    any.sin_port = htons(r->options_.port);
    if (v4_only) any.sin_addr.s_addr = htonl(static_cast<std::uint32_t>(r->options_.bind_address->bits()));
    if (r->fd_ < 0 || bind(r->fd_, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0) {
      const int e = errno;
      if (r->fd_ >= 0) close(r->fd_);
      r->fd_ = -1;
      return Error(ErrorCode::kUnavailable, "binding the gateway heartbeat port " + std::to_string(r->options_.port) +
                                                ": " + std::strerror(e));
    }
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(r->fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  r->port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                               : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  r->wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  r->loop_thread_ = std::thread([raw = r.get()] { raw->loop(); });
  r->writer_thread_ = std::thread([raw = r.get()] { raw->writer(); });
  r->log_.info("gateway candidate started", {{"heartbeat_port", static_cast<int>(r->port_)},
                                            {"lease", r->options_.lease_namespace + "/" + r->options_.lease_name}});
  return r;
}

Runner::~Runner() {
  stopping_ = true;
  wake();
  {
    std::lock_guard lock(mu_);
    writer_cv_.notify_all();
  }
  if (loop_thread_.joinable()) loop_thread_.join();
  if (writer_thread_.joinable()) writer_thread_.join();
  for (int fd : {fd_, wake_}) {
    if (fd >= 0) close(fd);
  }
}

void Runner::wake() {
  if (wake_ < 0) return;
  const std::uint64_t one = 1;
  (void)!::write(wake_, &one, sizeof one);
}

void Runner::set_candidate(bool candidate) {
  {
    std::lock_guard lock(mu_);
    election_.set_candidate(candidate);
  }
  wake();
}

void Runner::set_score(int score) {
  {
    std::lock_guard lock(mu_);
    election_.set_score(score, clock_.now());
  }
  wake();
}

void Runner::set_peers(const std::vector<net::IpAddress>& peers) {
  std::lock_guard lock(mu_);
  peers_ = peers;
}

void Runner::observe_lease(const std::optional<json>& lease) {
  {
    std::lock_guard lock(mu_);
    lease_object_ = lease;
    election_.observe_lease(lease ? lease_record(*lease) : std::nullopt, clock_.now());
  }
  wake();
}

Heartbeat Runner::state() const {
  std::lock_guard lock(mu_);
  return election_.heartbeat();
}

std::string Runner::holder() const {
  std::lock_guard lock(mu_);
  return election_.holder();
}

RunnerStats Runner::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Runner::send_heartbeats() {
  // Called with mu_ held.
  const auto bytes = encode({Kind::kHeartbeat, options_.cluster_id, election_.heartbeat()});
  for (const auto& peer : peers_) {
    ssize_t sent = -1;
    if (v6_socket_) {
      const sockaddr_in6 to = to_sockaddr6(peer, options_.port);
      sent = sendto(fd_, bytes.data(), bytes.size(), MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    } else if (peer.is_v4()) {
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = htons(options_.port);
      to.sin_addr.s_addr = htonl(static_cast<std::uint32_t>(peer.bits()));
      sent = sendto(fd_, bytes.data(), bytes.size(), MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    }
    if (sent == static_cast<ssize_t>(bytes.size())) ++stats_.heartbeats_sent;
  }
}

void Runner::receive() {
  std::array<std::uint8_t, 512> buf{};
  for (int i = 0; i < 64; ++i) {
    sockaddr_storage from{};
    socklen_t len = sizeof from;
    const ssize_t n = recvfrom(fd_, buf.data(), buf.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) return;
    auto message = decode(std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)));
    const auto address = from_sockaddr(from);
    std::lock_guard lock(mu_);
    const bool known = address && std::find(peers_.begin(), peers_.end(), *address) != peers_.end();
    if (!message || !known || message->kind != Kind::kHeartbeat || message->cluster != options_.cluster_id ||
        message->state.node == options_.node_name) {
      ++stats_.refused;
      continue;
    }
    ++stats_.heartbeats_received;
    election_.heard(message->state, clock_.now());
  }
}

void Runner::loop() {
  auto next_heartbeat = clock_.now();
  auto next_beacon = clock_.now();
  while (!stopping_) {
    bool changed = false;
    std::optional<Heartbeat> beacon;
    Clock::TimePoint wake_at;
    {
      std::lock_guard lock(mu_);
      const auto now = clock_.now();
      if (now >= next_heartbeat) {
        send_heartbeats();
        next_heartbeat = now + options_.settings.heartbeat_interval;
      }
      const Decision d = election_.decide(now);
      if (d.action != Action::kNone && !writing_ && !pending_ && now >= write_backoff_until_) {
        pending_ = d.action;
        if (d.action != Action::kRenew) {
          log_.info("gateway election", {{"action", to_string(d.action)}, {"reason", d.reason}});
          if (d.action == Action::kTakeOver) ++stats_.takeovers;
        }
        writer_cv_.notify_all();
      }
      const Heartbeat state = election_.heartbeat();
      const bool claim_changed = state.active != last_beacon_.active || state.epoch != last_beacon_.epoch;
      if (claim_changed || now >= next_beacon) {
        beacon = state;
        next_beacon = now + options_.beacon_interval;
      }
      if (claim_changed || election_.holder() != last_holder_) {
        if (claim_changed) {
          log_.info(state.active ? "this node is the active gateway" : "this node is a standby gateway",
                    {{"epoch", state.epoch}, {"holder", election_.holder()}});
        }
        changed = true;
        last_holder_ = election_.holder();
      }
      if (beacon) last_beacon_ = *beacon;
      wake_at = std::min({election_.next_check(now), next_heartbeat, next_beacon});
    }
    if (changed && on_change_) on_change_();
    if (beacon && on_beacon_) on_beacon_(*beacon);
    const auto now = clock_.now();
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(wake_at - now);
    wait = std::clamp(wait, 1ms, 100ms);
    std::array<pollfd, 2> fds{{{fd_, POLLIN, 0}, {wake_, POLLIN, 0}}};
    if (poll(fds.data(), fds.size(), static_cast<int>(wait.count())) <= 0) continue;
    if (fds[1].revents & POLLIN) {
      std::uint64_t v = 0;
      (void)!::read(wake_, &v, sizeof v);
    }
    if (fds[0].revents & POLLIN) receive();
  }
}

void Runner::writer() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    writer_cv_.wait(lock, [&] { return stopping_ || pending_.has_value(); });
    if (stopping_) break;
    const Action action = *pending_;
    pending_.reset();
    writing_ = true;
    const auto observed = lease_object_;
    lock.unlock();
    auto written = write(action, observed);
    lock.lock();
    writing_ = false;
    const auto now = clock_.now();
    if (written) {
      ++stats_.lease_writes;
      lease_object_ = *written;
      election_.observe_lease(lease_record(*written), now);
      election_.wrote(now);
    } else {
      ++stats_.lease_write_failures;
      write_backoff_until_ = now + kWriteBackoff;
      // A conflict means the Lease moved on: read it again rather than wait for the watch.
      if (written.error().code() == ErrorCode::kConflict || written.error().code() == ErrorCode::kAlreadyExists) {
        lock.unlock();
        auto fresh = local_.get(kres::kLeases, options_.lease_namespace, options_.lease_name);
        lock.lock();
        if (fresh) {
          lease_object_ = *fresh;
          election_.observe_lease(lease_record(*fresh), clock_.now());
        }
      } else if (action != Action::kRenew || stats_.lease_write_failures % 50 == 1) {
        log_.warn("gateway Lease write failed", {{"action", to_string(action)}, {"error", written.error().message()}});
      }
    }
    lock.unlock();
    wake();
    lock.lock();
  }
}

Result<json> Runner::write(Action action, const std::optional<json>& observed) {
  const std::string now = kube::micro_time(clock_.wall_now());
  const auto seconds = std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(options_.settings.lease_duration + 999ms).count());
  if (!observed) {
    if (action != Action::kAcquire && action != Action::kTakeOver) return Error(ErrorCode::kNotFound, "no Lease");
    json lease{{"apiVersion", "coordination.k8s.io/v1"},
               {"kind", "Lease"},
               {"metadata", {{"name", options_.lease_name}, {"namespace", options_.lease_namespace}}},
               {"spec", {{"holderIdentity", options_.node_name},
                         {"leaseDurationSeconds", seconds},
                         {"acquireTime", now},
                         {"renewTime", now},
                         {"leaseTransitions", 1}}}};
    return local_.create(kres::kLeases, options_.lease_namespace, lease);
  }
  json lease = *observed;  // carries metadata.resourceVersion: the write is guarded by it
  if (!lease["spec"].is_object()) lease["spec"] = json::object();
  json& spec = lease["spec"];
  const auto record = lease_record(lease).value_or(LeaseRecord{});
  switch (action) {
    case Action::kAcquire:
    case Action::kTakeOver:
      if (record.holder != options_.node_name) spec["leaseTransitions"] = record.transitions + 1;
      spec["holderIdentity"] = options_.node_name;
      spec["acquireTime"] = now;
      spec["renewTime"] = now;
      spec["leaseDurationSeconds"] = seconds;
      break;
    case Action::kRenew:
      spec["renewTime"] = now;
      spec["leaseDurationSeconds"] = seconds;
      break;
    case Action::kRelease:
      // As client-go releases: no holder, and a duration of one second.
      spec["holderIdentity"] = "";
      spec["leaseDurationSeconds"] = 1;
      spec["renewTime"] = now;
      break;
    case Action::kNone:
      return lease;
  }
  return local_.update(kres::kLeases, options_.lease_namespace, lease);
}

}  // namespace cw::gateway
