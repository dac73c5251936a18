// The UAPI backend against the real wireguard-go: two network namespaces joined by a veth pair
// (10.123.0.1/24 and 10.123.0.2/24), a wireguard-go in each, configured only through
// make_uapi_control(), a ping through the tunnel, and the devices read back both by get() and
// by `wg show dump`.
//
// Safe for the machine: everything created is named after this process's pid (namespaces
// cwtest-uapi-<pid>-a/b, interfaces cwu<pid>a/b, whose UAPI sockets share /var/run/wireguard
// with every namespace), addresses exist only inside those namespaces, and the root
// namespace's links and routes are never touched. Cleanup runs in TearDown and also from a
// signal handler (Ctrl-C, a crash); the daemons get SIGTERM if this process dies without
// either (PR_SET_PDEATHSIG), and a later run deletes namespaces whose creator is gone.
// Needs root, wireguard-go, wg, ip and ping; skips with the reason otherwise.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/wireguard/uapi_control.h"

extern char** environ;

namespace cw::wg {
namespace {

using namespace std::chrono_literals;

constexpr const char* kNetnsPrefix = "cwtest-uapi-";
constexpr const char* kNetnsDir = "/run/netns";
constexpr const char* kSocketDir = "/var/run/wireguard";
constexpr std::uint16_t kPort = 51820;

// ---- Cleanup that is safe in a signal handler ----
// Fixed-size state and async-signal-safe calls only (kill, waitpid, nanosleep, umount2,
// unlink). A global because a signal handler has no other way to reach it.
constexpr int kSides = 2;
struct Leftovers {
  std::atomic<pid_t> daemons[kSides];
  char netns_paths[kSides][128];   // /run/netns/<name>, empty when not created
  char socket_paths[kSides][128];  // UAPI sockets our daemons own
};
Leftovers g_leftovers{};

void copy_path(char (&to)[128], const std::string& from) {
  std::snprintf(to, sizeof to, "%s", from.c_str());
}

void sleep_ms(long ms) {
  timespec t{ms / 1000, (ms % 1000) * 1000000};
  while (::nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

// Stops our daemons by pid (SIGTERM; wireguard-go takes ~1.5 s to close, SIGKILL after 5 s),
// then deletes our namespaces as `ip netns del` does, then any socket a killed daemon left.
void reap_leftovers() {
  for (auto& d : g_leftovers.daemons) {
    if (const pid_t pid = d.load(); pid > 0) ::kill(pid, SIGTERM);
  }
  for (auto& d : g_leftovers.daemons) {
    const pid_t pid = d.exchange(0);
    if (pid <= 0) continue;
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
      gone = ::waitpid(pid, nullptr, WNOHANG) != 0;
      if (!gone) sleep_ms(50);
    }
    if (!gone) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  for (auto& path : g_leftovers.netns_paths) {
    if (path[0] == '\0') continue;
    ::umount2(path, MNT_DETACH);
    ::unlink(path);
    path[0] = '\0';
  }
  for (auto& path : g_leftovers.socket_paths) {
    if (path[0] == '\0') continue;
    ::unlink(path);  // usually gone already: wireguard-go removes it when it exits cleanly
    path[0] = '\0';
  }
}

constexpr int kFatalSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS};
struct sigaction g_previous[std::size(kFatalSignals)];

extern "C" void on_fatal_signal(int signal) {
  reap_leftovers();
  ::raise(signal);  // SA_RESETHAND restored the default action
}

void install_signal_cleanup() {
  struct sigaction action {};
  action.sa_handler = on_fatal_signal;
  action.sa_flags = static_cast<int>(SA_RESETHAND);
  sigemptyset(&action.sa_mask);
  for (std::size_t i = 0; i < std::size(kFatalSignals); ++i) {
    ::sigaction(kFatalSignals[i], &action, &g_previous[i]);
  }
}

void remove_signal_cleanup() {
  for (std::size_t i = 0; i < std::size(kFatalSignals); ++i) {
    ::sigaction(kFatalSignals[i], &g_previous[i], nullptr);
  }
}

// ---- Running commands ----

std::string find_in_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = dir + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

struct Ran {
  int status = -1;     // the exit code, 128 + signal when killed
  std::string output;  // stdout and stderr
};

std::string joined(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    out += (out.empty() ? "" : " ") + a;
  }
  return out;
}

// Runs argv (no shell), killing it after `timeout`.
Ran run(const std::vector<std::string>& argv, std::chrono::seconds timeout = 30s) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return {-1, "pipe2 failed"};
  std::vector<char*> args;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::dup2(pipe_fds[1], STDERR_FILENO);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  Ran ran;
  if (pid < 0) {
    ::close(pipe_fds[0]);
    return {-1, "fork failed"};
  }
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

testing::AssertionResult succeeds(const std::vector<std::string>& argv) {
  const Ran r = run(argv);
  if (r.status == 0) return testing::AssertionSuccess();
  return testing::AssertionFailure() << joined(argv) << " exited " << r.status << ":\n" << r.output;
}

std::string tail_of(const std::string& path, std::size_t lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) {
    all.push_back(line);
  }
  std::string out;
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
    out += all[i] + "\n";
  }
  return out;
}

