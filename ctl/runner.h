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

#include "experiment_file.h"
#include "report.h"

namespace faultline::ctl {

// faultctl run's exit codes (README, "Exit codes").
enum RunExit : int {
  kRunHeld = 0,       // the hypothesis held before, during and after
  kRunError = 1,      // an agent refused or failed; whatever was injected is reverted
  kRunNotSteady = 4,  // the hypothesis did not hold before injecting: nothing was injected
  kRunDeviated = 5,   // it failed during the fault (which was then reverted) or did not come back
  kRunAborted = 6,    // Ctrl-C, SIGTERM, or an agent's experiment ended before its time
};

struct RunOptions {
  uint64_t seed = 0;                               // which agents a count or percentage picks
  std::string journal;                             // a file for every event as a JSON line; "" none
  const std::atomic<bool>* interrupted = nullptr;  // set by a signal handler: revert and stop
  bool dry_run = false;  // check agents, capabilities and the steady state; inject nothing
  // Called with each event as it happens (from the lease keeper's thread too, never at once).
  std::function<void(const RunEvent&)> observe;
};

// The run's record; its exit_code is a RunExit.
RunRecord RunExperiment(const ExperimentFile& file, const Inventory& inventory, const RunOptions& options);

}  // namespace faultline::ctl
