// clsact hooks and cls_bpf filters on them, through libbpf's netlink calls.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kernel/netns.h"

namespace faultline::kernel {

enum class Hook { kEgress, kIngress };
const char* HookName(Hook hook);

// The clsact qdisc of one interface, shared by every fault's filters there. If faultline created it,
// it is removed with the last filter; a clsact the host already had is left alone.
class ClsactHook {
 public:
  static absl::StatusOr<std::shared_ptr<ClsactHook>> Acquire(std::shared_ptr<Netns> netns,
                                                             const std::string& interface);
  ~ClsactHook();
  ClsactHook(const ClsactHook&) = delete;
  ClsactHook& operator=(const ClsactHook&) = delete;

  const Netns& netns() const { return *netns_; }
  const std::string& interface() const { return interface_; }
  int ifindex() const { return ifindex_; }
  bool created() const { return created_; }
  // False for interfaces whose frames carry no Ethernet header (tun, wireguard, ipip).
  bool ethernet() const { return ethernet_; }

 private:
  ClsactHook(std::shared_ptr<Netns> netns, std::string interface, int ifindex, bool created, bool ethernet)
      : netns_(std::move(netns)),
        interface_(std::move(interface)),
        ifindex_(ifindex),
        created_(created),
        ethernet_(ethernet) {}
  std::shared_ptr<Netns> netns_;
  std::string interface_;
  int ifindex_;
  bool created_;
  bool ethernet_;
};

// A direct-action cls_bpf filter running one BPF program on a clsact hook; detached when destroyed.
class TcFilter {
 public:
  // `priority` 0 lets the kernel pick a free one (49152, then lower: newer filters run first); a
  // filter that must run after every such one (a redirect) asks for a higher number.
  static absl::StatusOr<std::unique_ptr<TcFilter>> Attach(std::shared_ptr<ClsactHook> hook, Hook direction,
                                                          int program_fd, uint32_t priority = 0);
  ~TcFilter();
  TcFilter(const TcFilter&) = delete;
  TcFilter& operator=(const TcFilter&) = delete;

  // "cls_bpf egress pref 49152 handle 0x1 on veth0 in netns /run/netns/x"
  std::string Describe() const;

 private:
  TcFilter(std::shared_ptr<ClsactHook> hook, Hook direction, uint32_t handle, uint32_t priority)
      : hook_(std::move(hook)), direction_(direction), handle_(handle), priority_(priority) {}
  std::shared_ptr<ClsactHook> hook_;
  Hook direction_;
  uint32_t handle_;
  uint32_t priority_;
};

}  // namespace faultline::kernel
