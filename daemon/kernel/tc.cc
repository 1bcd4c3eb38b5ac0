#include "kernel/tc.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/tc_act/tc_mirred.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "faultline/api/cat.h"
#include "log.h"

namespace faultline::kernel {
namespace {

using api::Cat;

// One ClsactHook per (namespace, interface) at a time, so faults on one interface share it.
using HookKey = std::tuple<dev_t, ino_t, int>;
std::mutex hooks_mutex;
std::map<HookKey, std::weak_ptr<ClsactHook>> hooks;

struct Link {
  int ifindex = 0;
  bool ethernet = false;  // frames start with an Ethernet header (tun, wireguard and ipip's do not)
};

// The device named `interface` in `socket`'s namespace (two ioctls on it, which any socket answers for
// its namespace); NOT_FOUND when there is none.
absl::StatusOr<Link> FindLink(RouteSocket& socket, const std::string& interface) {
  ifreq request{};
  std::strncpy(request.ifr_name, interface.c_str(), IFNAMSIZ - 1);
  if (ioctl(socket.fd(), SIOCGIFINDEX, &request) != 0) {
    if (errno == ENODEV) return absl::NotFoundError("no such device");
    return absl::UnavailableError(Cat("cannot look the device up: ", std::strerror(errno)));
  }
  Link found{.ifindex = request.ifr_ifindex};
  found.ethernet =
      ioctl(socket.fd(), SIOCGIFHWADDR, &request) == 0 && request.ifr_hwaddr.sa_family == ARPHRD_ETHER;
  return found;
}

// The name of device `ifindex` in `socket`'s namespace; empty when there is none.
std::string DeviceName(RouteSocket& socket, int ifindex) {
  ifreq request{};
  request.ifr_ifindex = ifindex;
  if (ifindex <= 0 || ioctl(socket.fd(), SIOCGIFNAME, &request) != 0) return "";
  return request.ifr_name;
}

// Adds a clsact qdisc to the device, on `socket` (in its namespace): the kernel's errno, EEXIST when
// the device has one already.
absl::StatusOr<int> AddClsact(RouteSocket& socket, int ifindex) {
  NetlinkMessage msg = ClsactRequest(RTM_NEWQDISC, ifindex);
  if (msg == nullptr) return absl::InternalError("clsact qdisc: cannot build the netlink request");
  auto answer = socket.Request(std::move(msg));
  if (!answer.ok()) return answer.status();
  return answer->error;
}

// What the filters are named after their program ("fl_redirect:[42]", as libbpf and tc name theirs),
// which `tc filter show` prints.
std::string FilterName(int program_fd) {
  bpf_prog_info info{};
  uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(program_fd, &info, &length) != 0) return "fl_program";
  return Cat(info.name, ":[", info.id, "]");
}

uint32_t ClsactParent(Hook direction) {
  return TC_H_MAKE(TC_H_CLSACT, direction == Hook::kEgress ? TC_H_MIN_EGRESS : TC_H_MIN_INGRESS);
}

// Filters on either clsact hook of the device, whoever attached them, asked on `socket`.
absl::StatusOr<size_t> CountClsactFilters(RouteSocket& socket, int ifindex) {
  size_t count = 0;
  for (Hook direction : {Hook::kIngress, Hook::kEgress}) {
    auto filters = DumpTc(socket, RTM_GETTFILTER, ifindex, ClsactParent(direction));
    if (!filters.ok()) return filters.status();
    count += filters->size();
  }
  return count;
}

// What the kernel answers for a filter, qdisc or device that is no longer there.
bool Gone(int error) { return error == ENOENT || error == ENODEV || error == EINVAL; }

// A cls_bpf filter request (RTM_NEWTFILTER, RTM_DELTFILTER) on one clsact hook of the device, for every
// protocol, at `priority` (0: the kernel picks one); null when it cannot be built.
NetlinkMessage FilterMessage(int type, int flags, int ifindex, Hook direction, uint32_t handle,
                             uint32_t priority) {
  NetlinkMessage msg = TcMessage(type, flags, ifindex, ClsactParent(direction), handle, "bpf", 256);
  if (msg != nullptr) {
    static_cast<tcmsg*>(nlmsg_data(nlmsg_hdr(msg.get())))->tcm_info =
        TC_H_MAKE(priority << 16, htons(ETH_P_ALL));
  }
  return msg;
}

// Opens a cls_bpf filter's TCA_OPTIONS in `msg` (null or not) with its program and the program's name;
// null when there is no room. The caller adds the rest and closes the nest.
nlattr* BpfOptions(nl_msg* msg, int program_fd, const std::string& name) {
  nlattr* options = msg == nullptr ? nullptr : nla_nest_start(msg, TCA_OPTIONS);
  if (options == nullptr || nla_put_u32(msg, TCA_BPF_FD, static_cast<uint32_t>(program_fd)) < 0 ||
      nla_put_string(msg, TCA_BPF_NAME, name.c_str()) < 0) {
    return nullptr;
  }
  return options;
}

// Deletes the cls_bpf filter at `handle` and `priority` on one clsact hook of the device, on `socket`
// (in the device's namespace); NOT_FOUND when it, the clsact qdisc or the device is gone.
absl::Status DeleteFilter(RouteSocket& socket, int ifindex, Hook direction, uint32_t handle,
                          uint32_t priority) {
  NetlinkMessage msg = DeleteFilterRequest(ifindex, direction, handle, priority);
  if (msg == nullptr) return absl::InternalError("cannot build the netlink request");
  auto answer = socket.Request(std::move(msg));
  if (!answer.ok()) return answer.status();
  if (Gone(answer->error)) return absl::NotFoundError("the filter is gone");
  if (answer->error != 0) {
    return StatusFromErrno(answer->error, Cat("cannot delete the filter: ",
                                              DescribeKernelError(answer->error, answer->message)));
  }
  return absl::OkStatus();
}

// Whether the device has a clsact (or ingress) qdisc, asked on `socket` (in its namespace). One get of
// the device's ingress slot, not a dump: tc_dump_qdisc walks every device of the namespace, hundreds
// in a node's root namespace.
absl::StatusOr<bool> HasClsact(RouteSocket& socket, int ifindex) {
  // ENOENT (nullopt) when the device never had an ingress slot; once a clsact or ingress qdisc was
  // deleted, the slot holds the kernel's built-in noop qdisc, which it acknowledges but does not report.
  auto qdisc = GetTc(socket, RTM_GETQDISC, ifindex, TC_H_CLSACT);
  if (!qdisc.ok()) return qdisc.status();
  return qdisc->has_value();
}

// A filter's TCA_BPF_NAME, from its dumped options; "" for other kinds.
std::string BpfName(const DumpedTc& filter) {
  if (filter.kind != "bpf" || filter.options.empty()) return "";
  std::vector<uint8_t> options = filter.options;
  nlattr* attrs[TCA_BPF_MAX + 1] = {};
  if (nla_parse(attrs, TCA_BPF_MAX, reinterpret_cast<nlattr*>(options.data()),
                static_cast<int>(options.size()), nullptr) < 0 ||
      attrs[TCA_BPF_NAME] == nullptr) {
    return "";
  }
  const char* chars = static_cast<const char*>(nla_data(attrs[TCA_BPF_NAME]));
  return std::string(chars, strnlen(chars, static_cast<size_t>(nla_len(attrs[TCA_BPF_NAME]))));
}

// Removes the clsact qdisc faultline created on the device, on `socket` (in its namespace): "removed",
// NOT_FOUND when it is gone, or FAILED_PRECONDITION when filters are on it that this agent does not
// hold (an operator's, a CNI's, or one of its own whose attach lost its answer), which are left.
absl::StatusOr<std::string> RemoveClsact(RouteSocket& socket, int ifindex, const std::string& interface) {
  auto exists = HasClsact(socket, ifindex);
  if (!exists.ok()) return exists.status();
  if (!*exists) return absl::NotFoundError("the clsact qdisc is gone");
  auto others = CountClsactFilters(socket, ifindex);
  if (!others.ok()) {
    return absl::UnavailableError(
        Cat("cannot list the filters on the clsact qdisc: ", others.status().message()));
  }
  if (*others != 0) {
    log::Info("kernel.clsact_kept").With("interface", interface).With("other_filters", *others);
    return absl::FailedPreconditionError(Cat("kept: ", *others, " filter(s) it does not hold are on it"));
  }
  NetlinkMessage msg = ClsactRequest(RTM_DELQDISC, ifindex);
  if (msg == nullptr) return absl::InternalError("clsact qdisc: cannot build the netlink request");
  auto answer = socket.Request(std::move(msg));
  if (!answer.ok()) return answer.status();
  if (Gone(answer->error)) return absl::NotFoundError("the clsact qdisc is gone");
  if (answer->error != 0) {
    return absl::InternalError(
        Cat("cannot delete the clsact qdisc: ", DescribeKernelError(answer->error, answer->message)));
  }
  return "removed";
}

// Priority 0: the kernel's pick, not known before the filter exists.
std::string DescribeFilter(const ClsactHook& hook, Hook direction, uint32_t priority, uint32_t handle,
                           const std::string& redirect_to) {
  return Cat("cls_bpf ", HookName(direction),
             priority == 0 ? " at the kernel's priority" : Cat(" pref ", priority), " handle 0x", std::hex,
             handle, std::dec, redirect_to.empty() ? "" : Cat(" with mirred redirect to ", redirect_to),
             " on ", hook.interface(), " in ", hook.netns().Describe());
}

// Journals a filter about to be attached (in the hook's namespace).
absl::StatusOr<JournalEntry> RecordFilter(const ClsactHook& hook, Hook direction, uint32_t priority,
                                          uint32_t handle, const std::string& name,
                                          const std::string& redirect_to) {
  journal::Change change;
  change.set_what(Cat(DescribeFilter(hook, direction, priority, handle, redirect_to), " running ", name));
  journal::Filter* filter = change.mutable_filter();
  *filter->mutable_device() = RecordDevice(hook.netns(), hook.interface(), hook.ifindex());
  filter->set_hook(HookName(direction));
  filter->set_priority(priority);
  filter->set_handle(handle);
  filter->set_name(name);
  return RecordChange(std::move(change));
}

// For a replay: a socket in the namespace of a recorded device, if the device is still the one
// recorded (ReopenDevice). A socket stays in the namespace it was opened in.
absl::StatusOr<std::unique_ptr<RouteSocket>> SocketAt(const journal::Device& device) {
  auto netns = ReopenDevice(device);
  if (!netns.ok()) return netns.status();
  auto scope = NetnsScope::Enter(**netns);
  if (!scope.ok()) return scope.status();
  return RouteSocket::Open();
}

}  // namespace

