// An experiment's lifecycle against a real faultlined and the kernel's real state: leases that are
// not renewed, all-or-nothing application, the limit on experiments, Halt when the agent is busy, and
// many clients at once.
#include <dirent.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "agent_fixture.h"
#include "faultline/api/cat.h"
#include "sandbox.h"

namespace faultline::test {
namespace {

using api::Cat;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
namespace v1 = faultline::v1;

bool Ended(v1::ExperimentState state) {
  return state == v1::STATE_REVERTED || state == v1::STATE_FAILED || state == v1::STATE_EXPIRED ||
         state == v1::STATE_ABORTED;
}

std::unique_ptr<grpc::ClientContext> Within(std::chrono::seconds timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  return context;
}

// BPF programs and maps the process holds: what a leaked fault would leave in the agent.
int BpfObjects(pid_t pid) {
  int count = 0;
  const std::string dir = Cat("/proc/", pid, "/fd");
  DIR* fds = opendir(dir.c_str());
  if (fds == nullptr) return -1;
  while (dirent* entry = readdir(fds)) {
    char target[256] = {};
    if (readlink((dir + "/" + entry->d_name).c_str(), target, sizeof(target) - 1) > 0 &&
        std::string(target).starts_with("anon_inode:bpf-"))
      count++;
  }
  closedir(fds);
  return count;
}

class LifecycleTest : public AgentInSandboxTest {
 protected:
  // Replaces the fixture's agent with one started with `args`.
  void RestartAgent(std::vector<std::string> args) {
    agent_.reset();
    agent_ = std::make_unique<AgentProcess>(std::move(args));
  }

  // The state of `id`; STATE_UNSPECIFIED while the agent does not know it.
  v1::ExperimentState StateOf(const std::string& id) {
    grpc::ClientContext context;
    v1::GetRequest request;
    request.set_id(id);
    v1::ExperimentStatus status;
    return agent_->stub().Get(&context, request, &status).ok() ? status.state() : v1::STATE_UNSPECIFIED;
  }

  // Waits up to `limit` for `id` to end; its last status.
  v1::ExperimentStatus WaitForEnd(const std::string& id, std::chrono::milliseconds limit) {
    v1::ExperimentStatus status;
    for (auto end = steady_clock::now() + limit; steady_clock::now() < end;) {
      status = Get(id);
      if (Ended(status.state())) break;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return status;
  }
};

TEST_F(LifecycleTest, ALeaseNotRenewedRevertsWithinItsTtlAndOneSecond) {
  auto experiment = NewExperiment("unrenewed");
  AddFault(experiment, "198.18.0.2/32")->mutable_partition();
  experiment.mutable_lease()->mutable_ttl()->set_seconds(3);
  ASSERT_TRUE(Inject(experiment).ok());
  const auto injected = steady_clock::now();
  ASSERT_NE(sandbox_->HostTcState(), clean_state_);

  v1::ExperimentStatus status = WaitForEnd("unrenewed", milliseconds(6000));
  const auto took = steady_clock::now() - injected;
  EXPECT_EQ(status.state(), v1::STATE_ABORTED);
  EXPECT_EQ(status.reason(), "lease lost: not renewed within 3s");
  EXPECT_LE(took, milliseconds(4000));
  EXPECT_GE(took, milliseconds(2900)) << "reverted before the lease ran out";
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);
}

TEST_F(LifecycleTest, FaultctlRenewsTheLeaseWhileItWaits) {
  // A 1 s lease on a 3 s experiment: only renewals keep it to the end of its duration.
  CommandResult waited =
      RunCommand(Cat(FAULTCTL_PATH, " --agent unix:", agent_->socket_path(), " inject partition --netns ",
                     sandbox_->host_netns(), " --iface ", Sandbox::kHostInterface,
                     " --duration 3s --lease 1s --wait --id renewed"));
  EXPECT_EQ(waited.exit_code, 0) << waited.output;
  EXPECT_NE(waited.output.find("renewed EXPIRED (duration 3s ended)"), std::string::npos) << waited.output;
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);
}

TEST_F(LifecycleTest, AFailingThirdFaultLeavesNothingOfTheFirstTwo) {
  const std::string links = Shell(Cat("ip -n ", sandbox_->host_netns().substr(11), " -o link show"));
  auto experiment = NewExperiment("third-fails");
  AddFault(experiment, "198.18.0.2/32")->mutable_partition();
  AddFault(experiment, "198.18.0.3/32")->mutable_bandwidth()->set_rate_bits_per_second(10'000'000);
  v1::Fault* third = AddFault(experiment, "198.18.0.2/32");
  third->mutable_partition();
  third->mutable_target()->set_interface("fl-missing0");

  grpc::Status status = Inject(experiment);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  const std::string error =
      Cat("faults[2] (partition): interface fl-missing0: no such device in netns ", sandbox_->host_netns());
  EXPECT_EQ(status.error_message(), error);
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_) << "the first two faults were left applied";
  EXPECT_EQ(Shell(Cat("ip -n ", sandbox_->host_netns().substr(11), " -o link show")), links);
  v1::ExperimentStatus failed = Get("third-fails");
  EXPECT_EQ(failed.state(), v1::STATE_FAILED);
  EXPECT_EQ(failed.reason(), error);
}

