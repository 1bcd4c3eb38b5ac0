// Faults of several experiments on one interface: those that can hold together compose, measured with
// real traffic; shaping faults that would take the same packets are refused before anything of the
// later experiment is applied (daemon/faults/composition.h). The host kernel has htb but no netem, so
// bandwidth carries the host tests; the delay tests skip here and run in the VM suite (tests/vm).
#include <algorithm>
#include <cmath>

#include "agent_fixture.h"

namespace faultline::test {
namespace {

using api::Cat;
namespace v1 = faultline::v1;

class CompositionTest : public AgentInSandboxTest {
 protected:
  // Why bandwidth faults cannot run here, or "".
  std::string LacksShaping() const {
    return Lacks("htb").empty() || Lacks("prio").empty() ? "" : Lacks("htb");
  }

  // What tc shows of the host interface, classes included: a refused experiment must change none of it.
  std::string HostTcTree() const {
    return Cat(
        sandbox_->HostTcState(), "# tc class show\n",
        Shell(Cat("tc -n ", sandbox_->host_netns().substr(11), " class show dev ", Sandbox::kHostInterface)));
  }

  void InjectBandwidth(const std::string& id, const std::string& peer, uint64_t bits_per_second) {
    v1::Experiment experiment = NewExperiment(id);
    AddFault(experiment, peer)->mutable_bandwidth()->set_rate_bits_per_second(bits_per_second);
    grpc::Status status = Inject(experiment);
    ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << agent_->Log();
  }