const char* HookName(Hook hook) { return hook == Hook::kEgress ? "egress" : "ingress"; }

absl::StatusOr<std::shared_ptr<ClsactHook>> ClsactHook::Acquire(std::shared_ptr<Netns> netns,
                                                                const std::string& interface) {
  auto scope = NetnsScope::Enter(*netns);
  if (!scope.ok()) return scope.status();
  // One socket, in the namespace, for every question and the change: opening one costs an inject
  // more than the question it asks (bench/inject-latency).
  std::string where = Cat("interface ", interface, " in ", netns->Describe());
  auto socket = RouteSocket::Open();
  if (!socket.ok()) return absl::Status(socket.status().code(), Cat(where, ": ", socket.status().message()));
  auto link = FindLink(**socket, interface);
  if (absl::IsNotFound(link.status())) {
    return absl::NotFoundError(Cat("interface ", interface, ": no such device in ", netns->Describe()));
  }
  if (!link.ok()) return absl::Status(link.status().code(), Cat(where, ": ", link.status().message()));
  const int ifindex = link->ifindex;
  std::lock_guard lock(hooks_mutex);
  HookKey key{netns->device(), netns->inode(), ifindex};
  if (auto existing = hooks[key].lock()) return existing;

  auto exists = HasClsact(**socket, ifindex);
  if (!exists.ok()) return absl::Status(exists.status().code(), Cat(where, ": ", exists.status().message()));
  JournalEntry entry;
  if (!*exists) {
    journal::Change change;
    change.set_what(Cat("clsact qdisc on ", interface, " in ", netns->Describe()));
    *change.mutable_clsact()->mutable_device() = RecordDevice(*netns, interface, ifindex);
    auto recorded = RecordChange(std::move(change));
    if (!recorded.ok()) return recorded.status();
    entry = *std::move(recorded);
  }
  auto err = AddClsact(**socket, ifindex);
  if (!err.ok()) {
    // The request may have been made with its answer lost: the entry stays open, and the next start's
    // replay removes the clsact if it is there and carries no one else's filters.
    return absl::Status(err.status().code(),
                        Cat(where, ": cannot add a clsact qdisc: ", err.status().message()));
  }
  if (*err != 0 && *err != EEXIST) {
    entry.Done();
    return absl::FailedPreconditionError(Cat(where, ": cannot add a clsact qdisc: ", std::strerror(*err)));
  }
  bool created = *err == 0;
  if (!created) entry.Done();  // there after all: adopted, not made
  bool ethernet = link->ethernet;
  log::Info("kernel.clsact")
      .With("interface", interface)
      .With("netns", netns->Describe())
      .With("created", created);
  auto shared = std::shared_ptr<ClsactHook>(
      new ClsactHook(std::move(netns), interface, ifindex, created, ethernet, *std::move(socket)));
  if (created) shared->entry_ = std::move(entry);
  hooks[key] = shared;
  return shared;
}

