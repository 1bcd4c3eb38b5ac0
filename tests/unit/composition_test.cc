// Which faults compose on one interface and which are refused (daemon/faults/composition.h).
#include "faults/composition.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <string>

namespace faultline::faults {
namespace {

namespace v1 = faultline::v1;

template <typename Message>
Message Parse(const std::string& text) {
  Message message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

struct OverlapCase {
  const char* name;
  const char* a;  // v1::Target in text format
  const char* b;
  bool overlap;
};

class PacketsMayOverlapTest : public ::testing::TestWithParam<OverlapCase> {};

TEST_P(PacketsMayOverlapTest, BothWays) {
  const OverlapCase& c = GetParam();
  auto a = Parse<v1::Target>(c.a);
  auto b = Parse<v1::Target>(c.b);
  EXPECT_EQ(PacketsMayOverlap(a, b), c.overlap) << c.a << " / " << c.b;
  EXPECT_EQ(PacketsMayOverlap(b, a), c.overlap) << c.b << " / " << c.a;
}

const OverlapCase kOverlapCases[] = {
    {"AllPeersBoth", "", "", true},
    {"AllPeersAndOnePeer", "", R"(peers: "198.18.0.2/32")", true},
    {"TheSamePeer", R"(peers: "198.18.0.2")", R"(peers: "198.18.0.2/32")", true},
    {"DisjointPeers", R"(peers: "198.18.0.2/32")", R"(peers: "198.18.0.3/32")", false},
    {"DisjointAmongSeveral", R"(peers: "10.0.0.0/8" peers: "198.18.0.2/32")",
     R"(peers: "198.18.0.3/32" peers: "192.0.2.0/24")", false},
    {"NestedCidrs", R"(peers: "10.0.0.0/8")", R"(peers: "10.1.0.0/16")", true},
    {"NestedButExcluded", R"(peers: "10.0.0.0/8" excluded_peers: "10.1.0.0/16")", R"(peers: "10.1.2.0/24")",
     false},
    {"AllPeersButExcluded", R"(excluded_peers: "198.18.0.2/32")", R"(peers: "198.18.0.2/32")", false},
    {"ExclusionsOfBothSidesCoverTheSharedCidr", R"(peers: "10.0.0.0/24" excluded_peers: "10.0.0.0/25")",
     R"(peers: "10.0.0.0/24" excluded_peers: "10.0.0.128/25")", false},
    {"ExclusionsLeaveAGap", R"(peers: "10.0.0.0/24" excluded_peers: "10.0.0.0/25")",
     R"(peers: "10.0.0.0/24" excluded_peers: "10.0.0.128/26")", true},
    {"ExclusionsTogetherCoverAnotherSidesPeer",
     R"(excluded_peers: "10.0.0.0/25" excluded_peers: "10.0.0.128/26" excluded_peers: "10.0.0.192/26")",
     R"(peers: "10.0.0.0/24")", false},
    {"IPv4AndIPv6Peers", R"(peers: "198.18.0.0/15")", R"(peers: "2001:db8::/32")", false},
    {"AllPeersIncludeIPv6", "", R"(peers: "2001:db8::2/128")", true},
    {"NestedIPv6", R"(peers: "2001:db8::/32")", R"(peers: "2001:db8:1::/48")", true},
    {"DisjointIPv6", R"(peers: "2001:db8::2")", R"(peers: "2001:db8::3")", false},
    {"TcpAndUdp", "protocol: PROTOCOL_TCP", "protocol: PROTOCOL_UDP", false},
    {"AllAndIcmp", "protocol: PROTOCOL_ALL", "protocol: PROTOCOL_ICMP", true},
    {"UnspecifiedIsAll", "", "protocol: PROTOCOL_UDP", true},
    {"DisjointPorts", "ports { first: 80 }", "ports { first: 443 }", false},
    {"PortInRange", "ports { first: 8000 last: 8100 }", "ports { first: 8080 }", true},
    {"RangesTouching", "ports { first: 8000 last: 8100 }", "ports { first: 8100 last: 8200 }", true},
    {"PortsAndNoPorts", "ports { first: 53 }", "protocol: PROTOCOL_UDP", true},
    {"PortsNeverMatchIcmp", "ports { first: 53 }", "protocol: PROTOCOL_ICMP", false},
    {"SamePortOtherProtocol", "ports { first: 53 } protocol: PROTOCOL_TCP",
     "ports { first: 53 } protocol: PROTOCOL_UDP", false},
    {"SamePeersDisjointPorts", R"(peers: "198.18.0.2" ports { first: 80 })",
     R"(peers: "198.18.0.2" ports { first: 5432 })", false},
};

INSTANTIATE_TEST_SUITE_P(Targets, PacketsMayOverlapTest, ::testing::ValuesIn(kOverlapCases),
                         [](const auto& info) { return std::string(info.param.name); });

// A fault of experiment `experiment` at `index`, in the namespace with inode `netns`.
PlacedFault Placed(const std::string& experiment, int index, const std::string& fault, ino_t netns = 1) {
  return {experiment, index, Parse<v1::Fault>(fault), {0, netns}, "netns /run/netns/x"};
}

constexpr const char* kDelayToPeer2 =
    R"(delay { latency { nanos: 50000000 } }
       target { interface: "fl-host" direction: DIRECTION_EGRESS peers: "198.18.0.2/32" })";

TEST(CheckCompositionTest, TwoDelaysForTheSamePacketsAreRefusedNamingBoth) {
  absl::Status status =
      CheckComposition({Placed("exp-b", 0, kDelayToPeer2)},
                       {Placed("exp-a", 0, R"(partition {} target { interface: "fl-host" })"),
                        Placed("exp-a", 1, kDelayToPeer2)});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            "faults[0] (delay) overlaps experiment \"exp-a\" faults[1] (delay) on fl-host egress in netns "
            "/run/netns/x: both would delay the same packets, but a packet takes one shaping class, so "
            "only one would");
}

TEST(CheckCompositionTest, ShapingOfAnotherKindIsRefusedToo) {
  absl::Status status = CheckComposition(
      {Placed("exp-b", 2, R"(bandwidth { rate_bits_per_second: 1000000 } target { interface: "fl-host" })")},
      {Placed("exp-a", 0, kDelayToPeer2)});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            "faults[2] (bandwidth) overlaps experiment \"exp-a\" faults[0] (delay) on fl-host egress in "
            "netns /run/netns/x: a packet takes one shaping class, so only one of them would act on it; "
            "to compose them, put both in one experiment with the same target");
}

