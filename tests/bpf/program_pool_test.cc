// ProgramPool (kernel/program_pool.h): instances loaded ahead are inert until a fault configures
// them, are replaced once taken, and are what DropProgram::Load and ClassifyProgram::Load* use.
#include "kernel/program_pool.h"

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "packets.h"
#include "test_run.h"

namespace faultline::kernel {
namespace {

using test::Frame;
using test::HourLong;
using test::kIpv4;
using test::WhyNoBpf;
using Role = ClassifyProgram::Role;

constexpr int kPass = TC_ACT_UNSPEC;
constexpr int kStolen = TC_ACT_STOLEN;

uint32_t ProgramId(int fd) {
  bpf_prog_info info{};
  uint32_t length = sizeof(info);
  EXPECT_EQ(bpf_obj_get_info_by_fd(fd, &info, &length), 0);
  return info.id;
}

// Whether `ready` holds within 20 s (the loads run at SCHED_IDLE, behind whatever else runs).
// A take never waits for the pool's lock, which its loader holds for a moment after each take wakes
// it: a test takes twice in a row only after waiting until the pool is full, and so idle, again.
bool Eventually(const std::function<bool()>& ready) {
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
       std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(std::chrono::milliseconds(5))) {
    if (ready()) return true;
  }
  return ready();
}

bool Full(const ProgramPool& pool, size_t depth) {
  ProgramPool::Counts ready = pool.Ready();
  return ready.drop == depth && ready.classifier == depth && ready.redirect == depth;
}

class ProgramPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::optional<std::string> reason = WhyNoBpf()) GTEST_SKIP() << *reason;
  }
  void TearDown() override { ProgramPool::Install(nullptr); }
};

TEST_F(ProgramPoolTest, FillsEachKindToItsDepthAndRefillsWhatIsTaken) {
  ProgramPool pool(2);
  ASSERT_TRUE(Eventually([&] { return Full(pool, 2); }));
  ASSERT_NE(pool.TakeDrop(), nullptr);
  ASSERT_TRUE(Eventually([&] { return Full(pool, 2); }));
  ASSERT_NE(pool.TakeClassify(Role::kRedirect), nullptr);
  EXPECT_TRUE(Eventually([&] { return Full(pool, 2); }));
}

TEST_F(ProgramPoolTest, ALoadedInstanceMatchesNothingUntilConfigured) {
  ProgramPool pool(1);
  ASSERT_TRUE(Eventually([&] { return Full(pool, 1); }));
  std::unique_ptr<DropProgram> drop = pool.TakeDrop();
  ASSERT_NE(drop, nullptr);
  EXPECT_EQ(test::RunProgram(drop->egress_fd(), Frame({.src = kIpv4.local, .dst = kIpv4.peer})), kPass);
  ASSERT_TRUE(Eventually([&] { return Full(pool, 1); }));
  std::unique_ptr<ClassifyProgram> classify = pool.TakeClassify(Role::kClassifier);
  ASSERT_NE(classify, nullptr);
  uint32_t priority = 0;
  EXPECT_EQ(test::RunProgram(classify->fd(), Frame({.src = kIpv4.local, .dst = kIpv4.peer}), &priority),
            kPass);
  EXPECT_EQ(priority, 0u);
}

