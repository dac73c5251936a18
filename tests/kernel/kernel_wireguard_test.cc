// The kernel backend against the kernel's own WireGuard. Meant to run inside the VM that
// tests/kernel/run_in_vm.sh boots (the build machine's kernel has no wireguard module), as
// root, with `wg` and `ping` (busybox's there) on PATH. Namespaces are made and entered with
// unshare/setns and links moved with rtnetlink, so no `ip netns` mounts are needed.
//
// A tunnel: two WireGuard devices are created in the initial namespace, so that their UDP
// sockets stay there on 127.0.0.1, then each is moved into a network namespace of its own
// and configured only through make_kernel_control() opened inside that namespace. Ping goes
// across; get() and `wg show <if> dump` must agree. Other cases each get a fresh namespace
// and device: 1,000 peers x 2 allowed IPs through the split messages, a peer whose allowed
// IPs span several dump messages, removing peers, replacing them, and the errors.
//
// Without root or without the wireguard module every case is skipped, saying why, unless
// CW_KERNEL_TEST_REQUIRED=1 (the VM sets it): there a missing module is a failure.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/wireguard.h>
#include <poll.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/netlink/rtnetlink.h"
#include "common/wireguard/kernel_control.h"

namespace cw::wg {
namespace {

using namespace std::chrono_literals;
using netlink::InterfaceAddress;
using netlink::Rtnetlink;

bool required() {
  const char* v = std::getenv("CW_KERNEL_TEST_REQUIRED");
  return v != nullptr && std::string(v) == "1";
}

net::Prefix prefix(const std::string& text) { return net::Prefix::parse(text).value(); }
Endpoint endpoint(const std::string& text) { return Endpoint::parse(text).value(); }

// A random 32-byte value in the shape of a key. Peers need only a public key, and the kernel
// takes any 32 bytes as one: this saves an X25519 per peer on a slow emulated CPU.
Key random_key() { return generate_private_key().value(); }

// ---- Network namespaces as file descriptors ----

// A new network namespace, kept alive by the returned descriptor (closed by the destructor:
// with nothing else in it, the namespace and its devices then go away).
class Netns {
 public:
  static Netns create() {
    int fd = -1;
    std::thread([&] {
      // unshare() moves only this short-lived thread; the namespace outlives it through fd.
      if (::unshare(CLONE_NEWNET) == 0) {
        fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
      }
    }).join();
    return Netns(fd);
  }
  static Netns current() { return Netns(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)); }
  Netns(Netns&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Netns& operator=(Netns&&) = delete;
  ~Netns() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }
  bool ok() const { return fd_ >= 0; }

 private:
  explicit Netns(int fd) : fd_(fd) {}
  int fd_;
};

// Runs `f` on a thread that has entered `ns`: sockets opened there belong to `ns` for good.
template <typename T>
Result<T> in_netns(const Netns& ns, const std::function<Result<T>()>& f) {
  std::optional<Result<T>> out;
  std::thread([&] {
    if (::setns(ns.fd(), CLONE_NEWNET) != 0) {
      out.emplace(Error(ErrorCode::kInternal, std::string("setns: ") + std::strerror(errno)));
      return;
    }
    out.emplace(f());
  }).join();
  return std::move(*out);
}

Result<std::unique_ptr<DeviceControl>> control_in(const Netns& ns) {
  return in_netns<std::unique_ptr<DeviceControl>>(ns, [] { return make_kernel_control(); });
}
Result<Rtnetlink> rtnetlink_in(const Netns& ns) {
  return in_netns<Rtnetlink>(ns, [] { return Rtnetlink::open(); });
}

// RTM_NEWLINK with IFLA_NET_NS_FD: what `ip link set <name> netns <ns>` sends.
Result<void> move_link(Rtnetlink& from, const std::string& name, const Netns& to) {
  auto link = from.get_link(name);
  if (!link) return link.error();
  netlink::Request request(RTM_NEWLINK, 0);
  auto& header = request.put_header<ifinfomsg>();
  header.ifi_family = AF_UNSPEC;
  header.ifi_index = link->index;
  request.put_u32(IFLA_NET_NS_FD, static_cast<std::uint32_t>(to.fd()));
  auto replies = from.socket().request(request);
  if (!replies) return replies.error().with_context("moving " + name + " to another namespace");
  return ok_result();
}

// ---- Running commands ----

std::string find_in_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/bin:/sbin:/usr/bin:/usr/sbin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = dir + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

struct Ran {
  int status = -1;  // the exit code, 128 + signal when killed
  std::string output;
};

// Runs argv (argv[0] a full path, no shell) inside `ns`, killed after `timeout`.
Ran run(const Netns& ns, const std::vector<std::string>& argv, std::chrono::seconds timeout = 30s) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return {-1, "pipe2 failed"};
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::setns(ns.fd(), CLONE_NEWNET) != 0) ::_exit(126);
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::dup2(pipe_fds[1], STDERR_FILENO);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  if (pid < 0) {
    ::close(pipe_fds[0]);
    return {-1, "fork failed"};
  }
  Ran ran;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{pipe_fds[0], POLLIN, 0};
    if (left <= 0ms || ::poll(&p, 1, static_cast<int>(left.count())) == 0) {
      ::kill(pid, SIGKILL);
      ran.output += "\n[killed after " + std::to_string(timeout.count()) + " s]";
      break;
    }
    const ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    ran.output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ran.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return ran;
}

