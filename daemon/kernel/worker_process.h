// Child processes of the agent that carry a fault (stress workers). Like every kernel change, a worker
// is journaled before it runs, and its object undoes it: destroying a WorkerProcess kills and reaps
// the process. A worker also ends by itself when the agent dies, however it dies: it holds the read
// end of a pipe (its lifeline) whose only write end is the agent's, and exits on the hang-up.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernel/journal.h"

namespace faultline::kernel {

class WorkerProcess {
 public:
  // What a worker finds open when it starts (see Start).
  static constexpr int kLifelineFd = 3;
  static constexpr int kSetupFd = 4;

  // Forks and executes `program` with `argv` (argv[0] included). The child waits until the journal holds its
  // pid and start time, then runs with kLifelineFd (read end of its lifeline: readable or hung up only when
  // the agent is gone) and kSetupFd (where it writes one line once it is set up: "ok", or what went
  // wrong, which becomes the error). Returns once that line is read; an error when the child reports
  // one, dies, or says nothing within `setup_timeout` (it is killed then). `what` names the process
  // in the journal and in errors: "stress worker (cpu 50% on 2 workers)".
  static absl::StatusOr<std::unique_ptr<WorkerProcess>> Start(const std::string& program,
                                                              const std::vector<std::string>& argv,
                                                              const std::string& what,
                                                              std::chrono::milliseconds setup_timeout);
  // SIGKILL, reaped (its memory is back once this returns), and the journal entry closed.
  ~WorkerProcess();
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& what() const { return what_; }
  // How the process ended ("killed by signal 9", "exited with status 1"); nothing while it runs. A
  // process that ended is left for the destructor to reap.
  std::optional<std::string> Ended() const;
  // Resident memory (/proc/PID/statm); 0 once it ended.
  uint64_t ResidentBytes() const;

 private:
  WorkerProcess(pid_t pid, int lifeline, std::string what, JournalEntry entry)
      : pid_(pid), lifeline_(lifeline), what_(std::move(what)), entry_(std::move(entry)) {}

  const pid_t pid_;
  const int lifeline_;  // the write end; closing it tells the worker to go
  const std::string what_;
  JournalEntry entry_;
};

// The start time of process `pid` (field 22 of /proc/PID/stat, clock ticks since boot); nothing when
// there is no such process.
std::optional<uint64_t> ProcessStartTime(pid_t pid);

// For a replay: kills the recorded process if it still runs (same pid and start time) and waits up to
// a second for it to go; NOT_FOUND when it is gone already.
absl::StatusOr<std::string> UndoRecordedProcess(const journal::Process& recorded);

}  // namespace faultline::kernel