// Namespaces of earlier runs that were killed outright (SIGKILL, a CTest time-out): their
// daemons died with them (PR_SET_PDEATHSIG), the namespaces stay. Only names with our prefix
// whose creating pid no longer exists are touched.
void delete_orphaned_namespaces() {
  DIR* dir = ::opendir(kNetnsDir);
  if (dir == nullptr) return;
  std::vector<std::string> orphans;
  while (const dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    const std::string prefix = kNetnsPrefix;
    if (name.rfind(prefix, 0) != 0) continue;
    const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      orphans.push_back(name);
    }
  }
  ::closedir(dir);
  for (const auto& name : orphans) {
    std::printf("deleting namespace %s left by a run that was killed\n", name.c_str());
    run({"ip", "netns", "del", name});
  }
}

// ---- Reading `wg show <if> dump` ----

struct WgDump {
  std::vector<std::string> device;  // private, public, port, fwmark
  std::vector<std::vector<std::string>>
      peers;  // public, psk, endpoint, ips, handshake, rx, tx, keepalive
};

WgDump parse_wg_dump(const std::string& text) {
  WgDump dump;
  std::stringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> fields;
    std::stringstream split(line);
    for (std::string f; std::getline(split, f, '\t');) {
      fields.push_back(f);
    }
    if (dump.device.empty()) {
      dump.device = fields;
    } else {
      dump.peers.push_back(fields);
    }
  }
  return dump;
}

// What `wg` says about the device, field by field, against what get() said.
void expect_same_as_wg(const Device& d, const std::string& wg_output) {
  const WgDump dump = parse_wg_dump(wg_output);
  ASSERT_EQ(dump.device.size(), 4U) << wg_output;
  ASSERT_TRUE(d.private_key && d.public_key);
  EXPECT_EQ(dump.device[0], d.private_key->to_base64());
  EXPECT_EQ(dump.device[1], d.public_key->to_base64());
  EXPECT_EQ(dump.device[2], std::to_string(d.listen_port));
  EXPECT_EQ(
      dump.device[3], d.fwmark == 0 ? std::string("off") : [&] {
        char hex[16];
        std::snprintf(hex, sizeof hex, "0x%x", d.fwmark);
        return std::string(hex);
      }());
  ASSERT_EQ(dump.peers.size(), d.peers.size()) << wg_output;
  for (const Peer& p : d.peers) {
    const auto row = std::find_if(dump.peers.begin(), dump.peers.end(), [&](const auto& r) {
      return !r.empty() && r[0] == p.public_key.to_base64();
    });
    ASSERT_NE(row, dump.peers.end()) << p.public_key.to_base64() << " not in\n" << wg_output;
    ASSERT_EQ(row->size(), 8U) << wg_output;
    const auto& f = *row;
    EXPECT_EQ(f[1], p.preshared_key ? p.preshared_key->to_base64() : "(none)");
    EXPECT_EQ(f[2], p.endpoint ? p.endpoint->to_string() : "(none)");
    std::vector<std::string> ips;
    for (const auto& prefix : p.allowed_ips) {
      ips.push_back(prefix.to_string());
    }
    std::vector<std::string> wg_ips;
    std::stringstream split(f[3]);
    for (std::string ip; std::getline(split, ip, ',');) {
      if (ip != "(none)") wg_ips.push_back(ip);
    }
    std::sort(ips.begin(), ips.end());
    std::sort(wg_ips.begin(), wg_ips.end());
    EXPECT_EQ(wg_ips, ips);
    const long long handshake =
        p.last_handshake
            ? std::chrono::duration_cast<std::chrono::seconds>(p.last_handshake->time_since_epoch())
                  .count()
            : 0;
    EXPECT_EQ(f[4], std::to_string(handshake));
    EXPECT_EQ(f[5], std::to_string(p.rx_bytes));
    EXPECT_EQ(f[6], std::to_string(p.tx_bytes));
    EXPECT_EQ(f[7], p.persistent_keepalive == 0 ? "off" : std::to_string(p.persistent_keepalive));
  }
}

