// The control-plane guard (bpf/target.bpf.h, kernel/guard_map.h): a partition of every peer, and a
// classifier of every peer, run on TCP packets of guarded endpoints with bpf_prog_test_run_opts. A
// guarded packet passes untouched; the same packet without the guard, or on another port, does not.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "kernel/classify_program.h"
#include "kernel/drop_program.h"
#include "kernel/guard_map.h"
#include "packets.h"
#include "target_abi.h"
#include "test_run.h"

namespace faultline::kernel {
namespace {

using test::Addresses;
using test::Frame;
using test::HourLong;
using test::kIpv4;
using test::kIpv6;
using test::Packet;
using test::Transport;

constexpr int kPass = TC_ACT_UNSPEC;
constexpr int kStolen = TC_ACT_STOLEN;
constexpr int kShot = TC_ACT_SHOT;
constexpr uint16_t kListenPort = 7443;
constexpr uint16_t kControllerPort = 40312;

GuardedEndpoint Exact(const char* address, uint16_t port) {
  GuardedEndpoint endpoint;
  endpoint.family = std::strchr(address, ':') != nullptr ? 6 : 4;
  inet_pton(endpoint.family == 4 ? AF_INET : AF_INET6, address, endpoint.address.data());
  endpoint.port = port;
  return endpoint;
}

GuardedEndpoint EveryAddress(int family, uint16_t port) {
  return {.family = family, .address = {}, .every_address = true, .port = port};
}

class GuardTest : public ::testing::TestWithParam<Addresses> {
 protected:
  void SetUp() override {
    if (std::optional<std::string> reason = test::WhyNoBpf()) GTEST_SKIP() << *reason;
    auto map = GuardMap::Create();
    ASSERT_TRUE(map.ok()) << map.status();
    map_ = *std::move(map);
    GuardMap::Install(map_.get());
    auto program = DropProgram::Load({.target = HourLong({}), .drop_percent = 100});
    ASSERT_TRUE(program.ok()) << program.status();
    partition_ = *std::move(program);
  }
  void TearDown() override {
    partition_.reset();
    map_.reset();  // uninstalls it
  }

  // The local host talks from `local_port` to the peer's `peer_port`: egress carries it out, ingress
  // brings the answer in.
  int Egress(uint16_t local_port, uint16_t peer_port, Transport transport = Transport::kTcp) const {
    const Addresses& a = GetParam();
    return test::RunProgram(partition_->egress_fd(), Frame({.src = a.local,
                                                            .dst = a.peer,
                                                            .transport = transport,
                                                            .sport = local_port,
                                                            .dport = peer_port}));
  }
  int Ingress(uint16_t peer_port, uint16_t local_port) const {
    const Addresses& a = GetParam();
    return test::RunProgram(partition_->ingress_fd(), Frame({.src = a.peer,
                                                             .dst = a.local,
                                                             .transport = Transport::kTcp,
                                                             .sport = peer_port,
                                                             .dport = local_port}));
  }

