// What a run of faultctl leaves behind: every event it saw, in order, with the experiment it belongs
// to. The runner records; everything shown or written about a run (the lines on a terminal, the live
// view, the JSON journal, the JUnit and HTML reports) is made from these records, so they can never
// disagree about what happened.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace faultline::ctl {

using SystemTime = std::chrono::system_clock::time_point;

// faultctl run's exit codes (README, "Exit codes").
enum RunExit : int {
  kRunHeld = 0,       // the hypothesis held before, during and after
  kRunError = 1,      // an agent refused or failed; whatever was injected is reverted
  kRunNotSteady = 4,  // the hypothesis did not hold before injecting: nothing was injected
  kRunDeviated = 5,   // it failed during the fault (which was then reverted) or did not come back
  kRunAborted = 6,    // Ctrl-C, SIGTERM, or an agent's experiment ended before its time
};

// What an exit code says, in a few words: "held", "deviated", ...
const char* Verdict(int exit_code);

// One thing that happened. Phases: select, before, inject, during, revert, after. Events and their
// fields (docs/experiments.md, "The journal"):
//   probe       probe, healthy ("true"/"false"), observed, value (a number a timeline can plot)
//   active      agent, id                    an agent's experiment is in force
//   reverted    agent, state                 and no longer
//   failed, agent-ended, revert-failed, lease-renewal-failed: agent, error
//   deviated, not-steady, not-recovered, held, recovered, interrupted: the run's verdicts
struct RunEvent {
  SystemTime time;
  std::string phase;
  std::string event;
  std::map<std::string, std::string> fields;  // empty values are left out

  std::string Field(const std::string& key) const {
    auto found = fields.find(key);
    return found == fields.end() ? "" : found->second;
  }
};

// One experiment's run, from selection to verdict.
struct RunRecord {
  std::string experiment;  // metadata.name
  std::string path;        // the file
  std::string description;
  std::chrono::milliseconds duration{0};  // how long the faults were meant to hold
  std::vector<std::string> probes;        // the steady state's probe names, in file order
  SystemTime started;
  SystemTime finished;
  int exit_code = 0;  // RunExit
  std::vector<RunEvent> events;
};

// "2026-11-26T15:04:05.123Z"
std::string FormatTime(SystemTime time);
// One event as a line for people: "TIME PHASE EVENT key=value ...".
std::string EventLine(const RunEvent& event);
// One event as a JSON object on one line, with the experiment's name.
std::string EventJson(const std::string& experiment, const RunEvent& event);
// Text made safe inside XML and HTML, in element content and in quoted attributes.
std::string MarkupEscape(std::string_view text);
// The agents a run selected, from its select event, in the order they were injected.
std::vector<std::string> SelectedAgents(const RunRecord& run);

}  // namespace faultline::ctl