const Peer* find_peer(const Device& d, const Key& public_key) {
  for (const Peer& p : d.peers) {
    if (p.public_key == public_key) return &p;
  }
  return nullptr;
}

// ---- The lab ----

struct Side {
  std::string netns;
  std::string ifname;
  std::string underlay_address;  // on the veth
  std::string overlay_address;   // on the WireGuard device
  std::string log_path;
  Key private_key;
  Key public_key;
};

class WireGuardGoTest : public testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: network namespaces and TUN devices";
    for (const char* tool : {"wireguard-go", "wg", "ip", "ping"}) {
      if (find_in_path(tool).empty()) {
        GTEST_SKIP() << tool << " is not installed (scripts/deps.sh lists the packages)";
      }
    }
    if (::access("/dev/net/tun", R_OK | W_OK) != 0) {
      GTEST_SKIP() << "no /dev/net/tun on this machine";
    }

    delete_orphaned_namespaces();
    char dir[] = "/tmp/cw-wggo-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    temp_dir_ = dir;

    const std::string pid = std::to_string(::getpid());
    const Key psk = generate_private_key().value();
    for (int i = 0; i < kSides; ++i) {
      const std::string letter(1, static_cast<char>('a' + i));
      Side& s = sides_[i];
      s.netns = kNetnsPrefix + pid + "-" + letter;
      s.ifname = "cwu" + pid + letter;  // at most 11 characters
      s.underlay_address = "10.123.0." + std::to_string(i + 1);
      s.overlay_address = "10.124.0." + std::to_string(i + 1);
      s.log_path = temp_dir_ + "/wireguard-go-" + letter + ".log";
      s.private_key = generate_private_key().value();
      s.public_key = public_key_of(s.private_key).value();
    }
    psk_ = psk;
    install_signal_cleanup();
    signals_installed_ = true;

    for (int i = 0; i < kSides; ++i) {
      const Ran added = run({"ip", "netns", "add", sides_[i].netns});
      if (added.status != 0) {
        GTEST_SKIP() << "cannot create network namespaces here: " << added.output;
      }
      copy_path(g_leftovers.netns_paths[i], std::string(kNetnsDir) + "/" + sides_[i].netns);
    }
    // The veth is created inside namespace a and its peer moved straight into b: the root
    // namespace never sees either end.
    ASSERT_TRUE(succeeds({"ip", "-n", a().netns, "link", "add", "underlay", "type", "veth", "peer",
                          "name", "underlay", "netns", b().netns}));
    for (const Side& s : sides_) {
      ASSERT_TRUE(succeeds(
          {"ip", "-n", s.netns, "addr", "add", s.underlay_address + "/24", "dev", "underlay"}));
      ASSERT_TRUE(succeeds({"ip", "-n", s.netns, "link", "set", "underlay", "up"}));
      ASSERT_TRUE(succeeds({"ip", "-n", s.netns, "link", "set", "lo", "up"}));
    }
    for (int i = 0; i < kSides; ++i) {
      ASSERT_NO_FATAL_FAILURE(start_daemon(i));
    }
    control_ = make_uapi_control();
  }

  void TearDown() override {
    if (HasFailure()) {
      for (const Side& s : sides_) {
        if (!s.log_path.empty()) {
          std::printf("---- last lines of %s ----\n%s", s.log_path.c_str(),
                      tail_of(s.log_path, 40).c_str());
        }
      }
    }
    reap_leftovers();
    if (signals_installed_) remove_signal_cleanup();
    for (const Side& s : sides_) {
      if (s.netns.empty()) continue;
      EXPECT_EQ(run({"ip", "netns", "list"}).output.find(s.netns), std::string::npos)
          << s.netns << " is still there";
      struct stat st {};
      EXPECT_NE(::stat((std::string(kSocketDir) + "/" + s.ifname + ".sock").c_str(), &st), 0)
          << "the UAPI socket of " << s.ifname << " is still there";
    }
    if (!temp_dir_.empty()) run({"rm", "-rf", temp_dir_});
  }

  // Starts `WG_PROCESS_FOREGROUND=1 ip netns exec <ns> wireguard-go -f <if>` and waits for
  // its UAPI socket to answer.
  void start_daemon(int i) {
    const Side& s = sides_[i];
    const std::string socket_path = std::string(kSocketDir) + "/" + s.ifname + ".sock";
    struct stat st {};
    ASSERT_NE(::stat(socket_path.c_str(), &st), 0)
        << socket_path << " exists already: not ours, not touched";

    // Everything the child needs is prepared before fork: after it, only exec.
    const std::string ip = find_in_path("ip");
    std::vector<std::string> argv = {"ip",           "netns", "exec",  s.netns,
                                     "wireguard-go", "-f",    s.ifname};
    std::vector<char*> args;
    for (auto& a : argv) {
      args.push_back(a.data());
    }
    args.push_back(nullptr);
    std::vector<std::string> env_storage = {"WG_PROCESS_FOREGROUND=1", "LOG_LEVEL=verbose"};
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry = *e;
      if (entry.rfind("WG_PROCESS_FOREGROUND=", 0) != 0 && entry.rfind("LOG_LEVEL=", 0) != 0) {
        env_storage.push_back(entry);
      }
    }
    std::vector<char*> env;
    for (auto& e : env_storage) {
      env.push_back(e.data());
    }
    env.push_back(nullptr);
    const int log = ::open(s.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(log, 0);
    const pid_t parent = ::getpid();

    const pid_t pid = ::fork();
    if (pid == 0) {
      // If this test process dies without cleaning up, the daemon is told to stop.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(log, STDOUT_FILENO);
      ::dup2(log, STDERR_FILENO);
      ::execve(ip.c_str(), args.data(), env.data());  // ip netns exec execs wireguard-go in place
      ::_exit(127);
    }
    ::close(log);
    ASSERT_GT(pid, 0);
    g_leftovers.daemons[i] = pid;

    for (int tries = 0; tries < 100; ++tries) {
      if (::stat(socket_path.c_str(), &st) == 0) {
        copy_path(g_leftovers.socket_paths[i], socket_path);
        if (make_uapi_control()->get(s.ifname).ok()) return;
      }
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        g_leftovers.daemons[i] = 0;
        FAIL() << "wireguard-go for " << s.ifname << " exited:\n" << tail_of(s.log_path, 20);
      }
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "wireguard-go for " << s.ifname << " did not answer on " << socket_path
           << " within 5 s";
  }

  Side& a() { return sides_[0]; }
  Side& b() { return sides_[1]; }
  Side& other(const Side& s) { return &s == &sides_[0] ? sides_[1] : sides_[0]; }

  // The whole configuration of side `s`, every flag set, as a reconciler would state it.
  DeviceUpdate full_update(const Side& s) {
    const Side& peer_side = other(s);
    DeviceUpdate u;
    u.private_key = s.private_key;
    u.listen_port = kPort;
    u.fwmark = &s == &sides_[0] ? 0x2a : 0;
    PeerUpdate p;
    p.peer.public_key = peer_side.public_key;
    p.peer.preshared_key = psk_;
    p.peer.endpoint =
        Endpoint::parse(peer_side.underlay_address + ":" + std::to_string(kPort)).value();
    p.peer.allowed_ips = {net::Prefix::parse(peer_side.overlay_address + "/32").value()};
    p.replace_allowed_ips = p.set_preshared_key = p.set_endpoint = p.set_keepalive = true;
    u.peers.push_back(p);
    return u;
  }

  testing::AssertionResult ping(const Side& from, int count = 3) {
    return succeeds({"ip", "netns", "exec", from.netns, "ping", "-c", std::to_string(count), "-W",
                     "2", other(from).overlay_address});
  }

  // Configures both sides through the UAPI control, brings the tunnel up and pings across it.
  void bring_up_tunnel() {
    for (const Side& s : sides_) {
      auto r = control_->set(s.ifname, full_update(s));
      ASSERT_TRUE(r.ok()) << r.error().message();
      ASSERT_TRUE(succeeds(
          {"ip", "-n", s.netns, "addr", "add", s.overlay_address + "/24", "dev", s.ifname}));
      ASSERT_TRUE(succeeds({"ip", "-n", s.netns, "link", "set", s.ifname, "up"}));
    }
    ASSERT_TRUE(ping(a()));
  }

  Device must_get(const Side& s) {
    auto d = control_->get(s.ifname);
    EXPECT_TRUE(d.ok()) << d.error().message();
    return d.ok() ? *d : Device{};
  }

  bool signals_installed_ = false;
  std::string temp_dir_;
  Side sides_[kSides];
  Key psk_;
  std::unique_ptr<DeviceControl> control_;
};

