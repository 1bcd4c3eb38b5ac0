// A fixture for tests that drive a real faultlined against the sandbox's namespaces: a fresh sandbox
// and agent for each test, faults aimed at the host interface, and a check that every test leaves the
// host interface's tc state as it found it.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "faultline/api/cat.h"
#include "sandbox.h"
#include "traffic.h"

namespace faultline::test {

class AgentInSandboxTest : public ::testing::Test {
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
    faultline::v1::HaltResponse halted;
    agent_->stub().Halt(&context, {}, &halted);
    EXPECT_EQ(sandbox_->HostTcState(), clean_state_) << "the test left kernel state behind";
  }

  // The reason a kernel feature is missing, or "" when the agent found it.
  std::string Lacks(const std::string& feature) const {
    for (const auto& f : caps_.features()) {
      if (f.name() == feature)
        return f.available() ? "" : api::Cat("the kernel lacks ", feature, ": ", f.detail());
    }
    return api::Cat("the agent did not report ", feature);
  }

  // A fault on the host interface's egress, to `peer` (a CIDR) or to every peer ("").
  faultline::v1::Fault* AddFault(faultline::v1::Experiment& experiment, const std::string& peer) const {
    faultline::v1::Fault* fault = experiment.add_faults();
    faultline::v1::Target* target = fault->mutable_target();
    target->set_netns_path(sandbox_->host_netns());
    target->set_interface(Sandbox::kHostInterface);
    target->set_direction(faultline::v1::DIRECTION_EGRESS);
    if (!peer.empty()) target->add_peers(peer);
    return fault;
  }

  static faultline::v1::Experiment NewExperiment(const std::string& id) {
    faultline::v1::Experiment experiment;
    experiment.set_id(id);
    experiment.mutable_duration()->set_seconds(120);
    return experiment;
  }

  grpc::Status Inject(const faultline::v1::Experiment& experiment) {
    grpc::ClientContext context;
    faultline::v1::InjectRequest request;
    *request.mutable_experiment() = experiment;
    faultline::v1::InjectResponse response;
    return agent_->stub().Inject(&context, request, &response);
  }

  void Revert(const std::string& id) {
    grpc::ClientContext context;
    faultline::v1::RevertRequest request;
    request.set_id(id);
    faultline::v1::ExperimentStatus status;
    EXPECT_TRUE(agent_->stub().Revert(&context, request, &status).ok());
  }

  faultline::v1::ExperimentStatus Get(const std::string& id) {
    grpc::ClientContext context;
    faultline::v1::GetRequest request;
    request.set_id(id);
    faultline::v1::ExperimentStatus status;
    EXPECT_TRUE(agent_->stub().Get(&context, request, &status).ok());
    return status;
  }

  Endpoint Host() const { return {sandbox_->host_netns(), "198.18.0.1"}; }
  Endpoint Peer(int n) const { return {sandbox_->peers_netns(), api::Cat("198.18.0.", n)}; }

  std::unique_ptr<Sandbox> sandbox_;
  std::unique_ptr<AgentProcess> agent_;
  faultline::v1::CapabilitiesResponse caps_;
  std::string clean_state_;
};

}  // namespace faultline::test
