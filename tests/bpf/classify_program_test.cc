// The classify program (bpf/classify.bpf.c), loaded through ClassifyProgram so its map filling is
// tested too, run on crafted Ethernet frames with bpf_prog_test_run_opts.
//
// What a test run shows of it (measured on 6.18): the verdict and the program's counters, nothing
// more. net/bpf/test_run.c copies some __sk_buff fields back into ctx_out (ifindex and wire_len come
// back filled in) but not tc_classid, which reads 0 after a match, and it refuses a ctx_in that sets
// tc_classid (EINVAL). bpf_redirect() only records its target and returns TC_ACT_REDIRECT; the test
// run hands that verdict back without redirecting, the same for any ifindex. So the class a packet
// lands in and the device it is redirected to are for tests with real qdiscs and traffic; here the
// verdicts and counts pin down which packets match.
#include "kernel/classify_program.h"

#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "packets.h"
#include "target_abi.h"
#include "test_run.h"

namespace faultline::kernel {
namespace {

using test::Addresses;
using test::ArpFrame;
using test::BothFamilies;
using test::Frame;
using test::HourLong;
using test::kIpv4;
using test::kIpv6;
using test::kSecondNs;
using test::Name;
using test::Packet;
using test::Target;
using test::Transport;
using test::WhyNoBpf;

// What the programs return (linux/pkt_cls.h).
constexpr int kPass = TC_ACT_UNSPEC;  // -1: not this fault's; the next filter still runs
// fl_classify's verdict is always kPass; a packet it classified leaves with skb->priority = its classid.
// Run() reports that as kClassified, a value no program returns.
constexpr int kClassified = 1000;
constexpr int kRedirected = TC_ACT_REDIRECT;              // 7: fl_redirect sends it to the ifb
constexpr uint32_t kClassid = TC_H_MAKE(1u << 16, 0x10);  // 1:10
constexpr int kIfbIndex = 42;  // test runs never redirect, so the device need not exist

// Where the program runs, which decides whose address is the peer.
enum class Role {
  kClassifier,  // fl_classify on clsact egress: the peer is the destination
  kRedirect,    // fl_redirect on clsact ingress: the peer is the source
};

absl::StatusOr<std::unique_ptr<ClassifyProgram>> LoadAs(Role role, const TargetSpec& target) {
  switch (role) {
    case Role::kClassifier:
      return ClassifyProgram::LoadClassifier(target, kClassid);
    case Role::kRedirect:
      return ClassifyProgram::LoadRedirect(target, kIfbIndex, kClassid);
  }
  return absl::InternalError("test bug: unknown role");
}

// What the program returns for a packet of its fault.
int MatchVerdict(Role role) { return role == Role::kRedirect ? kRedirected : kClassified; }

class ClassifyProgramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::optional<std::string> reason = WhyNoBpf()) GTEST_SKIP() << *reason;
  }

  // The kernel supports BPF here (SetUp checked), so a program that does not load is a failure.
  void Load(Role role, const TargetSpec& target) {
    absl::StatusOr<std::unique_ptr<ClassifyProgram>> program = LoadAs(role, target);
    ASSERT_TRUE(program.ok()) << std::string(program.status().message());
    program_ = *std::move(program);
  }

  int Run(const std::vector<uint8_t>& frame) const { return Run(*program_, frame); }

  static int Run(const ClassifyProgram& program, const std::vector<uint8_t>& frame) {
    uint32_t priority = 0;
    int verdict = test::RunProgram(program.fd(), frame, &priority);
    // The packet enters with priority 0; any other value is the class a classifier gave it.
    return verdict == kPass && priority != 0 ? kClassified : verdict;
  }

  std::unique_ptr<ClassifyProgram> program_;
};

// ---- Matching: one program per case, one packet. ----

struct MatchCase {
  std::string name;
  Role role;
  Target target;
  Packet packet;
  bool matches;
};

void PrintTo(const MatchCase& match, std::ostream* os) { *os << match.name; }