ClsactHook::~ClsactHook() {
  // Held until the qdisc is gone, so a concurrent Acquire cannot adopt a clsact that is being removed.
  std::lock_guard lock(hooks_mutex);
  auto it = hooks.find(HookKey{netns_->device(), netns_->inode(), ifindex_});
  if (it != hooks.end() && it->second.expired()) hooks.erase(it);
  if (!created_) return;
  // No lock on the socket: the hook's last owner is going, and no filter is left to use it.
  auto removed = RemoveClsact(*socket_, ifindex_, interface_);
  if (removed.ok() || absl::IsNotFound(removed.status())) {
    entry_.Done();
  } else if (absl::IsFailedPrecondition(removed.status())) {
    // Kept, and its entry stays open: the next start's replay, newest entries first, removes a filter
    // of this agent's that is still journaled, then the clsact if nothing else is left on it.
  } else {
    log::Error("kernel.clsact_remove_failed")
        .With("interface", interface_)
        .With("error", removed.status().ToString());
  }
}

absl::StatusOr<std::unique_ptr<TcFilter>> TcFilter::Attach(std::shared_ptr<ClsactHook> hook, Hook direction,
                                                           int program_fd) {
  std::string where = Cat("interface ", hook->interface(), " in ", hook->netns().Describe(),
                          ": cannot attach a cls_bpf ", HookName(direction), " filter: ");
  constexpr uint32_t kHandle = 1;  // BpfFilterRequest's: the filter is alone at its priority
  const std::string name = FilterName(program_fd);
  // Priority 0: the kernel picks one under the RTNL lock (tc_new_tfilter, tcf_auto_prio), so two
  // processes attaching to one hook at once never pick the same. The journal line names the filter
  // by its handle and its program's name, which carries the program's id, instead of a priority no
  // one knows yet. NLM_F_ECHO: the kernel sends the new filter back, with the priority it gave.
  NetlinkMessage msg = BpfFilterRequest(hook->ifindex(), direction, 0, program_fd, name);
  if (msg == nullptr) return absl::InternalError(Cat(where, "cannot build the netlink request"));
  auto entry = RecordFilter(*hook, direction, 0, kHandle, name, "");
  if (!entry.ok()) return entry.status();
  uint32_t priority = 0;
  auto answer = hook->WithSocket([&](RouteSocket& socket) {
    return socket.Request(std::move(msg), [&](nlmsghdr* reply) {
      if (reply->nlmsg_type == RTM_NEWTFILTER && nlmsg_datalen(reply) >= static_cast<int>(sizeof(tcmsg)))
        priority = TC_H_MAJ(static_cast<const tcmsg*>(nlmsg_data(reply))->tcm_info) >> 16;
    });
  });
  // A lost answer, or no priority in it: the filter may be there and could not be removed by name and
  // priority. The entry stays open, so the next agent's replay, which finds it by name, removes it.
  if (!answer.ok()) return absl::Status(answer.status().code(), Cat(where, answer.status().message()));
  if (answer->error != 0) {
    entry->Done();
    return absl::FailedPreconditionError(
        Cat(where, DescribeKernelError(answer->error, answer->message),
            answer->error == EINVAL
                ? " (the kernel picks no priority for a new filter while one sits at exactly 32768)"
                : ""));
  }
  if (priority == 0) {
    return absl::InternalError(Cat(where, "the kernel did not report the priority it gave the filter"));
  }
  auto filter = std::unique_ptr<TcFilter>(new TcFilter(std::move(hook), direction, kHandle, priority));
  filter->entry_ = *std::move(entry);
  return filter;
}