TEST_F(WireGuardGoTest, TunnelCarriesPingsAndReadsBackAsWgSeesIt) {
  ASSERT_NO_FATAL_FAILURE(bring_up_tunnel());

  auto names = control_->list();
  ASSERT_TRUE(names.ok()) << names.error().message();
  EXPECT_NE(std::find(names->begin(), names->end(), a().ifname), names->end());
  EXPECT_NE(std::find(names->begin(), names->end(), b().ifname), names->end());

  for (const Side& s : sides_) {
    const Device d = must_get(s);
    EXPECT_EQ(d.name, s.ifname);
    EXPECT_EQ(d.private_key, s.private_key);
    EXPECT_EQ(d.public_key, s.public_key);
    EXPECT_EQ(d.listen_port, kPort);
    EXPECT_EQ(d.fwmark, full_update(s).fwmark.value());
    ASSERT_EQ(d.peers.size(), 1U);
    const Peer& p = d.peers[0];
    EXPECT_TRUE(same_config(p, full_update(s).peers[0].peer));
    ASSERT_TRUE(p.last_handshake.has_value()) << "the ping needed a handshake";
    EXPECT_LT(std::chrono::system_clock::now() - *p.last_handshake, 60s);
    EXPECT_GT(p.rx_bytes, 0U);
    EXPECT_GT(p.tx_bytes, 0U);

    const Ran wg = run({"ip", "netns", "exec", s.netns, "wg", "show", s.ifname, "dump"});
    ASSERT_EQ(wg.status, 0) << wg.output;
    expect_same_as_wg(d, wg.output);
  }

  auto missing = control_->get(a().ifname + "x");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound) << missing.error().message();
}