// ---- `wg show <if> dump` ----

struct WgDump {
  std::vector<std::string> device;  // private, public, port, fwmark
  // public, psk, endpoint, ips, handshake, rx, tx, keepalive
  std::vector<std::vector<std::string>> peers;
};

WgDump parse_wg_dump(const std::string& text) {
  WgDump dump;
  std::stringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> fields;
    std::stringstream split(line);
    for (std::string f; std::getline(split, f, '\t');) fields.push_back(f);
    if (dump.device.empty()) {
      dump.device = fields;
    } else {
      dump.peers.push_back(fields);
    }
  }
  return dump;
}

// The output without its first field, the private key (a throwaway one, still not printed).
std::string redacted(const std::string& wg_output) {
  const auto tab = wg_output.find('\t');
  return tab == std::string::npos ? wg_output : "(private key)" + wg_output.substr(tab);
}

void expect_same_as_wg(const Device& d, const std::string& wg_output) {
  const WgDump dump = parse_wg_dump(wg_output);
  ASSERT_EQ(dump.device.size(), 4U) << redacted(wg_output);
  ASSERT_TRUE(d.private_key && d.public_key);
  EXPECT_TRUE(dump.device[0] == d.private_key->to_base64()) << "the private key differs";
  EXPECT_EQ(dump.device[1], d.public_key->to_base64());
  EXPECT_EQ(dump.device[2], std::to_string(d.listen_port));
  char fwmark[16];
  std::snprintf(fwmark, sizeof fwmark, "0x%x", d.fwmark);
  EXPECT_EQ(dump.device[3], d.fwmark == 0 ? std::string("off") : std::string(fwmark));
  ASSERT_EQ(dump.peers.size(), d.peers.size());
  std::map<std::string, const std::vector<std::string>*> rows;
  for (const auto& row : dump.peers) {
    if (!row.empty()) rows[row[0]] = &row;
  }
  for (const Peer& p : d.peers) {
    const auto it = rows.find(p.public_key.to_base64());
    ASSERT_NE(it, rows.end()) << p.public_key.to_base64() << " not in wg's output";
    const auto& f = *it->second;
    ASSERT_EQ(f.size(), 8U);
    EXPECT_EQ(f[1], p.preshared_key ? p.preshared_key->to_base64() : "(none)");
    EXPECT_EQ(f[2], p.endpoint ? p.endpoint->to_string() : "(none)");
    std::vector<std::string> ips, wg_ips;
    for (const auto& ip : p.allowed_ips) ips.push_back(ip.to_string());
    std::stringstream split(f[3]);
    for (std::string ip; std::getline(split, ip, ',');) {
      if (ip != "(none)") wg_ips.push_back(ip);
    }
    std::sort(ips.begin(), ips.end());
    std::sort(wg_ips.begin(), wg_ips.end());
    EXPECT_EQ(wg_ips, ips);
    const long long handshake =
        p.last_handshake ? std::chrono::duration_cast<std::chrono::seconds>(
                               p.last_handshake->time_since_epoch())
                               .count()
                         : 0;
    EXPECT_EQ(f[4], std::to_string(handshake));
    EXPECT_EQ(f[5], std::to_string(p.rx_bytes));
    EXPECT_EQ(f[6], std::to_string(p.tx_bytes));
    EXPECT_EQ(f[7], p.persistent_keepalive == 0 ? "off" : std::to_string(p.persistent_keepalive));
  }
}

