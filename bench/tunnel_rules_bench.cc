// The node agent's nftables table (node-agent/tunnel_rules.h) with 200 remote ranges (100 IPv4,
// 100 IPv6), applied through libnftables as the agent applies it, in a network namespace this
// benchmark makes for itself (unshare), so nothing outside it is touched. Prints the median of
// each step with its baseline measured in the same run:
// - the first apply (the whole table) against the same script through the `nft -f` command
//   (a process per apply: what shelling out would cost);
// - every pass: reading the table back and planning (all a pass with nothing to change does);
// - a peering change (one range added): the agent's element update against rewriting the
//   whole table (which also resets the rules' counters).
//
// Usage (root): tunnel_rules_bench [--rounds N]
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/netfilter/nftables.h"
#include "node-agent/tunnel_rules.h"

namespace {

using Clock = std::chrono::steady_clock;

std::vector<cw::net::Prefix> ranges(int v4, int v6, int offset = 0) {
  std::vector<cw::net::Prefix> out;
  char buf[64];
  for (int i = 0; i < v4; ++i) {
    std::snprintf(buf, sizeof buf, "10.%d.%d.0/24", 128 + (i + offset) / 256, (i + offset) % 256);
    out.push_back(cw::net::Prefix::parse(buf).value());
  }
  for (int i = 0; i < v6; ++i) {
    std::snprintf(buf, sizeof buf, "fd00:%x::/48", i + offset + 1);
    out.push_back(cw::net::Prefix::parse(buf).value());
  }
  return out;
}

double median_ms(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double time_ms(const std::function<void()>& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The same script through the nft command, as a separate process would apply it.
bool nft_command(const std::string& script) {
  int in[2];
  if (pipe(in) != 0) return false;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], STDIN_FILENO);
    close(in[0]);
    close(in[1]);
    execlp("nft", "nft", "-f", "-", nullptr);
    _exit(127);
  }
  close(in[0]);
  const bool wrote = write(in[1], script.data(), script.size()) == static_cast<ssize_t>(script.size());
  close(in[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  return wrote && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

void must(const cw::Result<void>& r, const char* what) {
  if (!r) {
    std::fprintf(stderr, "tunnel_rules_bench: %s: %s\n", what, r.error().message().c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 20;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--rounds") == 0) rounds = std::max(3, std::atoi(argv[i + 1]));
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "tunnel_rules_bench: needs root (it makes a network namespace of its own)\n");
    return 1;
  }
  if (unshare(CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "tunnel_rules_bench: unshare(CLONE_NEWNET): %s\n", std::strerror(errno));
    return 1;
  }
  auto nft = cw::netfilter::make_nftables();
  const auto base = cw::agent::make_tunnel_rules("cw0", ranges(100, 100), 1420);
  const auto grown = cw::agent::make_tunnel_rules("cw0", ranges(101, 100), 1420);
  const std::string whole = cw::agent::render_tunnel_rules(base);
  const bool have_nft = nft_command("list tables\n");

  std::vector<double> first, first_cli, element, rewrite, idle;
  for (int i = 0; i < rounds; ++i) {
    must(nft->run(cw::agent::delete_tunnel_rules()), "delete");
    first.push_back(time_ms([&] {
      auto listing = nft->list_table(cw::agent::kNftFamily, cw::agent::kNftTable);
      std::optional<cw::agent::ObservedRules> seen;
      if (listing) seen = cw::agent::parse_listing(*listing);
      must(nft->run(cw::agent::plan_tunnel_rules(base, seen)), "first apply");
    }));
    if (have_nft) {
      must(nft->run(cw::agent::delete_tunnel_rules()), "delete");
      first_cli.push_back(time_ms([&] {
        if (!nft_command(whole)) std::exit(1);
      }));
    }
    // A peering change: one range more. Every pass reads the table back and plans (timed below
    // as the idle pass); the write is then the agent's element update...
    must(nft->run(whole), "reset");
    const std::string script =
        cw::agent::plan_tunnel_rules(grown, cw::agent::parse_listing(nft->list_table(cw::agent::kNftFamily, cw::agent::kNftTable).value()));
    if (script.find("add element") != 0) std::exit(1);  // it must be the small update
    element.push_back(time_ms([&] { must(nft->run(script), "element update"); }));
    // ... against rewriting the whole table with the new range.
    must(nft->run(whole), "reset");
    rewrite.push_back(time_ms([&] { must(nft->run(cw::agent::render_tunnel_rules(grown)), "rewrite"); }));
    // A pass with nothing to change.
    idle.push_back(time_ms([&] {
      auto seen = cw::agent::parse_listing(nft->list_table(cw::agent::kNftFamily, cw::agent::kNftTable).value());
      if (!cw::agent::plan_tunnel_rules(grown, seen).empty()) std::exit(1);
    }));
  }
  std::printf("clusterwire's nftables table, 200 remote ranges (100 IPv4 + 100 IPv6), median of %d rounds:\n", rounds);
  std::printf("  first apply (read, plan, whole table)   %7.2f ms   baseline `nft -f` process, same script: %s\n",
              median_ms(first), have_nft ? (std::to_string(median_ms(first_cli)).substr(0, 6) + " ms").c_str() : "nft not installed");
  std::printf("  every pass: read back and plan             %5.2f ms   (all that a pass with nothing to change does)\n",
              median_ms(idle));
  std::printf("  then a peering change's write (+1 range)   %5.2f ms   baseline whole-table rewrite: %.2f ms (and it resets the counters)\n",
              median_ms(element), median_ms(rewrite));
  return 0;
}
