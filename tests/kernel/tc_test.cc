// The redirect filter (TcFilter::AttachRedirect), which feeds ingress shaping's ifb device, checked
// against `tc filter show` and against real traffic: a packet it redirects must come out of the ifb,
// which drops any packet not marked redirected (ifb_xmit). Needs root; each test makes two scratch
// network namespaces joined by a veth pair (198.18.0.1/30 and 198.18.0.2/30) and an ifb device, and
// deletes them afterwards, whatever happened.
#include "kernel/tc.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "faultline/api/cat.h"
#include "kernel/capabilities.h"
#include "kernel/journal.h"
#include "kernel/qdisc.h"
#include "shell.h"
#include "target_abi.h"

namespace faultline::kernel {
namespace {

using api::Cat;
using test::CommandResult;
using test::Shell;

constexpr uint32_t kPriority = 60002;

const KernelFeatures& Features() {
  static const KernelFeatures features = ProbeKernelFeatures();
  return features;
}

// Loads "r0 = FL_REDIRECT_SELECT; exit": a program that selects every packet for the redirect.
int LoadSelectEverything() {
  const bpf_insn program[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K,
       .dst_reg = BPF_REG_0,
       .src_reg = 0,
       .off = 0,
       .imm = FL_REDIRECT_SELECT},
      {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
  };
  return bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "fl_select_all", "GPL", program, std::size(program), nullptr);
}

// Two scratch namespaces joined by a veth pair, the clsact hook on fl-a, and a program to attach.
class HookTest : public ::testing::Test {
 protected:
  void SetUp() override { SetUpWith({"clsact", "cls_bpf", "bpf"}); }

  void SetUpWith(std::initializer_list<const char*> features) {
    if (geteuid() != 0)
      GTEST_SKIP() << "needs root: the tests create network namespaces, devices and filters";
    for (const char* feature : features) {
      if (!Features().Has(feature)) {
        const v1::Feature* found = Features().Find(feature);
        GTEST_SKIP() << "kernel " << Features().release << " has no " << feature << ": "
                     << (found ? found->detail() : "not probed");
      }
    }
    pair_.emplace(Cat("fltest-tc-", getpid()));
    ASSERT_EQ(pair_->error(), "");
    ns_ = pair_->ns();
    peer_ns_ = pair_->peer_ns();
    auto netns = Netns::Open(Cat("/run/netns/", ns_));
    ASSERT_TRUE(netns.ok()) << netns.status();
    netns_ = *netns;
    auto hook = ClsactHook::Acquire(netns_, "fl-a");
    ASSERT_TRUE(hook.ok()) << hook.status();
    hook_ = *hook;
    program_fd_ = LoadSelectEverything();
    ASSERT_GE(program_fd_, 0) << "cannot load the test's program: " << program_fd_;
  }

  void TearDown() override {
    hook_.reset();
    if (program_fd_ >= 0) close(program_fd_);
    netns_.reset();
    pair_.reset();
  }

  std::string Filters(const char* hook) {
    return Shell(Cat("tc -n ", ns_, " filter show dev fl-a ", hook)).output;
  }

  std::string ns_;
  std::string peer_ns_;
  std::optional<test::VethPair> pair_;
  std::shared_ptr<Netns> netns_;
  std::shared_ptr<ClsactHook> hook_;
  int program_fd_ = -1;
};

class RedirectFilterTest : public HookTest {
 protected:
  void SetUp() override {
    SetUpWith({"ifb", "clsact", "cls_bpf", "mirred", "bpf"});
    if (IsSkipped() || HasFatalFailure()) return;
    // An ifb drops what its own stack sends (IPv6 router solicitations, MLD reports): not redirected
    // either. Without IPv6 on it, every drop it counts is a redirected packet it refused.
    CommandResult no_ipv6 =
        Shell(Cat("ip netns exec ", ns_, " sysctl -qw net.ipv6.conf.default.disable_ipv6=1"));
    ASSERT_EQ(no_ipv6.exit_code, 0) << no_ipv6.output;
    auto ifb = IfbDevice::Create(netns_, "fl-ifb0");
    ASSERT_TRUE(ifb.ok()) << ifb.status();
    ifb_ = *std::move(ifb);
  }