std::vector<MatchCase> MatchCases(const Addresses& a) {
  std::vector<MatchCase> cases;
  auto add = [&](const std::string& name, Role role, Target target, Packet packet, bool matches) {
    cases.push_back({std::string(a.name) + "_" + name, role, std::move(target), std::move(packet), matches});
  };
  const Target peer{.peers = {a.peer}};
  const Target net_but_hole{.peers = {a.peer_net}, .excluded = {a.hole}};
  auto to = [&a](const char* dst, Transport t = Transport::kTcp) {
    return Packet{.src = a.local, .dst = dst, .transport = t};
  };
  auto from = [&a](const char* src, Transport t = Transport::kTcp) {
    return Packet{.src = src, .dst = a.local, .transport = t};
  };

  // Whose address is the peer: the destination for the classifier, the source on an ifb and for
  // the redirect.
  for (Transport t : {Transport::kTcp, Transport::kUdp, Transport::kIcmp}) {
    const std::string n = std::string(Name(t)) + "_";
    add(n + "classifier_to_listed_peer", Role::kClassifier, peer, to(a.peer, t), true);
    add(n + "classifier_from_listed_peer", Role::kClassifier, peer, from(a.peer, t), false);
    add(n + "classifier_to_unlisted_peer", Role::kClassifier, peer, to(a.outside, t), false);
    add(n + "redirect_from_listed_peer", Role::kRedirect, peer, from(a.peer, t), true);
    add(n + "redirect_to_listed_peer", Role::kRedirect, peer, to(a.peer, t), false);
    add(n + "redirect_from_unlisted_peer", Role::kRedirect, peer, from(a.outside, t), false);
  }

  // Networks and exclusions.
  add("classifier_network_holds_peer", Role::kClassifier, net_but_hole, to(a.neighbour), true);
  add("classifier_excluded_inside_network", Role::kClassifier, net_but_hole, to(a.peer), false);
  add("classifier_no_peer_list", Role::kClassifier, {}, to(a.outside), true);
  add("classifier_no_peer_list_excluded", Role::kClassifier, {.excluded = {a.hole}}, to(a.peer), false);
  add("classifier_only_other_family_listed", Role::kClassifier, {.peers = {a.other_family_peer}}, to(a.peer),
      false);
  add("redirect_network_holds_peer", Role::kRedirect, net_but_hole, from(a.neighbour), true);
  add("redirect_excluded_inside_network", Role::kRedirect, net_but_hole, from(a.peer), false);
  add("redirect_no_peer_list", Role::kRedirect, {}, from(a.outside), true);

  // Ports: the source or the destination port is listed.
  const Target port_80{.peers = {a.peer}, .ports = {{80, 80}}};
  const Target port_40000{.peers = {a.peer}, .ports = {{40000, 40000}}};
  const Target range{.peers = {a.peer}, .ports = {{8000, 8100}}};
  auto ports_to = [&a](uint16_t sport, uint16_t dport, Transport t = Transport::kTcp) {
    return Packet{.src = a.local, .dst = a.peer, .transport = t, .sport = sport, .dport = dport};
  };
  auto ports_from = [&a](uint16_t sport, uint16_t dport) {
    return Packet{.src = a.peer, .dst = a.local, .sport = sport, .dport = dport};
  };
  add("classifier_destination_port_listed", Role::kClassifier, port_80, ports_to(40000, 80), true);
  add("classifier_source_port_listed", Role::kClassifier, port_40000, ports_to(40000, 80), true);
  add("classifier_udp_port_listed", Role::kClassifier, port_80, ports_to(40000, 80, Transport::kUdp), true);
  add("classifier_neither_port_listed", Role::kClassifier, port_80, ports_to(40000, 443), false);
  add("classifier_range_last_port", Role::kClassifier, range, ports_to(40000, 8100), true);
  add("classifier_above_range", Role::kClassifier, range, ports_to(40000, 8101), false);
  add("classifier_icmp_when_ports_listed", Role::kClassifier, {.peers = {a.peer}, .ports = {{0, 65535}}},
      to(a.peer, Transport::kIcmp), false);
  add("classifier_later_fragment_when_ports_listed", Role::kClassifier, port_80,
      Packet{.src = a.local, .dst = a.peer, .fragment_offset = 185}, false);
  add("redirect_destination_port_listed", Role::kRedirect, port_80, ports_from(40000, 80), true);
  add("redirect_source_port_listed", Role::kRedirect, port_80, ports_from(80, 40000), true);
  add("redirect_neither_port_listed", Role::kRedirect, port_80, ports_from(443, 40000), false);

  // Protocols.
  add("classifier_tcp_only_tcp", Role::kClassifier, {.protocols = FL_PROTO_TCP}, to(a.peer), true);
  add("classifier_tcp_only_udp", Role::kClassifier, {.protocols = FL_PROTO_TCP}, to(a.peer, Transport::kUdp),
      false);
  add("classifier_icmp_only_icmp", Role::kClassifier, {.protocols = FL_PROTO_ICMP},
      to(a.peer, Transport::kIcmp), true);
  add("classifier_other_only_gre", Role::kClassifier, {.protocols = FL_PROTO_OTHER},
      to(a.peer, Transport::kGre), true);
  add("classifier_known_protocols_gre", Role::kClassifier,
      {.protocols = FL_PROTO_TCP | FL_PROTO_UDP | FL_PROTO_ICMP}, to(a.peer, Transport::kGre), false);
  add("redirect_udp_only_udp", Role::kRedirect, {.protocols = FL_PROTO_UDP}, from(a.peer, Transport::kUdp),
      true);
  add("redirect_udp_only_tcp", Role::kRedirect, {.protocols = FL_PROTO_UDP}, from(a.peer), false);

  if (a.family == 6) {
    // Neighbour discovery is IPv6's ARP: shaping or redirecting it would disturb the link itself.
    for (Role role : {Role::kClassifier, Role::kRedirect}) {
      const bool to_peer = role == Role::kClassifier;
      const std::string n = role == Role::kClassifier ? "classifier_" : "redirect_";
      Packet solicitation = to_peer ? to(a.peer, Transport::kIcmp) : from(a.peer, Transport::kIcmp);
      solicitation.icmp_type = 135;
      add(n + "neighbour_solicitation", role, {}, solicitation, false);
    }
    // Extension headers are skipped to find the ports.
    add("classifier_hop_by_hop_then_port_listed", Role::kClassifier, port_80,
        Packet{.src = a.local, .dst = a.peer, .ipv6_options = {IPPROTO_HOPOPTS}}, true);
    add("redirect_hop_and_destination_options_then_port_listed", Role::kRedirect, port_80,
        Packet{.src = a.peer, .dst = a.local, .ipv6_options = {IPPROTO_HOPOPTS, IPPROTO_DSTOPTS}}, true);
  }
  return cases;
}

