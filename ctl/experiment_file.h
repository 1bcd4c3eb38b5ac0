// Experiment files (docs/experiments.md): YAML documents `apiVersion: faultline/v1` of kind Experiment,
// GameDay, Inventory or Schedule, read into the plans faultctl runs. Every error names the file, the line and
// column, and the field's path: `latency.yaml:12:16: spec.faults[0].delay.latency: "10" is not a
// duration: ...`. Unknown fields are errors too: a typo must not silently drop a setting.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cron.h"
#include "faultline/api/tls_files.h"
#include "faultline/v1/experiment.pb.h"
#include "time_zone.h"

namespace faultline::ctl {

using Milliseconds = std::chrono::milliseconds;

// Which agents of the inventory an experiment runs on.
struct AgentSelection {
  std::map<std::string, std::string> labels;  // an agent must have all of them; empty: every agent
  enum class Mode { kAll, kCount, kPercent } mode = Mode::kAll;
  double value = 0;  // agents for kCount, percent of the matching ones for kPercent
};

// One steady-state probe: how to take a measurement and what healthy means.
struct Probe {
  std::string name;
  enum class Kind { kHttp, kTcp, kCommand, kPrometheus } kind = Kind::kHttp;
  Milliseconds timeout{2000};
  // http: GET url; healthy when the status is `status`, within max_latency (0: any) and the body
  // matches body_matches (a regular expression; empty: any).
  std::string url;
  int status = 200;
  Milliseconds max_latency{0};
  std::string body_matches;
  // tcp: a connection to address (HOST:PORT) is accepted within the timeout.
  std::string address;
  // command: argv; healthy when it exits with exit_code and its output matches output_matches.
  std::vector<std::string> command;
  int exit_code = 0;
  std::string output_matches;
  // prometheus: query (PromQL, instant) at url; healthy when its value is within [above, below].
  std::string query;
  std::optional<double> above, below;
};

struct SteadyState {
  std::vector<Probe> probes;
  Milliseconds interval{5000};         // during the fault, every probe runs this often
  int failures_to_abort = 1;           // consecutive failed rounds during the fault that abort the run
  Milliseconds recover_within{30000};  // after the revert, the probes must all pass within this
};

// How the selected agents are injected: all at once (wave_size 0), or wave_size at a time with a
// pause between waves.
struct Rollout {
  int wave_size = 0;
  Milliseconds pause{0};
};

// Who a file is: its metadata block.
struct Metadata {
  std::string name;
  std::string description;
  std::map<std::string, std::string> labels;
};

struct ExperimentFile {
  std::string path;
  Metadata metadata;
  // Duration, lease and faults, sent to every selected agent (with its interface and namespace
  // overrides applied); the id is made per run.
  faultline::v1::Experiment experiment;
  AgentSelection agents;
  Rollout rollout;
  SteadyState steady_state;
};

struct GameDayStep {
  std::string experiment_path;  // relative paths are taken from the game day file's directory
  ExperimentFile experiment;
  Milliseconds pause_after{0};
};

struct GameDayFile {
  std::string path;
  Metadata metadata;
  bool continue_on_failure = false;
  std::vector<GameDayStep> steps;
};

struct InventoryAgent {
  std::string name;
  std::string address;  // unix:PATH or HOST:PORT
  api::TlsFiles tls;
  std::map<std::string, std::string> labels;
  std::string interface;  // replaces the interface of every network fault on this agent
  std::string netns;      // replaces the namespace of every network fault on this agent
};

struct Inventory {
  std::string path;
  std::vector<InventoryAgent> agents;
};

// A trial run's shorter (or longer) duration in place of the file's: the lease is shortened with it
// when it would be longer than the experiment.
void OverrideDuration(ExperimentFile& file, Milliseconds duration);

// One entry of a schedule: a file run at each time its cron expression matches.
struct ScheduleEntry {
  std::string path;  // an Experiment or GameDay file, relative paths taken from the schedule's directory
  std::string kind;  // "Experiment" or "GameDay"
  std::string name;  // the file's metadata.name
  Cron cron;
  TimeZone zone;
};

// A window in which no run starts, and in which a run in progress is aborted: either one starting at
// each match of `cron` and lasting `duration`, or the fixed [from, to).
struct Blackout {
  std::optional<Cron> cron;
  std::chrono::seconds duration{0};
  TimeZone zone;
  SysSeconds from, to;
};

struct ScheduleFile {
  std::string path;
  Metadata metadata;
  TimeZone zone;          // spec.timeZone, the default of every cron and fixed window
  std::string inventory;  // resolved from the schedule's directory; "" none
  // A slot found due longer ago than this (faultctl was down, say) is not run but recorded as missed.
  std::chrono::seconds starting_deadline{300};
  std::vector<ScheduleEntry> runs;
  std::vector<Blackout> blackouts;
};

// What one file holds.
// "Experiment", "GameDay", "Inventory", "Schedule", or "" (unreadable)
std::string FileKind(const std::string& path);
absl::StatusOr<ExperimentFile> LoadExperiment(const std::string& path);
absl::StatusOr<GameDayFile> LoadGameDay(const std::string& path);
absl::StatusOr<Inventory> LoadInventory(const std::string& path);
// Also loads every file it runs, and its inventory.
absl::StatusOr<ScheduleFile> LoadSchedule(const std::string& path);

}  // namespace faultline::ctl
