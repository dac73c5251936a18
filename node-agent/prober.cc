#include "node-agent/prober.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <random>

namespace cw::agent {
namespace {

using namespace std::chrono_literals;

net::IpAddress from_v4(const in_addr& a) { return net::IpAddress::from_bits(net::Family::kIPv4, ntohl(a.s_addr)); }

net::IpAddress from_v6(const in6_addr& a) {
  net::Uint128 bits = 0;
  for (std::uint8_t b : a.s6_addr) bits = (bits << 8) | b;
  return net::IpAddress::from_bits(net::Family::kIPv6, bits);
}

in_addr to_v4(const net::IpAddress& a) {
  in_addr out{};
  out.s_addr = htonl(static_cast<std::uint32_t>(a.bits()));
  return out;
}

in6_addr to_v6(const net::IpAddress& a) {
  in6_addr out{};
  const net::Uint128 bits = a.bits();
  for (int i = 0; i < 16; ++i) out.s6_addr[i] = static_cast<std::uint8_t>(bits >> (8 * (15 - i)));
  return out;
}

Result<int> open_socket(int family, std::uint16_t port) {
  const int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(ErrorCode::kUnavailable, std::string("probe socket: ") + std::strerror(errno));
  const int on = 1;
  // Don't-fragment on every probe, and no fragmenting by a cached path MTU either: a large
  // probe must cross the path whole or not at all.
  int pmtu = family == AF_INET ? IP_PMTUDISC_PROBE : IPV6_PMTUDISC_PROBE;
  if (family == AF_INET) {
    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
    setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
  } else {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
    setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtu, sizeof pmtu);
  }
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    len = sizeof *sin;
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    len = sizeof *sin6;
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    const int e = errno;
    close(fd);
    return Error(ErrorCode::kUnavailable, std::string("binding the probe port ") + std::to_string(port) + " (" +
                                              (family == AF_INET ? "IPv4" : "IPv6") + "): " + std::strerror(e));
  }
  return fd;
}

// Sends `bytes` to `to`:port from `from` (the address the packet must carry).
bool send_from(int fd, const net::IpAddress& from, const net::IpAddress& to, std::uint16_t port,
               const std::vector<std::uint8_t>& bytes) {
  iovec iov{const_cast<std::uint8_t*>(bytes.data()), bytes.size()};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(in6_pktinfo))> control{};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  sockaddr_storage ss{};
  if (to.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr = to_v4(to);
    msg.msg_name = sin;
    msg.msg_namelen = sizeof *sin;
    msg.msg_controllen = CMSG_SPACE(sizeof(in_pktinfo));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
    in_pktinfo info{};
    info.ipi_spec_dst = to_v4(from);
    std::memcpy(CMSG_DATA(c), &info, sizeof info);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    sin6->sin6_addr = to_v6(to);
    msg.msg_name = sin6;
    msg.msg_namelen = sizeof *sin6;
    msg.msg_controllen = CMSG_SPACE(sizeof(in6_pktinfo));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
    in6_pktinfo info{};
    info.ipi6_addr = to_v6(from);
    std::memcpy(CMSG_DATA(c), &info, sizeof info);
  }
  return sendmsg(fd, &msg, MSG_DONTWAIT) == static_cast<ssize_t>(bytes.size());
}

}  // namespace