TEST_F(LifecycleTest, NoMoreThanMaxExperimentsAreActiveAtOnce) {
  RestartAgent({"--max-experiments", "2"});
  auto experiment = [this](const std::string& id) {
    auto e = NewExperiment(id);
    AddFault(e, "198.18.0.2/32")->mutable_partition();
    return e;
  };
  ASSERT_TRUE(Inject(experiment("first")).ok());
  ASSERT_TRUE(Inject(experiment("second")).ok());
  grpc::Status third = Inject(experiment("third"));
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(third.error_message(),
            "experiment third: the agent already has 2 experiments that have not ended, its limit "
            "(--max-experiments 2); revert one or wait for one to end");
  // Injecting one that exists again is not a new experiment.
  EXPECT_TRUE(Inject(experiment("second")).ok());
  grpc::ClientContext context;
  v1::CapabilitiesResponse caps;
  ASSERT_TRUE(agent_->stub().Capabilities(&context, {}, &caps).ok());
  EXPECT_EQ(caps.max_experiments(), 2u);

  Revert("first");
  EXPECT_TRUE(Inject(experiment("third")).ok());
}

TEST_F(LifecycleTest, AHaltDuringALongApplyReturnsAtOnceAndStopsIt) {
  // Under emulation one fault's apply takes seconds, so the halt's 1 s bound means nothing there; the
  // test's timing holds on real CPUs, where it runs.
  if (CpuIsEmulated()) GTEST_SKIP() << "timing test: skipped on a CPU that qemu emulates (TCG)";
  // Enough faults that applying them takes a while: each loads a program and attaches a filter.
  constexpr int kFaults = 150;
  auto experiment = NewExperiment("long-apply");
  for (int i = 0; i < kFaults; i++) AddFault(experiment, "198.18.0.2/32")->mutable_partition();
  v1::InjectResponse injected;
  grpc::Status inject_status;
  steady_clock::time_point inject_ended;
  std::thread injector([&] {
    grpc::ClientContext context;
    v1::InjectRequest request;
    *request.mutable_experiment() = experiment;
    inject_status = agent_->stub().Inject(&context, request, &injected);
    inject_ended = steady_clock::now();
  });
  for (int i = 0; i < 500 && StateOf("long-apply") != v1::STATE_APPLYING; i++) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  std::this_thread::sleep_for(milliseconds(200));  // some of the faults are in the kernel by now

  const auto halt_started = steady_clock::now();
  v1::HaltResponse halted;
  grpc::Status halt = agent_->stub().Halt(Within(seconds(10)).get(), {}, &halted);
  const auto halt_ended = steady_clock::now();
  injector.join();

  ASSERT_TRUE(halt.ok()) << halt.error_message();
  std::printf("halt took %lld ms; the apply stopped after %d of %d faults, %lld ms after the halt\n",
              static_cast<long long>((halt_ended - halt_started) / milliseconds(1)),
              injected.status().faults_size(), kFaults,
              static_cast<long long>((inject_ended - halt_ended) / milliseconds(1)));
  EXPECT_LT(halt_ended - halt_started, milliseconds(1000));
  ASSERT_EQ(halted.reverted_size(), 1);
  EXPECT_EQ(halted.reverted(0).experiment().id(), "long-apply");
  EXPECT_EQ(halted.reverted(0).state(), v1::STATE_APPLYING) << "the halt did not wait for the apply";
  ASSERT_TRUE(inject_status.ok()) << inject_status.error_message();
  EXPECT_GE(inject_ended, halt_ended)
      << "the apply ended before the halt: nothing shows the halt did not wait";
  EXPECT_EQ(injected.status().state(), v1::STATE_ABORTED);
  EXPECT_GT(injected.status().faults_size(), 0);
  EXPECT_LT(injected.status().faults_size(), kFaults) << "the apply went on after the halt";
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);
}

