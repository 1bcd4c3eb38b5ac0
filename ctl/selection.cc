#include "selection.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "faultline/api/cat.h"
#include "faultline/api/validate.h"

namespace faultline::ctl {

using api::Cat;

absl::StatusOr<std::vector<InventoryAgent>> SelectAgents(const Inventory& inventory,
                                                         const AgentSelection& selection, uint64_t seed) {
  std::vector<size_t> matching;
  for (size_t i = 0; i < inventory.agents.size(); i++) {
    const auto& labels = inventory.agents[i].labels;
    bool all = std::all_of(selection.labels.begin(), selection.labels.end(), [&](const auto& wanted) {
      auto it = labels.find(wanted.first);
      return it != labels.end() && it->second == wanted.second;
    });
    if (all) matching.push_back(i);
  }
  std::string wanted;
  for (const auto& [key, value] : selection.labels) wanted += Cat(wanted.empty() ? "" : ",", key, "=", value);
  if (matching.empty()) {
    return absl::FailedPreconditionError(
        Cat("no agent of ", inventory.path, " has the labels ", wanted.empty() ? "(none)" : wanted));
  }
  size_t wanted_count = matching.size();
  if (selection.mode == AgentSelection::Mode::kCount) {
    wanted_count = static_cast<size_t>(selection.value);
    if (wanted_count > matching.size()) {
      return absl::FailedPreconditionError(Cat("count ", wanted_count, ", but only ", matching.size(),
                                               " agent(s) of ", inventory.path, " match ", wanted));
    }
  } else if (selection.mode == AgentSelection::Mode::kPercent) {
    wanted_count = std::max<size_t>(
        1,
        static_cast<size_t>(std::ceil(static_cast<double>(matching.size()) * selection.value / 100 - 1e-9)));
  }
  // Fisher-Yates with mt19937_64's raw output, which the standard fixes (a distribution's is not).
  std::mt19937_64 random(seed);
  for (size_t i = matching.size(); i > 1; i--) std::swap(matching[i - 1], matching[random() % i]);
  matching.resize(wanted_count);
  std::sort(matching.begin(), matching.end());
  std::vector<InventoryAgent> chosen;
  for (size_t i : matching) chosen.push_back(inventory.agents[i]);
  return chosen;
}

faultline::v1::Experiment ForAgent(const faultline::v1::Experiment& experiment, const InventoryAgent& agent) {
  faultline::v1::Experiment mine = experiment;
  for (auto& fault : *mine.mutable_faults()) {
    if (!api::IsNetworkFault(fault)) continue;
    if (!agent.interface.empty()) fault.mutable_target()->set_interface(agent.interface);
    if (!agent.netns.empty()) fault.mutable_target()->set_netns_path(agent.netns);
  }
  return mine;
}

}  // namespace faultline::ctl
