// Running the lab's external tools (ip, kubectl, CNI plugins, wg, dig, ...) and its long-lived
// processes. Commands are argument vectors handed to execvp: nothing goes through a shell, so
// no name or address is ever interpreted as shell syntax.
//
// A recorded process is a pid together with its start time (Started): a pid alone may have been
// reused by an unrelated process, so nothing here signals a recorded pid without first checking
// that it is still the same process (same_process).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/base/result.h"

namespace cw::lab {

struct CommandResult {
  int exit_code = -1;      // the exit status, or -1 when killed by a signal or not started
  bool timed_out = false;  // killed because the deadline passed
  bool interrupted = false;  // killed because cwctl got SIGINT/SIGTERM (catch_interrupts)
  std::string out;
  std::string err;
  bool ok() const { return exit_code == 0 && !timed_out && !interrupted; }
  // One line for error messages: "exit 1: <last line of stderr>" or "timed out after ...".
  std::string summary() const;
};

struct RunOptions {
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
  std::string input;             // written to the command's stdin, then closed
  std::vector<std::string> env;  // extra KEY=VALUE entries on top of our environment
  // A network namespace (a name under /run/netns) the command runs in: the child joins it
  // with setns before exec. Unlike `ip netns exec` it makes no mount namespace (no /sys
  // remount, no /etc/netns bind mounts), which makes it several times cheaper: for commands
  // that only talk netlink or sockets.
  std::string netns;
};

// Runs argv[0] (looked up on PATH) to completion or until the deadline, capturing its output.
// On timeout (or an interrupt, see catch_interrupts) the whole process group is killed; the
// deadline covers the wait for the exit status too.
CommandResult run(const std::vector<std::string>& argv, const RunOptions& options = {});

// A process as the lab records it: its pid and its start time in clock ticks since boot (field
// 22 of /proc/<pid>/stat), which together name one process for the life of the machine.
struct Started {
  pid_t pid = 0;
  unsigned long long start_ticks = 0;
};

// The start time of a running process (0 when there is no such process or it is a zombie).
unsigned long long start_ticks_of(pid_t pid);
// The pid as it is now: {pid, its current start time} (start_ticks 0 when it is gone).
Started identify(pid_t pid);
// True while the recorded process still runs: the pid exists, is not a zombie (reaped when it
// is our own child) and started at the recorded time. False for start_ticks 0.
bool same_process(const Started& p);

// Starts a long-lived process in a session of its own, stdout and stderr appended to log_path,
// stdin from /dev/null. The process outlives cwctl; the caller records it.
Result<Started> spawn_background(const std::vector<std::string>& argv, const std::string& log_path,
                                 const std::vector<std::string>& env = {});

// Sends sig to the process if, and only if, it is still the recorded one.
bool signal_process(const Started& p, int sig);

// SIGTERM to each process still the recorded one, wait up to grace for them to exit, then
// SIGKILL and wait up to two seconds more. Returns those still alive afterwards (normally none).
std::vector<Started> stop_processes(const std::vector<Started>& processes, std::chrono::milliseconds grace);

// cwctl writes to pipes of children that may exit before reading (kubectl apply -f -, socat):
// EPIPE must be an error value, not a signal that kills cwctl. Children get SIGPIPE back.
void ignore_sigpipe();

// SIGINT and SIGTERM set a flag instead of killing cwctl, so that `up` can remove what it built:
// run() kills its command when the flag is set, wait_until() stops polling.
void catch_interrupts();
// Back to the default dispositions (a second Ctrl-C kills cwctl at once); clears the flag.
void release_interrupts();
// The signal caught since catch_interrupts(), or 0.
int interrupt_signal();

}  // namespace cw::lab
