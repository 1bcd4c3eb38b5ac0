// The classify program (bpf/classify.bpf.c), loaded through ClassifyProgram so its map filling is
// tested too, run on crafted Ethernet frames with bpf_prog_test_run_opts.
//
// What a test run shows of it: the return value, skb->priority (net/bpf/test_run.c copies it back
// into ctx_out) and the program's counters. So each case checks both: the verdict, and the class the
// packet leaves with. Where a packet then goes (the class's qdisc, the ifb behind the redirect
// filter's mirred action) is for tests with real qdiscs and traffic.
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

#include "faultline/api/cat.h"
#include "packets.h"
#include "target_abi.h"
#include "test_run.h"

namespace faultline::kernel {
namespace {

using api::Cat;
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

constexpr uint32_t kClassid = TC_H_MAKE(1u << 16, 0x10);  // 1:10

// Where the program runs, which decides whose address is the peer and what it returns.
enum class Role {
  kClassifier,  // fl_classify on clsact egress (direct action): the peer is the destination
  kRedirect,    // fl_redirect on clsact ingress (no direct action, mirred): the peer is the source
};

absl::StatusOr<std::unique_ptr<ClassifyProgram>> LoadAs(Role role, const TargetSpec& target,
                                                        uint32_t classid = kClassid) {
  switch (role) {
    case Role::kClassifier:
      return ClassifyProgram::LoadClassifier(target, classid);
    case Role::kRedirect:
      return ClassifyProgram::LoadRedirect(target, classid);
  }
  return absl::InternalError("test bug: unknown role");
}

// What a packet leaves a program with: its return value and skb->priority (0 when it came in).
struct Outcome {
  int verdict;
  uint32_t priority;
  bool operator==(const Outcome&) const = default;
};

void PrintTo(const Outcome& outcome, std::ostream* os) {
  *os << "{verdict " << outcome.verdict << ", priority 0x" << std::hex << outcome.priority << std::dec << "}";
}

// A packet that is not the fault's. fl_classify returns TC_ACT_UNSPEC (-1), so the next filter runs.
// fl_redirect must return exactly 0 (FL_REDIRECT_SKIP): without direct action, cls_bpf takes any
// other value, TC_ACT_UNSPEC included, as a match and runs the redirect.
Outcome Passed(Role role) { return {role == Role::kRedirect ? FL_REDIRECT_SKIP : TC_ACT_UNSPEC, 0}; }

// A packet of the fault: its priority is the fault's class. fl_classify still returns TC_ACT_UNSPEC
// (other faults' filters see the packet); fl_redirect returns FL_REDIRECT_SELECT, which makes cls_bpf
// run the filter's mirred action.
Outcome Matched(Role role, uint32_t classid = kClassid) {
  return {role == Role::kRedirect ? FL_REDIRECT_SELECT : TC_ACT_UNSPEC, classid};
}

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

  Outcome Run(const std::vector<uint8_t>& frame) const { return Run(*program_, frame); }

