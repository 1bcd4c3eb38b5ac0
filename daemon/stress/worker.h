// The stress worker: the process that carries a cpu or memory fault. faultlined starts it as a child
// (kernel::WorkerProcess) by executing itself with `--stress-worker FAULT`, where FAULT is the fault
// in protobuf text format, its cgroup already resolved to a path and its memory size to bytes:
//   faultlined --stress-worker 'cpu { load_percent: 50 cpus: 1 }'
// so that `ps` shows what each worker does.
//
// cpu: one thread per worker or per listed CPU (pinned to it), each burning `load_percent` of every
// period (5-15 ms, drawn anew each time) in CPU time and sleeping the rest, so the load is steady at any time
// scale a monitoring system looks at. memory: an anonymous mapping of the size, every page written (so it is
// resident), at once or at the growth rate, then held. Both join the fault's cgroup first, set their
// oom_score_adj to 1000 (first to die under memory pressure), report "ok" on the setup descriptor,
// and exit as soon as the agent's end of their lifeline closes.
#pragma once

#include <string_view>

namespace faultline::stress {

inline constexpr std::string_view kWorkerFlag = "--stress-worker";

// The worker's main: returns its exit status (only on errors; it otherwise runs until the agent
// goes or kills it).
int RunWorker(std::string_view fault_text);

}  // namespace faultline::stress
