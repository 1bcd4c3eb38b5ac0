#include "kernel/drop_program.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>

#include "drop_abi.h"
#include "faultline/api/cat.h"

// The skeleton uses the ABI's types, so it comes after drop_abi.h.
#include "drop.skel.h"

namespace faultline::kernel {
namespace {

using api::Cat;

absl::Status MapError(const char* map, int err) {
  return absl::InternalError(Cat("drop program: cannot fill map ", map, ": ", std::strerror(-err)));
}

// Fills the v4 and v6 LPM tries of one list; a trie's value is unused (presence is the match).
absl::Status FillTries(bpf_map* v4, bpf_map* v6, const std::vector<api::Cidr>& cidrs) {
  const uint8_t present = 1;
  for (const api::Cidr& cidr : cidrs) {
    int err;
    if (cidr.family == 4) {
      fl_lpm_v4 key{static_cast<__u32>(cidr.prefix_length), {}};
      std::memcpy(key.addr, cidr.address.data(), sizeof(key.addr));
      err = bpf_map__update_elem(v4, &key, sizeof(key), &present, sizeof(present), BPF_ANY);
    } else {
      fl_lpm_v6 key{static_cast<__u32>(cidr.prefix_length), {}};
      std::memcpy(key.addr, cidr.address.data(), sizeof(key.addr));
      err = bpf_map__update_elem(v6, &key, sizeof(key), &present, sizeof(present), BPF_ANY);
    }
    if (err != 0) return MapError(bpf_map__name(cidr.family == 4 ? v4 : v6), err);
  }
  return absl::OkStatus();
}

// LPM tries hold exactly what the target lists (at least one entry: the kernel refuses zero).
void SizeTries(bpf_map* v4, bpf_map* v6, const std::vector<api::Cidr>& cidrs) {
  auto v4_count = std::count_if(cidrs.begin(), cidrs.end(), [](const api::Cidr& c) { return c.family == 4; });
  auto v6_count = static_cast<long>(cidrs.size()) - v4_count;
  bpf_map__set_max_entries(v4, static_cast<__u32>(std::max(1L, v4_count)));
  bpf_map__set_max_entries(v6, static_cast<__u32>(std::max(1L, v6_count)));
}

}  // namespace

uint64_t MonotonicNowNs() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(now.tv_nsec);
}

absl::StatusOr<std::unique_ptr<DropProgram>> DropProgram::Load(const DropSpec& spec) {
  if (spec.protocols == 0 || (spec.protocols & ~FL_PROTO_ALL) != 0) {
    return absl::InvalidArgumentError(Cat("drop program: protocol mask 0x", std::hex, spec.protocols,
                                          " selects no packets; use FL_PROTO_* bits"));
  }
  drop* skeleton = drop::open();
  if (skeleton == nullptr)
    return absl::InternalError(Cat("drop program: cannot open: ", std::strerror(errno)));
  auto program = std::unique_ptr<DropProgram>(new DropProgram(skeleton));

  SizeTries(skeleton->maps.peers_v4, skeleton->maps.peers_v6, spec.peers);
  SizeTries(skeleton->maps.excluded_v4, skeleton->maps.excluded_v6, spec.excluded);
  fl_drop_config& config = skeleton->bss->config;
  config.deadline_ns = spec.deadline_ns;
  config.protocols = spec.protocols;
  config.flags = (spec.peers.empty() ? FL_MATCH_ANY_PEER : 0) | (spec.ports.empty() ? 0 : FL_MATCH_PORTS);
  config.drop_threshold = spec.drop_percent >= 100
                              ? FL_DROP_ALL
                              : static_cast<__u64>(std::llround(spec.drop_percent / 100.0 * FL_DROP_ALL));

  if (int err = drop::load(skeleton); err != 0) {
    return absl::FailedPreconditionError(
        Cat("drop program: the kernel refused to load it: ", std::strerror(-err)));
  }
  if (auto s = FillTries(skeleton->maps.peers_v4, skeleton->maps.peers_v6, spec.peers); !s.ok()) return s;
  if (auto s = FillTries(skeleton->maps.excluded_v4, skeleton->maps.excluded_v6, spec.excluded); !s.ok())
    return s;

  __u64 words[FL_PORT_WORDS] = {};
  for (auto [first, last] : spec.ports) {
    for (uint32_t port = first; port <= last; port++) words[port / 64] |= 1ull << (port % 64);
  }
  for (__u32 word = 0; word < FL_PORT_WORDS; word++) {
    if (words[word] == 0) continue;
    int err = bpf_map__update_elem(skeleton->maps.ports, &word, sizeof(word), &words[word],
                                   sizeof(words[word]), BPF_ANY);
    if (err != 0) return MapError("ports", err);
  }
  return program;
}

DropProgram::~DropProgram() { drop::destroy(skeleton_); }

int DropProgram::egress_fd() const { return bpf_program__fd(skeleton_->progs.fl_drop_egress); }

int DropProgram::ingress_fd() const { return bpf_program__fd(skeleton_->progs.fl_drop_ingress); }

DropStats DropProgram::ReadStats() const {
  int cpus = libbpf_num_possible_cpus();
  DropStats stats;
  if (cpus <= 0) return stats;
  std::vector<__u64> values(static_cast<size_t>(cpus));
  auto sum = [&](__u32 key) {
    uint64_t total = 0;
    if (bpf_map__lookup_elem(skeleton_->maps.stats, &key, sizeof(key), values.data(),
                             values.size() * sizeof(__u64), 0) == 0) {
      for (__u64 v : values) total += v;
    }
    return total;
  };
  stats.matched = sum(FL_STAT_MATCHED);
  stats.dropped = sum(FL_STAT_DROPPED);
  return stats;
}

}  // namespace faultline::kernel