Result<std::unique_ptr<Prober>> Prober::start(ProberOptions options, Clock& clock, log::Logger logger,
                                              std::function<void()> on_change) {
  if (auto r = probe::validate(options.settings); !r) return r.error();
  std::unique_ptr<Prober> p(new Prober());
  p->options_ = std::move(options);
  p->clock_ = &clock;
  p->log_ = std::move(logger);
  p->on_change_ = std::move(on_change);
  auto fd4 = open_socket(AF_INET, p->options_.port);
  if (!fd4) return fd4.error();
  p->fd4_ = *fd4;
  // The IPv6 socket takes the port the IPv4 one got (the same number when it was 0: tests).
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  getsockname(p->fd4_, reinterpret_cast<sockaddr*>(&bound), &len);
  p->port_ = ntohs(bound.sin_port);
  auto fd6 = open_socket(AF_INET6, p->port_);
  if (fd6) {
    p->fd6_ = *fd6;
  } else {
    p->log_.warn("no IPv6 probes", {{"error", fd6.error().message()}});  // a kernel without IPv6
  }
  p->wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  std::random_device rd;
  auto seed = std::make_shared<std::mt19937_64>((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
  p->schedule_ = std::make_unique<probe::Schedule>(p->options_.settings, [seed] { return (*seed)(); });
  p->thread_ = std::thread([raw = p.get()] { raw->run(); });
  return p;
}

void Prober::rotate_request_sockets(Clock::TimePoint now) {
  if (req4_[0] >= 0 && now - rotated_ < std::chrono::seconds(10)) return;
  for (auto* req : {req4_, req6_}) {
    if (req[1] >= 0) close(req[1]);
    req[1] = req[0];
    req[0] = -1;
  }
  if (auto fd = open_socket(AF_INET, 0)) req4_[0] = *fd;
  if (fd6_ >= 0) {
    if (auto fd = open_socket(AF_INET6, 0)) req6_[0] = *fd;
  }
  rotated_ = now;
}

Prober::~Prober() {
  stopping_ = true;
  if (wake_ >= 0) {
    const std::uint64_t one = 1;
    (void)!write(wake_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  for (int fd : {fd4_, fd6_, wake_, req4_[0], req4_[1], req6_[0], req6_[1]}) {
    if (fd >= 0) close(fd);
  }
}

void Prober::set_targets(const std::vector<probe::Target>& targets, std::optional<net::IpAddress> source_v4,
                         std::optional<net::IpAddress> source_v6, std::uint32_t mtu) {
  std::vector<probe::Target> usable;
  for (const auto& t : targets) {
    if (t.address.is_v4() ? source_v4.has_value() : (source_v6.has_value() && fd6_ >= 0)) usable.push_back(t);
  }
  {
    std::lock_guard lock(mu_);
    schedule_->set_targets(usable, clock_->now());
    source_v4_ = source_v4;
    source_v6_ = source_v6;
    mtu_ = mtu;
  }
  const std::uint64_t one = 1;
  (void)!write(wake_, &one, sizeof one);
}

std::vector<probe::PeerReport> Prober::reports() const {
  std::lock_guard lock(mu_);
  return schedule_->reports();
}

ProberStats Prober::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Prober::send_beacon(const gateway::Message& beacon, const std::vector<net::IpAddress>& to) {
  const auto bytes = gateway::encode(beacon);
  std::lock_guard lock(mu_);
  for (const auto& address : to) {
    const auto& source = address.is_v4() ? source_v4_ : source_v6_;
    const int fd = address.is_v4() ? fd4_ : fd6_;
    if (!source || fd < 0) continue;
    if (send_from(fd, *source, address, port_, bytes)) {
      ++stats_.beacons_sent;
    } else {
      ++stats_.send_errors;
    }
  }
}

void Prober::send(const probe::Attempt& a) {
  const bool v4 = a.target.address.is_v4();
  const auto& source = v4 ? source_v4_ : source_v6_;
  if (!source) return;
  // The large probe fills the tunnel's MTU exactly: IP header + UDP header + payload.
  const std::size_t headers = (v4 ? 20 : 40) + 8;
  const std::size_t size = a.large && mtu_ > headers + probe::kHeaderSize ? mtu_ - headers : probe::kHeaderSize;
  const auto bytes = probe::encode({probe::Kind::kRequest, a.nonce, *source, std::nullopt}, size);
  const int fd = v4 ? req4_[0] : req6_[0];
  if (fd >= 0 && send_from(fd, *source, a.target.address, port_, bytes)) {
    ++stats_.sent;
    stats_.sent_bytes += bytes.size() + headers;
  } else {
    ++stats_.send_errors;  // e.g. no route yet; the schedule counts it unanswered
  }
}

void Prober::receive(int fd) {
  std::array<std::uint8_t, 65536> buf{};
  std::vector<std::pair<gateway::Message, net::IpAddress>> beacons;  // handed on after the lock
  struct Deliver {
    std::vector<std::pair<gateway::Message, net::IpAddress>>& list;
    const std::function<void(const gateway::Message&, const net::IpAddress&)>& to;
    ~Deliver() {
      if (!to) return;
      for (const auto& [message, from] : list) to(message, from);
    }
  } deliver{beacons, options_.on_beacon};
  for (int i = 0; i < 256; ++i) {  // bounded: the schedule must keep its time
    sockaddr_storage peer{};
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) std::array<char, 256> control{};
    msghdr msg{};
    msg.msg_name = &peer;
    msg.msg_namelen = sizeof peer;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    const ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 0) return;
    unsigned ifindex = 0;
    std::optional<net::IpAddress> local;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        in_pktinfo info{};
        std::memcpy(&info, CMSG_DATA(c), sizeof info);
        ifindex = static_cast<unsigned>(info.ipi_ifindex);
        local = from_v4(info.ipi_addr);
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        in6_pktinfo info{};
        std::memcpy(&info, CMSG_DATA(c), sizeof info);
        ifindex = info.ipi6_ifindex;
        local = from_v6(info.ipi6_addr);
      }
    }
    std::optional<net::IpAddress> from;
    std::uint16_t from_port = 0;
    if (peer.ss_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(&peer);
      from = from_v4(sin->sin_addr);
      from_port = ntohs(sin->sin_port);
    } else if (peer.ss_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&peer);
      from = from_v6(sin6->sin6_addr);
      from_port = ntohs(sin6->sin6_port);
    }
    const std::span<const std::uint8_t> bytes(buf.data(), static_cast<std::size_t>(n));
    const unsigned tunnel = if_nametoindex(options_.interface.c_str());
    if (n >= 4 && std::memcmp(buf.data(), "CWGW", 4) == 0) {
      auto beacon = gateway::decode(bytes);
      std::lock_guard lock(mu_);
      if (!beacon || beacon->kind != gateway::Kind::kBeacon || !from || tunnel == 0 || ifindex != tunnel) {
        ++stats_.refused;
        continue;
      }
      ++stats_.beacons_received;
      beacons.emplace_back(std::move(*beacon), *from);
      continue;
    }
    auto message = probe::decode(bytes);
    std::lock_guard lock(mu_);
    if (!message || !from || !local || tunnel == 0 || ifindex != tunnel) {
      ++stats_.refused;
      continue;
    }
    if (message->kind == probe::Kind::kRequest) {
      // The answer is as large as the request (so a large probe tests the way back too) and
      // leaves from the address the request was sent to.
      auto reply = probe::encode({probe::Kind::kReply, message->nonce, message->sender, *from},
                                 static_cast<std::size_t>(n));
      if (send_from(fd, *local, *from, from_port, reply)) {
        ++stats_.requests;
        stats_.request_bytes += static_cast<std::uint64_t>(n);
      } else {
        ++stats_.send_errors;
      }
      continue;
    }
    const auto& ours = from->is_v4() ? source_v4_ : source_v6_;
    if (ours && schedule_->answered(message->nonce, *from, message->seen, *ours, clock_->now())) ++stats_.answers;
  }
}

