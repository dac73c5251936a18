#include "cli/lab/cluster_api.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <cstdio>
#include <sstream>
#include <thread>

namespace cw::lab {

CommandResult kubectl(const LabLayout& lab, const ClusterLayout& cluster, const std::vector<std::string>& args,
                      const std::string& input) {
  std::vector<std::string> argv = {"ip", "netns", "exec", lab.underlay_netns, "kubectl", "--kubeconfig",
                                   lab.kubeconfig(cluster), "--request-timeout=10s"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, {.timeout = std::chrono::seconds(20), .input = input});
}

Result<void> kubectl_apply(const LabLayout& lab, const ClusterLayout& cluster, const nlohmann::json& objects) {
  const nlohmann::json list = {{"apiVersion", "v1"}, {"kind", "List"}, {"items", objects}};
  auto r = kubectl(lab, cluster, {"apply", "-f", "-"}, list.dump());
  if (!r.ok()) return Error(ErrorCode::kUnavailable, "kubectl apply in " + cluster.id + ": " + r.summary());
  return ok_result();
}

Result<nlohmann::json> kubectl_get_json(const LabLayout& lab, const ClusterLayout& cluster,
                                        const std::vector<std::string>& what) {
  std::vector<std::string> args = {"get"};
  args.insert(args.end(), what.begin(), what.end());
  args.insert(args.end(), {"-o", "json"});
  auto r = kubectl(lab, cluster, args);
  if (!r.ok()) return Error(ErrorCode::kUnavailable, "kubectl get in " + cluster.id + ": " + r.summary());
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (j.is_discarded()) return Error(ErrorCode::kUnavailable, "kubectl get in " + cluster.id + ": not JSON");
  return j;
}

std::vector<std::string> netns_exec(const std::string& netns, std::vector<std::string> argv) {
  std::vector<std::string> out = {"ip", "netns", "exec", netns};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

CommandResult in_netns(const std::string& netns, std::vector<std::string> argv, std::chrono::milliseconds timeout,
                       const std::string& input) {
  return run(argv, {.timeout = timeout, .input = input, .netns = netns});
}

Result<std::string> tcp_exchange(const std::string& netns, const std::string& ip, int port, const std::string& input,
                                 std::chrono::milliseconds timeout) {
  auto fail = [&](const std::string& what) {
    return Error(ErrorCode::kUnavailable, what + " (" + ip + ":" + std::to_string(port) + " from " + netns + ")");
  };
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    addr_len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    addr_len = sizeof(sockaddr_in6);
  } else {
    return Error(ErrorCode::kInvalidArgument, "not an address: " + ip);
  }
  // The socket is made in the namespace; the thread goes back to its own right after.
  const int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  const int target = open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
  if (own < 0 || target < 0) {
    if (own >= 0) close(own);
    if (target >= 0) close(target);
    return fail("cannot open the network namespaces");
  }
  int fd = -1;
  if (setns(target, CLONE_NEWNET) == 0) {
    fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (setns(own, CLONE_NEWNET) != 0) std::abort();  // a thread left in a lab namespace would be a silent disaster
  }
  close(own);
  close(target);
  if (fd < 0) return fail("cannot make a socket in the namespace");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto wait = [&](short events) {
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd, events, 0};
      const int r = poll(&p, 1, static_cast<int>(left));
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) return false;
    }
  };
  std::string out;
  auto done = [&](Result<std::string> r) {
    close(fd);
    return r;
  };
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0 && errno != EINPROGRESS) {
    return done(fail(std::string("connect: ") + std::strerror(errno)));
  }
  if (!wait(POLLOUT)) return done(fail("no connection within the deadline"));
  int so_error = 0;
  socklen_t len = sizeof so_error;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
  if (so_error != 0) return done(fail(std::string("connect: ") + std::strerror(so_error)));
  for (std::size_t sent = 0; sent < input.size();) {
    if (!wait(POLLOUT)) return done(fail("sending timed out after " + std::to_string(sent) + " bytes"));
    const ssize_t n = send(fd, input.data() + sent, input.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) return done(fail(std::string("send: ") + std::strerror(errno)));
    if (n > 0) sent += static_cast<std::size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  char buf[4096];
  while (true) {
    if (!wait(POLLIN)) return done(fail("no end of the answer within the deadline (got \"" + out + "\")"));
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0) break;
    if (n < 0 && errno != EAGAIN && errno != EINTR) return done(fail(std::string("recv: ") + std::strerror(errno)));
    if (n > 0) out.append(buf, static_cast<std::size_t>(n));
  }
  return done(out);
}

bool wait_until(const std::function<bool()>& check, std::chrono::milliseconds deadline,
                std::chrono::milliseconds every) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (true) {
    if (check()) return true;
    if (std::chrono::steady_clock::now() >= end || interrupt_signal() != 0) return false;
    std::this_thread::sleep_for(every);
  }
}

Result<std::vector<std::string>> list_netns() {
  std::vector<std::string> out;
  auto r = run({"ip", "netns", "list"}, {.timeout = std::chrono::seconds(10)});
  if (!r.ok()) return Error(ErrorCode::kUnavailable, "ip netns list: " + r.summary());
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    const auto sp = line.find(' ');
    const std::string name = line.substr(0, sp);
    if (!name.empty()) out.push_back(name);
  }
  return out;
}

Result<std::vector<pid_t>> netns_pids(const std::string& netns) {
  std::vector<pid_t> out;
  auto r = run({"ip", "netns", "pids", netns}, {.timeout = std::chrono::seconds(10)});
  if (!r.ok()) return Error(ErrorCode::kUnavailable, "ip netns pids " + netns + ": " + r.summary());
  std::istringstream in(r.out);
  long pid = 0;
  while (in >> pid) {
    if (pid > 1) out.push_back(static_cast<pid_t>(pid));
  }
  return out;
}

void Progress::begin(const std::string& what) {
  ++step_;
  noted_ = false;
  started_ = std::chrono::steady_clock::now();
  char head[32];
  std::snprintf(head, sizeof head, "[%2d/%d] ", step_, total_);
  out_ << head << what << " ... " << std::flush;
}

void Progress::end(const std::string& detail) {
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  char tail[32];
  std::snprintf(tail, sizeof tail, " (%.1f s)", s);
  out_ << (noted_ ? "        " : "") << detail << tail << "\n" << std::flush;
}

void Progress::note(const std::string& line) {
  out_ << (noted_ ? "" : "\n") << "        " << line << "\n" << std::flush;
  noted_ = true;
}

}  // namespace cw::lab