  static Outcome Run(const ClassifyProgram& program, const std::vector<uint8_t>& frame) {
    uint32_t priority = 0;
    int verdict = test::RunProgram(program.fd(), frame, &priority);
    return {verdict, priority};
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
  EXPECT_EQ(Run(Frame(match.packet)), match.matches ? Matched(match.role) : Passed(match.role));
  EXPECT_EQ(program_->ReadStats().matched, match.matches ? 1u : 0u);
}

INSTANTIATE_TEST_SUITE_P(Packets, ClassifyMatchTest, ::testing::ValuesIn(BothFamilies(MatchCases)),
                         [](const ::testing::TestParamInfo<MatchCase>& info) { return info.param.name; });

// ---- Traffic that is never matched. ----

TEST_F(ClassifyProgramTest, ArpPassesEvenWithoutPeerList) {
  for (Role role : {Role::kClassifier, Role::kRedirect}) {
    ASSERT_NO_FATAL_FAILURE(Load(role, HourLong({})));
    EXPECT_EQ(Run(ArpFrame(kIpv4.local, kIpv4.peer)), Passed(role));
    EXPECT_EQ(Run(ArpFrame(kIpv4.peer, kIpv4.local)), Passed(role));
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
      EXPECT_EQ(Run(Frame({.src = a.local, .dst = a.peer})), Passed(role)) << a.name;
      EXPECT_EQ(Run(Frame({.src = a.peer, .dst = a.local})), Passed(role)) << a.name;
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
  EXPECT_EQ(Run(frame), Matched(Role::kClassifier));
  EXPECT_EQ(Run(**redirect, frame), Matched(Role::kRedirect));
  while (MonotonicNowNs() < target.deadline_ns) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(Run(frame), Passed(Role::kClassifier));
  EXPECT_EQ(Run(**redirect, frame), Passed(Role::kRedirect));
}

// A revert's first step: new packets go unshaped with the next one, long before the deadline.
TEST_F(ClassifyProgramTest, DisarmEndsFaultAtOnce) {
  const std::vector<uint8_t> frame = Frame({.src = kIpv4.peer, .dst = kIpv4.local});  // any peer matches
  for (Role role : {Role::kClassifier, Role::kRedirect}) {
    ASSERT_NO_FATAL_FAILURE(Load(role, HourLong({})));
    EXPECT_EQ(Run(frame), Matched(role));
    program_->Disarm();
    EXPECT_EQ(Run(frame), Passed(role));
    EXPECT_EQ(program_->ReadStats().matched, 1u);
  }
}

// ---- Counters and instances. ----

TEST_F(ClassifyProgramTest, StatsCountMatches) {
  ASSERT_NO_FATAL_FAILURE(Load(Role::kRedirect, HourLong({.peers = {kIpv4.peer, kIpv6.peer}})));
  const std::vector<uint8_t> from_v4 = Frame({.src = kIpv4.peer, .dst = kIpv4.local});
  const std::vector<uint8_t> from_v6 =
      Frame({.src = kIpv6.peer, .dst = kIpv6.local, .transport = Transport::kUdp});
  const std::vector<uint8_t> elsewhere = Frame({.src = kIpv4.outside, .dst = kIpv4.local});
  int redirected = 0;
  for (int i = 0; i < 5; i++) redirected += Run(from_v4) == Matched(Role::kRedirect);
  for (int i = 0; i < 3; i++) redirected += Run(from_v6) == Matched(Role::kRedirect);
  for (int i = 0; i < 4; i++) EXPECT_EQ(Run(elsewhere), Passed(Role::kRedirect));
  EXPECT_EQ(redirected, 8);
  EXPECT_EQ(program_->ReadStats().matched, 8u);
}

TEST_F(ClassifyProgramTest, InstancesKeepTheirOwnTargetsClassesAndCounters) {
  constexpr uint32_t kOtherClassid = TC_H_MAKE(1u << 16, 0x20);  // 1:20
  for (Role role : {Role::kClassifier, Role::kRedirect}) {
    ASSERT_NO_FATAL_FAILURE(Load(role, HourLong({.peers = {kIpv4.peer}})));
    absl::StatusOr<std::unique_ptr<ClassifyProgram>> other =
        LoadAs(role, HourLong({.peers = {kIpv4.outside}}), kOtherClassid);
    ASSERT_TRUE(other.ok()) << std::string(other.status().message());
    const bool egress = role == Role::kClassifier;
    const std::vector<uint8_t> peer = egress ? Frame({.src = kIpv4.local, .dst = kIpv4.peer})
                                             : Frame({.src = kIpv4.peer, .dst = kIpv4.local});
    const std::vector<uint8_t> outside = egress ? Frame({.src = kIpv4.local, .dst = kIpv4.outside})
                                                : Frame({.src = kIpv4.outside, .dst = kIpv4.local});
    EXPECT_EQ(Run(peer), Matched(role));
    EXPECT_EQ(Run(**other, peer), Passed(role));
    EXPECT_EQ(Run(**other, outside), Matched(role, kOtherClassid));
    EXPECT_EQ(program_->ReadStats().matched, 1u);
    EXPECT_EQ((*other)->ReadStats().matched, 1u);
  }
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
  for (Role role : {Role::kClassifier, Role::kRedirect}) {
    absl::StatusOr<std::unique_ptr<ClassifyProgram>> program =
        LoadAs(role, HourLong({}), TC_H_MAKE(1u << 16, 0));
    EXPECT_EQ(program.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(program.status().message(),
              Cat(role == Role::kClassifier ? "classify" : "redirect",
                  " program: classid 0x10000 has minor 0, which names the qdisc, not a class"));
  }
}

}  // namespace
}  // namespace faultline::kernel
