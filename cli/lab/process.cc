#include "cli/lab/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace cw::lab {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  out.reserve(argv.size() + 1);
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

// In the child after fork: only async-signal-safe work matters little here (cwctl is single
// threaded), but we still keep it short and never return.
[[noreturn]] void exec_child(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  for (const auto& kv : env) putenv(const_cast<char*>(kv.c_str()));
  signal(SIGPIPE, SIG_DFL);
  auto args = c_argv(argv);
  execvp(args[0], args.data());
  const std::string msg = "cwctl: cannot run " + argv[0] + ": " + std::strerror(errno) + "\n";
  (void)!write(STDERR_FILENO, msg.data(), msg.size());
  _exit(127);
}

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

std::string CommandResult::summary() const {
  if (timed_out) return "timed out";
  std::string text = err.empty() ? out : err;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  const auto nl = text.rfind('\n');
  if (nl != std::string::npos) text = text.substr(nl + 1);
  if (text.size() > 300) text = text.substr(0, 300) + "...";
  return "exit " + std::to_string(exit_code) + (text.empty() ? "" : ": " + text);
}

CommandResult run(const std::vector<std::string>& argv, const RunOptions& options) {
  CommandResult result;
  if (argv.empty()) return result;
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) return result;
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    close(in_pipe[0]), close(in_pipe[1]);
    return result;
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(in_pipe[0]), close(in_pipe[1]), close(out_pipe[0]), close(out_pipe[1]);
    return result;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(in_pipe[0], STDIN_FILENO);
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    exec_child(argv, options.env);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  int in_fd = in_pipe[1], out_fd = out_pipe[0], err_fd = err_pipe[0];
  if (pid < 0) {
    close_fd(in_fd), close_fd(out_fd), close_fd(err_fd);
    result.err = std::string("fork: ") + std::strerror(errno);
    return result;
  }
  fcntl(in_fd, F_SETFL, O_NONBLOCK);
  std::size_t written = 0;
  if (options.input.empty()) close_fd(in_fd);
  const auto deadline = Clock::now() + options.timeout;
  char buf[65536];
  while (out_fd >= 0 || err_fd >= 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      result.timed_out = true;
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      break;
    }
    pollfd fds[3];
    nfds_t n = 0;
    if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    const int ready = poll(fds, n, static_cast<int>(std::min<long>(left, 1000)));
    if (ready < 0 && errno != EINTR) break;
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_fd) {
        const auto w = write(in_fd, options.input.data() + written, options.input.size() - written);
        if (w > 0) written += static_cast<std::size_t>(w);
        if (w < 0 && errno != EAGAIN) written = options.input.size();
        if (written >= options.input.size()) close_fd(in_fd);
        continue;
      }
      const auto r = read(fds[i].fd, buf, sizeof buf);
      if (r > 0) {
        (fds[i].fd == out_fd ? result.out : result.err).append(buf, static_cast<std::size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        if (fds[i].fd == out_fd) close_fd(out_fd); else close_fd(err_fd);
      }
    }
  }
  close_fd(in_fd), close_fd(out_fd), close_fd(err_fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (!result.timed_out && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

Result<pid_t> spawn_background(const std::vector<std::string>& argv, const std::string& log_path,
                               const std::vector<std::string>& env) {
  if (argv.empty()) return Error(ErrorCode::kInvalidArgument, "empty command");
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) return Error(ErrorCode::kInternal, "open " + log_path + ": " + std::strerror(errno));
  const pid_t pid = fork();
  if (pid == 0) {
    setsid();
    const int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, STDIN_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    exec_child(argv, env);
  }
  close(log_fd);
  if (pid < 0) return Error(ErrorCode::kInternal, std::string("fork: ") + std::strerror(errno));
  return pid;
}

bool pid_alive(pid_t pid) {
  if (pid <= 0) return false;
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) == pid) return false;  // our child, now reaped
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto close_paren = line.rfind(')');
  return close_paren == std::string::npos || close_paren + 2 >= line.size() || line[close_paren + 2] != 'Z';
}

std::vector<pid_t> stop_pids(const std::vector<pid_t>& pids, std::chrono::milliseconds grace) {
  auto alive = [&] {
    std::vector<pid_t> out;
    for (pid_t p : pids) if (pid_alive(p)) out.push_back(p);
    return out;
  };
  auto wait_for = [&](std::chrono::milliseconds d) {
    const auto deadline = Clock::now() + d;
    auto left = alive();
    while (!left.empty() && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      left = alive();
    }
    return left;
  };
  for (pid_t p : alive()) kill(p, SIGTERM);
  auto left = wait_for(grace);
  for (pid_t p : left) kill(p, SIGKILL);
  return left.empty() ? left : wait_for(std::chrono::seconds(2));
}

std::string pid_cmdline(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  for (auto& c : s) if (c == '\0') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace cw::lab