// Skips (or fails, where the module must be there) when this kernel cannot run the tests.
#define CW_REQUIRE_KERNEL_WIREGUARD()                                                        \
  do {                                                                                       \
    if (::geteuid() != 0) {                                                                  \
      if (required()) FAIL() << "needs root";                                                \
      GTEST_SKIP() << "needs root (network namespaces and CAP_NET_ADMIN)";                   \
    }                                                                                        \
    auto probe = make_kernel_control();                                                      \
    if (!probe) {                                                                            \
      if (required()) FAIL() << probe.error().message();                                     \
      GTEST_SKIP() << probe.error().message() << " (run it through tests/kernel/run_in_vm.sh)"; \
    }                                                                                        \
  } while (false)

// ---- The tunnel ----

struct Side {
  const char* ifname;
  std::uint16_t port;
  const char* overlay;  // address/length on the WireGuard device
  const char* overlay_host;
  Key private_key;
  Key public_key;
  std::optional<Netns> ns;
  std::unique_ptr<DeviceControl> control;
  DeviceUpdate update;  // what it was configured with
};

class TunnelTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    a_ = std::make_unique<Side>(
        Side{"cwka", 51820, "10.77.0.1/24", "10.77.0.1", {}, {}, {}, {}, {}});
    b_ = std::make_unique<Side>(
        Side{"cwkb", 51821, "10.77.0.2/24", "10.77.0.2", {}, {}, {}, {}, {}});
    setup_error_ = build();
  }
  static void TearDownTestSuite() {
    a_.reset();  // closing the namespaces removes the devices in them
    b_.reset();
  }

  void SetUp() override {
    CW_REQUIRE_KERNEL_WIREGUARD();
    ASSERT_EQ(setup_error_, "") << "setting up the tunnel failed";
  }

  static std::string build() {
    if (::geteuid() != 0 || !make_kernel_control()) return "";  // SetUp skips or fails
    auto root = Rtnetlink::open();
    if (!root) return root.error().message();
    // The sockets of both devices stay here, on 127.0.0.1: lo must be up.
    if (auto r = root->set_up("lo"); !r) return r.error().message();
    for (Side* s : {a_.get(), b_.get()}) {
      s->private_key = generate_private_key().value();
      s->public_key = public_key_of(s->private_key).value();
      if (auto r = root->create_link(s->ifname, "wireguard"); !r) return r.error().message();
      s->ns.emplace(Netns::create());
      if (!s->ns->ok()) return "cannot create a network namespace";
      if (auto r = move_link(*root, s->ifname, *s->ns); !r) return r.error().message();
      auto control = control_in(*s->ns);
      if (!control) return control.error().message();
      s->control = std::move(control).value();
    }
    for (Side* s : {a_.get(), b_.get()}) {
      const Side& other = s == a_.get() ? *b_ : *a_;
      DeviceUpdate& u = s->update;
      u.private_key = s->private_key;
      u.listen_port = s->port;
      PeerUpdate p;
      p.peer.public_key = other.public_key;
      p.peer.endpoint = endpoint("127.0.0.1:" + std::to_string(other.port));
      p.peer.allowed_ips = {prefix(std::string(other.overlay_host) + "/32")};
      p.set_endpoint = p.replace_allowed_ips = true;
      u.peers.push_back(p);
      if (auto r = s->control->set(s->ifname, u); !r) return r.error().message();
      auto nl = rtnetlink_in(*s->ns);
      if (!nl) return nl.error().message();
      const auto address = InterfaceAddress::parse(s->overlay).value();
      if (auto r = nl->set_addresses(s->ifname, {address}); !r) return r.error().message();
      if (auto r = nl->set_up(s->ifname); !r) return r.error().message();
    }
    return "";
  }

  static testing::AssertionResult ping(const Side& from, const Side& to) {
    const std::string ping_path = find_in_path("ping");
    if (ping_path.empty()) return testing::AssertionFailure() << "no ping on PATH";
    const Ran r = run(*from.ns, {ping_path, "-c", "1", "-w", "20", to.overlay_host}, 30s);
    if (r.status == 0) return testing::AssertionSuccess();
    return testing::AssertionFailure() << "ping " << to.overlay_host << " exited " << r.status
                                       << ":\n" << r.output;
  }

  static Device get(const Side& s) {
    auto d = s.control->get(s.ifname);
    EXPECT_TRUE(d.ok()) << d.error().message();
    return d.ok() ? *d : Device{};
  }

  static inline std::unique_ptr<Side> a_, b_;
  static inline std::string setup_error_;
};

