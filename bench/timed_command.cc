#include "timed_command.h"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>

extern char** environ;

namespace faultline::bench {
namespace {

using Clock = std::chrono::steady_clock;

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string ReadAll(int fd) {
  std::string text;
  char buffer[4096];
  lseek(fd, 0, SEEK_SET);
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) text.append(buffer, static_cast<size_t>(n));
  return text;
}

}  // namespace

TimedRun RunTimed(const std::vector<std::string>& argv, std::chrono::milliseconds cap) {
  TimedRun run;
  // Output goes to an anonymous file read afterwards: a pipe would need a reader while the child runs.
  int output = memfd_create("bench-output", MFD_CLOEXEC);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, output, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, output, STDERR_FILENO);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);

  // posix_spawn (clone with CLONE_VFORK) rather than fork: forking this process, with its gRPC threads
  // and large stream buffers, would copy page tables and charge that to the baseline.
  const Clock::time_point start = Clock::now();
  pid_t pid = -1;
  int err = posix_spawnp(&pid, args[0], &actions, &attributes, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (err != 0) {
    run.output = "cannot start " + argv[0];
    close(output);
    return run;
  }
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  pollfd exited{pidfd, POLLIN, 0};
  const int cap_ms = static_cast<int>(cap.count());
  int ready = pidfd >= 0 ? poll(&exited, 1, cap_ms) : 1;  // without pidfd, wait without a cap
  int status = 0;
  if (ready == 0) {
    kill(-pid, SIGKILL);  // its own process group: the script and the commands it started
    waitpid(pid, &status, 0);
    run.ms = MillisecondsSince(start);
  } else {
    waitpid(pid, &status, 0);
    run.ms = MillisecondsSince(start);
    run.finished = true;
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  if (pidfd >= 0) close(pidfd);
  run.output = ReadAll(output);
  close(output);
  return run;
}

TimedRun RunScriptInNetns(const std::string& netns, const std::string& script,
                          std::chrono::milliseconds cap) {
  if (!netns.starts_with("fl-sbx-")) {
    TimedRun refused;
    refused.output =
        "refusing to run in namespace \"" + netns + "\": not a sandbox's (fl-sbx-*, scripts/sandbox)";
    return refused;
  }
  return RunTimed({"ip", "netns", "exec", netns, "sh", script}, cap);
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  return static_cast<bool>(out);
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(values.begin(), values.end());
  auto rank = static_cast<size_t>(std::ceil(p / 100 * static_cast<double>(values.size())));
  return values[std::clamp<size_t>(rank, 1, values.size()) - 1];
}

}  // namespace faultline::bench