  void TearDown() override {
    hook_.reset();  // its filters before the device they redirect to
    ifb_.reset();
    HookTest::TearDown();
  }

  std::string IngressFilters() { return Filters("ingress"); }

  uint64_t IfbCounter(const std::string& name) {
    CommandResult read = Shell(Cat("ip netns exec ", ns_, " cat /sys/class/net/fl-ifb0/statistics/", name));
    return read.exit_code == 0 ? std::stoull(read.output) : ~0ull;
  }

  std::unique_ptr<IfbDevice> ifb_;
};

void ExpectContains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "\"" << part << "\" not in:\n" << text;
}

TEST_F(RedirectFilterTest, IsClsBpfWithoutDirectActionAndAMirredRedirect) {
  auto filter = TcFilter::AttachRedirect(hook_, program_fd_, kPriority, ifb_->ifindex());
  ASSERT_TRUE(filter.ok()) << filter.status();
  std::string shown = IngressFilters();
  ExpectContains(shown, Cat("pref ", kPriority, " bpf"));
  ExpectContains(shown, "handle 0x1 fl_select_all:[");
  ExpectContains(shown, "mirred (Egress Redirect to device fl-ifb0) stolen");
  EXPECT_EQ(shown.find("direct-action"), std::string::npos) << shown;
  EXPECT_EQ((*filter)->Describe(),
            Cat("cls_bpf ingress pref ", kPriority,
                " handle 0x1 with mirred redirect to fl-ifb0 on fl-a in netns /run/netns/", ns_));
  filter->reset();
  EXPECT_EQ(IngressFilters(), "");
}

// What bpf_redirect() to an ifb does not do before kernel 6.4: the ifb drops every such packet.
TEST_F(RedirectFilterTest, RedirectedPacketsComeOutOfTheIfb) {
  auto filter = TcFilter::AttachRedirect(hook_, program_fd_, kPriority, ifb_->ifindex());
  ASSERT_TRUE(filter.ok()) << filter.status();
  CommandResult ping = Shell(Cat("ip netns exec ", peer_ns_, " ping -c 5 -i 0.2 -W 2 198.18.0.1"));
  EXPECT_EQ(ping.exit_code, 0) << ping.output;
  EXPECT_GE(IfbCounter("tx_packets"), 5u) << "the ifb did not pass the echo requests on";
  EXPECT_EQ(IfbCounter("rx_dropped"), 0u) << "the ifb dropped packets not marked redirected";
  EXPECT_EQ(IfbCounter("tx_dropped"), 0u);
}

TEST_F(RedirectFilterTest, Refusals) {
  auto no_priority = TcFilter::AttachRedirect(hook_, program_fd_, 0, ifb_->ifindex());
  EXPECT_EQ(no_priority.status().code(), absl::StatusCode::kInvalidArgument) << no_priority.status();
  auto no_device = TcFilter::AttachRedirect(hook_, program_fd_, kPriority, 999);
  EXPECT_EQ(no_device.status().code(), absl::StatusCode::kNotFound) << no_device.status();
  EXPECT_EQ(IngressFilters(), "");

  auto first = TcFilter::AttachRedirect(hook_, program_fd_, kPriority, ifb_->ifindex());
  ASSERT_TRUE(first.ok()) << first.status();
  auto again = TcFilter::AttachRedirect(hook_, program_fd_, kPriority, ifb_->ifindex());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
}