absl::StatusOr<std::unique_ptr<TcFilter>> TcFilter::AttachRedirect(std::shared_ptr<ClsactHook> hook,
                                                                   int program_fd, uint32_t priority,
                                                                   int target_ifindex) {
  // The destructor names the filter by handle and priority, so both must be known up front.
  if (priority == 0 || priority > 0xffff) {
    return absl::InvalidArgumentError(Cat("redirect filter: priority ", priority, " is not in 1-65535"));
  }
  const std::string target =
      hook->WithSocket([&](RouteSocket& socket) { return DeviceName(socket, target_ifindex); });
  if (target.empty()) {
    return absl::NotFoundError(
        Cat("redirect filter: no device with ifindex ", target_ifindex, " in ", hook->netns().Describe()));
  }
  auto request = RedirectFilterRequest(hook->ifindex(), priority, program_fd, target_ifindex);
  if (!request.ok()) return request.status();
  auto entry = RecordFilter(*hook, Hook::kIngress, priority, 1, FilterName(program_fd), target);
  if (!entry.ok()) return entry.status();
  auto answer = hook->WithSocket([&](RouteSocket& socket) { return socket.Request(*std::move(request)); });
  std::string what = Cat("interface ", hook->interface(), " in ", hook->netns().Describe(),
                         ": cannot attach a cls_bpf ingress filter redirecting to ", target, ": ");
  // A lost answer: the filter may be there, and the entry stays open for the next start's replay.
  if (!answer.ok()) return absl::Status(answer.status().code(), Cat(what, answer.status().message()));
  if (answer->error != 0) {
    entry->Done();
    return StatusFromErrno(answer->error, Cat(what, DescribeKernelError(answer->error, answer->message)));
  }
  auto filter = std::unique_ptr<TcFilter>(new TcFilter(std::move(hook), Hook::kIngress, 1, priority, target));
  filter->entry_ = *std::move(entry);
  return filter;
}

