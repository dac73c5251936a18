// Applying a WireGuard device with 1,000 peers (two allowed IPs each), then changing one
// peer, through a DeviceControl backend (uapi: wireguard-go's socket; kernel: generic
// netlink), as the node agent does it: full update first, then diff_device's minimal one.
// Prints the time and the bytes sent for each step, and writes the same configuration as a
// `wg setconf` file so that bench/wireguard_apply.sh can time the baseline in the same run.
//
// Usage (as root, in a namespace where the device exists):
//   wireguard_apply_bench --backend uapi|kernel --interface IF --setconf-out FILE [--peers N]
#include <algorithm>
#include <optional>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include "common/netlink/rtnetlink.h"
#include "common/wireguard/kernel_control.h"
#include "common/wireguard/uapi.h"
#include "common/wireguard/uapi_control.h"
#include "node-agent/device_diff.h"

namespace {

using Clock = std::chrono::steady_clock;
using cw::wg::Key;

std::vector<cw::wg::Peer> make_peers(int n) {
  std::vector<cw::wg::Peer> peers;
  for (int i = 0; i < n; ++i) {
    cw::wg::Peer p;
    p.public_key = cw::wg::public_key_of(cw::wg::generate_private_key().value()).value();
    p.endpoint = cw::wg::Endpoint::parse("192.0.2." + std::to_string(1 + i % 250) + ":" + std::to_string(20000 + i)).value();
    char a[48], b[48];
    std::snprintf(a, sizeof a, "10.%d.%d.0/24", 64 + i / 256, i % 256);
    std::snprintf(b, sizeof b, "fd00:%x::/64", i + 1);
    p.allowed_ips = {cw::net::Prefix::parse(a).value(), cw::net::Prefix::parse(b).value()};
    p.persistent_keepalive = 25;
    peers.push_back(std::move(p));
  }
  return peers;
}

// The bytes a backend sends for `update`: the UAPI request text, or the netlink messages.
std::size_t bytes_for(const std::string& backend, const std::string& ifname, const cw::wg::DeviceUpdate& update,
                      std::uint16_t family) {
  if (backend == "uapi") {
    std::string text = cw::wg::encode_set(update);
    const std::size_t n = text.size();
    cw::wg::wipe(text);
    return n;
  }
  auto messages = cw::wg::build_set_device(family, ifname, update);
  std::size_t n = 0;
  if (messages) {
    for (const auto& m : messages->messages()) n += m.size();
    messages->wipe();
  }
  return n;
}

// Milliseconds `wg setconf IF FILE` takes (the baseline), or -1 if it failed.
double time_setconf(const std::string& ifname, const std::string& file) {
  const auto t0 = Clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    execlp("wg", "wg", "setconf", ifname.c_str(), file.c_str(), nullptr);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string backend = "uapi", ifname, setconf_out;
  int n = 1000;
  bool own_device = false;  // --own-device: create it (kernel), and time wg setconf here too
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--backend") backend = argv[i + 1];
    if (a == "--interface") ifname = argv[i + 1];
    if (a == "--setconf-out") setconf_out = argv[i + 1];
    if (a == "--peers") n = std::stoi(argv[i + 1]);
    if (a == "--own-device") own_device = std::string(argv[i + 1]) == "yes";
  }
  std::optional<cw::netlink::Rtnetlink> rt;
  if (own_device) {
    rt.emplace(cw::netlink::Rtnetlink::open().value());
    if (auto r = rt->create_link(ifname, "wireguard"); !r) {
      std::fprintf(stderr, "creating %s: %s\n", ifname.c_str(), r.error().message().c_str());
      return 2;
    }
  }
  std::unique_ptr<cw::wg::DeviceControl> control;
  std::uint16_t family = 0;
  if (backend == "kernel") {
    auto k = cw::wg::make_kernel_control();
    if (!k) {
      std::fprintf(stderr, "%s\n", k.error().message().c_str());
      return 2;
    }
    control = std::move(*k);
    auto socket = cw::netlink::Socket::open(NETLINK_GENERIC);
    if (socket) {
      if (auto id = cw::netlink::resolve_genl_family(*socket, "wireguard")) family = *id;
    }
  } else {
    control = cw::wg::make_uapi_control();
  }

