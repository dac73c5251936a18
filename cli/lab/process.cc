#include "cli/lab/process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

#include "cli/lab/text.h"

namespace cw::lab {
namespace {

using Clock = std::chrono::steady_clock;

// The one piece of process-wide mutable state: a signal handler can only reach a global.
volatile std::sig_atomic_t g_interrupt = 0;

extern "C" void on_interrupt(int sig) { g_interrupt = sig; }

// What execvpe needs, made before fork: `verify` runs commands from several threads, and a
// child of a multi-threaded process must not allocate (a lock another thread held at fork
// time would stay held in the child) before it execs.
struct ExecArgs {
  std::vector<std::string> env_storage;  // our environment plus the extra KEY=VALUE entries
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::string failure;  // "cwctl: cannot run <cmd>: " (strerror is appended in the child)

  ExecArgs(const std::vector<std::string>& args, const std::vector<std::string>& env) {
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string kv = *e;
      const std::string key = kv.substr(0, kv.find('='));
      const bool overridden = std::any_of(env.begin(), env.end(), [&](const std::string& x) {
        return x.compare(0, key.size() + 1, key + "=") == 0;
      });
      if (!overridden) env_storage.push_back(kv);
    }
    env_storage.insert(env_storage.end(), env.begin(), env.end());
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& kv : env_storage) envp.push_back(const_cast<char*>(kv.c_str()));
    envp.push_back(nullptr);
    failure = "cwctl: cannot run " + (args.empty() ? std::string() : args[0]) + ": ";
  }
};

// In the child after fork: only async-signal-safe calls. SIGPIPE goes back to its default:
// cwctl ignores it (ignore_sigpipe) and an ignored disposition would survive exec.
[[noreturn]] void exec_child(const ExecArgs& e, int netns_fd = -1) {
  signal(SIGPIPE, SIG_DFL);
  if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) != 0) {
    const char* why = strerrordesc_np(errno);
    (void)!write(STDERR_FILENO, "cwctl: setns: ", 14);
    (void)!write(STDERR_FILENO, why, std::strlen(why));
    (void)!write(STDERR_FILENO, "\n", 1);
    _exit(127);
  }
  execvpe(e.argv[0], e.argv.data(), e.envp.data());
  const char* why = strerrordesc_np(errno);
  (void)!write(STDERR_FILENO, e.failure.data(), e.failure.size());
  (void)!write(STDERR_FILENO, why, std::strlen(why));
  (void)!write(STDERR_FILENO, "\n", 1);
  _exit(127);
}

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// The /proc/<pid>/stat fields after the command name (which may hold spaces and parentheses):
// fields[0] is field 3 (state), fields[19] is field 22 (starttime).
std::vector<std::string> stat_fields(pid_t pid) {
  auto text = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!text) return {};
  const auto close_paren = text->rfind(')');
  if (close_paren == std::string::npos) return {};
  std::istringstream in(text->substr(close_paren + 1));
  std::vector<std::string> fields;
  std::string f;
  while (in >> f) fields.push_back(f);
  return fields;
}

}  // namespace