absl::StatusOr<NetlinkMessage> RedirectFilterRequest(int ifindex, uint32_t priority, int program_fd,
                                                     int target_ifindex) {
  auto out_of_room = [] { return absl::InternalError("redirect filter: cannot build the netlink request"); };
  NetlinkMessage msg =
      FilterMessage(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, ifindex, Hook::kIngress, 1, priority);
  if (msg == nullptr) return out_of_room();

  tc_mirred mirred{};
  mirred.action = TC_ACT_STOLEN;  // what tc's "mirred egress redirect" asks for: the packet is gone here
  mirred.eaction = TCA_EGRESS_REDIR;
  mirred.ifindex = static_cast<uint32_t>(target_ifindex);
  nl_msg* m = msg.get();
  // No TCA_BPF_FLAGS, so no TCA_BPF_FLAG_ACT_DIRECT: cls_bpf_classify (net/sched/cls_bpf.c) then goes
  // to the next filter on a 0 return and otherwise runs the filter's actions (tcf_exts_exec).
  nlattr* options = BpfOptions(m, program_fd, FilterName(program_fd));
  if (options == nullptr) return out_of_room();
  nlattr* actions = nla_nest_start(m, TCA_BPF_ACT);
  nlattr* first = actions == nullptr ? nullptr : nla_nest_start(m, 1);  // actions are numbered from 1
  if (first == nullptr || nla_put_string(m, TCA_ACT_KIND, "mirred") < 0) return out_of_room();
  nlattr* parameters = nla_nest_start(m, TCA_ACT_OPTIONS);
  if (parameters == nullptr || nla_put(m, TCA_MIRRED_PARMS, sizeof(mirred), &mirred) < 0 ||
      nla_nest_end(m, parameters) < 0 || nla_nest_end(m, first) < 0 || nla_nest_end(m, actions) < 0 ||
      nla_nest_end(m, options) < 0) {
    return out_of_room();
  }
  return msg;
}

