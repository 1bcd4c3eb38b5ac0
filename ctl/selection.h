// Which agents of an inventory an experiment runs on, and what each of them gets.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "experiment_file.h"

namespace faultline::ctl {

// The agents with every label of `selection`, then all of them, `count` of them, or `percent` of
// them (rounded up, at least one), picked at random from `seed`: the same seed, inventory and
// selection pick the same agents on any machine. In inventory order. FAILED_PRECONDITION when no
// agent matches, or fewer than `count`.
absl::StatusOr<std::vector<InventoryAgent>> SelectAgents(const Inventory& inventory,
                                                         const AgentSelection& selection, uint64_t seed);

// The experiment as `agent` gets it: the agent's interface and namespace, when it has them, replace
// those of every network fault.
faultline::v1::Experiment ForAgent(const faultline::v1::Experiment& experiment, const InventoryAgent& agent);

}  // namespace faultline::ctl
