// Netns: the identity the journal records (device, inode and the kernel's cookie), and Reopen, which
// must find the recorded namespace and refuse another one at the same path. Needs root; each test
// makes a scratch namespace with `ip netns add` and deletes it afterwards, whatever happened.
#include "kernel/netns.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>

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

}  // namespace
}  // namespace faultline::kernel
