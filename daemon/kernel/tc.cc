#include "kernel/tc.h"

#include <bpf/libbpf.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netlink/route/classifier.h>
#include <netlink/route/tc.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "faultline/api/cat.h"
#include "log.h"

namespace faultline::kernel {
namespace {

using api::Cat;

// One ClsactHook per (namespace, interface) at a time, so faults on one interface share it.
using HookKey = std::tuple<dev_t, ino_t, int>;
std::mutex hooks_mutex;
std::map<HookKey, std::weak_ptr<ClsactHook>> hooks;

bpf_tc_hook MakeHook(int ifindex, bpf_tc_attach_point point) {
  bpf_tc_hook hook{};
  hook.sz = sizeof(hook);
  hook.ifindex = ifindex;
  hook.attach_point = point;
  return hook;
}

bpf_tc_attach_point AttachPoint(Hook direction) {
  return direction == Hook::kEgress ? BPF_TC_EGRESS : BPF_TC_INGRESS;
}

// Whether frames on the interface start with an Ethernet header (tun, wireguard and ipip do not).
bool HasEthernetHeader(const std::string& interface) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ifreq request{};
  std::strncpy(request.ifr_name, interface.c_str(), IFNAMSIZ - 1);
  bool ethernet = ioctl(fd, SIOCGIFHWADDR, &request) == 0 && request.ifr_hwaddr.sa_family == ARPHRD_ETHER;
  close(fd);
  return ethernet;
}

// Filters on either clsact hook of an interface, whoever attached them; -1 when they cannot be listed.
int CountClsactFilters(int ifindex) {
  nl_sock* sock = nl_socket_alloc();
  if (sock == nullptr || nl_connect(sock, NETLINK_ROUTE) != 0) {
    nl_socket_free(sock);
    return -1;
  }
  int count = 0;
  for (uint32_t minor : {TC_H_MIN_INGRESS, TC_H_MIN_EGRESS}) {
    nl_cache* cache = nullptr;
    if (rtnl_cls_alloc_cache(sock, ifindex, TC_H_MAKE(TC_H_CLSACT, minor), &cache) != 0) {
      count = -1;
      break;
    }
    count += nl_cache_nitems(cache);
    nl_cache_free(cache);
  }
  nl_socket_free(sock);
  return count;
}

}  // namespace

const char* HookName(Hook hook) { return hook == Hook::kEgress ? "egress" : "ingress"; }

absl::StatusOr<std::shared_ptr<ClsactHook>> ClsactHook::Acquire(std::shared_ptr<Netns> netns,
                                                                const std::string& interface) {
  auto scope = NetnsScope::Enter(*netns);
  if (!scope.ok()) return scope.status();
  int ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
  if (ifindex == 0) {
    return absl::NotFoundError(Cat("interface ", interface, ": no such device in ", netns->Describe()));
  }
  std::lock_guard lock(hooks_mutex);
  HookKey key{netns->device(), netns->inode(), ifindex};
  if (auto existing = hooks[key].lock()) return existing;

  bpf_tc_hook hook = MakeHook(ifindex, BPF_TC_INGRESS);
  int err = bpf_tc_hook_create(&hook);
  if (err != 0 && err != -EEXIST) {
    return absl::FailedPreconditionError(Cat("interface ", interface, " in ", netns->Describe(),
                                             ": cannot add a clsact qdisc: ", std::strerror(-err)));
  }
  bool created = err == 0;
  bool ethernet = HasEthernetHeader(interface);
  log::Info("kernel.clsact")
      .With("interface", interface)
      .With("netns", netns->Describe())
      .With("created", created);
  auto shared =
      std::shared_ptr<ClsactHook>(new ClsactHook(std::move(netns), interface, ifindex, created, ethernet));
  hooks[key] = shared;
  return shared;
}

ClsactHook::~ClsactHook() {
  // Held until the qdisc is gone, so a concurrent Acquire cannot adopt a clsact that is being removed.
  std::lock_guard lock(hooks_mutex);
  auto it = hooks.find(HookKey{netns_->device(), netns_->inode(), ifindex_});
  if (it != hooks.end() && it->second.expired()) hooks.erase(it);
  if (!created_) return;
  auto scope = NetnsScope::Enter(*netns_);
  if (!scope.ok()) {
    log::Error("kernel.clsact_remove_failed")
        .With("interface", interface_)
        .With("error", scope.status().ToString());
    return;
  }
  // Someone else attached filters to the clsact faultline made (an operator, a CNI): leave it to them.
  if (int others = CountClsactFilters(ifindex_); others != 0) {
    log::Info("kernel.clsact_kept").With("interface", interface_).With("other_filters", others);
    return;
  }
  // Destroying with both attach points set deletes the clsact qdisc itself.
  bpf_tc_hook hook = MakeHook(ifindex_, static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  int err = bpf_tc_hook_destroy(&hook);
  if (err != 0 && err != -ENOENT && err != -EINVAL && err != -ENODEV) {
    log::Error("kernel.clsact_remove_failed")
        .With("interface", interface_)
        .With("error", std::strerror(-err));
  }
}

absl::StatusOr<std::unique_ptr<TcFilter>> TcFilter::Attach(std::shared_ptr<ClsactHook> hook, Hook direction,
                                                           int program_fd, uint32_t priority) {
  auto scope = NetnsScope::Enter(hook->netns());
  if (!scope.ok()) return scope.status();
  bpf_tc_hook tc_hook = MakeHook(hook->ifindex(), AttachPoint(direction));
  bpf_tc_opts opts{};
  opts.sz = sizeof(opts);
  opts.prog_fd = program_fd;
  opts.priority = priority;
  // handle and priority 0: the kernel picks a free priority, so faults never replace each other's filters.
  int err = bpf_tc_attach(&tc_hook, &opts);
  if (err != 0) {
    return absl::FailedPreconditionError(Cat("interface ", hook->interface(), " in ",
                                             hook->netns().Describe(), ": cannot attach a cls_bpf ",
                                             HookName(direction), " filter: ", std::strerror(-err)));
  }
  return std::unique_ptr<TcFilter>(new TcFilter(std::move(hook), direction, opts.handle, opts.priority));
}

TcFilter::~TcFilter() {
  auto scope = NetnsScope::Enter(hook_->netns());
  if (!scope.ok()) {
    log::Error("kernel.filter_remove_failed")
        .With("filter", Describe())
        .With("error", scope.status().ToString());
    return;
  }
  bpf_tc_hook tc_hook = MakeHook(hook_->ifindex(), AttachPoint(direction_));
  bpf_tc_opts opts{};
  opts.sz = sizeof(opts);
  opts.handle = handle_;
  opts.priority = priority_;
  int err = bpf_tc_detach(&tc_hook, &opts);
  // ENOENT/ENODEV: someone removed the filter, the clsact qdisc or the interface already; nothing is left.
  if (err != 0 && err != -ENOENT && err != -ENODEV && err != -EINVAL) {
    log::Error("kernel.filter_remove_failed").With("filter", Describe()).With("error", std::strerror(-err));
  }
}

std::string TcFilter::Describe() const {
  return Cat("cls_bpf ", HookName(direction_), " pref ", priority_, " handle 0x", std::hex, handle_, std::dec,
             " on ", hook_->interface(), " in ", hook_->netns().Describe());
}

}  // namespace faultline::kernel
