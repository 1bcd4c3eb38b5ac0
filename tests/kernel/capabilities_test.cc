// The capability probe, checked against what iproute2 gets from the same kernel. Needs root.
#include "kernel/capabilities.h"

#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cstdarg>
#include <filesystem>
#include <iterator>
#include <string>
#include <thread>

#include "faultline/api/cat.h"
#include "shell.h"

namespace faultline::kernel {
namespace {

using api::Cat;
using test::CommandResult;
using test::Shell;

// Everything the probe could leave behind in the agent's namespace or in the kernel.
std::string KernelTraces() {
  return Cat("netns:\n", Shell("ip netns list").output, "qdiscs:\n", Shell("tc qdisc show").output,
             "ifb devices:\n", Shell("ip -o link show type ifb").output);
}

class CapabilitiesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0)
      GTEST_SKIP() << "needs root: the probe creates network namespaces, qdiscs and BPF programs";
  }
};

// Each test gets a network namespace of its own where iproute2 tries what the probe tried, removed
// again in TearDown whether the test passed or not.
class Iproute2AgreesTest : public CapabilitiesTest {
 protected:
  void SetUp() override {
    CapabilitiesTest::SetUp();
    if (IsSkipped()) return;
    netns_ = Cat("fltest-caps-", getpid());
    CommandResult added = Shell(Cat("ip netns add ", netns_));
    ASSERT_EQ(added.exit_code, 0) << "ip netns add " << netns_ << ": " << added.output;
    created_ = true;
    features_ = ProbeKernelFeatures();
  }

  void TearDown() override {
    if (created_) Shell(Cat("ip netns del ", netns_));
  }

  CommandResult InNetns(const std::string& command) {
    return Shell(Cat("ip netns exec ", netns_, " ", command));
  }

  // Checks that iproute2's `command` succeeds exactly when the probe reports `feature`, and that a
  // refusal iproute2 shows in the kernel's words appears in the probe's detail too.
  void ExpectAgreement(const std::string& feature, const std::string& command) {
    CommandResult result = InNetns(command);
    const v1::Feature* found = features_.Find(feature);
    ASSERT_NE(found, nullptr) << feature;
    EXPECT_EQ(features_.Has(feature), result.exit_code == 0)
        << command << " exited " << result.exit_code << ": " << result.output
        << "\nprobe said: " << found->detail();
    for (const char* kernel_words : {"Specified qdisc kind is unknown", "Unknown device type",
                                     "TC classifier not found", "Failed to load TC action module"}) {
      if (result.output.find(kernel_words) != std::string::npos) {
        EXPECT_NE(found->detail().find(kernel_words), std::string::npos) << found->detail();
      }
    }
  }

  std::string netns_;
  bool created_ = false;
  KernelFeatures features_;
};

TEST_F(Iproute2AgreesTest, QdiscKinds) {
  ExpectAgreement("netem", "tc qdisc add dev lo root netem delay 1ms");
  InNetns("tc qdisc del dev lo root");
  ExpectAgreement("tbf", "tc qdisc add dev lo root tbf rate 1mbit burst 32k latency 50ms");
  InNetns("tc qdisc del dev lo root");
  ExpectAgreement("htb", "tc qdisc add dev lo root htb");
  InNetns("tc qdisc del dev lo root");
  ExpectAgreement("prio", "tc qdisc add dev lo root prio");
  InNetns("tc qdisc del dev lo root");
  ExpectAgreement("fq", "tc qdisc add dev lo root fq");
  InNetns("tc qdisc del dev lo root");
}

TEST_F(Iproute2AgreesTest, Ifb) { ExpectAgreement("ifb", "ip link add fltest-ifb type ifb"); }

