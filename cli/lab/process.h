// Running the lab's external tools (ip, kubectl, CNI plugins, wg, dig, ...) and its long-lived
// processes. Commands are argument vectors handed to execvp: nothing goes through a shell, so
// no name or address is ever interpreted as shell syntax.
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
  std::string out;
  std::string err;
  bool ok() const { return exit_code == 0 && !timed_out; }
  // One line for error messages: "exit 1: <last line of stderr>" or "timed out after ...".
  std::string summary() const;
};

struct RunOptions {
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
  std::string input;             // written to the command's stdin, then closed
  std::vector<std::string> env;  // extra KEY=VALUE entries on top of our environment
};

// Runs argv[0] (looked up on PATH) to completion or until the deadline, capturing its output.
// On timeout the whole process group is killed.
CommandResult run(const std::vector<std::string>& argv, const RunOptions& options = {});

// Starts a long-lived process in a session of its own, stdout and stderr appended to log_path,
// stdin from /dev/null. The process outlives cwctl; the caller records its pid.
Result<pid_t> spawn_background(const std::vector<std::string>& argv, const std::string& log_path,
                               const std::vector<std::string>& env = {});

// True while pid exists and is not a zombie (reaps it when it is our own child).
bool pid_alive(pid_t pid);

// SIGTERM to each, wait up to grace for them to exit, then SIGKILL and wait up to a second
// more. Returns the pids still alive afterwards (normally none).
std::vector<pid_t> stop_pids(const std::vector<pid_t>& pids, std::chrono::milliseconds grace);

// The process's command line with NULs as spaces ("" when it is gone).
std::string pid_cmdline(pid_t pid);

}  // namespace cw::lab