  const auto private_key = cw::wg::generate_private_key().value();
  auto peers = make_peers(n);
  cw::agent::DesiredDevice desired{private_key, 51820, 0, peers};

  // 1. The whole device, from empty.
  auto empty = control->get(ifname);
  if (!empty) {
    std::fprintf(stderr, "%s\n", empty.error().message().c_str());
    return 2;
  }
  auto full = cw::agent::diff_device(desired, *empty);
  auto t0 = Clock::now();
  if (auto r = control->set(ifname, full.update); !r) {
    std::fprintf(stderr, "apply: %s\n", r.error().message().c_str());
    return 1;
  }
  const double full_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  const std::size_t full_bytes = bytes_for(backend, ifname, full.update, family);

  // 2. One peer changes (a new endpoint): read back, diff, write the difference.
  const auto middle = static_cast<std::size_t>(n / 2);
  desired.peers[middle].endpoint = cw::wg::Endpoint::parse("198.51.100.7:51820").value();
  t0 = Clock::now();
  auto current = control->get(ifname).value();
  const double read_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  auto one = cw::agent::diff_device(desired, current);
  const auto t1 = Clock::now();
  if (auto r = control->set(ifname, one.update); !r) {
    std::fprintf(stderr, "change: %s\n", r.error().message().c_str());
    return 1;
  }
  const double one_ms = std::chrono::duration<double, std::milli>(Clock::now() - t1).count();
  const std::size_t one_bytes = bytes_for(backend, ifname, one.update, family);

  // Verify: what the device holds is what we wanted.
  auto check = control->get(ifname).value();
  bool same = check.peers.size() == static_cast<std::size_t>(n);
  for (std::size_t i = 0; same && i < check.peers.size(); ++i) {
    const auto it = std::find_if(desired.peers.begin(), desired.peers.end(),
                                 [&](const cw::wg::Peer& p) { return p.public_key == check.peers[i].public_key; });
    same = it != desired.peers.end() && cw::wg::same_config(*it, check.peers[i]);
  }

  // The same configuration for `wg setconf` (the baseline the script times), then the
  // changed one.
  if (!setconf_out.empty()) {
    for (int step = 0; step < 2; ++step) {
      std::ofstream f(setconf_out + (step == 0 ? ".full" : ".changed"));
      f << "[Interface]\nPrivateKey = " << private_key.to_base64() << "\nListenPort = 51820\n";
      auto ps = peers;
      if (step == 1) ps[middle].endpoint = desired.peers[middle].endpoint;
      for (const auto& p : ps) {
        f << "\n[Peer]\nPublicKey = " << p.public_key.to_base64() << "\nEndpoint = " << p.endpoint->to_string()
          << "\nPersistentKeepalive = " << p.persistent_keepalive << "\nAllowedIPs = " << p.allowed_ips[0].to_string()
          << ", " << p.allowed_ips[1].to_string() << "\n";
      }
    }
  }
  std::printf("backend=%s peers=%d full_ms=%.2f full_bytes=%zu read_ms=%.2f change_ms=%.2f change_bytes=%zu "
              "change_peers=%zu verified=%s\n",
              backend.c_str(), n, full_ms, full_bytes, read_ms, one_ms, one_bytes, one.update.peers.size(),
              same ? "yes" : "NO");
  if (own_device && !setconf_out.empty()) {
    // The baseline on a fresh device of the same kind, in the same run.
    (void)rt->delete_link(ifname);
    (void)rt->create_link(ifname, "wireguard");
    const double setconf_full = time_setconf(ifname, setconf_out + ".full");
    const double setconf_change = time_setconf(ifname, setconf_out + ".changed");
    std::printf("setconf_full_ms=%.2f setconf_change_ms=%.2f\n", setconf_full, setconf_change);
    (void)rt->delete_link(ifname);
  }
  return same ? 0 : 1;
}