TEST_F(LifecycleTest, AHaltGetsThroughWhenEveryRpcThreadIsTaken) {
  RestartAgent({"--max-rpc-threads", "4"});
  auto experiment = NewExperiment("busy");
  AddFault(experiment, "198.18.0.2/32")->mutable_partition();
  ASSERT_TRUE(Inject(experiment).ok());

  // Watch streams hold a thread each for as long as they are open.
  struct Stream {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<v1::ExperimentEvent>> reader;
  };
  std::vector<std::unique_ptr<Stream>> streams;
  bool exhausted = false;
  for (int i = 0; i < 16 && !exhausted; i++) {
    auto stream = std::make_unique<Stream>();
    stream->reader = agent_->stub().Watch(&stream->context, {});
    v1::ExperimentEvent event;
    exhausted = !stream->reader->Read(&event);  // a watch that got a thread sends "busy" first
    streams.push_back(std::move(stream));
    v1::ListResponse list;
    exhausted = exhausted || agent_->stub().List(Within(seconds(5)).get(), {}, &list).error_code() ==
                                 grpc::StatusCode::RESOURCE_EXHAUSTED;
  }
  ASSERT_TRUE(exhausted) << "16 watch streams did not take every thread of --max-rpc-threads 4";

  const auto started = steady_clock::now();
  v1::HaltResponse halted;
  grpc::Status halt = agent_->stub().Halt(Within(seconds(5)).get(), {}, &halted);
  EXPECT_TRUE(halt.ok()) << halt.error_message();
  EXPECT_LT(steady_clock::now() - started, milliseconds(2000));
  ASSERT_EQ(halted.reverted_size(), 1);
  EXPECT_EQ(halted.reverted(0).state(), v1::STATE_ABORTED);
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);

  for (auto& stream : streams) stream->context.TryCancel();
  for (auto& stream : streams) stream->reader->Finish();
  // The threads come back once the handlers see their streams cancelled.
  bool served = false;
  for (int i = 0; i < 50 && !served; i++) {
    v1::ListResponse list;
    served = agent_->stub().List(Within(seconds(5)).get(), {}, &list).ok();
    if (!served) std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(served);
}