TEST_F(TunnelTest, PingCrossesTheTunnelBothWays) {
  EXPECT_TRUE(ping(*a_, *b_));
  EXPECT_TRUE(ping(*b_, *a_));
}

TEST_F(TunnelTest, GetReadsBackWhatSetWrote) {
  ASSERT_TRUE(ping(*a_, *b_));
  for (const Side* s : {a_.get(), b_.get()}) {
    SCOPED_TRACE(s->ifname);
    const Side& other = s == a_.get() ? *b_ : *a_;
    const Device d = get(*s);
    EXPECT_EQ(d.name, s->ifname);
    EXPECT_TRUE(d.private_key == s->private_key);
    EXPECT_EQ(d.public_key, s->public_key);
    EXPECT_EQ(d.listen_port, s->port);
    EXPECT_EQ(d.fwmark, 0U);
    ASSERT_EQ(d.peers.size(), 1U);
    const Peer& p = d.peers[0];
    EXPECT_TRUE(same_config(p, s->update.peers[0].peer));
    EXPECT_EQ(p.public_key, other.public_key);
    EXPECT_EQ(p.endpoint, endpoint("127.0.0.1:" + std::to_string(other.port)));
    ASSERT_TRUE(p.last_handshake.has_value()) << "the ping made a handshake";
    const auto age = std::chrono::system_clock::now() - *p.last_handshake;
    EXPECT_LT(age, 120s);
    EXPECT_GT(age, -5s);
    EXPECT_GT(p.rx_bytes, 0U);
    EXPECT_GT(p.tx_bytes, 0U);
  }
}

TEST_F(TunnelTest, WgShowDumpAgreesWithGet) {
  const std::string wg = find_in_path("wg");
  ASSERT_FALSE(wg.empty()) << "no wg on PATH";
  for (const Side* s : {a_.get(), b_.get()}) {
    SCOPED_TRACE(s->ifname);
    const Device d = get(*s);
    const Ran r = run(*s->ns, {wg, "show", s->ifname, "dump"});
    ASSERT_EQ(r.status, 0) << redacted(r.output);
    expect_same_as_wg(d, r.output);
  }
}

TEST_F(TunnelTest, ListSeesOnlyTheDevicesOfItsNamespace) {
  auto names = a_->control->list();
  ASSERT_TRUE(names.ok()) << names.error().message();
  EXPECT_EQ(*names, std::vector<std::string>{"cwka"});
  auto root = make_kernel_control();
  ASSERT_TRUE(root.ok());
  auto root_names = (*root)->list();
  ASSERT_TRUE(root_names.ok());
  EXPECT_TRUE(std::find(root_names->begin(), root_names->end(), "cwka") == root_names->end())
      << "the device was moved away";
}

// Kilo compares before writing "because setting the WireGuard configuration interrupts
// existing connections". The kernel is kinder than that: the same private key, port and peer
// written again leave the session alone.
TEST_F(TunnelTest, TheSameUpdateAgainKeepsTheSession) {
  ASSERT_TRUE(ping(*a_, *b_));
  const Device before = get(*a_);
  ASSERT_EQ(before.peers.size(), 1U);
  ASSERT_TRUE(before.peers[0].last_handshake.has_value());
  std::this_thread::sleep_for(1100ms);  // a new handshake would show a later second

  auto r = a_->control->set(a_->ifname, a_->update);
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_TRUE(ping(*a_, *b_));
  const Device after = get(*a_);
  ASSERT_EQ(after.peers.size(), 1U);
  EXPECT_EQ(after.peers[0].last_handshake, before.peers[0].last_handshake)
      << "rewriting the same configuration started a new handshake";
  EXPECT_GT(after.peers[0].tx_bytes, before.peers[0].tx_bytes) << "the ping went through";
}

