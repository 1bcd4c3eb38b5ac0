// The words a user describes one fault with, shared by `faultctl inject KIND --option ...` and the
// faults of an experiment file (`- delay: {latency: 100ms}`): one vocabulary, one translation into the
// agent's API, one set of messages.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "faultline/v1/experiment.pb.h"

namespace faultline::ctl {

// Where a network fault acts. Option names (errors use them): netns, pid, interface, direction,
// peers, excludedPeers, ports, protocol.
struct TargetSpec {
  std::string netns;
  uint32_t pid = 0;
  std::string interface;
  std::string direction = "both";
  std::vector<std::string> peers;
  std::vector<std::string> excluded_peers;
  std::vector<std::string> ports;
  std::string protocol = "all";
};

// A fault's options, by kind; each is ignored by the kinds that do not take it. Option names in
// errors: percent, correlation, model, p, r, h, k, gap, latency, jitter, distribution, keepOrder,
// rate, burst, limit, shaper, load, workers, cpus, nice, cgroup, size, grow.
struct FaultSpec {
  TargetSpec target;
  std::string percent;
  std::string correlation = "0";
  std::string model = "ebpf";
  double ge_p = 0, ge_r = 0, ge_h = 0, ge_k = 0;  // model gilbert-elliott
  uint32_t gap = 0;                               // reorder
  std::string latency;
  std::string jitter = "0s";
  std::string distribution = "uniform";
  bool keep_order = false;
  std::string rate;
  std::string burst;
  std::string limit;
  std::string shaper = "tbf";
  uint32_t load = 0;  // cpu
  uint32_t workers = 0;
  std::vector<uint32_t> cpus;
  int32_t nice = 0;
  std::string cgroup;  // cpu, memory
  std::string size;    // memory
  std::string grow;
};

// The fault kinds, in the order `faultctl inject` lists them.
const std::vector<std::string>& FaultKinds();
// The options a kind takes (besides the target's): "latency", "jitter", ... for "delay".
const std::vector<std::string>& FaultOptions(const std::string& kind);
bool IsStressKind(const std::string& kind);

// What an option value was wrong with: the option's name (from the lists above) and why.
struct SpecError {
  std::string option;
  std::string message;
};

// The faults `kind` stands for with `spec`: one, except reorder, which is a delay and a reorder of
// the same packets (netem reorders only what it delays). On a bad value: the SpecError, in the
// status's message as "OPTION: MESSAGE" and in `error` when given.
absl::StatusOr<std::vector<faultline::v1::Fault>> BuildFaults(const std::string& kind, const FaultSpec& spec,
                                                              SpecError* error = nullptr);

}  // namespace faultline::ctl
