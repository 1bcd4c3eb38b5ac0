// `faultctl run`: one experiment file across the agents an inventory selects. The steady state is
// checked before anything is injected; the faults go in, wave by wave, each agent's experiment under
// a lease this process renews; the probes run every interval while the faults hold; everything is
// reverted when the duration is up, when the probes fail too often, when an agent's experiment ends
// early, or on Ctrl-C/SIGTERM; then the steady state must come back in time. If faultctl itself
// dies, the agents revert when its leases lapse.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "experiment_file.h"
#include "report.h"

namespace faultline::ctl {

struct RunOptions {
  uint64_t seed = 0;                               // which agents a count or percentage picks
  std::string journal;                             // a file for every event as a JSON line; "" none
  const std::atomic<bool>* interrupted = nullptr;  // set by a signal handler: revert and stop
  bool dry_run = false;  // check agents, capabilities and the steady state; inject nothing
  // Called with each event as it happens, and the run's record so far (from the lease keeper's
  // thread too, never two at once).
  std::function<void(const RunRecord&, const RunEvent&)> observe;
};

// The run's record; its exit_code is a RunExit.
RunRecord RunExperiment(const ExperimentFile& file, const Inventory& inventory, const RunOptions& options);

// `faultctl gameday run`: the steps in order, each run as above (and so reverted before the next
// starts), with the pauses between them. The first step that does not hold ends the game day unless
// it continues on failure. One record per step that ran.
std::vector<RunRecord> RunGameDay(const GameDayFile& file, const Inventory& inventory,
                                  const RunOptions& options);
// A game day's exit code: 0 when every step held and all ran; else the first failed step's code;
// kRunAborted when interrupted between steps.
int GameDayExit(const GameDayFile& file, const std::vector<RunRecord>& runs);

}  // namespace faultline::ctl
