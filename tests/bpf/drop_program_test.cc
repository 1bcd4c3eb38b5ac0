// The drop program (bpf/drop.bpf.c), loaded through DropProgram so its map filling is tested too,
// run on crafted Ethernet frames with bpf_prog_test_run_opts: no namespaces, no traffic.
#include "kernel/drop_program.h"

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
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

// What the program returns (linux/pkt_cls.h).
constexpr int kPass = TC_ACT_UNSPEC;    // -1: the next filter on the hook still runs
constexpr int kStolen = TC_ACT_STOLEN;  // 4: dropped at egress, the sender sees success
constexpr int kShot = TC_ACT_SHOT;      // 2: dropped at ingress

enum class Hook { kEgress, kIngress };

// A partition of `target` that lasts an hour.
DropSpec Spec(const Target& target) { return {.target = HourLong(target), .drop_percent = 100}; }

class DropProgramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::optional<std::string> reason = WhyNoBpf()) GTEST_SKIP() << *reason;
  }

  // The kernel supports BPF here (SetUp checked), so a program that does not load is a failure.
  void Load(const DropSpec& spec) {
    absl::StatusOr<std::unique_ptr<DropProgram>> program = DropProgram::Load(spec);
    ASSERT_TRUE(program.ok()) << std::string(program.status().message());
    program_ = *std::move(program);
  }

  int Run(Hook hook, const std::vector<uint8_t>& frame) const { return Run(*program_, hook, frame); }

  static int Run(const DropProgram& program, Hook hook, const std::vector<uint8_t>& frame) {
    return test::RunProgram(hook == Hook::kEgress ? program.egress_fd() : program.ingress_fd(), frame);
  }

  struct Verdicts {
    int drops = 0;
    int passes = 0;
    int others = 0;
  };

  // `runs` separate test runs: with opts.repeat, retval would hold only the last run's verdict.
  Verdicts RunMany(Hook hook, const std::vector<uint8_t>& frame, int runs) const {
    const int drop = hook == Hook::kEgress ? kStolen : kShot;
    Verdicts verdicts;
    for (int i = 0; i < runs; i++) {
      const int verdict = Run(hook, frame);
      if (verdict == drop) {
        verdicts.drops++;
      } else if (verdict == kPass) {
        verdicts.passes++;
      } else {
        verdicts.others++;
      }
    }
    return verdicts;
  }

  std::unique_ptr<DropProgram> program_;
};

// ---- Matching: one program per case, one packet, one hook. ----

struct MatchCase {
  std::string name;
  Target target;
  Packet packet;
  Hook hook;
  int expected;
};

void PrintTo(const MatchCase& match, std::ostream* os) { *os << match.name; }

// `count` hosts: count - 1 from `fill` on (an IPv4 "a.b." takes "c.d" with d < 250; an IPv6 "...:"
// takes a hex group), and `marker`, after the others; `network` too.
Target Hosts(size_t count, const std::string& fill, const char* marker, const char* network) {
  Target target{.peers = {network}};
  const bool v6 = fill.find(':') != std::string::npos;
  for (size_t i = 0; i + 1 < count; i++) {
    std::ostringstream host;
    host << fill;
    if (v6) {
      host << std::hex << i;
    } else {
      host << i / 250 << "." << i % 250;
    }
    target.peers.push_back(host.str());
  }
  target.peers.push_back(marker);
  return target;
}

