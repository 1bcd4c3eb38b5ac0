// The control-plane guard against a real faultlined: the agent serves mutual TLS inside the sandbox's
// host namespace, a controller (faultctl) in the peers namespace partitions every peer, itself
// included, and its connections still work while every other packet to and from it is dropped.
#include <absl/cleanup/cleanup.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "faultline/api/cat.h"
#include "pki.h"
#include "sandbox.h"
#include "traffic.h"

namespace faultline::test {
namespace {

using api::Cat;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
namespace v1 = faultline::v1;

constexpr const char* kAgentV4 = "198.18.0.1:7443";
constexpr const char* kAgentV6 = "[2001:db8::1]:7443";

class ControlPlaneGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string missing = MissingPkiTools(); !missing.empty()) GTEST_SKIP() << missing;
    pki_ = std::make_unique<TestPki>();
    sandbox_ = std::make_unique<Sandbox>();
    // The agent lives in the host namespace, so its listener is on the faulted interface's side.
    agent_ = std::make_unique<AgentProcess>(
        std::vector<std::string>{"--listen", "[::]:7443", "--tls-cert", pki_->Path("server.pem"), "--tls-key",
                                 pki_->Path("server.key"), "--client-ca", pki_->Path("ca.pem"), "--access",
                                 pki_->Path("access")},
        "", true, sandbox_->host_netns());
    clean_state_ = sandbox_->HostTcState();
  }
  void TearDown() override {
    if (!agent_) return;
    grpc::ClientContext context;
    v1::HaltResponse halted;
    agent_->stub().Halt(&context, {}, &halted);
    EXPECT_EQ(sandbox_->HostTcState(), clean_state_) << "the test left kernel state behind";
  }

  // faultctl run as an operator from the peers namespace, talking to the agent at `address`.
  std::string Controller(const std::string& address, const std::string& command) const {
    return Cat("ip netns exec ", sandbox_->peers_netns().substr(11), " ", FAULTCTL_PATH, " --agent ", address,
               " ", pki_->FaultctlFlags("operator"), " --timeout 5s ", command);
  }

  v1::ExperimentStatus Get(const std::string& id) const {
    grpc::ClientContext context;
    v1::GetRequest request;
    request.set_id(id);
    v1::ExperimentStatus status;
    agent_->stub().Get(&context, request, &status);
    return status;
  }

  std::vector<std::string> Guarded() const {
    grpc::ClientContext context;
    v1::CapabilitiesResponse caps;
    EXPECT_TRUE(agent_->stub().Capabilities(&context, {}, &caps).ok());
    return {caps.guarded_endpoints().begin(), caps.guarded_endpoints().end()};
  }

  Endpoint Host(bool v6) const { return {sandbox_->host_netns(), v6 ? "2001:db8::1" : "198.18.0.1"}; }
  Endpoint Controller(bool v6) const { return {sandbox_->peers_netns(), v6 ? "2001:db8::2" : "198.18.0.2"}; }

  std::unique_ptr<TestPki> pki_;
  std::unique_ptr<Sandbox> sandbox_;
  std::unique_ptr<AgentProcess> agent_;
  std::string clean_state_;
};

TEST_F(ControlPlaneGuardTest, AWildcardListenerIsGuardedOnBothFamilies) {
  std::vector<std::string> guarded = Guarded();
  for (const char* endpoint : {"--listen 0.0.0.0:7443", "--listen [::]:7443"}) {
    EXPECT_NE(std::find(guarded.begin(), guarded.end(), endpoint), guarded.end()) << endpoint;
  }
}

TEST_F(ControlPlaneGuardTest, APartitionOfTheControllersAddressDoesNotCutItsConnection) {
  // A controller that partitions every peer, itself included, and stays: it renews a 1 s lease over
  // its connection and watches the experiment on it. Were that connection cut, the lease would be
  // lost within a second.
  CommandResult waited;
  std::thread waiting([&] {
    waited = RunCommand(Controller(
        kAgentV4,
        Cat("inject partition --netns ", sandbox_->host_netns(), " --iface ", Sandbox::kHostInterface,
            " --peer 198.18.0.0/24 --peer 2001:db8::/64 --duration 30s --lease 1s --wait --id cut")));
  });
  absl::Cleanup join = [&] {
    grpc::ClientContext context;
    v1::HaltResponse halted;
    if (waiting.joinable()) agent_->stub().Halt(&context, {}, &halted);  // so that faultctl returns
    if (waiting.joinable()) waiting.join();
  };
  for (int i = 0; i < 500 && Get("cut").state() != v1::STATE_ACTIVE; i++) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_EQ(Get("cut").state(), v1::STATE_ACTIVE) << agent_->Log();
  std::vector<std::string> guarded = Guarded();
  EXPECT_TRUE(std::any_of(guarded.begin(), guarded.end(), [](const std::string& line) {
    return line.starts_with("controller 198.18.0.2:");
  })) << "the controller's connection is not listed";

  // Every other packet between the host and the controller is dropped, both ways, both families.
  for (bool v6 : {false, true}) {
    EXPECT_EQ(SendUdp(Host(v6), Controller(v6), 50).received, 0) << (v6 ? "IPv6" : "IPv4");
    EXPECT_EQ(SendUdp(Controller(v6), Host(v6), 50).received, 0) << (v6 ? "IPv6" : "IPv4");
  }

  // Three leases long: the renewals got through.
  std::this_thread::sleep_for(milliseconds(3000));
  v1::ExperimentStatus status = Get("cut");
  EXPECT_EQ(status.state(), v1::STATE_ACTIVE) << status.reason();

  // New connections from the controller, to either family, work too.
  CommandResult listed = RunCommand(Controller(kAgentV6, "list"));
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_NE(listed.output.find("cut"), std::string::npos) << listed.output;
  CommandResult reverted = RunCommand(Controller(kAgentV4, "revert cut"));
  EXPECT_EQ(reverted.exit_code, 0) << reverted.output;

  waiting.join();
  EXPECT_EQ(waited.exit_code, 0) << waited.output;
  EXPECT_NE(waited.output.find("cut REVERTED"), std::string::npos) << waited.output;
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);
  for (bool v6 : {false, true}) EXPECT_EQ(SendUdp(Host(v6), Controller(v6), 20).received, 20);
}

}  // namespace
}  // namespace faultline::test
