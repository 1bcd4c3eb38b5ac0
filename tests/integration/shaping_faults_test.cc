// netem and bandwidth faults through a running faultlined, measured with real traffic between network
// namespaces. Tests that need netem skip on kernels without it (this project's host) and run in the
// VM suite (tests/vm) on Debian's kernels, which have it.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "faultline/api/cat.h"
#include "sandbox.h"
#include "traffic.h"

namespace faultline::test {
namespace {

using api::Cat;
namespace v1 = faultline::v1;

class ShapingFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string missing = MissingPrivileges(); !missing.empty()) GTEST_SKIP() << missing;
    sandbox_ = std::make_unique<Sandbox>();
    agent_ = std::make_unique<AgentProcess>();
    grpc::ClientContext context;
    ASSERT_TRUE(agent_->stub().Capabilities(&context, {}, &caps_).ok());
    clean_state_ = sandbox_->HostTcState();
  }
  void TearDown() override {
    if (!agent_) return;
    grpc::ClientContext context;
    v1::HaltResponse halted;
    agent_->stub().Halt(&context, {}, &halted);
    EXPECT_EQ(sandbox_->HostTcState(), clean_state_) << "the test left kernel state behind";
  }

  // The reason a kernel feature is missing, or "" when the agent found it.
  std::string Lacks(const std::string& feature) const {
    for (const auto& f : caps_.features()) {
      if (f.name() == feature)
        return f.available() ? "" : Cat("the kernel lacks ", feature, ": ", f.detail());
    }
    return Cat("the agent did not report ", feature);
  }

  v1::Fault* AddFault(v1::Experiment& experiment, const std::string& peer) const {
    v1::Fault* fault = experiment.add_faults();
    v1::Target* target = fault->mutable_target();
    target->set_netns_path(sandbox_->host_netns());
    target->set_interface(Sandbox::kHostInterface);
    target->set_direction(v1::DIRECTION_EGRESS);
    if (!peer.empty()) target->add_peers(peer);
    return fault;
  }

  static v1::Experiment NewExperiment(const std::string& id) {
    v1::Experiment experiment;
    experiment.set_id(id);
    experiment.mutable_duration()->set_seconds(120);
    return experiment;
  }

  grpc::Status Inject(const v1::Experiment& experiment) {
    grpc::ClientContext context;
    v1::InjectRequest request;
    *request.mutable_experiment() = experiment;
    v1::InjectResponse response;
    return agent_->stub().Inject(&context, request, &response);
  }

  void Revert(const std::string& id) {
    grpc::ClientContext context;
    v1::RevertRequest request;
    request.set_id(id);
    v1::ExperimentStatus status;
    EXPECT_TRUE(agent_->stub().Revert(&context, request, &status).ok());
  }

  Endpoint Host() const { return {sandbox_->host_netns(), "198.18.0.1"}; }
  Endpoint Peer(int n) const { return {sandbox_->peers_netns(), Cat("198.18.0.", n)}; }

  static double Median(std::vector<double> values) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
  }

  std::unique_ptr<Sandbox> sandbox_;
  std::unique_ptr<AgentProcess> agent_;
  v1::CapabilitiesResponse caps_;
  std::string clean_state_;
};

TEST_F(ShapingFaultsTest, BandwidthLimitsOnlyTheTargetedPeer) {
  if (!Lacks("htb").empty() && !Lacks("prio").empty()) GTEST_SKIP() << Lacks("htb");
  v1::Experiment experiment = NewExperiment("bandwidth");
  AddFault(experiment, "198.18.0.2/32")->mutable_bandwidth()->set_rate_bits_per_second(10'000'000);
  ASSERT_TRUE(Inject(experiment).ok());
  double limited = TcpThroughput(Host(), Peer(2), 3);
  double other = TcpThroughput(Host(), Peer(3), 1);
  Revert("bandwidth");
  EXPECT_NEAR(limited, 10e6, 1e6) << "a 10 Mbit/s limit measured " << limited / 1e6 << " Mbit/s";
  EXPECT_GT(other, 100e6) << "an unlisted peer was slowed to " << other / 1e6 << " Mbit/s";
}

TEST_F(ShapingFaultsTest, IngressBandwidthGoesThroughAnIfbAndLimitsOnlyThatDirection) {
  if (!Lacks("ifb").empty()) GTEST_SKIP() << Lacks("ifb");
  if (!Lacks("htb").empty() && !Lacks("prio").empty()) GTEST_SKIP() << Lacks("htb");
  v1::Experiment experiment = NewExperiment("ingress-bandwidth");
  v1::Fault* fault = AddFault(experiment, "198.18.0.2/32");
  fault->mutable_target()->set_direction(v1::DIRECTION_INGRESS);
  fault->mutable_bandwidth()->set_rate_bits_per_second(10'000'000);
  grpc::Status status = Inject(experiment);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::string ns = sandbox_->host_netns().substr(11);
  EXPECT_NE(Shell(Cat("ip -n ", ns, " link show type ifb")).find("ifb-fl-host"), std::string::npos);
  double inbound = TcpThroughput(Peer(2), Host(), 3);
  double outbound = TcpThroughput(Host(), Peer(2), 1);
  Revert("ingress-bandwidth");
  EXPECT_NEAR(inbound, 10e6, 1e6) << "a 10 Mbit/s ingress limit measured " << inbound / 1e6 << " Mbit/s";
  EXPECT_GT(outbound, 100e6) << "egress was slowed to " << outbound / 1e6 << " Mbit/s";
  EXPECT_EQ(Shell(Cat("ip -n ", ns, " link show type ifb")), "") << "the ifb device was left behind";
}

