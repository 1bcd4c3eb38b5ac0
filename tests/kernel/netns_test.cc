// Netns: the identity the journal records (device, inode and the kernel's cookie), and Reopen, which
// must find the recorded namespace and refuse another one at the same path. Needs root; each test
// makes a scratch namespace with `ip netns add` and deletes it afterwards, whatever happened.
#include "kernel/netns.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>

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

  std::shared_ptr<Netns> Open() const {
    auto netns = Netns::Open(path_);
    EXPECT_TRUE(netns.ok()) << netns.status();
    return netns.ok() ? *netns : nullptr;
  }

  const std::string name_ = Cat("fl-nstest-", getpid());
  const std::string path_ = Cat("/run/netns/", name_);
};

TEST_F(NetnsTest, RecordCarriesTheKernelsCookie) {
  journal::Netns first = Open()->Record();
  journal::Netns second = Open()->Record();
  // SO_NETNS_COOKIE came in 5.14, before every kernel faultline is tested on; both handles name one
  // namespace.
  EXPECT_NE(first.cookie(), 0u);
  EXPECT_EQ(first.cookie(), second.cookie());
  EXPECT_NE(first.cookie(), Netns::Open("")->get()->Record().cookie()) << "the agent's own namespace";
}

TEST_F(NetnsTest, ReopenFindsTheRecordedNamespace) {
  std::shared_ptr<Netns> netns = Open();
  auto reopened = Netns::Reopen(netns->Record());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->inode(), netns->inode());
}

TEST_F(NetnsTest, ReopenRefusesAnotherNamespaceAtTheSamePath) {
  journal::Netns recorded = Open()->Record();
  // The recorded namespace goes (no handle holds it) and a new one takes its path.
  ASSERT_EQ(Shell(Cat("ip netns del ", name_, " && ip netns add ", name_)).exit_code, 0);
  auto reopened = Netns::Reopen(recorded);
  EXPECT_TRUE(absl::IsNotFound(reopened.status())) << reopened.status();
}

TEST_F(NetnsTest, ReopenRefusesAnotherCookieWhereTheInodeMatches) {
  // What a re-used inode number looks like: only the cookie tells the namespaces apart.
  journal::Netns recorded = Open()->Record();
  recorded.set_cookie(recorded.cookie() + 1);
  auto reopened = Netns::Reopen(recorded);
  EXPECT_TRUE(absl::IsNotFound(reopened.status())) << reopened.status();
  EXPECT_NE(reopened.status().message().find("cookie"), std::string::npos) << reopened.status();
}

}  // namespace
}  // namespace faultline::kernel