void Prober::run() {
  while (!stopping_) {
    bool changed = false;
    Clock::TimePoint next;
    {
      std::lock_guard lock(mu_);
      const auto now = clock_->now();
      rotate_request_sockets(now);
      for (const auto& a : schedule_->due(now)) send(a);
      changed = schedule_->take_changed();
      next = schedule_->next_due();
    }
    if (changed && on_change_) on_change_();
    const auto now = clock_->now();
    auto wait = next == Clock::TimePoint::max() ? std::chrono::milliseconds(1000)
                                                : std::chrono::duration_cast<std::chrono::milliseconds>(next - now);
    wait = std::clamp(wait, std::chrono::milliseconds(0), std::chrono::milliseconds(1000));
    std::array<pollfd, 7> fds{{{fd4_, POLLIN, 0}, {fd6_, POLLIN, 0}, {wake_, POLLIN, 0}, {req4_[0], POLLIN, 0},
                               {req4_[1], POLLIN, 0}, {req6_[0], POLLIN, 0}, {req6_[1], POLLIN, 0}}};
    // +1: poll rounds down, and waking a millisecond early would only spin.
    const int ready = poll(fds.data(), fds.size(), static_cast<int>(wait.count()) + (wait.count() > 0 ? 1 : 0));
    if (ready <= 0) continue;
    if (fds[2].revents & POLLIN) {
      std::uint64_t v = 0;
      (void)!read(wake_, &v, sizeof v);
    }
    for (std::size_t i : {0U, 1U, 3U, 4U, 5U, 6U}) {
      if (fds[i].revents & POLLIN) receive(fds[i].fd);
    }
    bool answered_change = false;
    {
      std::lock_guard lock(mu_);
      answered_change = schedule_->take_changed();
    }
    if (answered_change && on_change_) on_change_();
  }
}

}  // namespace cw::agent
