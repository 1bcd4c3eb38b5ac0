#include "kernel/worker_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "faultline/api/cat.h"

namespace faultline::kernel {
namespace {

using api::Cat;
using Clock = std::chrono::steady_clock;

// How a process that ended did ("exited with status 1", "killed by signal 9 (Killed)").
std::string DescribeEnd(const siginfo_t& info) {
  return info.si_code == CLD_EXITED
             ? Cat("exited with status ", info.si_status)
             : Cat("killed by signal ", info.si_status, " (", strsignal(info.si_status), ")");
}

// The fields of /proc/PID/stat from the third (the state) on; empty when there is no such process.
// The name (field 2) is in parentheses and may hold spaces or parentheses: fields resume after the
// last ')'.
std::vector<std::string> StatFields(pid_t pid) {
  std::ifstream in(Cat("/proc/", pid, "/stat"));
  // One line, read with getline: a process that exits while it is read makes read(2) fail with ESRCH,
  // which an istreambuf_iterator turns into an exception (it crashed an agent's replay once).
  std::string text;
  std::getline(in, text);
  std::vector<std::string> fields;
  size_t close = text.rfind(')');
  if (close == std::string::npos) return fields;
  std::istringstream rest(text.substr(close + 1));
  for (std::string field; rest >> field;) fields.push_back(field);
  return fields;
}

void KillAndReap(pid_t pid) {
  kill(pid, SIGKILL);
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

// The child between fork and exec: only async-signal-safe calls (the agent has many threads).
[[noreturn]] void RunChild(const char* program, int lifeline, int setup, const std::vector<char*>& argv) {
  // Out of the way of 3 and 4 first, so that one dup2 cannot close the other's source.
  int high_lifeline = fcntl(lifeline, F_DUPFD, 10);
  int high_setup = fcntl(setup, F_DUPFD, 10);
  if (high_lifeline < 0 || high_setup < 0 || dup2(high_lifeline, WorkerProcess::kLifelineFd) < 0 ||
      dup2(high_setup, WorkerProcess::kSetupFd) < 0) {
    _exit(126);
  }
  close_range(WorkerProcess::kSetupFd + 1, ~0U, 0);
  // The agent writes one byte once the journal holds this process; end of file: it died first.
  char go;
  if (read(WorkerProcess::kLifelineFd, &go, 1) != 1) _exit(125);
  execv(program, argv.data());
  _exit(127);
}

// Reads the child's setup line: "ok", an error text, or nothing (it died or timed out).
absl::Status ReadSetup(int fd, pid_t pid, const std::string& what, std::chrono::milliseconds timeout) {
  std::string line;
  const Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd p{fd, POLLIN, 0};
    int ready = left.count() > 0 ? poll(&p, 1, static_cast<int>(left.count())) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      return absl::DeadlineExceededError(
          Cat(what, " (pid ", pid, ") was not set up within ", timeout.count(), " ms"));
    }
    char buffer[512];
    ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n > 0) {
      line.append(buffer, static_cast<size_t>(n));
      if (line.find('\n') == std::string::npos) continue;
      line.resize(line.find('\n'));
      if (line == "ok") return absl::OkStatus();
      return absl::FailedPreconditionError(line);
    }
    // End of file without a line: the worker died. How, its wait status tells.
    siginfo_t info{};
    std::string how = "ended";
    if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) == 0) how = DescribeEnd(info);
    return absl::InternalError(Cat(what, " (pid ", pid, ") ", how, " before it was set up"));
  }
}

}  // namespace

std::optional<uint64_t> ProcessStartTime(pid_t pid) {
  std::vector<std::string> fields = StatFields(pid);
  if (fields.size() < 20) return std::nullopt;
  return std::stoull(fields[19]);  // field 22
}