// replace_peers is another matter: the kernel removes every peer and creates the listed ones
// anew, so the session and its counters are gone even when the list is the same.
TEST_F(TunnelTest, ReplacePeersWithTheSameListRestartsTheSession) {
  ASSERT_TRUE(ping(*a_, *b_));
  const Device before = get(*a_);
  ASSERT_EQ(before.peers.size(), 1U);
  ASSERT_TRUE(before.peers[0].last_handshake.has_value());

  DeviceUpdate replace = a_->update;
  replace.replace_peers = true;
  auto r = a_->control->set(a_->ifname, replace);
  ASSERT_TRUE(r.ok()) << r.error().message();
  const Device right_after = get(*a_);
  ASSERT_EQ(right_after.peers.size(), 1U);
  EXPECT_TRUE(same_config(right_after.peers[0], a_->update.peers[0].peer));
  EXPECT_FALSE(right_after.peers[0].last_handshake.has_value()) << "the peer was recreated";
  EXPECT_EQ(right_after.peers[0].rx_bytes, 0U);
  EXPECT_EQ(right_after.peers[0].tx_bytes, 0U);

  ASSERT_TRUE(ping(*a_, *b_)) << "a new handshake brings the tunnel back";
  const Device later = get(*a_);
  ASSERT_EQ(later.peers.size(), 1U);
  EXPECT_TRUE(later.peers[0].last_handshake.has_value());
}

// ---- One device in a namespace of its own ----

class DeviceTest : public testing::Test {
 protected:
  void SetUp() override {
    CW_REQUIRE_KERNEL_WIREGUARD();
    ns_.emplace(Netns::create());
    ASSERT_TRUE(ns_->ok()) << "cannot create a network namespace";
    auto nl = rtnetlink_in(*ns_);
    ASSERT_TRUE(nl.ok()) << nl.error().message();
    nl_.emplace(std::move(nl).value());
    ASSERT_TRUE(nl_->create_link(kName, "wireguard").ok());
    auto control = control_in(*ns_);
    ASSERT_TRUE(control.ok()) << control.error().message();
    control_ = std::move(control).value();
  }

  Device get() {
    auto d = control_->get(kName);
    EXPECT_TRUE(d.ok()) << d.error().message();
    return d.ok() ? *d : Device{};
  }
  void set(const DeviceUpdate& update) {
    auto r = control_->set(kName, update);
    ASSERT_TRUE(r.ok()) << r.error().message();
  }

  static constexpr const char* kName = "cwk0";
  std::optional<Netns> ns_;
  std::optional<Rtnetlink> nl_;
  std::unique_ptr<DeviceControl> control_;
};