// 4 clients, 500 calls in all: Inject, Revert and Halt at random, on overlapping targets of one
// interface, with experiments that expire or lose their lease meanwhile.
TEST_F(LifecycleTest, ManyClientsAtOnceLeaveNothingBehind) {
  RestartAgent({"--max-experiments", "12"});
  const std::string ns = sandbox_->host_netns().substr(11);
  const std::string links = Shell(Cat("ip -n ", ns, " -o link show"));
  // The agent's program pool (kernel/program_pool.h) loads its instances after the agent starts, at
  // idle priority, and reloads what faults take: its count is the idle one once it stops changing.
  auto settled_bpf_objects = [&] {
    int count = BpfObjects(agent_->pid());
    for (int unchanged = 0, i = 0; unchanged < 10 && i < 300; i++) {  // 1 s unchanged, at most 30 s
      std::this_thread::sleep_for(milliseconds(100));
      int now = BpfObjects(agent_->pid());
      unchanged = now == count ? unchanged + 1 : 0;
      count = now;
    }
    return count;
  };
  const int bpf_objects = settled_bpf_objects();

  constexpr int kClients = 4;
  constexpr int kCallsEach = 125;
  std::mutex mutex;
  std::vector<std::string> ids;        // every experiment an Inject created
  std::map<std::string, int> results;  // "Inject OK", "Revert NOT_FOUND", ...
  auto client = [&](int number) {
    std::mt19937 random(static_cast<unsigned>(number) * 7919u + 1);
    for (int call = 0; call < kCallsEach; call++) {
      const int dice = static_cast<int>(random() % 100);
      std::string name;
      grpc::Status status;
      if (dice < 55) {
        name = "Inject";
        auto experiment = NewExperiment(Cat("c", number, "-", call));
        experiment.mutable_duration()->set_seconds(1 + random() % 3);
        const char* peers[] = {"198.18.0.2/32", "198.18.0.3/32", "198.18.0.0/24", ""};
        v1::Fault* fault = AddFault(experiment, peers[random() % 4]);
        const v1::Direction directions[] = {v1::DIRECTION_EGRESS, v1::DIRECTION_INGRESS, v1::DIRECTION_BOTH};
        switch (random() % 4) {
          case 0:
            fault->mutable_partition();
            fault->mutable_target()->set_direction(directions[random() % 3]);
            break;
          case 1:
            fault->mutable_loss()->set_percent(10);
            break;
          case 2:
            // Shaping faults of two experiments on overlapping peers are refused: some are.
            fault->mutable_bandwidth()->set_rate_bits_per_second(10'000'000);
            break;
          default:
            fault->mutable_partition();
            AddFault(experiment, "198.18.0.3/32")->mutable_loss()->set_percent(50);
            break;
        }
        if (random() % 4 == 0) experiment.mutable_lease()->mutable_ttl()->set_nanos(500'000'000);
        v1::InjectRequest request;
        *request.mutable_experiment() = experiment;
        v1::InjectResponse response;
        status = agent_->stub().Inject(Within(seconds(30)).get(), request, &response);
        std::lock_guard lock(mutex);
        if (status.ok()) ids.push_back(experiment.id());
      } else if (dice < 90) {
        name = "Revert";
        v1::RevertRequest request;
        {
          std::lock_guard lock(mutex);
          if (!ids.empty()) request.set_id(ids[random() % ids.size()]);
        }
        if (request.id().empty()) request.set_id("none-yet");
        v1::ExperimentStatus reverted;
        status = agent_->stub().Revert(Within(seconds(30)).get(), request, &reverted);
      } else {
        name = "Halt";
        v1::HaltResponse halted;
        status = agent_->stub().Halt(Within(seconds(30)).get(), {}, &halted);
      }
      std::lock_guard lock(mutex);
      results[Cat(name, " ", absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())))]++;
    }
  };
  const auto started = steady_clock::now();
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; i++) clients.emplace_back(client, i);
  for (auto& thread : clients) thread.join();
  const auto took = steady_clock::now() - started;

  std::string summary;
  int calls = 0;
  for (const auto& [result, count] : results) {
    summary += Cat(result, ": ", count, "\n");
    calls += count;
  }
  std::printf("%d calls in %.1f s:\n%s", calls, std::chrono::duration<double>(took).count(), summary.c_str());
  EXPECT_EQ(calls, kClients * kCallsEach);
  // Refusals with a reason are fine (a limit, overlapping shaping); anything else is a bug.
  const std::set<std::string> expected = {"OK", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "NOT_FOUND"};
  for (const auto& [result, count] : results) {
    EXPECT_TRUE(expected.contains(result.substr(result.find(' ') + 1))) << result << "\n" << agent_->Log();
  }
  EXPECT_GT(results["Inject OK"], 0);
  ASSERT_TRUE(agent_->running());

  // Everything ends: halt what is left, then every experiment must be in a final state.
  v1::HaltResponse halted;
  ASSERT_TRUE(agent_->stub().Halt(Within(seconds(30)).get(), {}, &halted).ok());
  v1::ListResponse list;
  bool all_ended = false;
  for (int i = 0; i < 100 && !all_ended; i++) {
    ASSERT_TRUE(agent_->stub().List(Within(seconds(5)).get(), {}, &list).ok());
    all_ended = std::all_of(list.experiments().begin(), list.experiments().end(),
                            [](const v1::ExperimentStatus& status) { return Ended(status.state()); });
    if (!all_ended) std::this_thread::sleep_for(milliseconds(50));
  }
  for (const auto& status : list.experiments()) {
    EXPECT_TRUE(Ended(status.state()))
        << status.experiment().id() << " " << v1::ExperimentState_Name(status.state());
  }
  EXPECT_EQ(list.experiments_size(), static_cast<int>(ids.size()) + results["Inject FAILED_PRECONDITION"]);
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);
  EXPECT_EQ(Shell(Cat("ip -n ", ns, " -o link show")), links) << "an ifb device was left behind";
  EXPECT_EQ(settled_bpf_objects(), bpf_objects) << "the agent still holds programs or maps";
}

}  // namespace
}  // namespace faultline::test
