// `faultctl schedule`: runs the entries of Schedule files at their cron times, for as long as it runs.
//
// - A slot (a time an entry's cron matches) inside one of its schedule's blackout windows is skipped,
//   and a run in progress when a window begins is aborted (the launcher reverts it).
// - A file never runs twice at once: a slot that comes while its previous run still goes is skipped.
//   Different files run side by side, one thread each.
// - The state file keeps, per entry, the last slot handled and its outcome, and the slot of a run in
//   progress. After a restart: handled slots are not run again; of the slots that came while the
//   scheduler was down, the latest is run if it is within the schedule's startingDeadline and the
//   others are recorded as missed; a run that was in progress when the scheduler died is recorded as
//   interrupted (its agents reverted when its leases lapsed).
//
// Time comes from a clock and runs from a launcher, both given: tests drive it with neither agents
// nor real time.
#pragma once

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "experiment_file.h"
#include "report.h"

namespace faultline::ctl {

// What the launcher is asked to run.
struct ScheduledRun {
  std::string schedule;   // the schedule's metadata.name
  size_t entry = 0;       // its index in spec.runs
  std::string path;       // the Experiment or GameDay file
  std::string kind;       // "Experiment" or "GameDay"
  std::string name;       // the file's metadata.name
  std::string inventory;  // the schedule's inventory, "" none
  SysSeconds slot;        // the time the cron matched
};

// Runs one file to its end and returns its exit code (a RunExit). Once `abort` is set, it must revert
// and return soon.
using Launcher = std::function<int(const ScheduledRun& run, const std::atomic<bool>& abort)>;

struct SchedulerOptions {
  std::function<SystemTime()> clock = [] { return std::chrono::system_clock::now(); };
  Launcher launch;
  std::string state_path;  // "" keeps no state
  // Each event: phase "schedule"; events started, finished (exit), skipped-blackout, skipped-running,
  // missed (count, last), interrupted, blackout-begins (the run is aborted), stopping.
  std::function<void(const RunEvent&)> observe;
  std::string journal;  // a file for each event as a JSON line; "" none
};

class Scheduler {
 public:
  // Reads the state file (a missing one is a first start); an error when it cannot be read or written.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Open(std::vector<ScheduleFile> schedules,
                                                         SchedulerOptions options);
  ~Scheduler();  // Stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Does what is due at clock(): starts, skips or records the slots that came, aborts the runs a
  // blackout window caught, joins the runs that ended. Returns when something will next be due.
  SystemTime Tick();
  // Ticks until `stop` is set (a signal handler's flag, polled), then Stop().
  void Run(const std::atomic<bool>& stop);
  // Aborts every run in progress and waits for each to end (each reverts).
  void Stop();
  // Runs in progress.
  size_t Running();

 private:
  struct Entry {
    const ScheduleFile* schedule;
    size_t index;
    std::string key;                 // schedule name, file and cron: the entry's name in the state file
    std::optional<SysSeconds> last;  // the last slot handled
    std::string outcome;             // what became of it
    std::optional<SysSeconds> running;
  };
  struct ActiveRun {
    Entry* entry;
    std::atomic<bool> abort{false};
    bool blackout = false;  // aborted by a blackout window
    std::atomic<bool> done{false};
    std::thread thread;
  };

  Scheduler(std::vector<ScheduleFile> schedules, SchedulerOptions options);
  absl::Status Restore();
  absl::Status Save();                                                             // with mutex_ held
  void Emit(const std::string& event, std::map<std::string, std::string> fields);  // with mutex_ held
  std::map<std::string, std::string> Describe(const Entry& entry, SysSeconds slot) const;
  void Start(Entry& entry, SysSeconds slot, SystemTime now);  // with mutex_ held
  void Reap();                                                // with mutex_ held

  std::vector<ScheduleFile> schedules_;
  SchedulerOptions options_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::ofstream journal_;
  std::vector<Entry> entries_;
  std::set<std::string> busy_;  // files with a run in progress
  std::list<ActiveRun> active_;
};

// Whether `instant` is inside one of the schedule's blackout windows.
bool InBlackout(const ScheduleFile& schedule, SysSeconds instant);
// When the next blackout window of the schedule begins after `instant`, if one ever does.
std::optional<SysSeconds> NextBlackout(const ScheduleFile& schedule, SysSeconds instant);

}  // namespace faultline::ctl