  std::unique_ptr<GuardMap> map_;
  std::unique_ptr<DropProgram> partition_;
};

TEST_P(GuardTest, NothingGuardedIsPartitioned) {
  EXPECT_EQ(Egress(kListenPort, kControllerPort), kStolen);
  EXPECT_EQ(Ingress(kControllerPort, kListenPort), kShot);
}

TEST_P(GuardTest, TheListenerPassesBothWays) {
  ASSERT_TRUE(map_->Add(Exact(GetParam().local, kListenPort)).ok());
  EXPECT_EQ(Egress(kListenPort, kControllerPort), kPass) << "the agent's answer to a controller";
  EXPECT_EQ(Ingress(kControllerPort, kListenPort), kPass) << "a controller's call";
  // The listener's address with another port, and the port on another address, are not guarded.
  EXPECT_EQ(Egress(kListenPort + 1, kControllerPort), kStolen);
  EXPECT_EQ(Ingress(kControllerPort, kListenPort + 1), kShot);
  const Addresses& a = GetParam();
  EXPECT_EQ(test::RunProgram(
                partition_->egress_fd(),
                Frame({.src = a.neighbour, .dst = a.peer, .sport = kListenPort, .dport = kControllerPort})),
            kStolen);
  // Only TCP is guarded: gRPC and HTTP run on it.
  EXPECT_EQ(Egress(kListenPort, kControllerPort, Transport::kUdp), kStolen);
}

TEST_P(GuardTest, AListenerOnEveryAddressPassesOnAnyOfThem) {
  const Addresses& a = GetParam();
  ASSERT_TRUE(map_->Add(EveryAddress(a.family, kListenPort)).ok());
  EXPECT_EQ(Egress(kListenPort, kControllerPort), kPass);
  EXPECT_EQ(Ingress(kControllerPort, kListenPort), kPass);
  EXPECT_EQ(test::RunProgram(
                partition_->egress_fd(),
                Frame({.src = a.neighbour, .dst = a.peer, .sport = kListenPort, .dport = kControllerPort})),
            kPass);
  EXPECT_EQ(Egress(kListenPort + 1, kControllerPort), kStolen);
  // Every address of one family only: the daemon adds both families for a wildcard listener.
  const Addresses& other = a.family == 4 ? kIpv6 : kIpv4;
  EXPECT_EQ(
      test::RunProgram(
          partition_->egress_fd(),
          Frame({.src = other.local, .dst = other.peer, .sport = kListenPort, .dport = kControllerPort})),
      kStolen);
}

TEST_P(GuardTest, AControllersConnectionPassesAndOtherTrafficToItDoesNot) {
  // The controller is the partitioned peer; its connection, from its port, is guarded.
  ASSERT_TRUE(map_->Add(Exact(GetParam().peer, kControllerPort)).ok());
  EXPECT_EQ(Egress(9999, kControllerPort), kPass);
  EXPECT_EQ(Ingress(kControllerPort, 9999), kPass);
  EXPECT_EQ(Egress(9999, kControllerPort + 1), kStolen);
  EXPECT_EQ(Ingress(kControllerPort + 1, 9999), kShot);
}

TEST_P(GuardTest, AnEndpointGuardedLaterIsGuardedByProgramsLoadedBefore) {
  const GuardedEndpoint controller = Exact(GetParam().peer, kControllerPort);
  ASSERT_TRUE(map_->Add(controller).ok());
  EXPECT_EQ(Ingress(kControllerPort, 9999), kPass);
  map_->Remove(controller);
  EXPECT_EQ(Ingress(kControllerPort, 9999), kShot);
}

TEST_P(GuardTest, WithoutTheSharedMapAProgramGuardsNothing) {
  ASSERT_TRUE(map_->Add(Exact(GetParam().local, kListenPort)).ok());
  GuardMap::Install(nullptr);
  auto alone = DropProgram::Load({.target = HourLong({}), .drop_percent = 100});
  ASSERT_TRUE(alone.ok()) << alone.status();
  const Addresses& a = GetParam();
  EXPECT_EQ(test::RunProgram(
                (*alone)->egress_fd(),
                Frame({.src = a.local, .dst = a.peer, .sport = kListenPort, .dport = kControllerPort})),
            kStolen);
}

TEST_P(GuardTest, TheClassifierLeavesGuardedPacketsInTheDefaultClass) {
  const Addresses& a = GetParam();
  ASSERT_TRUE(map_->Add(Exact(a.local, kListenPort)).ok());
  const uint32_t classid = TC_H_MAKE(1u << 16, 0x10);
  auto classifier = ClassifyProgram::LoadClassifier(HourLong({}), classid);
  ASSERT_TRUE(classifier.ok()) << classifier.status();
  uint32_t priority = 0;
  EXPECT_EQ(
      test::RunProgram((*classifier)->fd(),
                       Frame({.src = a.local, .dst = a.peer, .sport = kListenPort, .dport = kControllerPort}),
                       &priority),
      kPass);
  EXPECT_EQ(priority, 0u);
  EXPECT_EQ(test::RunProgram(
                (*classifier)->fd(),
                Frame({.src = a.local, .dst = a.peer, .sport = kListenPort + 1, .dport = kControllerPort}),
                &priority),
            kPass);
  EXPECT_EQ(priority, classid);
  EXPECT_EQ((*classifier)->ReadStats().matched, 1u);

  auto redirect = ClassifyProgram::LoadRedirect(HourLong({}), classid);
  ASSERT_TRUE(redirect.ok()) << redirect.status();
  EXPECT_EQ(test::RunProgram(
                (*redirect)->fd(),
                Frame({.src = a.peer, .dst = a.local, .sport = kControllerPort, .dport = kListenPort})),
            FL_REDIRECT_SKIP);
}

INSTANTIATE_TEST_SUITE_P(Families, GuardTest, ::testing::Values(kIpv4, kIpv6),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace faultline::kernel
