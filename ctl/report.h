// What a run of faultctl leaves behind: every event it saw, in order, with the experiment it belongs
// to. The runner records; everything shown or written about a run (the lines on a terminal, the live
// view, the JSON journal, the JUnit and HTML reports) is made from these records, so they can never
// disagree about what happened.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace faultline::ctl {

using SystemTime = std::chrono::system_clock::time_point;

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

}  // namespace faultline::ctl
