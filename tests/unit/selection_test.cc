// Choosing agents from an inventory: by label, all, a count or a percentage, repeatably from a seed.
#include "selection.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "faultline/api/cat.h"

namespace faultline::ctl {
namespace {

using api::Cat;

Inventory TenAgents() {
  Inventory inventory;
  inventory.path = "inventory.yaml";
  for (int i = 0; i < 10; i++) {
    InventoryAgent agent;
    agent.name = Cat("node-", i);
    agent.labels = {{"role", i < 8 ? "app" : "db"}, {"zone", i % 2 ? "b" : "a"}};
    inventory.agents.push_back(agent);
  }
  return inventory;
}

std::vector<std::string> Names(const absl::StatusOr<std::vector<InventoryAgent>>& agents) {
  std::vector<std::string> names;
  if (agents.ok()) {
    for (const auto& agent : *agents) names.push_back(agent.name);
  }
  return names;
}

TEST(SelectAgents, AllAgentsWithEveryLabel) {
  AgentSelection selection;
  selection.labels = {{"role", "app"}, {"zone", "b"}};
  EXPECT_EQ(Names(SelectAgents(TenAgents(), selection, 1)),
            (std::vector<std::string>{"node-1", "node-3", "node-5", "node-7"}));
  EXPECT_EQ(Names(SelectAgents(TenAgents(), {}, 1)).size(), 10u) << "no labels: every agent";
}

TEST(SelectAgents, ACountOrAPercentageRoundedUpPickedFromTheSeed) {
  AgentSelection selection;
  selection.labels = {{"role", "app"}};
  selection.mode = AgentSelection::Mode::kPercent;
  selection.value = 30;  // 30% of 8 is 2.4: 3 agents
  auto first = Names(SelectAgents(TenAgents(), selection, 42));
  EXPECT_EQ(first.size(), 3u);
  EXPECT_EQ(Names(SelectAgents(TenAgents(), selection, 42)), first) << "the same seed picks the same agents";
  std::set<std::vector<std::string>> picks;
  for (uint64_t seed = 0; seed < 20; seed++) picks.insert(Names(SelectAgents(TenAgents(), selection, seed)));
  EXPECT_GT(picks.size(), 5u) << "other seeds pick other agents";
  for (const auto& name : first) EXPECT_LT(name, "node-8") << "only agents with role=app";
  selection.mode = AgentSelection::Mode::kCount;
  selection.value = 1;
  EXPECT_EQ(Names(SelectAgents(TenAgents(), selection, 7)).size(), 1u);
  selection.mode = AgentSelection::Mode::kPercent;
  selection.value = 1;
  EXPECT_EQ(Names(SelectAgents(TenAgents(), selection, 7)).size(), 1u) << "at least one agent";
}

TEST(SelectAgents, SaysWhenTooFewAgentsMatch) {
  AgentSelection selection;
  selection.labels = {{"role", "cache"}};
  EXPECT_EQ(SelectAgents(TenAgents(), selection, 1).status().message(),
            "no agent of inventory.yaml has the labels role=cache");
  selection.labels = {{"role", "db"}};
  selection.mode = AgentSelection::Mode::kCount;
  selection.value = 3;
  EXPECT_EQ(SelectAgents(TenAgents(), selection, 1).status().message(),
            "count 3, but only 2 agent(s) of inventory.yaml match role=db");
}

TEST(ForAgent, ItsInterfaceAndNamespaceReplaceThoseOfNetworkFaults) {
  faultline::v1::Experiment experiment;
  auto* partition = experiment.add_faults();
  partition->mutable_partition();
  partition->mutable_target()->set_interface("veth-host");
  experiment.add_faults()->mutable_cpu()->set_load_percent(50);
  InventoryAgent agent;
  agent.interface = "eth0";
  agent.netns = "/run/netns/app";
  faultline::v1::Experiment mine = ForAgent(experiment, agent);
  EXPECT_EQ(mine.faults(0).target().interface(), "eth0");
  EXPECT_EQ(mine.faults(0).target().netns_path(), "/run/netns/app");
  EXPECT_FALSE(mine.faults(1).has_target()) << "a cpu fault has no target to change";
  EXPECT_EQ(ForAgent(experiment, InventoryAgent{}).faults(0).target().interface(), "veth-host");
}

}  // namespace
}  // namespace faultline::ctl