// A fault's program is the instance the pool loaded first: the one taken after it is a newer load.
// Loaded instead of taken, the fault's program would be the newer one.
TEST_F(ProgramPoolTest, LoadTakesThePooledInstanceAndConfiguresIt) {
  ProgramPool pool(1);
  ProgramPool::Install(&pool);
  ASSERT_TRUE(Eventually([&] { return Full(pool, 1); }));
  auto drop = DropProgram::Load({.target = HourLong({.peers = {kIpv4.peer}}), .drop_percent = 100});
  ASSERT_TRUE(drop.ok()) << drop.status();
  ASSERT_TRUE(Eventually([&] { return Full(pool, 1); }));
  auto classify = ClassifyProgram::LoadClassifier(HourLong({.peers = {kIpv4.peer}}), TC_H_MAKE(1u << 16, 2));
  ASSERT_TRUE(classify.ok()) << classify.status();
  EXPECT_EQ(test::RunProgram((*drop)->egress_fd(), Frame({.src = kIpv4.local, .dst = kIpv4.peer})), kStolen);
  EXPECT_EQ(test::RunProgram((*drop)->egress_fd(), Frame({.src = kIpv4.local, .dst = kIpv4.outside})), kPass);
  uint32_t priority = 0;
  test::RunProgram((*classify)->fd(), Frame({.src = kIpv4.local, .dst = kIpv4.peer}), &priority);
  EXPECT_EQ(priority, TC_H_MAKE(1u << 16, 2));

  ASSERT_TRUE(Eventually([&] { return Full(pool, 1); }));
  std::unique_ptr<DropProgram> next_drop = pool.TakeDrop();
  ASSERT_TRUE(Eventually([&] { return Full(pool, 1); }));
  std::unique_ptr<ClassifyProgram> next_classify = pool.TakeClassify(Role::kClassifier);
  ASSERT_NE(next_drop, nullptr);
  ASSERT_NE(next_classify, nullptr);
  EXPECT_LT(ProgramId((*drop)->egress_fd()), ProgramId(next_drop->egress_fd()));
  EXPECT_LT(ProgramId((*classify)->fd()), ProgramId(next_classify->fd()));
}

// A load can fail for a passing reason (memory, the fd table): the pool tries again, backing off,
// instead of leaving every later fault to load its own.
TEST_F(ProgramPoolTest, KeepsLoadingAfterLoadsFail) {
  std::atomic<int> drop_loads = 0;
  std::atomic<int> classify_loads = 0;
  ProgramPool::Loaders loaders{
      .drop = [&]() -> absl::StatusOr<std::unique_ptr<DropProgram>> {
        if (++drop_loads <= 3) return absl::ResourceExhaustedError("drop program: out of memory");
        return DropProgram::Preload();
      },
      .classify = [&](Role role) -> absl::StatusOr<std::unique_ptr<ClassifyProgram>> {
        if (++classify_loads == 1) return absl::ResourceExhaustedError("classify program: out of memory");
        return ClassifyProgram::Preload(role);
      }};
  const auto start = std::chrono::steady_clock::now();
  ProgramPool pool(1, loaders,
                   {.first = std::chrono::milliseconds(10), .most = std::chrono::milliseconds(40)});
  EXPECT_TRUE(Eventually([&] { return Full(pool, 1); }));
  EXPECT_EQ(drop_loads, 4);
  EXPECT_EQ(classify_loads, 3);
  // The drop program's retries waited 10, 20 and 40 ms (capped at `most`) between its four tries.
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(70));
}

TEST_F(ProgramPoolTest, AKindThatKeepsFailingDoesNotHoldUpTheOthers) {
  std::atomic<int> drop_loads = 0;
  ProgramPool::Loaders loaders{.drop = [&]() -> absl::StatusOr<std::unique_ptr<DropProgram>> {
    ++drop_loads;
    return absl::FailedPreconditionError("drop program: the verifier refused it");
  }};
  ProgramPool pool(2, loaders, {.first = std::chrono::milliseconds(5), .most = std::chrono::milliseconds(5)});
  EXPECT_TRUE(Eventually([&] {
    ProgramPool::Counts ready = pool.Ready();
    return ready.classifier == 2 && ready.redirect == 2 && drop_loads >= 3;
  }));
  EXPECT_EQ(pool.Ready().drop, 0u);
}

TEST_F(ProgramPoolTest, WithoutAPoolLoadLoadsItsOwn) {
  auto drop = DropProgram::Load({.target = HourLong({.peers = {kIpv4.peer}}), .drop_percent = 100});
  ASSERT_TRUE(drop.ok()) << drop.status();
  EXPECT_EQ(test::RunProgram((*drop)->egress_fd(), Frame({.src = kIpv4.local, .dst = kIpv4.peer})), kStolen);
}

}  // namespace
}  // namespace faultline::kernel
