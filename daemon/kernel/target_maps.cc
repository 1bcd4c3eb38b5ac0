#include "kernel/target_maps.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstring>
#include <ctime>
#include <ios>
#include <numeric>
#include <vector>

#include "absl/status/statusor.h"
#include "faultline/api/cat.h"
#include "kernel/guard_map.h"
#include "target_abi.h"

namespace faultline::kernel {
namespace {

using api::Cat;

absl::Status MapError(const char* program, const char* map, int err) {
  return absl::InternalError(Cat(program, ": cannot fill map ", map, ": ", std::strerror(-err)));
}

// One BPF_MAP_UPDATE_BATCH for every key, each with its value: one system call for 100 000 peers
// instead of 100 000 (LPM tries, hashes and arrays have taken batches since Linux 5.6). `name` is the
// map's, for errors.
template <typename Key, typename Value>
absl::Status UpdateBatch(const char* program, int map_fd, const char* name, const std::vector<Key>& keys,
                         const std::vector<Value>& values) {
  if (keys.empty()) return absl::OkStatus();
  auto count = static_cast<__u32>(keys.size());
  LIBBPF_OPTS(bpf_map_batch_opts, options, .elem_flags = BPF_ANY);
  if (int err = bpf_map_update_batch(map_fd, keys.data(), values.data(), &count, &options); err != 0) {
    return MapError(program, name, err);
  }
  return absl::OkStatus();
}

template <typename Key, typename Value>
absl::Status UpdateBatch(const char* program, bpf_map* map, const std::vector<Key>& keys,
                         const std::vector<Value>& values) {
  return UpdateBatch(program, bpf_map__fd(map), bpf_map__name(map), keys, values);
}

// A peer that is one address: with enough of its family's, it goes to the family's host set.
bool IsHost(const api::Cidr& cidr) { return cidr.prefix_length == (cidr.family == 4 ? 32 : 128); }

// Fills the v4 and v6 LPM tries of one list; a trie's value is unused (presence is the match).
absl::Status FillTries(const char* program, bpf_map* v4, bpf_map* v6, const std::vector<api::Cidr>& cidrs) {
  std::vector<fl_lpm_v4> v4_keys;
  std::vector<fl_lpm_v6> v6_keys;
  for (const api::Cidr& cidr : cidrs) {
    if (cidr.family == 4) {
      fl_lpm_v4& key = v4_keys.emplace_back(fl_lpm_v4{static_cast<__u32>(cidr.prefix_length), {}});
      std::memcpy(key.addr, cidr.address.data(), sizeof(key.addr));
    } else {
      fl_lpm_v6& key = v6_keys.emplace_back(fl_lpm_v6{static_cast<__u32>(cidr.prefix_length), {}});
      std::memcpy(key.addr, cidr.address.data(), sizeof(key.addr));
    }
  }
  const std::vector<uint8_t> present(std::max(v4_keys.size(), v6_keys.size()), 1);
  if (auto s = UpdateBatch(program, v4, v4_keys, present); !s.ok()) return s;
  return UpdateBatch(program, v6, v6_keys, present);
}

// Creates a host set the size of `keys`, fills it, and puts it in slot 0 of `hosts`, which then
// holds the only reference to it: the set goes with the program. No keys, no set.
template <typename Key>
absl::Status FillHostSet(const char* program, bpf_map* hosts, const std::vector<Key>& keys) {
  if (keys.empty()) return absl::OkStatus();
  LIBBPF_OPTS(bpf_map_create_opts, options, .map_flags = BPF_F_NO_PREALLOC);
  const int set = bpf_map_create(BPF_MAP_TYPE_HASH, "fl_host_set", sizeof(Key), sizeof(uint8_t),
                                 static_cast<__u32>(keys.size()), &options);
  if (set < 0) return MapError(program, bpf_map__name(hosts), set);
  absl::Status status =
      UpdateBatch(program, set, bpf_map__name(hosts), keys, std::vector<uint8_t>(keys.size(), 1));
  const __u32 slot = 0;
  if (status.ok()) {
    if (int err = bpf_map_update_elem(bpf_map__fd(hosts), &slot, &set, BPF_ANY); err != 0) {
      status = MapError(program, bpf_map__name(hosts), err);
    }
  }
  close(set);
  return status;
}

// The peer list: a family's hosts to its host set when it lists at least kHostSetMinHosts of them (a
// host listed twice counts twice), every other peer to its family's trie. Returns the
// FL_MATCH_PEER_TRIE_* and FL_MATCH_PEER_HOSTS_* flags of what it fills.
absl::StatusOr<uint32_t> FillPeers(const char* program, const TargetMaps& maps,
                                   const std::vector<api::Cidr>& peers) {
  size_t hosts_of_family[2] = {};  // IPv4, IPv6
  for (const api::Cidr& cidr : peers) hosts_of_family[cidr.family == 6] += IsHost(cidr);
  std::vector<fl_host_v4> hosts_v4;
  std::vector<fl_host_v6> hosts_v6;
  std::vector<api::Cidr> in_tries;
  uint32_t flags = 0;
  for (const api::Cidr& cidr : peers) {
    if (!IsHost(cidr) || hosts_of_family[cidr.family == 6] < kHostSetMinHosts) {
      in_tries.push_back(cidr);
      flags |= cidr.family == 4 ? FL_MATCH_PEER_TRIE_V4 : FL_MATCH_PEER_TRIE_V6;
    } else if (cidr.family == 4) {
      std::memcpy(hosts_v4.emplace_back().addr, cidr.address.data(), sizeof(fl_host_v4::addr));
      flags |= FL_MATCH_PEER_HOSTS_V4;
    } else {
      std::memcpy(hosts_v6.emplace_back().addr, cidr.address.data(), sizeof(fl_host_v6::addr));
      flags |= FL_MATCH_PEER_HOSTS_V6;
    }
  }
  if (auto s = FillHostSet(program, maps.peer_hosts_v4, hosts_v4); !s.ok()) return s;
  if (auto s = FillHostSet(program, maps.peer_hosts_v6, hosts_v6); !s.ok()) return s;
  if (auto s = FillTries(program, maps.peers_v4, maps.peers_v6, in_tries); !s.ok()) return s;
  return flags;
}

// The first 8 bytes of a CIDR's address, big-endian: the peer filter's `head` (target_abi.h). An IPv4
// address fills the first 4 bytes of `address` and the rest are 0, so its 4 land in the high half.
uint64_t AddressHead(const api::Cidr& cidr) {
  uint64_t head = 0;
  for (size_t i = 0; i < 8; i++) head = head << 8 | cidr.address[i];
  return head;
}

// How many of its first bits one family's peer filter hashes (target_abi.h): the most, up to `most`
// and to the family's shortest prefix, at which `heads` (the family's peers) hold at most
// FL_PEER_FILTER_MAX_PREFIXES distinct prefixes. Sorted, two neighbouring heads first differ after
// the bits they share, so they are distinct prefixes at every length longer than that.
__u8 PeerFilterBits(std::vector<uint64_t> heads, int shortest, int most) {
  std::sort(heads.begin(), heads.end());
  std::array<size_t, 65> shared_bits{};  // neighbours by how many first bits they share
  for (size_t i = 1; i < heads.size(); i++)
    shared_bits[static_cast<size_t>(std::countl_zero(heads[i - 1] ^ heads[i]))]++;
  size_t prefixes = 1;  // at 0 bits, every head is one prefix
  int bits = 0;
  while (bits < std::min(shortest, most)) {
    prefixes += shared_bits[static_cast<size_t>(bits)];  // distinct from bits + 1 on
    if (prefixes > FL_PEER_FILTER_MAX_PREFIXES) break;
    bits++;
  }
  return static_cast<__u8>(bits);
}

// fl_target_config.peer_filter: each family hashes its first PeerFilterBits bits, so that every peer
// CIDR holds one slot, the slot of all its addresses.
void MarkPeerFilter(const std::vector<api::Cidr>& peers, fl_target_config& config) {
  std::vector<uint64_t> heads_v4, heads_v6;
  int shortest_v4 = FL_PEER_FILTER_MAX_BITS_V4, shortest_v6 = FL_PEER_FILTER_MAX_BITS_V6;
  for (const api::Cidr& cidr : peers) {
    (cidr.family == 4 ? heads_v4 : heads_v6).push_back(AddressHead(cidr));
    int& shortest = cidr.family == 4 ? shortest_v4 : shortest_v6;
    shortest = std::min(shortest, cidr.prefix_length);
  }
  config.peer_filter_bits_v4 = PeerFilterBits(std::move(heads_v4), shortest_v4, FL_PEER_FILTER_MAX_BITS_V4);
  config.peer_filter_bits_v6 = PeerFilterBits(std::move(heads_v6), shortest_v6, FL_PEER_FILTER_MAX_BITS_V6);
  std::fill(std::begin(config.peer_filter), std::end(config.peer_filter), 0);
  for (const api::Cidr& cidr : peers) {
    const __u32 slot = fl_peer_filter_slot(
        AddressHead(cidr), cidr.family == 4 ? config.peer_filter_bits_v4 : config.peer_filter_bits_v6,
        static_cast<__u32>(cidr.family));
    config.peer_filter[slot / 64] |= 1ull << (slot % 64);
  }
}

}  // namespace

absl::Status ShareGuard(const char* program, const TargetMaps& maps) {
  const GuardMap* guard = GuardMap::Installed();
  if (guard == nullptr) return absl::OkStatus();
  if (int err = bpf_map__reuse_fd(maps.guarded, guard->fd()); err != 0) {
    return absl::InternalError(
        Cat(program, ": cannot share the control-plane guard's map: ", std::strerror(-err)));
  }
  return absl::OkStatus();
}

absl::Status ConfigureTarget(const char* program, const TargetSpec& spec, const TargetMaps& maps,
                             fl_target_config& config) {
  if (spec.protocols == 0 || (spec.protocols & ~FL_PROTO_ALL) != 0) {
    return absl::InvalidArgumentError(Cat(program, ": protocol mask 0x", std::hex, spec.protocols,
                                          " selects no packets; use FL_PROTO_* bits"));
  }
  absl::StatusOr<uint32_t> peer_flags = FillPeers(program, maps, spec.peers);
  if (!peer_flags.ok()) return peer_flags.status();
  if (auto s = FillTries(program, maps.excluded_v4, maps.excluded_v6, spec.excluded); !s.ok()) return s;

  if (!spec.ports.empty()) {
    std::vector<__u32> indexes(FL_PORT_WORDS);
    std::iota(indexes.begin(), indexes.end(), 0);
    std::vector<__u64> words(FL_PORT_WORDS);
    for (auto [first, last] : spec.ports) {
      for (uint32_t port = first; port <= last; port++) words[port / 64] |= 1ull << (port % 64);
    }
    if (auto s = UpdateBatch(program, maps.ports, indexes, words); !s.ok()) return s;
  }
  MarkPeerFilter(spec.peers, config);
  config.protocols = spec.protocols;
  config.flags =
      (spec.peers.empty() ? FL_MATCH_ANY_PEER : 0) | (spec.ports.empty() ? 0 : FL_MATCH_PORTS) | *peer_flags;
  config.deadline_ns = spec.deadline_ns;
  return absl::OkStatus();
}

void Disarm(fl_target_config& config) {
  // The program reads the field while this thread writes it: atomic, so the store is whole.
  std::atomic_ref<__u64>(config.deadline_ns).store(0, std::memory_order_relaxed);
}

uint64_t ReadStat(const TargetMaps& maps, uint32_t stat) {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return 0;
  std::vector<__u64> values(static_cast<size_t>(cpus));
  if (bpf_map__lookup_elem(maps.stats, &stat, sizeof(stat), values.data(), values.size() * sizeof(__u64),
                           0) != 0) {
    return 0;
  }
  return std::accumulate(values.begin(), values.end(), uint64_t{0});
}

uint64_t MonotonicNowNs() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(now.tv_nsec);
}

}  // namespace faultline::kernel
