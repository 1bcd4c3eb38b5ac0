// clsact hooks and cls_bpf filters on them, over one rtnetlink socket per hook.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "kernel/journal.h"
#include "kernel/netlink.h"
#include "kernel/netns.h"

namespace faultline::kernel {

enum class Hook { kEgress, kIngress };
const char* HookName(Hook hook);

// The clsact qdisc of one interface, shared by every fault's filters there. If faultline created it
// (journaled before), it is removed with the last filter; a clsact the host already had is left alone.
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

  // Runs `use` with the hook's socket, which is in the hook's namespace: no namespace switch and no
  // new socket per filter. One caller at a time, as reverts run beside applies.
  template <typename Use>
  auto WithSocket(Use&& use) {
    std::lock_guard lock(socket_mutex_);
    return use(*socket_);
  }

 private:
  ClsactHook(std::shared_ptr<Netns> netns, std::string interface, int ifindex, bool created, bool ethernet,
             std::unique_ptr<RouteSocket> socket)
      : netns_(std::move(netns)),
        interface_(std::move(interface)),
        ifindex_(ifindex),
        created_(created),
        ethernet_(ethernet),
        socket_(std::move(socket)) {}
  std::shared_ptr<Netns> netns_;
  std::string interface_;
  int ifindex_;
  bool created_;
  bool ethernet_;
  std::mutex socket_mutex_;
  std::unique_ptr<RouteSocket> socket_;  // opened in netns_
  JournalEntry entry_;                   // when created
};

// A cls_bpf filter running one BPF program on a clsact hook; detached when destroyed.
class TcFilter {
 public:
  // Direct action: the program's return value is the verdict. At the priority the kernel picks (49152,
  // then one below the lowest taken from 32768 up: newer filters run first), handle 1.
  static absl::StatusOr<std::unique_ptr<TcFilter>> Attach(std::shared_ptr<ClsactHook> hook, Hook direction,
                                                          int program_fd);
  // On the hook's ingress, at `priority` (not 0): a filter that hands the packets its program selects
  // to the egress of device `target_ifindex`, as RedirectFilterRequest describes.
  static absl::StatusOr<std::unique_ptr<TcFilter>> AttachRedirect(std::shared_ptr<ClsactHook> hook,
                                                                  int program_fd, uint32_t priority,
                                                                  int target_ifindex);
  ~TcFilter();
  TcFilter(const TcFilter&) = delete;
  TcFilter& operator=(const TcFilter&) = delete;

  // "cls_bpf egress pref 49152 handle 0x1 on veth0 in netns /run/netns/x", or for a redirect
  // "cls_bpf ingress pref 60016 handle 0x1 with mirred redirect to ifb-veth0 on veth0 in netns ..."
  std::string Describe() const;

 private:
  TcFilter(std::shared_ptr<ClsactHook> hook, Hook direction, uint32_t handle, uint32_t priority,
           std::string redirect_to = "")
      : hook_(std::move(hook)),
        direction_(direction),
        handle_(handle),
        priority_(priority),
        redirect_to_(std::move(redirect_to)) {}
  std::shared_ptr<ClsactHook> hook_;
  Hook direction_;
  uint32_t handle_;
  uint32_t priority_;
  std::string redirect_to_;  // the device a redirect filter sends packets to; empty otherwise
  JournalEntry entry_;
};

// Replay (Journal::Replay) of a recorded clsact qdisc or filter: what was undone; NOT_FOUND when
// there was nothing left to undo (the namespace, device or object is gone, or the clsact carries
// filters someone else attached); another error when the undo failed.
absl::StatusOr<std::string> UndoRecordedClsact(const journal::Clsact& recorded);
// Deletes the filter at the recorded hook and handle, and the recorded priority (any, when 0 is
// recorded), only if it is cls_bpf with the recorded name (program name and id): never a filter
// someone else attached.
absl::StatusOr<std::string> UndoRecordedFilter(const journal::Filter& recorded);

// The requests the hooks and filters send, which the capability probe sends too (null when they cannot
// be built): a direct-action cls_bpf filter running `program_fd` (named `name`) on the `direction`
// clsact hook of device `ifindex`, handle 1, at `priority` (0: the kernel picks one, and NLM_F_ECHO
// has it send the filter back with the one it gave); the deletion of a cls_bpf filter by handle and
// priority; and the exclusive creation (RTM_NEWQDISC) or the deletion (RTM_DELQDISC) of the device's
// clsact qdisc.
NetlinkMessage BpfFilterRequest(int ifindex, Hook direction, uint32_t priority, int program_fd,
                                const std::string& name);
NetlinkMessage DeleteFilterRequest(int ifindex, Hook direction, uint32_t handle, uint32_t priority);
NetlinkMessage ClsactRequest(int type, int ifindex);

// The request for a redirect filter on the clsact ingress hook of device `ifindex`: cls_bpf at
// `priority`, handle 1, WITHOUT direct action, running `program_fd`, with one mirred action that
// redirects the packets the program selects (any nonzero return; 0 passes them to the next filter)
// to the egress of device `target_ifindex`. Not bpf_redirect() in a direct-action program: before
// kernel 6.4 that leaves the packet unmarked as redirected, and an ifb device drops such packets;
// mirred marks every packet it redirects (skb_set_redirected). The capability probe sends this same
// request, so "mirred" available means the drivers' filter attaches.
absl::StatusOr<NetlinkMessage> RedirectFilterRequest(int ifindex, uint32_t priority, int program_fd,
                                                     int target_ifindex);

}  // namespace faultline::kernel