std::vector<MatchCase> MatchCases(const Addresses& a) {
  constexpr Hook kOut = Hook::kEgress;
  constexpr Hook kIn = Hook::kIngress;
  std::vector<MatchCase> cases;
  auto add = [&](const std::string& name, Target target, Packet packet, Hook hook, int expected) {
    cases.push_back({std::string(a.name) + "_" + name, std::move(target), std::move(packet), hook, expected});
  };
  // Both sides of the host set's line (kHostSetMinHosts, target_maps.h): one host fewer stays in the
  // trie. Hosts(count, fill, marker, network); `first` is fill's first host, `beside` is unlisted
  // beside the marker, `in_network` is in the network.
  struct HostLine {
    const char* fill;
    const char* first;
    const char* marker;
    const char* beside;
    const char* network;
    const char* in_network;
  };
  auto add_host_line = [&](const HostLine& line) {
    auto to = [&a](const char* dst) { return Packet{.src = a.local, .dst = dst}; };
    for (size_t count : {kHostSetMinHosts - 1, kHostSetMinHosts}) {
      const Target hosts = Hosts(count, line.fill, line.marker, line.network);
      const std::string n = "hosts_" + std::to_string(count) + "_";
      add(n + "first", hosts, to(line.first), kOut, kStolen);
      add(n + "marker", hosts, to(line.marker), kOut, kStolen);
      add(n + "beside_marker", hosts, to(line.beside), kOut, kPass);
      add(n + "network", hosts, to(line.in_network), kOut, kStolen);
    }
  };

  // Peers and direction: egress looks at the destination, ingress at the source.
  for (Transport t : {Transport::kTcp, Transport::kUdp, Transport::kIcmp}) {
    const std::string n = std::string(Name(t)) + "_";
    auto packet = [t](const char* src, const char* dst) {
      return Packet{.src = src, .dst = dst, .transport = t};
    };
    const Target peer{.peers = {a.peer}};
    const Target net{.peers = {a.peer_net}};
    const Target net_but_hole{.peers = {a.peer_net}, .excluded = {a.hole}};
    add(n + "listed_peer_egress", peer, packet(a.local, a.peer), kOut, kStolen);
    add(n + "listed_peer_ingress", peer, packet(a.peer, a.local), kIn, kShot);
    add(n + "unlisted_peer_egress", peer, packet(a.local, a.outside), kOut, kPass);
    add(n + "unlisted_peer_ingress", peer, packet(a.outside, a.local), kIn, kPass);
    add(n + "egress_ignores_source_peer", peer, packet(a.peer, a.outside), kOut, kPass);
    add(n + "ingress_ignores_destination_peer", peer, packet(a.outside, a.peer), kIn, kPass);
    add(n + "network_holds_peer_egress", net, packet(a.local, a.neighbour), kOut, kStolen);
    add(n + "network_holds_peer_ingress", net, packet(a.neighbour, a.local), kIn, kShot);
    add(n + "excluded_inside_listed_egress", net_but_hole, packet(a.local, a.peer), kOut, kPass);
    add(n + "excluded_inside_listed_ingress", net_but_hole, packet(a.peer, a.local), kIn, kPass);
    add(n + "beside_excluded_egress", net_but_hole, packet(a.local, a.neighbour), kOut, kStolen);
    add(n + "beside_excluded_ingress", net_but_hole, packet(a.neighbour, a.local), kIn, kShot);
    add(n + "no_peer_list_egress", {}, packet(a.local, a.outside), kOut, kStolen);
    add(n + "no_peer_list_ingress", {}, packet(a.outside, a.local), kIn, kShot);
    add(n + "no_peer_list_excluded", {.excluded = {a.hole}}, packet(a.local, a.peer), kOut, kPass);
    add(n + "only_other_family_listed", {.peers = {a.other_family_peer}}, packet(a.local, a.peer), kOut,
        kPass);
    add(n + "both_families_listed", {.peers = {a.other_family_peer, a.outside, a.peer}},
        packet(a.local, a.peer), kOut, kStolen);
  }

  // Ports: a packet matches when its source or its destination port is listed.
  for (Transport t : {Transport::kTcp, Transport::kUdp}) {
    const std::string n = std::string(Name(t)) + "_";
    auto ports = [t, &a](uint16_t sport, uint16_t dport) {
      return Packet{.src = a.local, .dst = a.peer, .transport = t, .sport = sport, .dport = dport};
    };
    auto listed = [&a](std::vector<std::pair<uint16_t, uint16_t>> ranges) {
      return Target{.peers = {a.peer}, .ports = std::move(ranges)};
    };
    add(n + "source_port_listed", listed({{40000, 40000}}), ports(40000, 80), kOut, kStolen);
    add(n + "destination_port_listed", listed({{80, 80}}), ports(40000, 80), kOut, kStolen);
    add(n + "destination_port_listed_ingress", listed({{80, 80}}),
        Packet{.src = a.peer, .dst = a.local, .transport = t, .sport = 40000, .dport = 80}, kIn, kShot);
    add(n + "neither_port_listed", listed({{443, 443}}), ports(40000, 80), kOut, kPass);
    add(n + "range_first_port", listed({{8000, 8100}}), ports(40000, 8000), kOut, kStolen);
    add(n + "range_inner_port", listed({{8000, 8100}}), ports(8050, 40000), kOut, kStolen);
    add(n + "range_last_port", listed({{8000, 8100}}), ports(40000, 8100), kOut, kStolen);
    add(n + "below_range", listed({{8000, 8100}}), ports(40000, 7999), kOut, kPass);
    add(n + "above_range", listed({{8000, 8100}}), ports(40000, 8101), kOut, kPass);
    // 60-70 spans two 64-port words of the port bitmap.
    add(n + "range_across_bitmap_words", listed({{60, 70}}), ports(40000, 64), kOut, kStolen);
    add(n + "several_ranges_last_port", listed({{22, 22}, {8000, 8100}, {65535, 65535}}), ports(40000, 65535),
        kOut, kStolen);
    add(n + "several_ranges_none", listed({{22, 22}, {8000, 8100}, {65535, 65535}}), ports(40000, 443), kOut,
        kPass);
    add(n + "port_listed_peer_unlisted", listed({{80, 80}}),
        Packet{.src = a.local, .dst = a.outside, .transport = t, .sport = 40000, .dport = 80}, kOut, kPass);
  }
  add("icmp_passes_when_ports_listed", {.peers = {a.peer}, .ports = {{0, 65535}}},
      Packet{.src = a.local, .dst = a.peer, .transport = Transport::kIcmp}, kOut, kPass);

  // Fragments: only the first carries ports. The later fragment's payload below looks like a TCP
  // header to port 80, which the program must not read as one.
  const Packet later_fragment{.src = a.local, .dst = a.peer, .fragment_offset = 185};
  const Packet first_fragment{.src = a.local, .dst = a.peer, .more_fragments = true};
  add("later_fragment_passes_when_ports_listed", {.peers = {a.peer}, .ports = {{80, 80}}}, later_fragment,
      kOut, kPass);
  add("later_fragment_matches_peer", {.peers = {a.peer}}, later_fragment, kOut, kStolen);
  add("first_fragment_matches_ports", {.peers = {a.peer}, .ports = {{80, 80}}}, first_fragment, kOut,
      kStolen);

  // Protocols: the mask selects TCP, UDP, ICMP/ICMPv6 and anything else.
  auto packet = [&a](Transport t) { return Packet{.src = a.local, .dst = a.peer, .transport = t}; };
  const Target tcp_only{.protocols = FL_PROTO_TCP};
  add("tcp_only_drops_tcp", tcp_only, packet(Transport::kTcp), kOut, kStolen);
  add("tcp_only_passes_udp", tcp_only, packet(Transport::kUdp), kOut, kPass);
  add("tcp_only_passes_icmp", tcp_only, packet(Transport::kIcmp), kOut, kPass);
  add("tcp_only_passes_gre", tcp_only, packet(Transport::kGre), kOut, kPass);
  add("udp_only_drops_udp", {.protocols = FL_PROTO_UDP}, packet(Transport::kUdp), kOut, kStolen);
  add("udp_only_passes_tcp", {.protocols = FL_PROTO_UDP}, packet(Transport::kTcp), kOut, kPass);
  add("icmp_only_drops_icmp", {.protocols = FL_PROTO_ICMP}, packet(Transport::kIcmp), kIn, kShot);
  add("icmp_only_passes_udp", {.protocols = FL_PROTO_ICMP}, packet(Transport::kUdp), kIn, kPass);
  add("other_only_drops_gre", {.protocols = FL_PROTO_OTHER}, packet(Transport::kGre), kOut, kStolen);
  add("known_protocols_pass_gre", {.protocols = FL_PROTO_TCP | FL_PROTO_UDP | FL_PROTO_ICMP},
      packet(Transport::kGre), kOut, kPass);
  add("all_protocols_drop_gre", {}, packet(Transport::kGre), kOut, kStolen);

  if (a.family == 4) {
    // A packet's address is tested in the config's peer filter before the trie (target_abi.h): each
    // peer CIDR, whatever bits the filter hashes for its target, must let every address it holds through.
    auto to = [&a](const char* dst) { return Packet{.src = a.local, .dst = dst}; };
    const Target short_prefix{.peers = {"8.0.0.0/6"}};
    add("short_prefix_first_octet", short_prefix, to("8.1.2.3"), kOut, kStolen);
    add("short_prefix_last_octet", short_prefix, to("11.200.0.1"), kOut, kStolen);
    add("short_prefix_next_octet", short_prefix, to("12.0.0.1"), kOut, kPass);
    add("short_prefix_octet_before", short_prefix, to("7.255.255.255"), kOut, kPass);
    add("every_address_prefix", {.peers = {"0.0.0.0/0"}}, to("203.0.113.5"), kOut, kStolen);
    const Target octets_apart{.peers = {a.peer, "192.0.2.0/24", "255.255.255.255/32"}};
    add("octets_apart_second", octets_apart, to("192.0.2.7"), kOut, kStolen);
    add("octets_apart_highest", octets_apart, to("255.255.255.255"), kOut, kStolen);
    add("octets_apart_listed_octet_unlisted_address", octets_apart, to("192.0.3.1"), kOut, kPass);
    add("octets_apart_unlisted_octet", octets_apart, to("193.0.2.7"), kOut, kPass);
    const Target host_and_network{.peers = {"198.51.100.7/32", "203.0.0.0/16"}};
    add("host_and_network_host", host_and_network, to("198.51.100.7"), kOut, kStolen);
    add("host_and_network_host_neighbour", host_and_network, to("198.51.100.8"), kOut, kPass);
    add("host_and_network_other_24_of_network", host_and_network, to("203.0.200.1"), kOut, kStolen);
    add("host_and_network_next_network", host_and_network, to("203.1.0.1"), kOut, kPass);
    // A /31 is a network, not a host; listed twice, a host is still one.
    const Target pair_and_twice{.peers = {"192.0.2.6/31", "192.0.2.9", "192.0.2.9/32"}};
    add("pair_first", pair_and_twice, to("192.0.2.6"), kOut, kStolen);
    add("pair_second", pair_and_twice, to("192.0.2.7"), kOut, kStolen);
    add("pair_after", pair_and_twice, to("192.0.2.8"), kOut, kPass);
    add("host_listed_twice", pair_and_twice, to("192.0.2.9"), kOut, kStolen);
    add("host_listed_and_excluded", {.peers = {"192.0.2.9"}, .excluded = {"192.0.2.9"}}, to("192.0.2.9"),
        kOut, kPass);
    // 10 000 hosts, more than the filter tells apart: it hashes their /31s, and the host set decides.
    Target many_hosts;
    for (int i = 0; i < 10'000; i++)
      many_hosts.peers.push_back("10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250));
    add("many_hosts_first", many_hosts, to("10.1.0.0"), kOut, kStolen);
    add("many_hosts_last", many_hosts, to("10.1.39.249"), kOut, kStolen);
    add("many_hosts_unlisted_beside_listed", many_hosts, to("10.1.39.250"), kOut, kPass);
    add("many_hosts_unlisted_after", many_hosts, to("10.1.40.1"), kOut, kPass);
    add_host_line({"10.2.", "10.2.0.0", "10.3.0.1", "10.3.0.2", "203.0.0.0/16", "203.0.7.7"});
    // Listed twice among enough hosts for a set (which is sized by the list), a host is still one.
    Target twice = Hosts(kHostSetMinHosts, "10.2.", "10.3.0.1", "203.0.0.0/16");
    twice.peers.push_back("10.3.0.1");
    add("host_set_host_listed_twice", twice, to("10.3.0.1"), kOut, kStolen);

    // The transport header starts after the options: ports are found through the header length.
    add("options_then_tcp_port_listed", {.ports = {{80, 80}}},
        Packet{.src = a.local, .dst = a.peer, .ipv4_option_words = 2}, kOut, kStolen);
    add("options_then_tcp_port_unlisted", {.ports = {{443, 443}}},
        Packet{.src = a.local, .dst = a.peer, .ipv4_option_words = 2}, kOut, kPass);
  }
  if (a.family == 6) {
    // Neighbour discovery (ICMPv6 133-137) is IPv6's ARP: faulting it would break the link itself.
    for (uint8_t type = 132; type <= 138; type++) {
      const bool ndp = type >= 133 && type <= 137;
      const Packet out{.src = a.local, .dst = a.peer, .transport = Transport::kIcmp, .icmp_type = type};
      const Packet in{.src = a.peer, .dst = a.local, .transport = Transport::kIcmp, .icmp_type = type};
      add("icmpv6_type_" + std::to_string(type) + "_egress", {}, out, kOut, ndp ? kPass : kStolen);
      add("icmpv6_type_" + std::to_string(type) + "_ingress", {.peers = {a.peer}, .protocols = FL_PROTO_ICMP},
          in, kIn, ndp ? kPass : kShot);
    }
    // The peer filter hashes an IPv6 address's first 64 bits at most, fewer when a peer is shorter.
    auto to = [&a](const char* dst) { return Packet{.src = a.local, .dst = dst}; };
    const Target network_and_host{.peers = {"2001:db8:1::/48", "2001:db8:2::1:0:0:5/128", "192.0.2.1/32"}};
    add("network_and_host_network_end", network_and_host, to("2001:db8:1:ffff:ffff::1"), kOut, kStolen);
    add("network_and_host_host", network_and_host, to("2001:db8:2::1:0:0:5"), kOut, kStolen);
    add("network_and_host_host_same_64", network_and_host, to("2001:db8:2::1:0:0:6"), kOut, kPass);
    add("network_and_host_next_network", network_and_host, to("2001:db8:3::1"), kOut, kPass);
    const Target host_only{.peers = {"2001:db8:2::1:0:0:5/128"}};
    add("host_only_host", host_only, to("2001:db8:2::1:0:0:5"), kOut, kStolen);
    add("host_only_other_64", host_only, to("2001:db8:2::2:0:0:5"), kOut, kPass);
    add("every_v6_address_prefix", {.peers = {"::/0"}}, to("2001:db8:ffff::7"), kOut, kStolen);
    // Past the 64 bits the filter hashes: a /96 and a /127 are networks, told apart by the trie.
    const Target long_networks{.peers = {"2001:db8:4::1:0:0/96", "2001:db8:4::2:0:6/127"}};
    add("long_networks_96", long_networks, to("2001:db8:4::1:ffff:ffff"), kOut, kStolen);
    add("long_networks_127", long_networks, to("2001:db8:4::2:0:7"), kOut, kStolen);
    add("long_networks_same_64", long_networks, to("2001:db8:4::3:0:0"), kOut, kPass);
    add("host_listed_and_excluded", {.peers = {"2001:db8:2::5"}, .excluded = {"2001:db8:2::5"}},
        to("2001:db8:2::5"), kOut, kPass);
    // The hosts in one /64: the peer filter lets every address of that /64 through, and the trie or
    // the host set decides.
    add_host_line({"2001:db8:5::1:", "2001:db8:5::1:0", "2001:db8:5::ffff", "2001:db8:5::fffe",
                   "2001:db8:1::/48", "2001:db8:1:7::7"});

    // Extension headers before the transport header are skipped to find the ports.
    const Packet hop_by_hop{.src = a.local, .dst = a.peer, .ipv6_options = {IPPROTO_HOPOPTS}};
    add("hop_by_hop_then_tcp_port_listed", {.ports = {{80, 80}}}, hop_by_hop, kOut, kStolen);
    add("hop_by_hop_then_tcp_port_unlisted", {.ports = {{443, 443}}}, hop_by_hop, kOut, kPass);
    // Past the first kilobyte of the frame the program reads through bpf_skb_load_bytes, as it does
    // a header outside the packet's linear part: 14 + 40 + 8 * 131 bytes before the ports here.
    const Packet long_hop_by_hop{
        .src = a.local, .dst = a.peer, .ipv6_options = {IPPROTO_HOPOPTS}, .hop_by_hop_units = 130};
    add("long_hop_by_hop_then_tcp_port_listed", {.ports = {{80, 80}}}, long_hop_by_hop, kOut, kStolen);
    add("long_hop_by_hop_then_tcp_port_unlisted", {.ports = {{443, 443}}}, long_hop_by_hop, kOut, kPass);
    add("hop_by_hop_then_tcp_protocol", {.protocols = FL_PROTO_TCP}, hop_by_hop, kOut, kStolen);
    add("hop_by_hop_then_tcp_other_protocol", {.protocols = FL_PROTO_OTHER}, hop_by_hop, kOut, kPass);
    add("hop_by_hop_and_destination_options_then_udp", {.ports = {{53, 53}}},
        Packet{.src = a.local,
               .dst = a.peer,
               .transport = Transport::kUdp,
               .dport = 53,
               .ipv6_options = {IPPROTO_HOPOPTS, IPPROTO_DSTOPTS}},
        kOut, kStolen);
    add("hop_by_hop_then_first_fragment_port_listed", {.ports = {{80, 80}}},
        Packet{.src = a.local, .dst = a.peer, .more_fragments = true, .ipv6_options = {IPPROTO_HOPOPTS}},
        kOut, kStolen);
    add("hop_by_hop_then_neighbour_solicitation", {},
        Packet{.src = a.local,
               .dst = a.peer,
               .transport = Transport::kIcmp,
               .icmp_type = 135,
               .ipv6_options = {IPPROTO_HOPOPTS}},
        kOut, kPass);
  }
  return cases;
}

class DropMatchTest : public DropProgramTest, public ::testing::WithParamInterface<MatchCase> {};

TEST_P(DropMatchTest, ReturnsExpectedVerdict) {
  const MatchCase& match = GetParam();
  ASSERT_NO_FATAL_FAILURE(Load(Spec(match.target)));
  const int verdict = Run(match.hook, Frame(match.packet));
  EXPECT_EQ(verdict, match.expected);
  // The counters say what happened: a drop is a match and a drop, a pass is neither (loss is 100%).
  const DropStats stats = program_->ReadStats();
  const uint64_t dropped = verdict == kPass ? 0 : 1;
  EXPECT_EQ(stats.matched, dropped);
  EXPECT_EQ(stats.dropped, dropped);
}

INSTANTIATE_TEST_SUITE_P(Packets, DropMatchTest, ::testing::ValuesIn(BothFamilies(MatchCases)),
                         [](const ::testing::TestParamInfo<MatchCase>& info) { return info.param.name; });

// ---- Traffic that is never faulted, and packets the program cannot parse. ----

TEST_F(DropProgramTest, ArpPassesEvenWithoutPeerList) {
  ASSERT_NO_FATAL_FAILURE(Load(Spec({})));
  EXPECT_EQ(Run(Hook::kEgress, ArpFrame(kIpv4.local, kIpv4.peer)), kPass);
  EXPECT_EQ(Run(Hook::kIngress, ArpFrame(kIpv4.peer, kIpv4.local)), kPass);
  EXPECT_EQ(program_->ReadStats().matched, 0u);
}

// The kernel refuses test runs shorter than Ethernet + IP header, so the cut is in the transport header.
TEST_F(DropProgramTest, TruncatedPortsPass) {
  ASSERT_NO_FATAL_FAILURE(Load(Spec({.ports = {{80, 80}}})));
  for (const Addresses& a : {kIpv4, kIpv6}) {
    std::vector<uint8_t> frame = Frame({.src = a.local, .dst = a.peer});
    frame.resize(ETH_HLEN + (a.family == 4 ? 20 : 40) + 2);  // the source port only
    EXPECT_EQ(Run(Hook::kEgress, frame), kPass) << a.name;
  }
  EXPECT_EQ(program_->ReadStats().matched, 0u);
}

// ---- The deadline: a fault ends on time even when the daemon is gone. ----

TEST_F(DropProgramTest, PastDeadlinePassesEverything) {
  DropSpec spec = Spec({});
  spec.target.deadline_ns = MonotonicNowNs() - 1;
  ASSERT_NO_FATAL_FAILURE(Load(spec));
  for (const Addresses& a : {kIpv4, kIpv6}) {
    for (Transport t : {Transport::kTcp, Transport::kUdp, Transport::kIcmp}) {
      EXPECT_EQ(Run(Hook::kEgress, Frame({.src = a.local, .dst = a.peer, .transport = t})), kPass)
          << a.name << " " << Name(t);
      EXPECT_EQ(Run(Hook::kIngress, Frame({.src = a.peer, .dst = a.local, .transport = t})), kPass)
          << a.name << " " << Name(t);
    }
  }
  EXPECT_EQ(program_->ReadStats().matched, 0u);
}

TEST_F(DropProgramTest, FarDeadlineDrops) {
  DropSpec spec = Spec({});
  spec.target.deadline_ns = MonotonicNowNs() + 10ull * 365 * 24 * 3600 * kSecondNs;
  ASSERT_NO_FATAL_FAILURE(Load(spec));
  EXPECT_EQ(Run(Hook::kEgress, Frame({.src = kIpv4.local, .dst = kIpv4.peer})), kStolen);
  EXPECT_EQ(Run(Hook::kIngress, Frame({.src = kIpv6.peer, .dst = kIpv6.local})), kShot);
}

TEST_F(DropProgramTest, DeadlineEndsLoadedFault) {
  DropSpec spec = Spec({});
  spec.target.deadline_ns = MonotonicNowNs() + kSecondNs;
  ASSERT_NO_FATAL_FAILURE(Load(spec));
  const std::vector<uint8_t> frame = Frame({.src = kIpv4.local, .dst = kIpv4.peer});
  EXPECT_EQ(Run(Hook::kEgress, frame), kStolen);
  while (MonotonicNowNs() < spec.target.deadline_ns)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(Run(Hook::kEgress, frame), kPass);
}

// A revert's first step: the fault ends with the next packet, long before its deadline.
TEST_F(DropProgramTest, DisarmEndsFaultAtOnce) {
  ASSERT_NO_FATAL_FAILURE(Load(Spec({.peers = {kIpv4.peer, kIpv6.peer}})));
  const std::vector<uint8_t> out = Frame({.src = kIpv4.local, .dst = kIpv4.peer});
  const std::vector<uint8_t> in = Frame({.src = kIpv6.peer, .dst = kIpv6.local});
  EXPECT_EQ(Run(Hook::kEgress, out), kStolen);
  EXPECT_EQ(Run(Hook::kIngress, in), kShot);
  program_->Disarm();
  EXPECT_EQ(Run(Hook::kEgress, out), kPass);
  EXPECT_EQ(Run(Hook::kIngress, in), kPass);
  EXPECT_EQ(program_->ReadStats().matched, 2u);
}

// ---- Loss: each matching packet is dropped with probability drop_percent. ----

// Within 4 standard deviations of the binomial mean. 3 (a correct program outside it 0.3% of the time)
// failed CI now and then: these checks run several times per run, on three kernels.
void ExpectBinomial(int drops, int runs, double share) {
  const double mean = runs * share;
  const double sigma = std::sqrt(runs * share * (1 - share));
  EXPECT_NEAR(drops, mean, 4 * sigma)
      << drops << " of " << runs << " dropped, expected " << share * 100 << "%";
}

TEST_F(DropProgramTest, HalfLossDropsHalf) {
  DropSpec spec = Spec({.peers = {kIpv4.peer_net}});
  spec.drop_percent = 50;
  ASSERT_NO_FATAL_FAILURE(Load(spec));
  constexpr int kRuns = 4000;
  const Verdicts run = RunMany(Hook::kEgress, Frame({.src = kIpv4.local, .dst = kIpv4.peer}), kRuns);
  EXPECT_EQ(run.others, 0);
  EXPECT_EQ(run.drops + run.passes, kRuns);
  ExpectBinomial(run.drops, kRuns, 0.5);
  const DropStats stats = program_->ReadStats();
  EXPECT_EQ(stats.matched, uint64_t{kRuns});
  EXPECT_EQ(stats.dropped, static_cast<uint64_t>(run.drops));
}

TEST_F(DropProgramTest, OnePercentLossDropsOnePercent) {
  DropSpec spec = Spec({.peers = {kIpv6.peer_net}});
  spec.drop_percent = 1;
  ASSERT_NO_FATAL_FAILURE(Load(spec));
  constexpr int kRuns = 4000;
  const Verdicts run = RunMany(Hook::kIngress, Frame({.src = kIpv6.peer, .dst = kIpv6.local}), kRuns);
  EXPECT_EQ(run.others, 0);
  ExpectBinomial(run.drops, kRuns, 0.01);
  const DropStats stats = program_->ReadStats();
  EXPECT_EQ(stats.matched, uint64_t{kRuns});
  EXPECT_EQ(stats.dropped, static_cast<uint64_t>(run.drops));
}

TEST_F(DropProgramTest, FullLossDropsEveryPacket) {
  ASSERT_NO_FATAL_FAILURE(Load(Spec({.peers = {kIpv4.peer}})));
  constexpr int kRuns = 4000;
  const Verdicts run = RunMany(Hook::kEgress, Frame({.src = kIpv4.local, .dst = kIpv4.peer}), kRuns);
  EXPECT_EQ(run.drops, kRuns);
}

TEST_F(DropProgramTest, LossLeavesUnmatchedPacketsAlone) {
  DropSpec spec = Spec({.peers = {kIpv4.peer}});
  spec.drop_percent = 50;
  ASSERT_NO_FATAL_FAILURE(Load(spec));
  const Verdicts run = RunMany(Hook::kEgress, Frame({.src = kIpv4.local, .dst = kIpv4.outside}), 500);
  EXPECT_EQ(run.passes, 500);
  EXPECT_EQ(program_->ReadStats().matched, 0u);
}

// ---- Counters and instances. ----

TEST_F(DropProgramTest, StatsCountWhatTheRunsDid) {
  ASSERT_NO_FATAL_FAILURE(Load(Spec({.peers = {kIpv4.peer, kIpv6.peer}})));
  EXPECT_EQ(program_->ReadStats().matched, 0u);
  EXPECT_EQ(program_->ReadStats().dropped, 0u);
  const std::vector<uint8_t> out_v4 = Frame({.src = kIpv4.local, .dst = kIpv4.peer});
  const std::vector<uint8_t> in_v6 =
      Frame({.src = kIpv6.peer, .dst = kIpv6.local, .transport = Transport::kUdp});
  const std::vector<uint8_t> elsewhere = Frame({.src = kIpv4.local, .dst = kIpv4.outside});
  int drops = 0;
  for (int i = 0; i < 5; i++) drops += Run(Hook::kEgress, out_v4) == kStolen;
  for (int i = 0; i < 3; i++) drops += Run(Hook::kIngress, in_v6) == kShot;
  for (int i = 0; i < 4; i++) EXPECT_EQ(Run(Hook::kEgress, elsewhere), kPass);
  EXPECT_EQ(drops, 8);
  const DropStats stats = program_->ReadStats();
  EXPECT_EQ(stats.matched, 8u);
  EXPECT_EQ(stats.dropped, 8u);
}

// Installing a host set waits for an RCU grace period (target_maps.h): only a family with at least
// kHostSetMinHosts hosts gets one, and the other family's slot stays empty.
TEST_F(DropProgramTest, HostSetOnlyForAFamilyWithManyHosts) {
  for (bool many_v4 : {true, false}) {
    SCOPED_TRACE(many_v4 ? "many IPv4 hosts, few IPv6" : "few IPv4 hosts, many IPv6");
    Target target =
        Hosts(many_v4 ? kHostSetMinHosts : kHostSetMinHosts - 1, "10.2.", "10.3.0.1", "10.9.0.0/16");
    const Target v6 = Hosts(many_v4 ? kHostSetMinHosts - 1 : kHostSetMinHosts,
                            "2001:db8:5::1:", "2001:db8:5::ffff", "2001:db8:1::/48");
    target.peers.insert(target.peers.end(), v6.peers.begin(), v6.peers.end());
    ASSERT_NO_FATAL_FAILURE(Load(Spec(target)));
    EXPECT_EQ(test::SlotHoldsMap(program_->egress_fd(), "peer_hosts_v4"), many_v4);
    EXPECT_EQ(test::SlotHoldsMap(program_->egress_fd(), "peer_hosts_v6"), !many_v4);
    EXPECT_EQ(Run(Hook::kEgress, Frame({.src = kIpv4.local, .dst = "10.3.0.1"})), kStolen);
    EXPECT_EQ(Run(Hook::kEgress, Frame({.src = kIpv6.local, .dst = "2001:db8:5::ffff"})), kStolen);
  }
}

// The peer filter (target_abi.h) turns away an address no peer holds before any lookup. To see that,
// a network the daemon never listed goes straight into each trie: only the filter keeps its addresses
// from matching. The target lists a network of each family, so each trie is looked up whatever
// becomes of its hosts (FL_MATCH_PEER_TRIE_*).
TEST_F(DropProgramTest, PeerFilterTurnsAwayAddressesNoPeerHolds) {
  ASSERT_NO_FATAL_FAILURE(
      Load(Spec({.peers = {"198.51.100.7", "203.0.113.0/24", "2001:db8:2::5", "2001:db8:7::/48"}})));
  // The filter hashes each family's first bits up to its shortest peer, 24 and 48 here: the addresses
  // below must not share a slot with a peer (a fixed fact of the hash, checked rather than assumed).
  const std::vector<__u32> listed = {
      fl_peer_filter_slot(0xc6336407ull << 32, 24, 4), fl_peer_filter_slot(0xcb007100ull << 32, 24, 4),
      fl_peer_filter_slot(0x20010db800020000ull, 48, 6), fl_peer_filter_slot(0x20010db800070000ull, 48, 6)};
  for (__u32 slot :
       {fl_peer_filter_slot(0x0a010203ull << 32, 24, 4), fl_peer_filter_slot(0x20010db800090000ull, 48, 6)}) {
    ASSERT_EQ(std::count(listed.begin(), listed.end(), slot), 0) << "test bug: pick other addresses";
  }
  const int v4 = test::OpenMapOf(program_->egress_fd(), "peers_v4");
  const int v6 = test::OpenMapOf(program_->egress_fd(), "peers_v6");
  const auto close_both = absl::MakeCleanup([&] {
    if (v4 >= 0) close(v4);
    if (v6 >= 0) close(v6);
  });
  ASSERT_TRUE(v4 >= 0 && v6 >= 0);
  const fl_lpm_v4 ten{.prefixlen = 8, .addr = {10, 0, 0, 0}};
  const fl_lpm_v6 documentation{.prefixlen = 32, .addr = {0x20, 0x01, 0x0d, 0xb8}};
  const uint8_t present = 1;
  ASSERT_EQ(bpf_map_update_elem(v4, &ten, &present, BPF_ANY), 0);
  ASSERT_EQ(bpf_map_update_elem(v6, &documentation, &present, BPF_ANY), 0);
  EXPECT_EQ(Run(Hook::kEgress, Frame({.src = kIpv4.local, .dst = "10.1.2.3"})), kPass);
  EXPECT_EQ(Run(Hook::kEgress, Frame({.src = kIpv6.local, .dst = "2001:db8:9::1"})), kPass);
  EXPECT_EQ(Run(Hook::kEgress, Frame({.src = kIpv4.local, .dst = "198.51.100.7"})), kStolen);
  EXPECT_EQ(Run(Hook::kEgress, Frame({.src = kIpv6.local, .dst = "2001:db8:2::5"})), kStolen);
}

TEST_F(DropProgramTest, InstancesKeepTheirOwnTargetsAndCounters) {
  ASSERT_NO_FATAL_FAILURE(Load(Spec({.peers = {kIpv4.peer}})));
  absl::StatusOr<std::unique_ptr<DropProgram>> other = DropProgram::Load(Spec({.peers = {kIpv4.outside}}));
  ASSERT_TRUE(other.ok()) << std::string(other.status().message());
  const std::vector<uint8_t> to_peer = Frame({.src = kIpv4.local, .dst = kIpv4.peer});
  EXPECT_EQ(Run(Hook::kEgress, to_peer), kStolen);
  EXPECT_EQ(Run(**other, Hook::kEgress, to_peer), kPass);
  EXPECT_EQ(Run(**other, Hook::kEgress, Frame({.src = kIpv4.local, .dst = kIpv4.outside})), kStolen);
  EXPECT_EQ(program_->ReadStats().dropped, 1u);
  EXPECT_EQ((*other)->ReadStats().dropped, 1u);
}

}  // namespace
}  // namespace faultline::kernel