NetlinkMessage BpfFilterRequest(int ifindex, Hook direction, uint32_t priority, int program_fd,
                                const std::string& name) {
  NetlinkMessage msg =
      FilterMessage(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL | (priority == 0 ? NLM_F_ECHO : 0), ifindex,
                    direction, 1, priority);
  nl_msg* m = msg.get();
  nlattr* options = BpfOptions(m, program_fd, name);
  // Direct action: the program's return value is the verdict.
  if (options == nullptr || nla_put_u32(m, TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT) < 0 ||
      nla_nest_end(m, options) < 0) {
    return nullptr;
  }
  return msg;
}

NetlinkMessage DeleteFilterRequest(int ifindex, Hook direction, uint32_t handle, uint32_t priority) {
  return FilterMessage(RTM_DELTFILTER, 0, ifindex, direction, handle, priority);
}

NetlinkMessage ClsactRequest(int type, int ifindex) {
  return TcMessage(type, type == RTM_NEWQDISC ? NLM_F_CREATE | NLM_F_EXCL : 0, ifindex, TC_H_CLSACT,
                   TC_H_MAKE(TC_H_CLSACT, 0), "clsact", 64);
}

TcFilter::~TcFilter() {
  absl::Status deleted = hook_->WithSocket([&](RouteSocket& socket) {
    return DeleteFilter(socket, hook_->ifindex(), direction_, handle_, priority_);
  });
  // NOT_FOUND: someone removed the filter, the clsact qdisc or the interface already; nothing is left.
  if (!deleted.ok() && !absl::IsNotFound(deleted)) {
    log::Error("kernel.filter_remove_failed").With("filter", Describe()).With("error", deleted.ToString());
    return;
  }
  entry_.Done();
}

std::string TcFilter::Describe() const {
  return DescribeFilter(*hook_, direction_, priority_, handle_, redirect_to_);
}

absl::StatusOr<std::string> UndoRecordedClsact(const journal::Clsact& recorded) {
  auto socket = SocketAt(recorded.device());
  if (!socket.ok()) return socket.status();
  auto removed = RemoveClsact(**socket, recorded.device().ifindex(), recorded.device().name());
  // Kept for someone else's filters: nothing of faultline's is left to undo.
  if (absl::IsFailedPrecondition(removed.status())) return absl::NotFoundError(removed.status().message());
  return removed;
}

absl::StatusOr<std::string> UndoRecordedFilter(const journal::Filter& recorded) {
  auto socket = SocketAt(recorded.device());
  if (!socket.ok()) return socket.status();
  Hook direction = recorded.hook() == HookName(Hook::kIngress) ? Hook::kIngress : Hook::kEgress;
  int ifindex = recorded.device().ifindex();
  auto filters = DumpTc(**socket, RTM_GETTFILTER, ifindex, ClsactParent(direction));
  if (!filters.ok()) return filters.status();
  // Priority 0 in the record: the kernel picked it, and the program's name (with its id) finds it.
  auto found = std::find_if(filters->begin(), filters->end(), [&](const DumpedTc& filter) {
    uint32_t priority = TC_H_MAJ(filter.info) >> 16;
    return (recorded.priority() == 0 || priority == recorded.priority()) &&
           filter.handle == recorded.handle() && BpfName(filter) == recorded.name();
  });
  if (found == filters->end())
    return absl::NotFoundError(Cat("no filter ", recorded.name(), " with that handle is on the hook"));
  auto deleted = DeleteFilter(**socket, ifindex, direction, recorded.handle(), TC_H_MAJ(found->info) >> 16);
  if (!deleted.ok()) return deleted;
  return "removed";
}

}  // namespace faultline::kernel