class ClassifyMatchTest : public ClassifyProgramTest, public ::testing::WithParamInterface<MatchCase> {};

TEST_P(ClassifyMatchTest, ReturnsExpectedVerdict) {
  const MatchCase& match = GetParam();
  ASSERT_NO_FATAL_FAILURE(Load(match.role, HourLong(match.target)));
  EXPECT_EQ(Run(Frame(match.packet)), match.matches ? MatchVerdict(match.role) : kPass);
  EXPECT_EQ(program_->ReadStats().matched, match.matches ? 1u : 0u);
}

INSTANTIATE_TEST_SUITE_P(Packets, ClassifyMatchTest, ::testing::ValuesIn(BothFamilies(MatchCases)),
                         [](const ::testing::TestParamInfo<MatchCase>& info) { return info.param.name; });

// ---- Traffic that is never matched. ----

TEST_F(ClassifyProgramTest, ArpPassesEvenWithoutPeerList) {
  for (Role role : {Role::kClassifier, Role::kRedirect}) {
    ASSERT_NO_FATAL_FAILURE(Load(role, HourLong({})));
    EXPECT_EQ(Run(ArpFrame(kIpv4.local, kIpv4.peer)), kPass);
    EXPECT_EQ(Run(ArpFrame(kIpv4.peer, kIpv4.local)), kPass);
    EXPECT_EQ(program_->ReadStats().matched, 0u);
  }
}

// ---- The deadline: after it nothing matches, even when the daemon is gone. ----

TEST_F(ClassifyProgramTest, PastDeadlineMatchesNothing) {
  TargetSpec target = HourLong({});
  target.deadline_ns = MonotonicNowNs() - 1;
  for (Role role : {Role::kClassifier, Role::kRedirect}) {
    ASSERT_NO_FATAL_FAILURE(Load(role, target));
    for (const Addresses& a : {kIpv4, kIpv6}) {
      EXPECT_EQ(Run(Frame({.src = a.local, .dst = a.peer})), kPass) << a.name;
      EXPECT_EQ(Run(Frame({.src = a.peer, .dst = a.local})), kPass) << a.name;
    }
    EXPECT_EQ(program_->ReadStats().matched, 0u);
  }
}