TEST_F(WireGuardGoTest, ApplyingTheSameUpdateAgainResetsNoPeer) {
  ASSERT_NO_FATAL_FAILURE(bring_up_tunnel());
  const Device before[] = {must_get(a()), must_get(b())};
  ASSERT_TRUE(before[0].peers.size() == 1 && before[0].peers[0].last_handshake);
  std::this_thread::sleep_for(1s);  // a handshake now would show as a different time

  for (const Side& s : sides_) {
    auto r = control_->set(s.ifname, full_update(s));
    ASSERT_TRUE(r.ok()) << r.error().message();
  }
  for (int i = 0; i < kSides; ++i) {
    const Device after = must_get(sides_[i]);
    ASSERT_EQ(after.peers.size(), 1U);
    const Peer& was = before[i].peers[0];
    const Peer& now = after.peers[0];
    EXPECT_TRUE(same_config(was, now));
    EXPECT_EQ(now.last_handshake, was.last_handshake) << sides_[i].ifname;
    EXPECT_GE(now.rx_bytes, was.rx_bytes);
    EXPECT_GE(now.tx_bytes, was.tx_bytes);
  }
  // Traffic still flows on the same session: a reset peer would need a new handshake.
  ASSERT_TRUE(ping(a(), 1));
  for (int i = 0; i < kSides; ++i) {
    const Device after = must_get(sides_[i]);
    ASSERT_EQ(after.peers.size(), 1U);
    EXPECT_EQ(after.peers[0].last_handshake, before[i].peers[0].last_handshake) << sides_[i].ifname;
    EXPECT_GT(after.peers[0].rx_bytes, before[i].peers[0].rx_bytes);
  }
}

