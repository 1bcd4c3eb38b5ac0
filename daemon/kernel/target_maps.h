// The target of a fault aimed at some peers, and the maps that carry it into the BPF programs that
// match packets against it (bpf/target.bpf.h: the drop and classify programs). Each program's
// skeleton has the same maps; these functions fill them through a TargetMaps view, so every program
// matches exactly the same packets for the same TargetSpec.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "faultline/api/units.h"

struct bpf_map;
struct fl_target_config;  // bpf/target_abi.h

namespace faultline::kernel {

struct TargetSpec {
  std::vector<api::Cidr> peers;                      // empty: every peer
  std::vector<api::Cidr> excluded;                   // never match, even inside `peers`
  std::vector<std::pair<uint16_t, uint16_t>> ports;  // inclusive ranges, source or destination; empty: any
  uint32_t protocols = 0;                            // FL_PROTO_* from bpf/target_abi.h; 0 is refused
  uint64_t deadline_ns = 0;                          // CLOCK_MONOTONIC; from then on nothing matches
};

// The maps of bpf/target.bpf.h in one program object.
struct TargetMaps {
  bpf_map* peer_hosts_v4;
  bpf_map* peer_hosts_v6;
  bpf_map* peers_v4;
  bpf_map* peers_v6;
  bpf_map* excluded_v4;
  bpf_map* excluded_v6;
  bpf_map* ports;
  bpf_map* stats;
  bpf_map* guarded;  // the control-plane guard's (kernel/guard_map.h)
};

// The fewest peers of one family that are one address (/32s or /128s) that get a host set
// (target_abi.h); fewer stay in the family's trie. Installing a set waits for an RCU grace period,
// 8 to 24 ms on the benchmark machine, more than the rest of an inject (bench/inject-latency). Below
// this many, the trie is shallow, and the peer filter, which tells up to 8192 IPv4 addresses apart,
// lets few packets reach it; above, the grace period is small beside the insert
// (bench/many-peers) and the set keeps the cost per packet flat (bench/datapath-cost).
inline constexpr size_t kHostSetMinHosts = 1024;

// Any bpftool skeleton built from a program that includes bpf/target.bpf.h.
template <typename Skeleton>
TargetMaps TargetMapsOf(const Skeleton& skeleton) {
  const auto& maps = skeleton.maps;
  return {maps.peer_hosts_v4, maps.peer_hosts_v6, maps.peers_v4, maps.peers_v6, maps.excluded_v4,
          maps.excluded_v6,   maps.ports,         maps.stats,    maps.guarded};
}

// Before load: the program shares the installed control-plane guard's map (GuardMap::Install), if
// there is one. `program` names the program in errors ("drop program").
absl::Status ShareGuard(const char* program, const TargetMaps& maps);

// After load, before the program is attached, once per program (the maps only grow: a second call
// would keep the first one's peers): refuses a spec that selects no packets, writes its deadline,
// protocols, match flags and the peer filter into `config` (the mmapped .bss; the program's other
// config fields are left alone), and fills the host sets, the tries and the port bitmap.
absl::Status ConfigureTarget(const char* program, const TargetSpec& spec, const TargetMaps& maps,
                             fl_target_config& config);

// Sets `config`'s deadline (the mmapped .bss) to 0: from the next packet on, the program matches
// nothing, while it stays attached. One store, which a revert makes before anything else.
void Disarm(fl_target_config& config);

// A counter of the stats map (FL_STAT_*), summed over CPUs; 0 when it cannot be read.
uint64_t ReadStat(const TargetMaps& maps, uint32_t stat);

// The kernel's CLOCK_MONOTONIC now, which is what bpf_ktime_get_ns() reads.
uint64_t MonotonicNowNs();

}  // namespace faultline::kernel
