// Steady-state probes (experiment_file.h's Probe): one measurement each, bounded by the probe's
// timeout, judged against its tolerance.
#pragma once

#include <optional>
#include <string>

#include "experiment_file.h"

namespace faultline::ctl {

struct ProbeResult {
  bool healthy = false;
  // What was seen, for people and reports: "200 in 12 ms", "connected in 1 ms", "exit 0",
  // "0.31", or why there is nothing to judge ("connection refused", "timed out after 2s").
  std::string observed;
  // The number a timeline plots: the latency in ms (http, tcp, command) or the query's value.
  std::optional<double> value;
};

// Takes the measurement now. Never throws; never takes much longer than the probe's timeout.
ProbeResult RunProbe(const Probe& probe);

}  // namespace faultline::ctl
