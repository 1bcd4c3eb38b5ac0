// Partition and eBPF loss, injected through a running faultlined, measured with real traffic between
// network namespaces, and the kernel's tc state checked after every way a fault can end.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "common/invalid_experiments.h"
#include "faultline/api/cat.h"
#include "sandbox.h"
#include "traffic.h"

namespace faultline::test {
namespace {

using api::Cat;
namespace v1 = faultline::v1;

constexpr int kPackets = 1000;
constexpr const char* kHostV4 = "198.18.0.1";
constexpr const char* kHostV6 = "2001:db8::1";

class DropFaultsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!MissingPrivileges().empty()) return;
    sandbox_ = new Sandbox();
    agent_ = new AgentProcess({"--max-duration", "1h"});
  }
  static void TearDownTestSuite() {
    delete agent_;
    delete sandbox_;
    agent_ = nullptr;
    sandbox_ = nullptr;
  }
  void SetUp() override {
    if (std::string missing = MissingPrivileges(); !missing.empty()) GTEST_SKIP() << missing;
    clean_state_ = sandbox_->HostTcState();
  }
  void TearDown() override {
    if (agent_ == nullptr || !agent_->running()) return;
    grpc::ClientContext context;
    v1::HaltResponse halted;
    agent_->stub().Halt(&context, {}, &halted);
    EXPECT_EQ(sandbox_->HostTcState(), clean_state_) << "the test left kernel state behind";
  }

  Endpoint Host(bool v6) const { return {sandbox_->host_netns(), v6 ? kHostV6 : kHostV4}; }
  Endpoint Peer(bool v6, int n = 2) const {
    return {sandbox_->peers_netns(), v6 ? Cat("2001:db8::", n) : Cat("198.18.0.", n)};
  }

  static v1::Experiment Experiment(const std::string& id, v1::Direction direction, const std::string& peer,
                                   v1::Protocol protocol = v1::PROTOCOL_ALL) {
    v1::Experiment experiment;
    experiment.set_id(id);
    experiment.mutable_duration()->set_seconds(60);
    v1::Fault* fault = experiment.add_faults();
    fault->mutable_partition();
    v1::Target* target = fault->mutable_target();
    target->set_netns_path(sandbox_->host_netns());
    target->set_interface(Sandbox::kHostInterface);
    target->set_direction(direction);
    target->set_protocol(protocol);
    if (!peer.empty()) target->add_peers(peer);
    return experiment;
  }

  static v1::InjectResponse Inject(const v1::Experiment& experiment) {
    grpc::ClientContext context;
    v1::InjectRequest request;
    *request.mutable_experiment() = experiment;
    v1::InjectResponse response;
    grpc::Status status = agent_->stub().Inject(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message() << "\n" << agent_->Log();
    EXPECT_EQ(response.status().state(), v1::STATE_ACTIVE);
    return response;
  }

  static v1::ExperimentStatus Revert(const std::string& id) {
    grpc::ClientContext context;
    v1::RevertRequest request;
    request.set_id(id);
    v1::ExperimentStatus status;
    EXPECT_TRUE(agent_->stub().Revert(&context, request, &status).ok());
    return status;
  }

  static v1::ExperimentStatus Get(const std::string& id) {
    grpc::ClientContext context;
    v1::GetRequest request;
    request.set_id(id);
    v1::ExperimentStatus status;
    EXPECT_TRUE(agent_->stub().Get(&context, request, &status).ok());
    return status;
  }

  static Sandbox* sandbox_;
  static AgentProcess* agent_;
  std::string clean_state_;
};

Sandbox* DropFaultsTest::sandbox_ = nullptr;
AgentProcess* DropFaultsTest::agent_ = nullptr;

// direction x family x protocol: nothing crosses in the faulted direction, everything in the other.
struct PartitionCase {
  v1::Direction direction;
  bool v6;
  v1::Protocol protocol;
};

class PartitionTest : public DropFaultsTest, public ::testing::WithParamInterface<PartitionCase> {};

