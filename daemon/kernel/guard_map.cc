#include "kernel/guard_map.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "faultline/api/cat.h"
#include "target_abi.h"

namespace faultline::kernel {
namespace {

using api::Cat;

std::atomic<GuardMap*> installed{nullptr};

fl_guard_key KeyOf(const GuardedEndpoint& endpoint) {
  fl_guard_key key{};
  key.family = static_cast<__u8>(endpoint.family);
  key.port[0] = static_cast<__u8>(endpoint.port >> 8);
  key.port[1] = static_cast<__u8>(endpoint.port & 0xff);
  if (endpoint.every_address) {
    key.prefixlen = FL_GUARD_PREFIX_EVERY_ADDRESS;
  } else {
    key.prefixlen = endpoint.family == 4 ? FL_GUARD_PREFIX_V4 : FL_GUARD_PREFIX_V6;
    std::memcpy(key.addr, endpoint.address.data(), endpoint.family == 4 ? 4 : 16);
  }
  return key;
}

}  // namespace

std::string GuardedEndpoint::Describe() const {
  char text[INET6_ADDRSTRLEN] = {};
  std::array<uint8_t, 16> shown = every_address ? std::array<uint8_t, 16>{} : address;
  inet_ntop(family == 4 ? AF_INET : AF_INET6, shown.data(), text, sizeof(text));
  return family == 4 ? Cat(text, ":", port) : Cat("[", text, "]:", port);
}

absl::StatusOr<std::unique_ptr<GuardMap>> GuardMap::Create() {
  bpf_map_create_opts options{};
  options.sz = sizeof(options);
  options.map_flags = BPF_F_NO_PREALLOC;
  // The attributes must be those of `guarded` in bpf/target.bpf.h, or libbpf refuses to reuse it.
  int fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "fl_guarded", sizeof(fl_guard_key), sizeof(__u8),
                          FL_GUARD_MAX_ENTRIES, &options);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        Cat("control-plane guard: cannot create its BPF map: ", std::strerror(errno)));
  }
  return std::unique_ptr<GuardMap>(new GuardMap(fd));
}

GuardMap::~GuardMap() {
  GuardMap* self = this;
  installed.compare_exchange_strong(self, nullptr);
  close(fd_);
}

absl::Status GuardMap::Add(const GuardedEndpoint& endpoint) {
  const fl_guard_key key = KeyOf(endpoint);
  const __u8 present = 1;
  if (bpf_map_update_elem(fd_, &key, &present, BPF_ANY) != 0) {
    return absl::ResourceExhaustedError(
        Cat("control-plane guard: cannot guard ", endpoint.Describe(), ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

void GuardMap::Remove(const GuardedEndpoint& endpoint) {
  const fl_guard_key key = KeyOf(endpoint);
  bpf_map_delete_elem(fd_, &key);  // ENOENT: not guarded, which is what was asked
}

void GuardMap::Install(GuardMap* map) { installed = map; }

GuardMap* GuardMap::Installed() { return installed; }

}  // namespace faultline::kernel