TEST_F(ClassifyProgramTest, DeadlineEndsLoadedFault) {
  TargetSpec target = HourLong({});
  target.deadline_ns = MonotonicNowNs() + kSecondNs / 2;
  ASSERT_NO_FATAL_FAILURE(Load(Role::kClassifier, target));
  absl::StatusOr<std::unique_ptr<ClassifyProgram>> redirect = LoadAs(Role::kRedirect, target);
  ASSERT_TRUE(redirect.ok()) << std::string(redirect.status().message());
  const std::vector<uint8_t> frame = Frame({.src = kIpv4.peer, .dst = kIpv4.local});  // any peer matches
  EXPECT_EQ(Run(frame), kClassified);
  EXPECT_EQ(Run(**redirect, frame), kRedirected);
  while (MonotonicNowNs() < target.deadline_ns) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(Run(frame), kPass);
  EXPECT_EQ(Run(**redirect, frame), kPass);
}

// ---- Counters and instances. ----

TEST_F(ClassifyProgramTest, StatsCountMatches) {
  ASSERT_NO_FATAL_FAILURE(Load(Role::kRedirect, HourLong({.peers = {kIpv4.peer, kIpv6.peer}})));
  const std::vector<uint8_t> from_v4 = Frame({.src = kIpv4.peer, .dst = kIpv4.local});
  const std::vector<uint8_t> from_v6 =
      Frame({.src = kIpv6.peer, .dst = kIpv6.local, .transport = Transport::kUdp});
  const std::vector<uint8_t> elsewhere = Frame({.src = kIpv4.outside, .dst = kIpv4.local});
  int redirected = 0;
  for (int i = 0; i < 5; i++) redirected += Run(from_v4) == kRedirected;
  for (int i = 0; i < 3; i++) redirected += Run(from_v6) == kRedirected;
  for (int i = 0; i < 4; i++) EXPECT_EQ(Run(elsewhere), kPass);
  EXPECT_EQ(redirected, 8);
  EXPECT_EQ(program_->ReadStats().matched, 8u);
}

TEST_F(ClassifyProgramTest, InstancesKeepTheirOwnTargetsAndCounters) {
  ASSERT_NO_FATAL_FAILURE(Load(Role::kClassifier, HourLong({.peers = {kIpv4.peer}})));
  absl::StatusOr<std::unique_ptr<ClassifyProgram>> other =
      ClassifyProgram::LoadClassifier(HourLong({.peers = {kIpv4.outside}}), TC_H_MAKE(1u << 16, 0x20));
  ASSERT_TRUE(other.ok()) << std::string(other.status().message());
  const std::vector<uint8_t> to_peer = Frame({.src = kIpv4.local, .dst = kIpv4.peer});
  EXPECT_EQ(Run(to_peer), kClassified);
  EXPECT_EQ(Run(**other, to_peer), kPass);
  EXPECT_EQ(Run(**other, Frame({.src = kIpv4.local, .dst = kIpv4.outside})), kClassified);
  EXPECT_EQ(program_->ReadStats().matched, 1u);
  EXPECT_EQ((*other)->ReadStats().matched, 1u);
}

// ---- Refusals: checked before anything reaches the kernel, so they need no privileges. ----

TEST(ClassifyProgramRefusalTest, RefusesEmptyProtocolMask) {
  TargetSpec target = HourLong({});
  target.protocols = 0;
  for (Role role : {Role::kClassifier, Role::kRedirect}) {
    absl::StatusOr<std::unique_ptr<ClassifyProgram>> program = LoadAs(role, target);
    EXPECT_EQ(program.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(program.status().message().find("protocol mask 0x0 selects no packets"), std::string::npos)
        << program.status().message();
  }
}

TEST(ClassifyProgramRefusalTest, RefusesClassidWithoutMinor) {
  absl::StatusOr<std::unique_ptr<ClassifyProgram>> program =
      ClassifyProgram::LoadClassifier(HourLong({}), TC_H_MAKE(1u << 16, 0));
  EXPECT_EQ(program.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(program.status().message(),
            "classify program: classid 0x10000 has minor 0, which names the qdisc, not a class");
}

TEST(ClassifyProgramRefusalTest, RefusesMissingIfb) {
  absl::StatusOr<std::unique_ptr<ClassifyProgram>> program =
      ClassifyProgram::LoadRedirect(HourLong({}), 0, kClassid);
  EXPECT_EQ(program.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(program.status().message(), "redirect program: 0 is not an ifindex");
}

}  // namespace
}  // namespace faultline::kernel