TEST_F(ShapingFaultsTest, ACustomRootQdiscIsRestoredExactly) {
  if (!Lacks("tbf").empty()) GTEST_SKIP() << Lacks("tbf");
  std::string ns = sandbox_->host_netns().substr(11);
  Shell(Cat("tc -n ", ns, " qdisc add dev ", Sandbox::kHostInterface,
            " root handle 5: tbf rate 1gbit burst 128k limit 1m"));
  std::string custom = sandbox_->HostTcState();
  v1::Experiment experiment = NewExperiment("custom-root");
  AddFault(experiment, "198.18.0.2/32")->mutable_bandwidth()->set_rate_bits_per_second(5'000'000);
  grpc::Status status = Inject(experiment);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_NE(sandbox_->HostTcState(), custom);
  Revert("custom-root");
  EXPECT_EQ(sandbox_->HostTcState(), custom);
  Shell(Cat("tc -n ", ns, " qdisc del dev ", Sandbox::kHostInterface, " root"));
}

TEST_F(ShapingFaultsTest, NetemFaultsAreRefusedWhereTheKernelLacksNetem) {
  if (Lacks("netem").empty()) GTEST_SKIP() << "this kernel has netem; the refusal cannot happen here";
  v1::Experiment experiment = NewExperiment("no-netem");
  AddFault(experiment, "")->mutable_partition();
  AddFault(experiment, "198.18.0.2/32")->mutable_delay()->mutable_latency()->set_nanos(50'000'000);
  grpc::Status status = Inject(experiment);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(status.error_message(),
            "faults[1] (delay): delay needs netem, which this kernel lacks (see faultctl caps)");
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_) << "the partition before the delay was left applied";
}

TEST_F(ShapingFaultsTest, DelayAddsItsLatencyToTheTargetedPeerOnly) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  constexpr int kProbes = 500;
  double base = Median(EchoRoundTrips(Host(), Peer(2), 100, 2000));
  v1::Experiment experiment = NewExperiment("delay");
  AddFault(experiment, "198.18.0.2/32")->mutable_delay()->mutable_latency()->set_nanos(50'000'000);
  ASSERT_TRUE(Inject(experiment).ok());
  std::vector<double> delayed = EchoRoundTrips(Host(), Peer(2), kProbes, 2000);
  std::vector<double> other = EchoRoundTrips(Host(), Peer(3), 100, 2000);
  Revert("delay");
  ASSERT_GE(delayed.size(), static_cast<size_t>(kProbes * 0.99));
  double added_ms = (Median(delayed) - base) / 1000;
  EXPECT_NEAR(added_ms, 50, 2.5) << "50 ms of delay added " << added_ms << " ms at the median";
  EXPECT_LT((Median(other) - base) / 1000, 2.5) << "an unlisted peer was delayed";
}

TEST_F(ShapingFaultsTest, NetemLossIsWithinThreeSigmaOfTheBinomial) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  constexpr int kPackets = 5000;
  v1::Experiment experiment = NewExperiment("netem-loss");
  v1::Loss* loss = AddFault(experiment, "198.18.0.2/32")->mutable_loss();
  loss->set_percent(10);
  loss->set_model(v1::Loss::MODEL_NETEM_RANDOM);
  ASSERT_TRUE(Inject(experiment).ok());
  Delivery delivery = SendUdp(Host(), Peer(2), kPackets);
  Revert("netem-loss");
  EXPECT_EQ(delivery.send_errors, 0);
  EXPECT_NEAR(delivery.received, kPackets * 0.9, 3 * std::sqrt(kPackets * 0.1 * 0.9));
}

TEST_F(ShapingFaultsTest, DelayAndLossToTheSamePeersShareOneNetem) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  v1::Experiment experiment = NewExperiment("composed");
  AddFault(experiment, "198.18.0.2/32")->mutable_delay()->mutable_latency()->set_nanos(20'000'000);
  v1::Loss* loss = AddFault(experiment, "198.18.0.2/32")->mutable_loss();
  loss->set_percent(5);
  loss->set_model(v1::Loss::MODEL_NETEM_RANDOM);
  ASSERT_TRUE(Inject(experiment).ok());
  std::string qdiscs =
      Shell(Cat("tc -n ", sandbox_->host_netns().substr(11), " qdisc show dev ", Sandbox::kHostInterface));
  Revert("composed");
  size_t netems = 0;
  for (size_t at = qdiscs.find("netem"); at != std::string::npos; at = qdiscs.find("netem", at + 1)) netems++;
  EXPECT_EQ(netems, 1u) << qdiscs;
  EXPECT_NE(qdiscs.find("delay 20ms"), std::string::npos) << qdiscs;
  EXPECT_NE(qdiscs.find("loss 5%"), std::string::npos) << qdiscs;

  v1::Experiment conflicting = NewExperiment("two-delays");
  AddFault(conflicting, "198.18.0.2/32")->mutable_delay()->mutable_latency()->set_nanos(20'000'000);
  AddFault(conflicting, "198.18.0.2/32")->mutable_delay()->mutable_latency()->set_nanos(30'000'000);
  grpc::Status status = Inject(conflicting);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("faults[1] and faults[0] both set delay"), std::string::npos)
      << status.error_message();
}

}  // namespace
}  // namespace faultline::test