TEST_F(WireGuardGoTest, UpdateOnlyRemoveAndReplacePeers) {
  ASSERT_NO_FATAL_FAILURE(bring_up_tunnel());
  const Device start = must_get(a());
  ASSERT_EQ(start.peers.size(), 1U);
  const auto handshake = start.peers[0].last_handshake;
  ASSERT_TRUE(handshake.has_value());

  const Key c = public_key_of(generate_private_key().value()).value();
  const Key d = public_key_of(generate_private_key().value()).value();
  auto peer_with = [](const Key& key, std::string_view ip) {
    PeerUpdate p;
    p.peer.public_key = key;
    p.peer.allowed_ips = {net::Prefix::parse(ip).value()};
    return p;
  };
  auto apply = [&](const DeviceUpdate& u) {
    auto r = control_->set(a().ifname, u);
    EXPECT_TRUE(r.ok()) << r.error().message();
    return must_get(a());
  };

  // update_only on an unknown peer: nothing is created.
  DeviceUpdate u;
  u.peers = {peer_with(c, "10.200.0.0/24")};
  u.peers[0].update_only = true;
  Device now = apply(u);
  EXPECT_EQ(now.peers.size(), 1U);
  EXPECT_EQ(find_peer(now, c), nullptr);

  // update_only on the known peer: updated in place (allowed IPs are added without the
  // replace flag), its session kept.
  u.peers = {peer_with(b().public_key, "10.124.1.0/24")};
  u.peers[0].update_only = true;
  now = apply(u);
  ASSERT_NE(find_peer(now, b().public_key), nullptr);
  EXPECT_EQ(find_peer(now, b().public_key)->allowed_ips,
            (std::vector<net::Prefix>{net::Prefix::parse("10.124.0.2/32").value(),
                                      net::Prefix::parse("10.124.1.0/24").value()}));
  EXPECT_EQ(find_peer(now, b().public_key)->last_handshake, handshake);

  // Two new peers, then one removed; the tunnel's peer is untouched throughout.
  u.peers = {peer_with(c, "10.200.0.0/24"), peer_with(d, "10.201.0.0/24")};
  now = apply(u);
  EXPECT_EQ(now.peers.size(), 3U);
  u.peers = {peer_with(c, "10.200.0.0/24")};
  u.peers[0].remove = true;
  now = apply(u);
  EXPECT_EQ(now.peers.size(), 2U);
  EXPECT_EQ(find_peer(now, c), nullptr);
  ASSERT_NE(find_peer(now, d), nullptr);
  EXPECT_EQ(find_peer(now, b().public_key)->last_handshake, handshake);

  // replace_peers stating only the tunnel's peer: d goes. wireguard-go implements it as
  // "remove every peer, then create the listed ones", so the listed peer is recreated too:
  // its session, handshake time and counters are gone. Appliers must not use it to converge.
  std::this_thread::sleep_for(1s);
  DeviceUpdate replace = full_update(a());
  replace.replace_peers = true;
  now = apply(replace);
  ASSERT_EQ(now.peers.size(), 1U);
  const Peer& recreated = now.peers[0];
  EXPECT_EQ(recreated.public_key, b().public_key);
  EXPECT_TRUE(same_config(recreated, full_update(a()).peers[0].peer));
  EXPECT_FALSE(recreated.last_handshake.has_value())
      << "wireguard-go kept the session through replace_peers";
  EXPECT_EQ(recreated.rx_bytes, 0U);
  EXPECT_EQ(recreated.tx_bytes, 0U);

  // A new handshake brings the tunnel back.
  ASSERT_TRUE(ping(a(), 1));
  now = must_get(a());
  ASSERT_EQ(now.peers.size(), 1U);
  ASSERT_TRUE(now.peers[0].last_handshake.has_value());
  EXPECT_GT(*now.peers[0].last_handshake, *handshake);
}

}  // namespace
}  // namespace cw::wg