std::string CommandResult::summary() const {
  if (timed_out) return "timed out";
  if (interrupted) return "interrupted";
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
  if (pipe2(in_pipe, O_CLOEXEC) != 0) {
    result.err = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    result.err = std::string("pipe: ") + std::strerror(errno);
    close(in_pipe[0]), close(in_pipe[1]);
    return result;
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    result.err = std::string("pipe: ") + std::strerror(errno);
    close(in_pipe[0]), close(in_pipe[1]), close(out_pipe[0]), close(out_pipe[1]);
    return result;
  }
  const ExecArgs exec_args(argv, options.env);
  int netns_fd = -1;
  if (!options.netns.empty()) {
    netns_fd = open(("/run/netns/" + options.netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (netns_fd < 0) {
      result.err = "cannot open network namespace \"" + options.netns + "\": " + std::strerror(errno);
      close(in_pipe[0]), close(in_pipe[1]), close(out_pipe[0]), close(out_pipe[1]), close(err_pipe[0]), close(err_pipe[1]);
      return result;
    }
  }
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(in_pipe[0], STDIN_FILENO);
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    exec_child(exec_args, netns_fd);
  }
  if (netns_fd >= 0) close(netns_fd);
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
  auto kill_child = [&] {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
  };
  auto expired = [&] {  // the deadline or an interrupt: kill the command
    if (g_interrupt != 0) {
      result.interrupted = true;
    } else if (Clock::now() >= deadline) {
      result.timed_out = true;
    } else {
      return false;
    }
    kill_child();
    return true;
  };
  char buf[65536];
  bool killed = false;
  while (out_fd >= 0 || err_fd >= 0) {
    if ((killed = expired())) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd fds[3];
    nfds_t n = 0;
    if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    const int ready = poll(fds, n, static_cast<int>(std::clamp<long>(left, 1, 200)));
    if (ready < 0) {
      if (errno == EINTR) continue;
      result.err = std::string("poll: ") + std::strerror(errno);
      kill_child();
      killed = true;
      break;
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_fd) {
        const auto w = write(in_fd, options.input.data() + written, options.input.size() - written);
        if (w > 0) written += static_cast<std::size_t>(w);
        // EPIPE: the command exited (or closed its stdin) before reading everything; its exit
        // status says whether that was a failure. SIGPIPE is ignored (ignore_sigpipe).
        if (w < 0 && errno != EAGAIN && errno != EINTR) written = options.input.size();
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
  // The command may close its output and go on running (or hand the pipes to a child that
  // outlives it): the deadline holds for its exit too.
  int status = 0;
  while (true) {
    const pid_t w = waitpid(pid, &status, killed ? 0 : WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (w == 0) {
      if ((killed = expired())) continue;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  if (!result.timed_out && !result.interrupted && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

unsigned long long start_ticks_of(pid_t pid) {
  if (pid <= 0) return 0;
  const auto fields = stat_fields(pid);
  if (fields.size() < 20 || fields[0] == "Z" || fields[0] == "X") return 0;
  return std::strtoull(fields[19].c_str(), nullptr, 10);
}

Started identify(pid_t pid) { return {pid, start_ticks_of(pid)}; }

bool same_process(const Started& p) {
  if (p.pid <= 0 || p.start_ticks == 0) return false;
  int status = 0;
  if (waitpid(p.pid, &status, WNOHANG) == p.pid) return false;  // our child, now reaped
  return start_ticks_of(p.pid) == p.start_ticks;
}

Result<Started> spawn_background(const std::vector<std::string>& argv, const std::string& log_path,
                                 const std::vector<std::string>& env) {
  if (argv.empty()) return Error(ErrorCode::kInvalidArgument, "empty command");
  // Both opened close-on-exec: dup2 in the child makes the copies on 0, 1, 2 inheritable and
  // nothing else of cwctl's leaks into the daemon.
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) return Error(ErrorCode::kInternal, std::string("open /dev/null: ") + std::strerror(errno));
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) {
    const int e = errno;
    close(null_fd);
    return Error(ErrorCode::kInternal, "open " + log_path + ": " + std::strerror(e));
  }
  const ExecArgs exec_args(argv, env);
  const pid_t pid = fork();
  if (pid == 0) {
    setsid();
    if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 || dup2(log_fd, STDERR_FILENO) < 0) {
      _exit(127);
    }
    exec_child(exec_args);
  }
  const int fork_errno = errno;
  close(log_fd);
  close(null_fd);
  if (pid < 0) return Error(ErrorCode::kInternal, std::string("fork: ") + std::strerror(fork_errno));
  // The start time is set at fork and kept across exec: read now, it names this process.
  const Started started = identify(pid);
  if (started.start_ticks == 0) {
    int status = 0;
    waitpid(pid, &status, WNOHANG);
    return Error(ErrorCode::kInternal, "started " + argv[0] + " (pid " + std::to_string(pid) +
                                           ") but it is gone already: see " + log_path);
  }
  return started;
}

bool signal_process(const Started& p, int sig) { return same_process(p) && kill(p.pid, sig) == 0; }

std::vector<Started> stop_processes(const std::vector<Started>& processes, std::chrono::milliseconds grace) {
  auto alive = [&] {
    std::vector<Started> out;
    for (const auto& p : processes) if (same_process(p)) out.push_back(p);
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
  for (const auto& p : alive()) signal_process(p, SIGTERM);
  auto left = wait_for(grace);
  for (const auto& p : left) signal_process(p, SIGKILL);
  return left.empty() ? left : wait_for(std::chrono::seconds(2));
}

void ignore_sigpipe() { std::signal(SIGPIPE, SIG_IGN); }

void catch_interrupts() {
  g_interrupt = 0;
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll and sleeps return early
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

void release_interrupts() {
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  g_interrupt = 0;
}

int interrupt_signal() { return g_interrupt; }

}  // namespace cw::lab