// Agents are separate processes that may share a hook: filters they attach at the same moment must
// all go on, each at a priority of its own. (Picking a free priority from a dump of the hook, then
// attaching at it, let two processes pick the same one, and the second attach failed with EEXIST.)
TEST_F(HookTest, FiltersAttachedByProcessesAtOnceAllGoOn) {
  constexpr int kProcesses = 4;
  constexpr int kFiltersEach = 15;
  // The children must not inherit the fixture's hook (nor its socket, which processes cannot share):
  // it goes, and the clsact is made as someone else would.
  hook_.reset();
  CommandResult made = Shell(Cat("tc -n ", ns_, " qdisc add dev fl-a clsact"));
  ASSERT_EQ(made.exit_code, 0) << made.output;
  // Children report through `attached` (a byte once all their filters are on, none on failure) and
  // wait on `release` until the parent has looked; fork is safe here: the test process has one thread.
  int attached[2];
  int release[2];
  ASSERT_EQ(pipe2(attached, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(release, O_CLOEXEC), 0);
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; p++) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      close(attached[0]);
      close(release[1]);
      // A hook of its own, as another agent would have: it adopts the parent's clsact.
      auto hook = ClsactHook::Acquire(netns_, "fl-a");
      if (!hook.ok() || (*hook)->created()) _exit(1);
      std::vector<std::unique_ptr<TcFilter>> filters;
      for (int i = 0; i < kFiltersEach; i++) {
        auto filter = TcFilter::Attach(*hook, Hook::kEgress, program_fd_);
        if (!filter.ok()) _exit(1);
        filters.push_back(*std::move(filter));
      }
      char byte = 1;
      if (write(attached[1], &byte, 1) != 1) _exit(1);
      // The parent closes its end once it has looked (read returns 0), or dies (the same).
      while (read(release[0], &byte, 1) > 0) {
      }
      filters.clear();  // each removes its own; its hook, adopted, leaves the clsact
      _exit(0);
    }
    children.push_back(child);
  }
  close(attached[1]);
  close(release[0]);
  int reported = 0;
  for (char byte; reported < kProcesses;) {
    pollfd ready{.fd = attached[0], .events = POLLIN, .revents = 0};
    if (poll(&ready, 1, 20'000) != 1 || read(attached[0], &byte, 1) != 1) break;  // 0: every child gone
    reported++;
  }
  std::string filters = Filters("egress");
  close(release[1]);
  close(attached[0]);
  for (pid_t child : children) {
    int status = 0;
    for (int i = 0; i < 200 && waitpid(child, &status, WNOHANG) == 0; i++) usleep(50'000);
    if (waitpid(child, &status, WNOHANG) == 0) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
    }
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "a process could not attach all its filters";
  }
  EXPECT_EQ(reported, kProcesses);
  // `tc filter show` prints a header line per priority, then the filter, which has the handle.
  int shown = 0;
  for (size_t at = filters.find("handle 0x1 "); at != std::string::npos;
       at = filters.find("handle 0x1 ", at + 1))
    shown++;
  EXPECT_EQ(shown, kProcesses * kFiltersEach) << filters;
  EXPECT_EQ(Filters("egress"), "") << "each process removed its own";
}

// The hook's socket lives as long as the hook: an answer that a request left unread (its read failed)
// must not be taken for a later request's. Here the stale answer is the kernel's refusal of a get for
// a device that does not exist; taken for the attach's, it would fail the attach.
TEST_F(HookTest, AnAnswerLeftUnreadIsNotTakenForALaterRequest) {
  struct {
    nlmsghdr header;
    tcmsg tc;
  } stale{};
  stale.header.nlmsg_len = sizeof(stale);
  stale.header.nlmsg_type = RTM_GETQDISC;
  stale.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  stale.header.nlmsg_seq = 0x7fff0000;  // no request of the socket's own has it
  stale.tc.tcm_family = AF_UNSPEC;
  stale.tc.tcm_ifindex = 999999;
  ssize_t sent =
      hook_->WithSocket([&](RouteSocket& socket) { return send(socket.fd(), &stale, sizeof(stale), 0); });
  ASSERT_EQ(sent, static_cast<ssize_t>(sizeof(stale)));

  auto filter = TcFilter::Attach(hook_, Hook::kEgress, program_fd_);
  ASSERT_TRUE(filter.ok()) << filter.status();
  EXPECT_NE(Filters("egress").find("handle 0x1 fl_select_all"), std::string::npos) << Filters("egress");
  filter->reset();
  EXPECT_EQ(Filters("egress"), "") << "the filter's removal, on the same socket, did not take";
}

// A clsact faultline made but had to keep, because filters it does not hold are on it (someone else's,
// or one of its own whose attach lost its answer), stays journaled: the next start's replay removes
// it once it is alone.
TEST_F(HookTest, AClsactKeptForFiltersItDoesNotHoldStaysJournaled) {
  hook_.reset();  // the fixture's clsact goes: this test makes one under a journal
  char dir[] = "/tmp/fltest-journal-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  absl::Cleanup remove_dir = [&dir] {
    Journal::Install(nullptr);
    std::filesystem::remove_all(dir);
  };
  const std::string show_qdisc = Cat("tc -n ", ns_, " qdisc show dev fl-a");
  {
    auto journal = Journal::Open(dir);
    ASSERT_TRUE(journal.ok()) << journal.status();
    Journal::Install(journal->get());
    auto hook = ClsactHook::Acquire(netns_, "fl-a");
    ASSERT_TRUE(hook.ok()) << hook.status();
    ASSERT_TRUE((*hook)->created());
    CommandResult other =
        Shell(Cat("tc -n ", ns_, " filter add dev fl-a egress prio 7 protocol all u32 match u32 0 0"));
    ASSERT_EQ(other.exit_code, 0) << other.output;
    hook->reset();
    Journal::Install(nullptr);
  }
  EXPECT_NE(Shell(show_qdisc).output.find("clsact"), std::string::npos) << "kept for the other filter";
  CommandResult removed = Shell(Cat("tc -n ", ns_, " filter del dev fl-a egress prio 7"));
  ASSERT_EQ(removed.exit_code, 0) << removed.output;

  auto next_start = Journal::Open(dir);
  ASSERT_TRUE(next_start.ok()) << next_start.status();
  EXPECT_EQ((*next_start)->Replay().undone, 1);
  EXPECT_EQ(Shell(show_qdisc).output.find("clsact"), std::string::npos) << Shell(show_qdisc).output;
}