  v1::Experiment Loss(const std::string& id, const std::string& peer, double percent) const {
    v1::Experiment experiment = NewExperiment(id);
    AddFault(experiment, peer)->mutable_loss()->set_percent(percent);
    return experiment;
  }
};

TEST_F(CompositionTest, TwoBandwidthLimitsOnOverlappingPeersAreRefusedNamingBoth) {
  if (std::string lacks = LacksShaping(); !lacks.empty()) GTEST_SKIP() << lacks;
  InjectBandwidth("exp-a", "198.18.0.2/32", 10'000'000);
  std::string with_a = HostTcTree();

  v1::Experiment b = NewExperiment("exp-b");
  AddFault(b, "198.18.0.0/24")->mutable_bandwidth()->set_rate_bits_per_second(5'000'000);
  grpc::Status status = Inject(b);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(
      status.error_message(),
      Cat("faults[0] (bandwidth) overlaps experiment \"exp-a\" faults[0] (bandwidth) on fl-host egress in "
          "netns ",
          sandbox_->host_netns(),
          ": both would limit the bandwidth of the same packets, but a packet takes one shaping class, so "
          "only one would"));
  EXPECT_EQ(HostTcTree(), with_a) << "the refused experiment changed the interface";
  EXPECT_EQ(Get("exp-b").state(), v1::STATE_FAILED);
  double limited = TcpThroughput(Host(), Peer(2), 3);
  EXPECT_NEAR(limited, 10e6, 1e6) << "exp-a's 10 Mbit/s limit measured " << limited / 1e6 << " Mbit/s";

  // Once exp-a has ended, the same experiment is accepted.
  Revert("exp-a");
  status = Inject(b);
  ASSERT_TRUE(status.ok()) << status.error_message();
  double now_limited = TcpThroughput(Host(), Peer(3), 3);
  Revert("exp-b");
  EXPECT_NEAR(now_limited, 5e6, 0.5e6)
      << "exp-b's 5 Mbit/s limit measured " << now_limited / 1e6 << " Mbit/s";
}

TEST_F(CompositionTest, BandwidthLimitsToDisjointPeersInTwoExperimentsBothHold) {
  if (std::string lacks = LacksShaping(); !lacks.empty()) GTEST_SKIP() << lacks;
  InjectBandwidth("to-peer-2", "198.18.0.2/32", 10'000'000);
  InjectBandwidth("to-peer-3", "198.18.0.3/32", 20'000'000);
  double peer2 = TcpThroughput(Host(), Peer(2), 3);
  double peer3 = TcpThroughput(Host(), Peer(3), 3);
  EXPECT_NEAR(peer2, 10e6, 1e6) << "peer 2's 10 Mbit/s limit measured " << peer2 / 1e6 << " Mbit/s";
  EXPECT_NEAR(peer3, 20e6, 2e6) << "peer 3's 20 Mbit/s limit measured " << peer3 / 1e6 << " Mbit/s";

  // Ending one experiment leaves the other's limit in force.
  Revert("to-peer-2");
  double peer2_freed = TcpThroughput(Host(), Peer(2), 1);
  double peer3_still = TcpThroughput(Host(), Peer(3), 3);
  Revert("to-peer-3");
  EXPECT_GT(peer2_freed, 100e6) << "peer 2 stayed slowed to " << peer2_freed / 1e6 << " Mbit/s";
  EXPECT_NEAR(peer3_still, 20e6, 2e6) << "peer 3's limit measured " << peer3_still / 1e6 << " Mbit/s";
}

TEST_F(CompositionTest, APartitionAndAnotherExperimentsBandwidthLimitOnOnePeerBothHold) {
  if (std::string lacks = LacksShaping(); !lacks.empty()) GTEST_SKIP() << lacks;
  v1::Experiment partition = NewExperiment("udp-cut");
  v1::Fault* fault = AddFault(partition, "198.18.0.2/32");
  fault->mutable_partition();
  fault->mutable_target()->set_protocol(v1::PROTOCOL_UDP);
  grpc::Status status = Inject(partition);
  ASSERT_TRUE(status.ok()) << status.error_message();
  InjectBandwidth("slow", "198.18.0.2/32", 10'000'000);
  Delivery udp = SendUdp(Host(), Peer(2), 200);
  double tcp = TcpThroughput(Host(), Peer(2), 3);
  EXPECT_EQ(udp.send_errors, 0);
  EXPECT_EQ(udp.received, 0) << "the partition let UDP through next to the bandwidth limit";
  EXPECT_NEAR(tcp, 10e6, 1e6) << "the limit next to the partition measured " << tcp / 1e6 << " Mbit/s";
}

// Each drop filter sees what the filters before it let through: two losses are two lossy hops in a row.
TEST_F(CompositionTest, TwoEbpfLossesOfTwoExperimentsDropIndependently) {
  constexpr int kPackets = 2000;
  ASSERT_TRUE(Inject(Loss("half", "198.18.0.2/32", 50)).ok());
  ASSERT_TRUE(Inject(Loss("half-again", "198.18.0.0/24", 50)).ok());
  Delivery delivery = SendUdp(Host(), Peer(2), kPackets);
  EXPECT_EQ(delivery.send_errors, 0);
  // Delivered with probability (1 - 0.5)(1 - 0.5) = 0.25; within three standard deviations.
  EXPECT_NEAR(delivery.received, kPackets * 0.25, 3 * std::sqrt(kPackets * 0.25 * 0.75));
}

TEST_F(CompositionTest, OneExperimentsShapingFaultsWithOverlappingTargetsAreRefused) {
  if (std::string lacks = LacksShaping(); !lacks.empty()) GTEST_SKIP() << lacks;
  v1::Experiment experiment = NewExperiment("self-overlap");
  AddFault(experiment, "198.18.0.2/32")->mutable_bandwidth()->set_rate_bits_per_second(10'000'000);
  AddFault(experiment, "198.18.0.0/24")->mutable_bandwidth()->set_rate_bits_per_second(20'000'000);
  grpc::Status status = Inject(experiment);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(
      status.error_message().find("faults[1] (bandwidth) and faults[0] (bandwidth) have different targets"),
      std::string::npos)
      << status.error_message();
  EXPECT_EQ(HostTcTree(), clean_state_ + "# tc class show\n")
      << "the refused experiment changed the interface";
}

TEST_F(CompositionTest, TwoDelaysOfTwoExperimentsForOnePeerAreRefused) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  v1::Experiment a = NewExperiment("delay-a");
  AddFault(a, "198.18.0.2/32")->mutable_delay()->mutable_latency()->set_nanos(20'000'000);
  ASSERT_TRUE(Inject(a).ok());
  v1::Experiment b = NewExperiment("delay-b");
  AddFault(b, "")->mutable_delay()->mutable_latency()->set_nanos(30'000'000);
  grpc::Status status = Inject(b);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(
      status.error_message().find("overlaps experiment \"delay-a\" faults[0] (delay) on fl-host egress"),
      std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find("both would delay the same packets"), std::string::npos)
      << status.error_message();
}

TEST_F(CompositionTest, DelaysToDisjointPeersInTwoExperimentsBothHold) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  v1::Experiment a = NewExperiment("delay-peer-2");
  AddFault(a, "198.18.0.2/32")->mutable_delay()->mutable_latency()->set_nanos(50'000'000);
  ASSERT_TRUE(Inject(a).ok());
  v1::Experiment b = NewExperiment("delay-peer-3");
  AddFault(b, "198.18.0.3/32")->mutable_delay()->mutable_latency()->set_nanos(20'000'000);
  grpc::Status status = Inject(b);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<double> peer2 = EchoRoundTrips(Host(), Peer(2), 200, 2000);
  std::vector<double> peer3 = EchoRoundTrips(Host(), Peer(3), 200, 2000);
  // Every round trip carries its peer's delay, never less, and not the other's: peer 3's stay well under
  // peer 2's 50 ms. The medians are within 5 ms of the delay; an emulated CPU (the VM suite) adds the
  // odd late reply, so single round trips are not held to that. Times in microseconds.
  auto within = [](const std::vector<double>& rtts, double low_ms, double high_ms) {
    return std::count_if(rtts.begin(), rtts.end(),
                         [&](double us) { return us >= low_ms * 1000 && us < high_ms * 1000; });
  };
  auto median = [](std::vector<double> rtts) {
    std::nth_element(rtts.begin(), rtts.begin() + static_cast<long>(rtts.size() / 2), rtts.end());
    return rtts[rtts.size() / 2];
  };
  ASSERT_GE(peer2.size(), 198u);
  ASSERT_GE(peer3.size(), 198u);
  EXPECT_EQ(within(peer2, 50, 1000), static_cast<long>(peer2.size()))
      << "a round trip to peer 2 without its delay";
  EXPECT_EQ(within(peer3, 20, 1000), static_cast<long>(peer3.size()))
      << "a round trip to peer 3 without its delay";
  EXPECT_GE(within(peer3, 20, 45), static_cast<long>(peer3.size() * 0.98)) << "peer 3 got peer 2's delay";
  EXPECT_LT(median(peer2), 55'000);
  EXPECT_LT(median(peer3), 25'000);
}

}  // namespace
}  // namespace faultline::test
