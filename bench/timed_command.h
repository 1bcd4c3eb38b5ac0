// The baselines' side of a benchmark: a shell script run the way a user (or chaosd, Pumba, ChaosBlade)
// runs one, timed from just before it starts to its exit, and killed when it overruns a time cap.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace faultline::bench {

struct TimedRun {
  bool finished = false;  // false: killed at the time cap (or could not start)
  int exit_code = -1;
  double ms = 0;       // from just before the spawn to the exit (or to the kill)
  std::string output;  // standard output and error together, for error messages
};

// Runs `argv` (looked up in PATH) in a process group of its own; past `cap` the whole group is killed.
TimedRun RunTimed(const std::vector<std::string>& argv, std::chrono::milliseconds cap);

// `ip netns exec NETNS sh SCRIPT`: a baseline script inside one of the bench's namespaces. Refuses a
// namespace whose name does not start with "fl-sbx-" (scripts/sandbox's prefix), so that no tc, ip, iptables
// or ipset command of a bench can land in the root namespace or someone else's.
TimedRun RunScriptInNetns(const std::string& netns, const std::string& script, std::chrono::milliseconds cap);

// Writes `text` to `path`, replacing it; false on an I/O error.
bool WriteFile(const std::string& path, const std::string& text);

// /proc/loadavg's first three fields: how busy the machine was, for a reader judging the numbers.
std::string LoadAverage();

// The value at percentile `p` (0..100) by the nearest-rank method; NaN for no values.
double Percentile(std::vector<double> values, double p);

}  // namespace faultline::bench
