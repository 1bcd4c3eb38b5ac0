// Crafted Ethernet frames for running the BPF programs with bpf_prog_test_run_opts, and the
// addresses the test cases are written with.
#pragma once

#include <cstdint>
#include <iterator>
#include <optional>
#include <vector>

namespace faultline::test {

enum class Transport { kTcp, kUdp, kIcmp, kGre };
const char* Name(Transport transport);

// A packet as a test describes it; Frame() turns it into the bytes on the wire. Every member has an
// initializer: GCC 12 warns about designated initializers that skip one without.
struct Packet {
  const char* src = "";
  const char* dst = "";
  Transport transport = Transport::kTcp;
  uint16_t sport = 40000;
  uint16_t dport = 80;
  std::optional<uint8_t> icmp_type{};  // default: echo request (8, or 128 for ICMPv6)
  // Fragments: IPv4 sets them in its header; IPv6 gets a fragment header after `ipv6_options`.
  uint16_t fragment_offset = 0;  // in 8-byte units; not 0: a later fragment, without transport header
  bool more_fragments = false;
  uint8_t ipv4_option_words = 0;        // IPv4: 4-byte words of options (NOPs) after the fixed header
  std::vector<uint8_t> ipv6_options{};  // IPPROTO_HOPOPTS / IPPROTO_DSTOPTS headers before the transport
  uint8_t hop_by_hop_units = 1;         // a hop-by-hop header's length field: 8 + 8 * this bytes
};

// Ethernet + IPv4/IPv6 (+ extension headers) + transport. Checksums stay 0: the programs read none.
std::vector<uint8_t> Frame(const Packet& packet);

// An ARP request: who has `target`? tell `sender`.
std::vector<uint8_t> ArpFrame(const char* sender, const char* target);

// The addresses of one family's cases.
struct Addresses {
  const char* name;
  int family;
  const char* local;              // this host
  const char* peer;               // the faulted peer
  const char* neighbour;          // in peer_net, outside hole
  const char* outside;            // in no listed network
  const char* peer_net;           // holds peer and neighbour
  const char* hole;               // inside peer_net, holds peer but not neighbour
  const char* other_family_peer;  // the peer's counterpart in the other family
};

inline constexpr Addresses kIpv4{"v4",
                                 4,
                                 "198.18.0.1",
                                 "198.18.1.10",
                                 "198.18.1.200",
                                 "198.19.5.5",
                                 "198.18.1.0/24",
                                 "198.18.1.8/29",
                                 "2001:db8:2::10"};
inline constexpr Addresses kIpv6{"v6",
                                 6,
                                 "2001:db8:1::1",
                                 "2001:db8:2::10",
                                 "2001:db8:2::beef",
                                 "2001:db8:ff::5",
                                 "2001:db8:2::/64",
                                 "2001:db8:2::/123",
                                 "198.18.1.10"};

// The cases `make` writes for IPv4, then those for IPv6.
template <typename Case>
std::vector<Case> BothFamilies(std::vector<Case> (*make)(const Addresses&)) {
  std::vector<Case> cases = make(kIpv4);
  std::vector<Case> v6 = make(kIpv6);
  cases.insert(cases.end(), std::make_move_iterator(v6.begin()), std::make_move_iterator(v6.end()));
  return cases;
}

}  // namespace faultline::test