TEST_F(Iproute2AgreesTest, ClsactClsBpfAndMirred) {
  ExpectAgreement("clsact", "tc qdisc add dev lo clsact");
  if (!features_.Has("clsact")) return;
  // Classic BPF bytecode ("ret #-1") needs the cls_bpf classifier but no eBPF object file.
  ExpectAgreement("cls_bpf", "tc filter add dev lo egress bpf bytecode '1,6 0 0 4294967295,'");
  if (!features_.Has("cls_bpf")) return;
  // The filter ingress shaping attaches: cls_bpf without direct action, a mirred redirect as its action.
  ExpectAgreement(
      "mirred",
      "tc filter add dev lo ingress bpf bytecode '1,6 0 0 4294967295,' action mirred egress redirect dev lo");
}

TEST_F(CapabilitiesTest, ReleaseIsUnames) {
  utsname name{};
  ASSERT_EQ(uname(&name), 0);
  EXPECT_EQ(ProbeKernelFeatures().release, name.release);
}

TEST_F(CapabilitiesTest, ReportsEveryFeatureWithADetail) {
  KernelFeatures features = ProbeKernelFeatures();
  ASSERT_EQ(features.features.size(), kProbedFeatures.size());
  for (size_t i = 0; i < kProbedFeatures.size(); ++i) {
    EXPECT_EQ(features.features[i].name(), kProbedFeatures[i]);
    EXPECT_FALSE(features.features[i].detail().empty()) << kProbedFeatures[i];
    EXPECT_EQ(features.Find(kProbedFeatures[i]), &features.features[i]);
  }
  EXPECT_EQ(features.Find("sfq"), nullptr);
  EXPECT_FALSE(features.Has("sfq"));
}

TEST_F(CapabilitiesTest, LeavesNoTrace) {
  std::string before = KernelTraces();
  ProbeKernelFeatures();
  EXPECT_EQ(KernelTraces(), before);
  // The probe's program goes once its fd is closed and its filter is gone; both are freed after an
  // RCU grace period, so give the kernel a moment.
  bool program_gone = false;
  for (int i = 0; i < 50 && !program_gone; ++i) {
    program_gone = Shell("bpftool -j prog show").output.find("\"fl_probe\"") == std::string::npos;
    if (!program_gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(program_gone) << "the probe's BPF program fl_probe is still loaded";
}

// The scratch namespace dies with the probe's thread only if nothing else refers to it: an open
// netlink socket or BPF program would keep it (and whatever the probe made in it) alive.
TEST_F(CapabilitiesTest, ClosesEveryDescriptor) {
  auto open_fds = [] { return std::distance(std::filesystem::directory_iterator("/proc/self/fd"), {}); };
  auto before = open_fds();
  ProbeKernelFeatures();
  EXPECT_EQ(open_fds(), before);
}

TEST_F(CapabilitiesTest, SameAnswersTwice) {
  KernelFeatures first = ProbeKernelFeatures();
  KernelFeatures second = ProbeKernelFeatures();
  ASSERT_EQ(first.features.size(), second.features.size());
  for (size_t i = 0; i < first.features.size(); ++i) {
    EXPECT_EQ(first.features[i].name(), second.features[i].name());
    EXPECT_EQ(first.features[i].available(), second.features[i].available())
        << first.features[i].name() << ": " << first.features[i].detail() << " / "
        << second.features[i].detail();
  }
}

int lines_passed_on = 0;
int CountingPrint(libbpf_print_level /*level*/, const char* /*format*/, va_list /*args*/) {
  ++lines_passed_on;
  return 0;
}

TEST_F(CapabilitiesTest, KeepsLibbpfQuietAndRestoresItsPrintCallback) {
  libbpf_print_fn_t original = libbpf_set_print(&CountingPrint);
  testing::internal::CaptureStderr();
  ProbeKernelFeatures();
  std::string printed = testing::internal::GetCapturedStderr();
  libbpf_print_fn_t after = libbpf_set_print(original);
  EXPECT_EQ(after, &CountingPrint);
  EXPECT_EQ(lines_passed_on, 0);
  EXPECT_EQ(printed, "");
}

}  // namespace
}  // namespace faultline::kernel