// Acquire journals a clsact before making it, and only then: one that was there is adopted, not
// recorded, so that a replay after a crash never deletes someone else's qdisc.
TEST_F(HookTest, JournalsTheClsactOnlyWhereThereWasNone) {
  // Acquires the hook with a journal of its own installed: whether it made the clsact, and how many
  // clsact changes the journal holds while the hook is held.
  auto acquire = [](const std::shared_ptr<Netns>& netns, const std::string& interface) {
    char dir[] = "/tmp/fltest-journal-XXXXXX";
    std::pair<bool, int> made{false, -1};
    if (mkdtemp(dir) == nullptr) return made;
    if (auto journal = Journal::Open(dir); journal.ok()) {
      Journal::Install(journal->get());
      if (auto hook = ClsactHook::Acquire(netns, interface); hook.ok()) {
        made.first = (*hook)->created();
        std::ifstream in((*journal)->path());
        made.second = 0;
        for (std::string line; std::getline(in, line);)
          made.second += line.find("\"clsact\":") != std::string::npos;
      } else {
        ADD_FAILURE() << hook.status();
      }
      Journal::Install(nullptr);
    }
    std::filesystem::remove_all(dir);
    return made;
  };
  std::shared_ptr<Netns> peer;
  if (auto opened = Netns::Open(Cat("/run/netns/", peer_ns_)); opened.ok()) peer = *opened;
  ASSERT_NE(peer, nullptr);

  // fl-b never had an ingress slot: the kernel answers the get with ENOENT.
  EXPECT_EQ(acquire(peer, "fl-b"), std::make_pair(true, 1));
  // fl-a's clsact, the fixture's, is deleted: its slot holds the kernel's noop qdisc, not reported.
  hook_.reset();
  EXPECT_EQ(Shell(Cat("tc -n ", ns_, " qdisc show dev fl-a")).output.find("clsact"), std::string::npos);
  EXPECT_EQ(acquire(netns_, "fl-a"), std::make_pair(true, 1));
  // An operator's clsact is adopted, not journaled, and kept.
  CommandResult added = Shell(Cat("tc -n ", ns_, " qdisc add dev fl-a clsact"));
  ASSERT_EQ(added.exit_code, 0) << added.output;
  EXPECT_EQ(acquire(netns_, "fl-a"), std::make_pair(false, 0));
  EXPECT_NE(Shell(Cat("tc -n ", ns_, " qdisc show dev fl-a")).output.find("clsact"), std::string::npos);
}

}  // namespace
}  // namespace faultline::kernel