absl::StatusOr<std::unique_ptr<WorkerProcess>> WorkerProcess::Start(const std::string& program,
                                                                    const std::vector<std::string>& argv,
                                                                    const std::string& what,
                                                                    std::chrono::milliseconds setup_timeout) {
  int lifeline[2], setup[2];
  if (pipe2(lifeline, O_CLOEXEC) != 0) return absl::UnavailableError(Cat("pipe: ", std::strerror(errno)));
  if (pipe2(setup, O_CLOEXEC) != 0) {
    int err = errno;
    close(lifeline[0]);
    close(lifeline[1]);
    return absl::UnavailableError(Cat("pipe: ", std::strerror(err)));
  }
  std::vector<std::string> args = argv;
  std::vector<char*> pointers;
  for (auto& arg : args) pointers.push_back(arg.data());
  pointers.push_back(nullptr);

  pid_t pid = fork();
  if (pid == 0) RunChild(program.c_str(), lifeline[0], setup[1], pointers);
  int err = errno;
  close(lifeline[0]);
  close(setup[1]);
  if (pid < 0) {
    close(lifeline[1]);
    close(setup[0]);
    return absl::UnavailableError(Cat("cannot start ", what, ": fork: ", std::strerror(err)));
  }
  auto fail = [&](absl::Status status) {
    KillAndReap(pid);
    close(lifeline[1]);
    close(setup[0]);
    return status;
  };

  journal::Change change;
  change.set_what(Cat(what, " pid ", pid));
  change.mutable_process()->set_pid(pid);
  std::optional<uint64_t> started = ProcessStartTime(pid);
  if (!started) return fail(absl::InternalError(Cat("cannot read /proc/", pid, "/stat of ", what)));
  change.mutable_process()->set_start_time(*started);
  auto entry = RecordChange(std::move(change));
  if (!entry.ok()) return fail(entry.status());  // never journaled: it must not run

  if (write(lifeline[1], "g", 1) != 1) {
    entry->Done();
    return fail(absl::InternalError(Cat("cannot start ", what, ": ", std::strerror(errno))));
  }
  absl::Status set_up = ReadSetup(setup[0], pid, what, setup_timeout);
  close(setup[0]);
  if (!set_up.ok()) {
    KillAndReap(pid);
    close(lifeline[1]);
    entry->Done();
    return set_up;
  }
  return std::unique_ptr<WorkerProcess>(new WorkerProcess(pid, lifeline[1], what, *std::move(entry)));
}

WorkerProcess::~WorkerProcess() {
  KillAndReap(pid_);
  close(lifeline_);
  entry_.Done();
}

std::optional<std::string> WorkerProcess::Ended() const {
  siginfo_t info{};
  if (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) {
    return std::nullopt;
  }
  return DescribeEnd(info);
}

uint64_t WorkerProcess::ResidentBytes() const {
  if (Ended()) return 0;
  std::ifstream in(Cat("/proc/", pid_, "/statm"));
  uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

absl::StatusOr<std::string> UndoRecordedProcess(const journal::Process& recorded) {
  const pid_t pid = recorded.pid();
  std::optional<uint64_t> started = ProcessStartTime(pid);
  if (!started || *started != recorded.start_time()) {
    return absl::NotFoundError(Cat("process ", pid, " is gone"));
  }
  if (kill(pid, SIGKILL) != 0 && errno != ESRCH) {
    return absl::InternalError(Cat("kill ", pid, ": ", std::strerror(errno)));
  }
  // Not the agent's child any more (the agent that started it died): its new parent reaps it.
  for (auto end = Clock::now() + std::chrono::seconds(1); Clock::now() < end;) {
    std::vector<std::string> fields = StatFields(pid);
    // Gone, another process by now, or dead and waiting for its parent.
    if (fields.size() < 20 || std::stoull(fields[19]) != recorded.start_time() || fields[0] == "Z") {
      return Cat("killed process ", pid);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::InternalError(Cat("process ", pid, " is still there a second after SIGKILL"));
}

}  // namespace faultline::kernel