TEST_P(PartitionTest, NothingCrossesInTheFaultedDirection) {
  const PartitionCase& c = GetParam();
  const bool egress_faulted = c.direction != v1::DIRECTION_INGRESS;
  const bool ingress_faulted = c.direction != v1::DIRECTION_EGRESS;
  const std::string id = Cat("partition-", GetParam().direction, "-", c.v6, "-", c.protocol);
  auto experiment = Experiment(id, c.direction, c.v6 ? "2001:db8::2/128" : "198.18.0.2/32", c.protocol);

  // Host to peer is the egress side of the faulted interface; peer to host the ingress side.
  for (bool outbound : {true, false}) {
    const bool faulted = outbound ? egress_faulted : ingress_faulted;
    Endpoint from = outbound ? Host(c.v6) : Peer(c.v6);
    Endpoint to = outbound ? Peer(c.v6) : Host(c.v6);
    Delivery delivery;
    switch (c.protocol) {
      case v1::PROTOCOL_TCP:
        delivery = SendTcp(from, to, kPackets, [&] { Inject(experiment); });
        break;
      case v1::PROTOCOL_UDP:
        Inject(experiment);
        delivery = SendUdp(from, to, kPackets);
        break;
      default:
        Inject(experiment);
        delivery = SendIcmp(from, to, kPackets);
        break;
    }
    SCOPED_TRACE(Cat(outbound ? "host -> peer" : "peer -> host", faulted ? " (faulted)" : " (not faulted)"));
    EXPECT_EQ(delivery.send_errors, 0) << "a partition must be silent to the sender";
    // TCP's sender may find its buffer full (no ACK comes back either way); every call is one or the other.
    EXPECT_EQ(delivery.sent + delivery.blocked, kPackets);
    if (faulted) {
      EXPECT_EQ(delivery.received, 0);
      EXPECT_GT(Get(experiment.id()).faults(0).packets_dropped(), 0u);
    } else if (c.protocol != v1::PROTOCOL_TCP) {
      // TCP is left out here: its ACKs travel the faulted direction, so its data cannot flow either.
      EXPECT_EQ(delivery.received, kPackets);
    }
    Revert(experiment.id());
    // A reverted experiment's id is taken; the next round uses a fresh one.
    experiment.set_id(id + "-reverse");
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllDirections, PartitionTest, ::testing::ValuesIn([] {
      std::vector<PartitionCase> cases;
      for (auto direction : {v1::DIRECTION_EGRESS, v1::DIRECTION_INGRESS, v1::DIRECTION_BOTH}) {
        for (bool v6 : {false, true}) {
          for (auto protocol : {v1::PROTOCOL_TCP, v1::PROTOCOL_UDP, v1::PROTOCOL_ICMP}) {
            cases.push_back({direction, v6, protocol});
          }
        }
      }
      return cases;
    }()),
    [](const ::testing::TestParamInfo<PartitionCase>& info) {
      std::string direction = v1::Direction_Name(info.param.direction).substr(10);
      std::string protocol = v1::Protocol_Name(info.param.protocol).substr(9);
      return Cat(direction, "_", info.param.v6 ? "ipv6" : "ipv4", "_", protocol);
    });

TEST_F(DropFaultsTest, PeersOutsideTheTargetAreFullyDelivered) {
  for (bool v6 : {false, true}) {
    std::string id = Cat("outside-", v6);
    Inject(Experiment(id, v1::DIRECTION_BOTH, v6 ? "2001:db8::2/128" : "198.18.0.2/32"));
    Delivery outside = SendUdp(Host(v6), Peer(v6, 3), kPackets);
    Delivery inside = SendUdp(Host(v6), Peer(v6, 2), kPackets);
    EXPECT_EQ(outside.received, kPackets) << "v6=" << v6;
    EXPECT_EQ(inside.received, 0) << "v6=" << v6;
    Revert(id);
  }
}

TEST_F(DropFaultsTest, ExcludedPeersAndPortsNarrowThePartition) {
  auto experiment = Experiment("narrow", v1::DIRECTION_EGRESS, "198.18.0.0/24", v1::PROTOCOL_UDP);
  auto* target = experiment.mutable_faults(0)->mutable_target();
  target->add_excluded_peers("198.18.0.3/32");
  Inject(experiment);
  EXPECT_EQ(SendUdp(Host(false), Peer(false, 2), kPackets).received, 0);
  EXPECT_EQ(SendUdp(Host(false), Peer(false, 3), kPackets).received, kPackets);
  EXPECT_EQ(SendIcmp(Host(false), Peer(false, 2), kPackets).received, kPackets) << "only UDP is targeted";
  Revert("narrow");

  auto by_port = Experiment("by-port", v1::DIRECTION_EGRESS, "", v1::PROTOCOL_UDP);
  auto* range = by_port.mutable_faults(0)->mutable_target()->add_ports();
  range->set_first(47001);  // not the port SendUdp uses
  range->set_last(47010);
  Inject(by_port);
  EXPECT_EQ(SendUdp(Host(false), Peer(false, 2), kPackets).received, kPackets);
  Revert("by-port");
}

class LossTest : public DropFaultsTest, public ::testing::WithParamInterface<double> {};

TEST_P(LossTest, DeliveredShareIsWithinThreeSigmaOfTheBinomial) {
  constexpr int kLossPackets = 5000;
  const double percent = GetParam();
  auto experiment = Experiment(Cat("loss-", percent), v1::DIRECTION_EGRESS, "198.18.0.2/32");
  experiment.mutable_faults(0)->mutable_loss()->set_percent(percent);
  Inject(experiment);
  Delivery delivery = SendUdp(Host(false), Peer(false), kLossPackets);
  Revert(experiment.id());
  const double p = percent / 100.0;
  const double expected = kLossPackets * (1 - p);
  const double sigma = std::sqrt(kLossPackets * p * (1 - p));
  EXPECT_EQ(delivery.send_errors, 0);
  EXPECT_NEAR(delivery.received, expected, 3 * sigma) << "loss " << percent << "%";
}

INSTANTIATE_TEST_SUITE_P(Percentages, LossTest, ::testing::Values(1.0, 10.0, 50.0),
                         [](const ::testing::TestParamInfo<double>& info) {
                           return Cat("percent_", static_cast<int>(info.param));
                         });

TEST_F(DropFaultsTest, ExpiresOnTimeEvenWithTheAgentStopped) {
  auto experiment = Experiment("expiry", v1::DIRECTION_BOTH, "198.18.0.2/32");
  experiment.mutable_duration()->set_seconds(2);
  auto injected = std::chrono::steady_clock::now();
  Inject(experiment);
  EXPECT_EQ(SendUdp(Host(false), Peer(false), 100).received, 0);
  kill(agent_->pid(), SIGSTOP);
  std::this_thread::sleep_until(injected + std::chrono::seconds(2));
  // The program's own deadline lets traffic through while the agent cannot run.
  int waited = MillisecondsUntilUdpFlows(Host(false), Peer(false), 3000);
  kill(agent_->pid(), SIGCONT);
  EXPECT_GE(waited, 0) << "traffic never flowed again";
  EXPECT_LE(waited, 1000) << "traffic flowed again only after " << waited << " ms";
  // Once resumed, the agent notices the expiry and removes its filters.
  for (int i = 0; i < 200 && Get("expiry").state() != v1::STATE_EXPIRED; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(Get("expiry").state(), v1::STATE_EXPIRED);
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);
}

TEST_F(DropFaultsTest, RevertAndHaltRestoreTheInterface) {
  Inject(Experiment("to-revert", v1::DIRECTION_BOTH, ""));
  EXPECT_NE(sandbox_->HostTcState(), clean_state_) << "the fault left no trace in tc";
  EXPECT_EQ(Revert("to-revert").state(), v1::STATE_REVERTED);
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);

  Inject(Experiment("halt-1", v1::DIRECTION_EGRESS, "198.18.0.2"));
  Inject(Experiment("halt-2", v1::DIRECTION_INGRESS, "2001:db8::/64"));
  grpc::ClientContext context;
  v1::HaltResponse halted;
  ASSERT_TRUE(agent_->stub().Halt(&context, {}, &halted).ok());
  EXPECT_EQ(halted.reverted_size(), 2);
  for (const auto& status : halted.reverted()) EXPECT_EQ(status.state(), v1::STATE_ABORTED);
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);
}