TEST(CheckCompositionTest, NetemLossesOverlapButEbpfLossesCompose) {
  constexpr const char* kNetemLoss = R"(loss { percent: 10 model: MODEL_NETEM_RANDOM }
                                        target { interface: "fl-host" })";
  constexpr const char* kEbpfLoss = R"(loss { percent: 10 } target { interface: "fl-host" })";
  absl::Status status = CheckComposition({Placed("exp-b", 0, kNetemLoss)}, {Placed("exp-a", 0, kNetemLoss)});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("both would drop the same packets"), std::string::npos) << status;
  EXPECT_TRUE(CheckComposition({Placed("exp-b", 0, kEbpfLoss)}, {Placed("exp-a", 0, kEbpfLoss)}).ok());
  EXPECT_TRUE(CheckComposition({Placed("exp-b", 0, kEbpfLoss)}, {Placed("exp-a", 0, kNetemLoss)}).ok());
}

struct ComposeCase {
  const char* name;
  const char* incoming;  // v1::Fault in text format, in namespace 1
  const char* active;    // v1::Fault in text format
  ino_t active_netns;
};

class ComposesTest : public ::testing::TestWithParam<ComposeCase> {};

TEST_P(ComposesTest, WithADelayToPeer2) {
  const ComposeCase& c = GetParam();
  std::string incoming = c.incoming[0] ? c.incoming : kDelayToPeer2;
  std::string active = c.active[0] ? c.active : kDelayToPeer2;
  absl::Status status =
      CheckComposition({Placed("exp-b", 0, incoming)}, {Placed("exp-a", 0, active, c.active_netns)});
  EXPECT_TRUE(status.ok()) << status;
}

