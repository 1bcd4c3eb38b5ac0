// --metrics-listen against a real faultlined: a scrape over loopback after each change shows it.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "agent_fixture.h"
#include "common/http.h"
#include "faultline/api/cat.h"
#include "faultline/api/units.h"

namespace faultline::test {
namespace {

using api::Cat;
namespace v1 = faultline::v1;

class MetricsEndpointTest : public AgentInSandboxTest {
 protected:
  void SetUp() override {
    AgentInSandboxTest::SetUp();
    if (IsSkipped()) return;
    agent_.reset();
    agent_ = std::make_unique<AgentProcess>(std::vector<std::string>{"--metrics-listen", "127.0.0.1:0"});
    auto address = api::ParseHostPort(agent_->ReadyField("metrics_listen"));
    ASSERT_TRUE(address.ok()) << agent_->Log();
    port_ = address->port;
  }

  std::string Scrape() const { return HttpGet("127.0.0.1", port_, "/metrics"); }

  // The value of the sample `series` ("faultline_experiments{state=\"active\"}") in a scrape, or -1.
  static double Sample(const std::string& scrape, const std::string& series) {
    size_t at = scrape.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(scrape.substr(at + series.size() + 2));
  }

  uint16_t port_ = 0;
};

TEST_F(MetricsEndpointTest, ValuesMoveWithInjectRevertErrorsAndLostLeases) {
  std::string before = Scrape();
  ASSERT_NE(before, "") << "no answer from 127.0.0.1:" << port_;
  EXPECT_EQ(Sample(before, "faultline_experiments{state=\"active\"}"), 0);
  EXPECT_EQ(Sample(before, "faultline_inject_duration_seconds_count"), 0);

  auto experiment = NewExperiment("measured");
  AddFault(experiment, "198.18.0.2/32")->mutable_partition();
  AddFault(experiment, "198.18.0.3/32")->mutable_loss()->set_percent(20);
  ASSERT_TRUE(Inject(experiment).ok());
  std::string active = Scrape();
  EXPECT_EQ(Sample(active, "faultline_experiments{state=\"active\"}"), 1);
  EXPECT_EQ(Sample(active, "faultline_faults_active{kind=\"partition\"}"), 1);
  EXPECT_EQ(Sample(active, "faultline_faults_active{kind=\"loss\"}"), 1);
  EXPECT_EQ(Sample(active, "faultline_inject_duration_seconds_count"), 1);
  EXPECT_EQ(Sample(active, "faultline_inject_duration_seconds_bucket{le=\"+Inf\"}"), 1);
  EXPECT_GT(Sample(active, "faultline_inject_duration_seconds_sum"), 0);

  Revert("measured");
  std::string reverted = Scrape();
  EXPECT_EQ(Sample(reverted, "faultline_experiments{state=\"active\"}"), 0);
  EXPECT_EQ(Sample(reverted, "faultline_experiments{state=\"reverted\"}"), 1);
  EXPECT_EQ(Sample(reverted, "faultline_faults_active{kind=\"partition\"}"), 0);
  EXPECT_EQ(Sample(reverted, "faultline_revert_duration_seconds_count"), 1);

  grpc::ClientContext context;
  v1::GetRequest missing;
  missing.set_id("no-such-experiment");
  v1::ExperimentStatus status;
  EXPECT_EQ(agent_->stub().Get(&context, missing, &status).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Sample(Scrape(), "faultline_errors_total{code=\"NOT_FOUND\"}"), 1);

  auto leased = NewExperiment("leased");
  AddFault(leased, "198.18.0.2/32")->mutable_partition();
  leased.mutable_lease()->mutable_ttl()->set_nanos(300'000'000);
  ASSERT_TRUE(Inject(leased).ok());
  // The loss is counted when the lease runs out; the experiment is ABORTED once its revert is done.
  std::string last;
  for (int i = 0; i < 500 && Sample(last, "faultline_experiments{state=\"aborted\"}") < 1; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    last = Scrape();
  }
  EXPECT_EQ(Sample(last, "faultline_lease_losses_total"), 1);
  EXPECT_EQ(Sample(last, "faultline_experiments{state=\"aborted\"}"), 1);
  EXPECT_EQ(Sample(last, "faultline_revert_duration_seconds_count"), 2);
  EXPECT_EQ(Sample(last, "faultline_journal_replays_total"), 0)
      << "a fresh state directory has nothing to replay";
}

TEST_F(MetricsEndpointTest, TheMetricsPortIsGuarded) {
  grpc::ClientContext context;
  v1::CapabilitiesResponse caps;
  ASSERT_TRUE(agent_->stub().Capabilities(&context, {}, &caps).ok());
  EXPECT_NE(std::find(caps.guarded_endpoints().begin(), caps.guarded_endpoints().end(),
                      Cat("--metrics-listen 127.0.0.1:", port_)),
            caps.guarded_endpoints().end());
}

}  // namespace
}  // namespace faultline::test