TEST_F(DropFaultsTest, AClsactTheHostHadIsKept) {
  Shell(Cat("tc -n ", sandbox_->host_netns().substr(11), " qdisc add dev ", Sandbox::kHostInterface,
            " clsact"));
  std::string with_clsact = sandbox_->HostTcState();
  Inject(Experiment("keep-clsact", v1::DIRECTION_BOTH, ""));
  Revert("keep-clsact");
  EXPECT_EQ(sandbox_->HostTcState(), with_clsact);
  Shell(Cat("tc -n ", sandbox_->host_netns().substr(11), " qdisc del dev ", Sandbox::kHostInterface,
            " clsact"));
}

TEST_F(DropFaultsTest, SigtermRevertsEverything) {
  AgentProcess agent;
  grpc::ClientContext context;
  v1::InjectRequest request;
  *request.mutable_experiment() = Experiment("sigterm", v1::DIRECTION_BOTH, "");
  v1::InjectResponse response;
  ASSERT_TRUE(agent.stub().Inject(&context, request, &response).ok());
  EXPECT_NE(sandbox_->HostTcState(), clean_state_);
  int status = agent.Signal(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << agent.Log();
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);
}

TEST_F(DropFaultsTest, InjectingTheSameIdTwiceIsIdempotent) {
  auto experiment = Experiment("twice", v1::DIRECTION_BOTH, "198.18.0.2");
  EXPECT_TRUE(Inject(experiment).created());
  std::string once = sandbox_->HostTcState();
  EXPECT_FALSE(Inject(experiment).created());
  EXPECT_EQ(sandbox_->HostTcState(), once) << "the second inject changed the kernel";
  experiment.mutable_faults(0)->mutable_target()->set_direction(v1::DIRECTION_EGRESS);
  grpc::ClientContext context;
  v1::InjectRequest request;
  *request.mutable_experiment() = experiment;
  v1::InjectResponse response;
  EXPECT_EQ(agent_->stub().Inject(&context, request, &response).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  Revert("twice");
}

TEST_F(DropFaultsTest, AFailedFaultUndoesTheOnesBeforeIt) {
  auto experiment = Experiment("half", v1::DIRECTION_BOTH, "");
  v1::Fault* second = experiment.add_faults();
  *second = experiment.faults(0);
  second->mutable_target()->set_interface("fl-missing0");
  grpc::ClientContext context;
  v1::InjectRequest request;
  *request.mutable_experiment() = experiment;
  v1::InjectResponse response;
  grpc::Status status = agent_->stub().Inject(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(
      status.error_message(),
      Cat("faults[1] (partition): interface fl-missing0: no such device in netns ", sandbox_->host_netns()));
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_) << "the first fault was left applied";
  EXPECT_EQ(Get("half").state(), v1::STATE_FAILED);

  // Nothing of a failed experiment remains, so the same id can be tried again once the cause is fixed.
  experiment.mutable_faults()->RemoveLast();
  EXPECT_TRUE(Inject(experiment).created());
  Revert("half");
}

TEST_F(DropFaultsTest, AForeignFilterKeepsTheClsactFaultlineMade) {
  Inject(Experiment("foreign", v1::DIRECTION_BOTH, ""));
  // An operator attaches their own filter (classic BPF: accept all) while the fault is active.
  std::string ns = sandbox_->host_netns().substr(11);
  Shell(Cat("tc -n ", ns, " filter add dev ", Sandbox::kHostInterface,
            " ingress prio 1 protocol all bpf bytecode '1,6 0 0 4294967295,'"));
  Revert("foreign");
  std::string after = sandbox_->HostTcState();
  EXPECT_NE(after.find("clsact"), std::string::npos) << after;
  EXPECT_NE(after.find("bytecode"), std::string::npos) << "the operator's filter was removed:\n" << after;
  EXPECT_EQ(after.find("fl_drop"), std::string::npos) << "faultline's filters are still there:\n" << after;
  Shell(Cat("tc -n ", ns, " qdisc del dev ", Sandbox::kHostInterface, " clsact"));
}

TEST_F(DropFaultsTest, RefusesInterfacesWithoutAnEthernetHeader) {
  std::string ns = sandbox_->host_netns().substr(11);
  Shell(Cat("ip -n ", ns, " tuntap add mode tun name fl-tun0"));
  auto experiment = Experiment("tun", v1::DIRECTION_BOTH, "");
  experiment.mutable_faults(0)->mutable_target()->set_interface("fl-tun0");
  grpc::ClientContext context;
  v1::InjectRequest request;
  *request.mutable_experiment() = experiment;
  v1::InjectResponse response;
  grpc::Status status = agent_->stub().Inject(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("fl-tun0 in netns " + sandbox_->host_netns() +
                                        ": not an Ethernet interface"),
            std::string::npos)
      << status.error_message();
  EXPECT_EQ(Shell(Cat("tc -n ", ns, " qdisc show dev fl-tun0 clsact")), "");
  Shell(Cat("ip -n ", ns, " link del fl-tun0"));
}

TEST_F(DropFaultsTest, InvalidRequestsChangeNothing) {
  for (InvalidExperiment invalid : InvalidExperiments()) {
    // Aim the table at the sandbox, so an accepted mistake would show in its tc state.
    for (auto& fault : *invalid.experiment.mutable_faults()) {
      if (!fault.has_target()) continue;
      if (fault.target().netns_path() == "/run/netns/x")
        fault.mutable_target()->set_netns_path(sandbox_->host_netns());
      if (fault.target().interface() == "veth0")
        fault.mutable_target()->set_interface(Sandbox::kHostInterface);
    }
    grpc::ClientContext context;
    v1::InjectRequest request;
    *request.mutable_experiment() = invalid.experiment;
    v1::InjectResponse response;
    grpc::Status status = agent_->stub().Inject(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << invalid.name;
    EXPECT_EQ(sandbox_->HostTcState(), clean_state_) << invalid.name;
  }
  grpc::ClientContext context;
  v1::ListResponse list;
  ASSERT_TRUE(agent_->stub().List(&context, {}, &list).ok());
  for (const auto& status : list.experiments()) {
    EXPECT_NE(status.experiment().id().rfind("invalid-", 0), 0u)
        << status.experiment().id() << " was recorded";
  }
}

}  // namespace
}  // namespace faultline::test
