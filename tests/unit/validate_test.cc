#include "faultline/api/validate.h"

#include <gtest/gtest.h>

#include <ostream>
#include <set>
#include <string>
#include <string_view>

#include "common/invalid_experiments.h"
#include "faultline/api/cat.h"
#include "google/protobuf/text_format.h"

namespace faultline::test {
// Names the case in gtest's output instead of dumping the struct's bytes.
void PrintTo(const InvalidExperiment& invalid, std::ostream* out) {
  *out << invalid.name << ": " << invalid.experiment.ShortDebugString();
}
}  // namespace faultline::test

namespace faultline::api {
namespace {

using faultline::test::InvalidExperiment;
using faultline::test::InvalidExperimentLimits;
using faultline::test::InvalidExperiments;
using faultline::v1::Experiment;
using faultline::v1::Fault;

Experiment ParseExperiment(std::string_view text) {
  Experiment experiment;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(std::string(text), &experiment)) << text;
  return experiment;
}

class InvalidExperimentTest : public ::testing::TestWithParam<InvalidExperiment> {};

TEST_P(InvalidExperimentTest, IsRefusedWithItsMessage) {
  const InvalidExperiment& invalid = GetParam();
  absl::Status status = ValidateExperiment(invalid.experiment, InvalidExperimentLimits());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(std::string(status.message()), invalid.expected_error);
}

INSTANTIATE_TEST_SUITE_P(Table, InvalidExperimentTest, ::testing::ValuesIn(InvalidExperiments()),
                         [](const ::testing::TestParamInfo<InvalidExperiment>& info) {
                           return info.param.name;
                         });

TEST(InvalidExperimentTable, HasDistinctNamesAndIdsAndValidBaselines) {
  std::vector<InvalidExperiment> table = InvalidExperiments();
  EXPECT_GE(table.size(), 24u);
  std::set<std::string> names;
  std::set<std::string> ids;
  for (const InvalidExperiment& invalid : table) {
    EXPECT_TRUE(names.insert(invalid.name).second) << "duplicate name " << invalid.name;
    EXPECT_TRUE(ids.insert(invalid.experiment.id()).second) << "duplicate id " << invalid.experiment.id();
  }
  EXPECT_TRUE(
      ValidateExperiment(faultline::test::ValidPartitionExperiment(), InvalidExperimentLimits()).ok());
  EXPECT_TRUE(ValidateExperiment(faultline::test::ValidLossExperiment(), InvalidExperimentLimits()).ok());
}

class ValidExperimentTest : public ::testing::TestWithParam<std::pair<std::string_view, std::string_view>> {};

TEST_P(ValidExperimentTest, IsAccepted) {
  Experiment experiment = ParseExperiment(GetParam().second);
  absl::Status status = ValidateExperiment(experiment, InvalidExperimentLimits());
  EXPECT_TRUE(status.ok()) << status;
}

INSTANTIATE_TEST_SUITE_P(
    Examples, ValidExperimentTest,
    ::testing::Values(
        std::pair{"partition_with_peers_ports_and_protocol", R"pb(
                    id: "partition-db"
                    duration { seconds: 300 }
                    lease { ttl { seconds: 10 } }
                    labels { key: "team" value: "storage" }
                    labels { key: "faultline.dev/run" value: "nightly-42" }
                    faults {
                      partition {}
                      target {
                        netns_path: "/run/netns/x"
                        interface: "veth0"
                        direction: DIRECTION_EGRESS
                        peers: "10.0.0.0/24"
                        peers: "192.168.7.7"
                        excluded_peers: "10.0.0.1"
                        ports { first: 5432 }
                        ports { first: 8000 last: 8100 }
                        protocol: PROTOCOL_TCP
                      }
                    }
                  )pb"},
        std::pair{"loss_12_5_percent", R"pb(
                    duration { seconds: 60 }
                    faults {
                      loss { percent: 12.5 }
                      target { netns_path: "/run/netns/x" interface: "veth0" }
                    }
                  )pb"},
        std::pair{"loss_netem_with_correlation", R"pb(
                    duration { nanos: 500000000 }
                    faults {
                      loss { percent: 100 correlation: 25 model: MODEL_NETEM_RANDOM }
                      target { netns_path: "/run/netns/x" interface: "veth0" direction: DIRECTION_INGRESS }
                    }
                  )pb"},
        std::pair{"loss_gilbert_elliott", R"pb(
                    duration { seconds: 60 }
                    faults {
                      loss {
                        model: MODEL_GILBERT_ELLIOTT
                        gilbert_elliott { p: 5 r: 50 h: 0 k: 0 }
                      }
                      target { interface: "veth0" }
                    }
                  )pb"},
        std::pair{"ipv6_peers", R"pb(
                    duration { seconds: 60 }
                    faults {
                      partition {}
                      target {
                        netns_path: "/run/netns/x"
                        interface: "veth0"
                        peers: "2001:db8::/32"
                        peers: "fe80::1"
                        excluded_peers: "2001:db8::1/128"
                        ports { first: 53 }
                        protocol: PROTOCOL_UDP
                      }
                    }
                  )pb"},
        std::pair{"pid_target", R"pb(
                    duration { seconds: 60 }
                    faults {
                      partition {}
                      target { pid: 4242 interface: "eth0" protocol: PROTOCOL_ICMP }
                    }
                  )pb"},
        std::pair{"delay_and_reorder_on_the_same_target", R"pb(
                    duration { seconds: 60 }
                    faults {
                      delay {
                        latency { nanos: 100000000 }
                        jitter { nanos: 10000000 }
                        distribution: DISTRIBUTION_NORMAL
                      }
                      target { netns_path: "/run/netns/x" interface: "veth0" }
                    }
                    faults {
                      reorder { percent: 25 gap: 5 }
                      target { netns_path: "/run/netns/x" interface: "veth0" }
                    }
                  )pb"},
        std::pair{"duration_exactly_the_maximum", R"pb(
                    duration { seconds: 3600 }
                    faults {
                      partition {}
                      target { netns_path: "/run/netns/x" interface: "veth0" }
                    }
                  )pb"},
        std::pair{"bandwidth_and_host_faults", R"pb(
                    duration { seconds: 60 }
                    faults {
                      bandwidth {
                        rate_bits_per_second: 10000000
                        latency { nanos: 50000000 }
                      }
                      target { interface: "eth0" }
                    }
                    faults { cpu { load_percent: 50 workers: 2 } }
                    faults { memory { bytes: 1048576 } }
                  )pb"}),
    [](const auto& info) { return std::string(info.param.first); });

TEST(ValidateExperiment, AllowsAnyDurationWithoutALimit) {
  Experiment experiment = faultline::test::ValidPartitionExperiment();
  experiment.mutable_duration()->set_seconds(7 * 24 * 3600);
  EXPECT_TRUE(ValidateExperiment(experiment, Limits{}).ok());
  EXPECT_FALSE(ValidateExperiment(experiment, InvalidExperimentLimits()).ok());
}

TEST(IsNetworkFault, IsTrueForPacketFaultsOnly) {
  for (std::string_view kind :
       {"delay", "loss", "duplicate", "corrupt", "reorder", "bandwidth", "partition"}) {
    Fault fault;
    fault.GetReflection()->MutableMessage(&fault, Fault::descriptor()->FindFieldByName(std::string(kind)));
    EXPECT_TRUE(IsNetworkFault(fault)) << kind;
    EXPECT_EQ(FaultKindName(fault), kind);
  }
  Fault cpu;
  cpu.mutable_cpu();
  EXPECT_FALSE(IsNetworkFault(cpu));
  EXPECT_EQ(FaultKindName(cpu), "cpu");
  Fault memory;
  memory.mutable_memory();
  EXPECT_FALSE(IsNetworkFault(memory));
  EXPECT_EQ(FaultKindName(memory), "memory");
  EXPECT_FALSE(IsNetworkFault(Fault()));
  EXPECT_EQ(FaultKindName(Fault()), "unset");
}

TEST(DescribeFault, OneLineForPeopleAndLogs) {
  Experiment experiment = ParseExperiment(
      "faults { loss { percent: 12.5 } target { netns_path: '/run/netns/app' interface: 'veth0' "
      "direction: DIRECTION_EGRESS peers: '198.18.0.2/32' excluded_peers: '198.18.0.3/32' "
      "ports { first: 53 last: 53 } ports { first: 8000 last: 8100 } protocol: PROTOCOL_UDP } }");
  EXPECT_EQ(
      DescribeFault(experiment.faults(0)),
      "loss 12.5% egress 198.18.0.2/32 !198.18.0.3/32 port 53 port 8000-8100 udp on veth0 in /run/netns/app");
}

TEST(DescribeFault, NamesTheFirstEightPeersOfALongList) {
  std::string peers;
  for (int i = 1; i <= 20; i++)
    peers += Cat(" peers: '198.18.0.", i, "/32' excluded_peers: '198.19.0.", i, "/32'");
  Experiment experiment =
      ParseExperiment("faults { partition {} target { interface: 'veth0'" + peers + " } }");
  EXPECT_EQ(
      DescribeFault(experiment.faults(0)),
      "partition both 198.18.0.1/32 198.18.0.2/32 198.18.0.3/32 198.18.0.4/32 198.18.0.5/32 198.18.0.6/32 "
      "198.18.0.7/32 198.18.0.8/32 (12 more peers) !198.19.0.1/32 !198.19.0.2/32 !198.19.0.3/32 "
      "!198.19.0.4/32 !198.19.0.5/32 !198.19.0.6/32 !198.19.0.7/32 !198.19.0.8/32 (12 more excluded) on "
      "veth0");
}

TEST(DescribeFault, ShowsEachShapingFaultsParameters) {
  const std::pair<std::string, std::string> cases[] = {
      {"delay { latency { nanos: 50000000 } jitter { nanos: 10000000 } }", "delay 50ms±10ms"},
      {"delay { latency { seconds: 1 } }", "delay 1s"},
      {"loss { percent: 10 model: MODEL_NETEM_RANDOM }", "loss 10% netem"},
      {"loss { model: MODEL_GILBERT_ELLIOTT gilbert_elliott { p: 5 r: 40 } }",
       "loss gilbert-elliott p 5% r 40%"},
      {"duplicate { percent: 3 }", "duplicate 3%"},
      {"corrupt { percent: 4 }", "corrupt 4%"},
      {"reorder { percent: 25 }", "reorder 25%"},
      {"bandwidth { rate_bits_per_second: 10000000 }", "bandwidth 10mbit"},
      {"bandwidth { rate_bits_per_second: 1500000 }", "bandwidth 1500kbit"},
  };
  for (const auto& [fault, shown] : cases) {
    Experiment experiment = ParseExperiment("faults { " + fault + " target { interface: 'veth0' } }");
    EXPECT_EQ(DescribeFault(experiment.faults(0)), shown + " both all-peers on veth0");
  }
}

TEST(DescribeFault, ShowsStressFaultsWithoutATarget) {
  const std::pair<std::string, std::string> cases[] = {
      {"cpu { load_percent: 50 workers: 2 }", "cpu 50% on 2 workers"},
      {"cpu { load_percent: 100 workers: 1 nice: 5 }", "cpu 100% on 1 worker nice 5"},
      {"cpu { load_percent: 25 cpus: 0 cpus: 3 cgroup: '/sys/fs/cgroup/app' }",
       "cpu 25% on cpus 0,3 in /sys/fs/cgroup/app"},
      {"memory { bytes: 536870912 }", "memory 512MiB"},
      {"memory { percent_of_total: 10 grow_bytes_per_second: 67108864 }",
       "memory 10% of total growing 64MiB/s"},
  };
  for (const auto& [fault, shown] : cases) {
    EXPECT_EQ(DescribeFault(ParseExperiment("faults { " + fault + " }").faults(0)), shown);
  }
}

TEST(DescribeFault, NamesUnknownEnumValuesByNumber) {
  // The agent describes refused requests in its audit log, before or without validation.
  Experiment experiment =
      ParseExperiment("faults { partition {} target { interface: 'veth0' direction: 9 protocol: 77 } }");
  EXPECT_EQ(DescribeFault(experiment.faults(0)), "partition 9 all-peers 77 on veth0");
}

}  // namespace
}  // namespace faultline::api