const ComposeCase kComposeCases[] = {
    {"PartitionOfTheSamePeers", R"(partition {} target { interface: "fl-host" peers: "198.18.0.2/32" })", "",
     1},
    {"DelayToOtherPeers",
     R"(delay { latency { nanos: 1000000 } } target { interface: "fl-host" peers: "198.18.0.3/32" })", "", 1},
    {"AtIngressOnly",
     R"(delay { latency { nanos: 1000000 } }
        target { interface: "fl-host" direction: DIRECTION_INGRESS peers: "198.18.0.2/32" })",
     "", 1},
    {"OnAnotherInterface",
     R"(delay { latency { nanos: 1000000 } } target { interface: "fl-other" peers: "198.18.0.2/32" })", "",
     1},
    {"InAnotherNamespace", "", "", 2},
    {"OtherPorts",
     R"(bandwidth { rate_bits_per_second: 1000000 } target { interface: "fl-host" ports { first: 80 } })",
     R"(delay { latency { nanos: 1000000 } } target { interface: "fl-host" ports { first: 443 } })", 1},
};

INSTANTIATE_TEST_SUITE_P(Faults, ComposesTest, ::testing::ValuesIn(kComposeCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(CheckCompositionTest, OneNamespaceByTwoPathsIsOneNamespace) {
  PlacedFault active = Placed("exp-a", 0, kDelayToPeer2);
  active.fault.mutable_target()->set_pid(4242);
  active.netns_name = "netns /proc/4242/ns/net";
  EXPECT_EQ(CheckComposition({Placed("exp-b", 0, kDelayToPeer2)}, {active}).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(CheckCompositionTest, BothDirectionsMeetAnIngressFaultAtIngress) {
  absl::Status status = CheckComposition(
      {Placed("exp-b", 0, R"(delay { latency { nanos: 1000000 } } target { interface: "fl-host" })")},
      {Placed("exp-a", 0,
              R"(bandwidth { rate_bits_per_second: 1000000 }
                 target { interface: "fl-host" direction: DIRECTION_INGRESS })")});
  EXPECT_NE(status.message().find("on fl-host ingress in netns"), std::string::npos) << status;
}

TEST(CheckCompositionTest, OneExperimentsFaultsWithTheSameTargetShareAClass) {
  constexpr const char* kLossToPeer2 =
      R"(loss { percent: 5 model: MODEL_NETEM_RANDOM }
         target { interface: "fl-host" direction: DIRECTION_EGRESS peers: "198.18.0.2/32" })";
  EXPECT_TRUE(CheckComposition({Placed("exp", 0, kDelayToPeer2), Placed("exp", 1, kLossToPeer2)}, {}).ok());
}

TEST(CheckCompositionTest, OneExperimentsOverlappingTargetsAreAnInvalidExperiment) {
  absl::Status status =
      CheckComposition({Placed("exp", 0, kDelayToPeer2), Placed("exp", 1,
                                                                R"(bandwidth { rate_bits_per_second: 1000000 }
                 target { interface: "fl-host" peers: "198.18.0.0/24" })")},
                       {});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "faults[1] (bandwidth) and faults[0] (delay) have different targets that may match the same "
            "packets on fl-host egress in netns /run/netns/x: a packet takes one shaping class, so only "
            "one of them would act on it; give them the same target to compose them, or targets that do "
            "not overlap");
}

}  // namespace
}  // namespace faultline::faults