// 1,000 peers x 2 allowed IPs: about 14 SET messages of 8 KiB, and a dump of several.
DeviceUpdate thousand_peers() {
  DeviceUpdate u;
  u.private_key = generate_private_key().value();
  u.listen_port = 0;  // the kernel picks one
  u.replace_peers = true;
  for (int i = 0; i < 1000; ++i) {
    PeerUpdate p;
    p.peer.public_key = random_key();
    p.peer.allowed_ips = {
        prefix("10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".0/24"),
        prefix("fd00:" + std::to_string(i) + "::/64")};
    if (i % 3 == 0) {
      p.peer.endpoint = endpoint("192.0.2." + std::to_string(i % 250 + 1) + ":" +
                                 std::to_string(10000 + i));
      p.set_endpoint = true;
    }
    if (i % 5 == 0) {
      p.peer.persistent_keepalive = 25;
      p.set_keepalive = true;
    }
    if (i % 7 == 0) {
      p.peer.preshared_key = random_key();
      p.set_preshared_key = true;
    }
    p.replace_allowed_ips = true;
    u.peers.push_back(p);
  }
  return u;
}

void expect_peers(const Device& d, std::vector<Peer> want) {
  std::sort(want.begin(), want.end(),
            [](const Peer& x, const Peer& y) { return x.public_key < y.public_key; });
  ASSERT_EQ(d.peers.size(), want.size());
  int mismatches = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (!same_config(d.peers[i], want[i]) && ++mismatches <= 5) {
      ADD_FAILURE() << "peer " << i << " " << want[i].public_key.to_base64() << " differs";
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_F(DeviceTest, AThousandPeersWithTwoAllowedIPsEachRoundTrip) {
  const DeviceUpdate u = thousand_peers();
  const auto started = std::chrono::steady_clock::now();
  set(u);
  const auto set_took = std::chrono::steady_clock::now() - started;
  const Device d = get();
  const auto get_took = std::chrono::steady_clock::now() - started - set_took;
  std::printf("1000 peers: set %lld ms, get %lld ms (emulated CPU)\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(set_took).count()),
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(get_took).count()));
  EXPECT_TRUE(d.private_key == u.private_key);
  auto split = build_set_device(0, kName, u);
  ASSERT_TRUE(split.ok());
  std::printf("1000 peers: %zu SET messages\n", split->messages().size());
  EXPECT_GT(split->messages().size(), 10U);
  std::vector<Peer> want;
  for (const auto& p : u.peers) want.push_back(p.peer);
  expect_peers(d, want);

  const std::string wg = find_in_path("wg");
  ASSERT_FALSE(wg.empty());
  const Ran r = run(*ns_, {wg, "show", kName, "dump"});
  ASSERT_EQ(r.status, 0) << redacted(r.output);
  expect_same_as_wg(d, r.output);

  // Port 0 stays 0 while the device is down: the kernel picks a port when it opens its
  // socket, at the first up.
  EXPECT_EQ(d.listen_port, 0);
  ASSERT_TRUE(nl_->set_up(kName).ok());
  EXPECT_NE(get().listen_port, 0) << "up, the device has a port of the kernel's choice";

  // Written again without replace_peers, the same thousand stay as they are.
  DeviceUpdate again = u;
  again.replace_peers = false;
  set(again);
  expect_peers(get(), want);
}

// One peer with more allowed IPs than one SET message or one dump message holds: the
// continuation must not replace what came before, on either side.
TEST_F(DeviceTest, APeerWithThreeThousandAllowedIPsSpansMessagesBothWays) {
  DeviceUpdate u;
  PeerUpdate p;
  p.peer.public_key = random_key();
  for (int i = 0; i < 3000; ++i) {
    p.peer.allowed_ips.push_back(
        prefix("10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".0/24"));
  }
  p.replace_allowed_ips = true;
  u.peers.push_back(p);
  PeerUpdate other;
  other.peer.public_key = random_key();
  other.peer.allowed_ips = {prefix("192.168.0.0/16")};
  u.peers.push_back(other);
  set(u);
  expect_peers(get(), {p.peer, other.peer});

  // The kernel's own dump, read here without the control: the peer must really come back in
  // parts, under the same public key, for this to test the merging.
  using Replies = std::vector<netlink::Reply>;
  auto dump = in_netns<Replies>(*ns_, []() -> Result<Replies> {
    auto socket = netlink::Socket::open(NETLINK_GENERIC);
    if (!socket) return socket.error();
    auto family = netlink::resolve_genl_family(*socket, WG_GENL_NAME);
    if (!family) return family.error();
    auto request = build_get_device(*family, kName);
    if (!request) return request.error();
    return socket->request(*request);
  });
  ASSERT_TRUE(dump.ok()) << dump.error().message();
  int parts = 0;
  for (const auto& reply : *dump) {
    const auto peers = reply.attributes(GENL_HDRLEN).find(WGDEVICE_A_PEERS);
    if (!peers) continue;
    for (const auto& peer : peers->nested()) {
      const auto key = peer.nested().find(WGPEER_A_PUBLIC_KEY);
      if (key && std::equal(key->payload().begin(), key->payload().end(),
                            p.peer.public_key.bytes().begin())) {
        ++parts;
      }
    }
  }
  std::printf("3000 allowed IPs: the dump took %zu messages, the peer %d parts\n", dump->size(),
              parts);
  EXPECT_GT(parts, 1);
  auto parsed = parse_get_device(*dump);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  expect_peers(*parsed, {p.peer, other.peer});

  // replace_allowed_ips with a shorter list drops the rest, in a single message.
  PeerUpdate shorter = p;
  shorter.peer.allowed_ips = {prefix("10.200.0.0/16")};
  set(DeviceUpdate{.peers = {shorter}});
  expect_peers(get(), {shorter.peer, other.peer});

  // Without it, allowed IPs are added; an allowed IP moves from the peer that had it.
  PeerUpdate add;
  add.peer.public_key = p.peer.public_key;
  add.peer.allowed_ips = {prefix("192.168.0.0/16")};
  set(DeviceUpdate{.peers = {add}});
  Peer grown = shorter.peer;
  grown.allowed_ips.push_back(prefix("192.168.0.0/16"));
  Peer robbed = other.peer;
  robbed.allowed_ips.clear();
  expect_peers(get(), {grown, robbed});
}

TEST_F(DeviceTest, RemoveReplaceAndUpdateOnly) {
  DeviceUpdate u;
  std::vector<Peer> peers(4);
  for (std::size_t i = 0; i < peers.size(); ++i) {
    peers[i].public_key = random_key();
    peers[i].allowed_ips = {prefix("10.9." + std::to_string(i) + ".0/24")};
    u.peers.push_back(PeerUpdate{.peer = peers[i]});
  }
  set(u);
  expect_peers(get(), peers);

  // Remove one: only its key is needed.
  PeerUpdate remove;
  remove.peer.public_key = peers[1].public_key;
  remove.remove = true;
  set(DeviceUpdate{.peers = {remove}});
  expect_peers(get(), {peers[0], peers[2], peers[3]});

  // update_only: an unknown peer is not created, a known one is changed.
  PeerUpdate unknown{.peer = Peer{.public_key = random_key()}};
  unknown.update_only = true;
  PeerUpdate known{.peer = peers[0]};
  known.peer.persistent_keepalive = 15;
  known.peer.preshared_key = random_key();
  known.update_only = known.set_keepalive = known.set_preshared_key = true;
  set(DeviceUpdate{.peers = {unknown, known}});
  expect_peers(get(), {known.peer, peers[2], peers[3]});

  // An all-zero preshared key clears it.
  PeerUpdate clear{.peer = Peer{.public_key = peers[0].public_key}};
  clear.set_preshared_key = true;
  set(DeviceUpdate{.peers = {clear}});
  Peer cleared = known.peer;
  cleared.preshared_key.reset();
  expect_peers(get(), {cleared, peers[2], peers[3]});

  // replace_peers: exactly the listed ones remain.
  Peer fresh{.public_key = random_key(), .allowed_ips = {prefix("10.10.0.0/16")}};
  set(DeviceUpdate{.replace_peers = true,
                   .peers = {PeerUpdate{.peer = peers[3]}, PeerUpdate{.peer = fresh}}});
  expect_peers(get(), {peers[3], fresh});

  // And with nothing listed, none.
  set(DeviceUpdate{.replace_peers = true});
  EXPECT_TRUE(get().peers.empty());
}

TEST_F(DeviceTest, DeviceFieldsAndAnIPv6Endpoint) {
  DeviceUpdate u;
  u.private_key = generate_private_key().value();
  u.listen_port = 40000;
  u.fwmark = 0x77;
  PeerUpdate p;
  p.peer.public_key = random_key();
  p.peer.endpoint = endpoint("[2001:db8::7]:51820");
  p.peer.allowed_ips = {prefix("::/0"), prefix("0.0.0.0/0")};
  p.set_endpoint = true;
  u.peers.push_back(p);
  set(u);
  const Device d = get();
  EXPECT_EQ(d.listen_port, 40000);
  EXPECT_EQ(d.fwmark, 0x77U);
  EXPECT_EQ(d.public_key, public_key_of(*u.private_key).value());
  expect_peers(d, {p.peer});

  // An all-zero private key removes the device's identity.
  set(DeviceUpdate{.private_key = Key()});
  const Device cleared = get();
  EXPECT_FALSE(cleared.private_key.has_value());
  EXPECT_FALSE(cleared.public_key.has_value());
}

TEST_F(DeviceTest, ErrorsSayWhatWentWrong) {
  auto missing = control_->get("cwnothere");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound) << missing.error().message();
  EXPECT_EQ(control_->set("cwnothere", DeviceUpdate{}).error().code(), ErrorCode::kNotFound);

  auto not_wireguard = control_->get("lo");
  ASSERT_FALSE(not_wireguard.ok());
  EXPECT_EQ(not_wireguard.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(not_wireguard.error().message().find("not a WireGuard device"), std::string::npos)
      << not_wireguard.error().message();

  // Two devices, up, cannot share a listen port.
  ASSERT_TRUE(nl_->create_link("cwk1", "wireguard").ok());
  set(DeviceUpdate{.listen_port = 41000});
  ASSERT_TRUE(control_->set("cwk1", DeviceUpdate{.listen_port = 41001}).ok());
  ASSERT_TRUE(nl_->set_up(kName).ok());
  ASSERT_TRUE(nl_->set_up("cwk1").ok());
  auto taken = control_->set("cwk1", DeviceUpdate{.listen_port = 41000});
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().code(), ErrorCode::kConflict) << taken.error().message();

  auto names = control_->list();
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"cwk0", "cwk1"}));
}

}  // namespace
}  // namespace cw::wg
