// What every network fault driver makes of a fault's Target: the namespace to enter and the packets
// to match, in the terms of the kernel layer.
#pragma once

#include <cstdint>
#include <string>

#include "faultline/v1/experiment.pb.h"
#include "kernel/target_maps.h"

namespace faultline::faults {

// The namespace path a target names: its netns_path, /proc/PID/ns/net, or "" for the agent's own.
std::string TargetNetnsPath(const faultline::v1::Target& target);

// The target's peers, ports and protocol as the BPF programs match them. `target` must be valid
// (api::ValidateExperiment).
kernel::TargetSpec TargetSpecOf(const faultline::v1::Target& target, uint64_t deadline_ns);

}  // namespace faultline::faults
