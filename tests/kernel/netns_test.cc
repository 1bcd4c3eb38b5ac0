// Netns: the identity the journal records (device, inode and the kernel's cookie), and Reopen, which
// must find the recorded namespace and refuse another one at the same path. Needs root; each test
// makes a scratch namespace with `ip netns add` and deletes it afterwards, whatever happened.
#include "kernel/netns.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <iterator>
#include <memory>
#include <string>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "faultline/api/cat.h"
#include "shell.h"

namespace faultline::kernel {
namespace {

using api::Cat;
using test::Shell;

class NetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (ip netns add)";
    ASSERT_EQ(Shell(Cat("ip netns add ", name_)).exit_code, 0);
  }
  void TearDown() override { Shell(Cat("ip netns del ", name_, " 2>/dev/null")); }

  // The kernel's own answer, read apart from Netns: SO_NETNS_COOKIE of a socket made inside the
  // namespace, on a thread of its own (setns moves only the calling thread).
  uint64_t KernelCookie() const {
    uint64_t cookie = 0;
    std::thread([&] {
      int ns = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) return;
      close(ns);
      int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      socklen_t length = sizeof(cookie);
      if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &length) != 0) cookie = 0;
      close(fd);
    }).join();
    return cookie;
  }

  const std::string name_ = Cat("fl-nstest-", getpid());
  const std::string path_ = Cat("/run/netns/", name_);
};

TEST_F(NetnsTest, RecordCarriesTheKernelsCookie) {
  auto netns = Netns::Open(path_);
  ASSERT_TRUE(netns.ok()) << netns.status();
  const uint64_t kernel = KernelCookie();
  ASSERT_NE(kernel, 0u) << "SO_NETNS_COOKIE (5.14) is older than every kernel faultline is tested on";
  EXPECT_EQ((*netns)->Record().cookie(), kernel);
}

TEST_F(NetnsTest, ReopenFindsTheRecordedNamespace) {
  auto netns = Netns::Open(path_);
  ASSERT_TRUE(netns.ok()) << netns.status();
  auto reopened = Netns::Reopen((*netns)->Record());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->inode(), (*netns)->inode());
}

TEST_F(NetnsTest, ReopenRefusesAnotherNamespaceAtTheSamePath) {
  journal::Netns recorded;
  {
    auto netns = Netns::Open(path_);
    ASSERT_TRUE(netns.ok()) << netns.status();
    recorded = (*netns)->Record();
  }
  // The recorded namespace goes (no handle holds it) and a new one takes its path.
  ASSERT_EQ(Shell(Cat("ip netns del ", name_, " && ip netns add ", name_)).exit_code, 0);
  auto reopened = Netns::Reopen(recorded);
  EXPECT_TRUE(absl::IsNotFound(reopened.status())) << reopened.status();
}

TEST_F(NetnsTest, ReopenRefusesAnotherCookieWhereTheInodeMatches) {
  // What a re-used inode number looks like: only the cookie tells the namespaces apart.
  auto netns = Netns::Open(path_);
  ASSERT_TRUE(netns.ok()) << netns.status();
  journal::Netns recorded = (*netns)->Record();
  recorded.set_cookie(recorded.cookie() + 1);
  auto reopened = Netns::Reopen(recorded);
  EXPECT_TRUE(absl::IsNotFound(reopened.status())) << reopened.status();
  EXPECT_NE(reopened.status().message().find("cookie"), std::string::npos) << reopened.status();
}

// NetnsScope keeps a thread's own namespace open after its first scope: every scope, nested in
// another or not, must still take the thread back where it was, and no scope may leave a descriptor.
TEST_F(NetnsTest, ScopesTakeTheThreadBackWhereItWas) {
  const std::string other_name = Cat(name_, "-b");
  ASSERT_EQ(Shell(Cat("ip netns add ", other_name)).exit_code, 0);
  const auto remove_other = absl::MakeCleanup([&] { Shell(Cat("ip netns del ", other_name)); });
  auto here = [] {
    struct stat st {};
    return stat("/proc/thread-self/ns/net", &st) == 0 ? st.st_ino : 0;
  };
  auto open_fds = [] { return std::distance(std::filesystem::directory_iterator("/proc/self/fd"), {}); };
  auto a = Netns::Open(path_);
  auto b = Netns::Open(Cat("/run/netns/", other_name));
  auto home = Netns::Open("");
  ASSERT_TRUE(a.ok() && b.ok() && home.ok());
  // A thread of its own: its first scope is the one that opens its namespace.
  std::thread([&] {
    const ino_t start = here();
    long fds_after_first = 0;
    for (int round = 0; round < 3; round++) {
      {
        auto in_a = NetnsScope::Enter(**a);
        ASSERT_TRUE(in_a.ok()) << in_a.status();
        EXPECT_EQ(here(), (*a)->inode());
        {
          auto in_b = NetnsScope::Enter(**b);
          ASSERT_TRUE(in_b.ok()) << in_b.status();
          auto still_b = NetnsScope::Enter(**b);
          ASSERT_TRUE(still_b.ok()) << still_b.status();
          EXPECT_EQ(here(), (*b)->inode());
        }
        EXPECT_EQ(here(), (*a)->inode());
        {
          auto at_home = NetnsScope::Enter(**home);
          ASSERT_TRUE(at_home.ok()) << at_home.status();
          EXPECT_EQ(here(), start);
        }
        EXPECT_EQ(here(), (*a)->inode());
      }
      EXPECT_EQ(here(), start);
      {
        auto at_home = NetnsScope::Enter(**home);
        ASSERT_TRUE(at_home.ok()) << at_home.status();
        EXPECT_EQ(here(), start);
      }
      if (round == 0) fds_after_first = open_fds();
    }
    EXPECT_EQ(open_fds(), fds_after_first) << "a scope left a descriptor open";
  }).join();
}

}  // namespace
}  // namespace faultline::kernel
