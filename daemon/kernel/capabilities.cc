#include "kernel/capabilities.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/netem.h>
#include <netlink/route/qdisc/prio.h>
#include <netlink/route/qdisc/tbf.h>
#include <netlink/route/tc.h>
#include <netlink/socket.h>
#include <sched.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "faultline/api/cat.h"
#include "faultline/api/file_descriptor.h"
#include "kernel/netlink.h"
#include "kernel/tc.h"

namespace faultline::kernel {
namespace {

using api::Cat;
using v1::Feature;

// The loopback device is registered first in every network namespace and always gets
// LOOPBACK_IFINDEX (include/net/net_namespace.h), so a fresh namespace's lo is ifindex 1.
constexpr int kLoopbackIfindex = 1;

// What each probe makes, and where it comes from in the kernel, so a missing one can be named in a
// way an operator can act on.
struct KernelPart {
  std::string_view feature;
  std::string_view what;
  std::string_view made;  // what the probe did when the kernel let it
  std::string_view config;
  std::string_view module;
};

constexpr KernelPart kParts[] = {
    {"netem", "netem qdisc", "added and deleted a root netem qdisc on lo", "CONFIG_NET_SCH_NETEM",
     "sch_netem"},
    {"tbf", "tbf qdisc", "added and deleted a root tbf qdisc on lo", "CONFIG_NET_SCH_TBF", "sch_tbf"},
    {"htb", "htb qdisc", "added and deleted a root htb qdisc on lo", "CONFIG_NET_SCH_HTB", "sch_htb"},
    {"prio", "prio qdisc", "added and deleted a root prio qdisc on lo", "CONFIG_NET_SCH_PRIO", "sch_prio"},
    {"fq", "fq qdisc", "added and deleted a root fq qdisc on lo", "CONFIG_NET_SCH_FQ", "sch_fq"},
    {"ifb", "ifb device", "created and deleted an ifb device", "CONFIG_IFB", "ifb"},
    {"clsact", "clsact qdisc", "added and deleted a clsact qdisc on lo", "CONFIG_NET_SCH_INGRESS",
     "sch_ingress"},
    {"cls_bpf", "cls_bpf classifier", "attached and detached a cls_bpf filter at lo's clsact egress hook",
     "CONFIG_NET_CLS_BPF", "cls_bpf"},
    {"mirred", "mirred action",
     "attached and detached a cls_bpf filter with a mirred redirect at lo's clsact ingress hook",
     "CONFIG_NET_ACT_MIRRED", "act_mirred"},
};

const KernelPart& PartOf(std::string_view feature) {
  return *std::find_if(std::begin(kParts), std::end(kParts),
                       [&](const KernelPart& part) { return part.feature == feature; });
}

Feature MakeFeature(std::string_view name, bool available, std::string detail) {
  Feature feature;
  feature.set_name(std::string(name));
  feature.set_available(available);
  feature.set_detail(std::move(detail));
  return feature;
}

// DescribeKernelError for an errno or its negative, as libbpf returns it.
std::string DescribeError(int error, std::string_view kernel_message = {}) {
  return DescribeKernelError(error < 0 ? -error : error, kernel_message);
}

// Turns the kernel's answer to "create one of these" into a feature. `missing_error` is the errno the
// kernel uses for a kind it does not have; privilege errors say nothing about the kind; any other
// refusal comes after the kernel found the kind, so the kind exists. `error` may be an errno or its
// negative, as libbpf returns it.
Feature FromAnswer(std::string_view name, int error, std::string_view kernel_message, int missing_error) {
  const KernelPart& part = PartOf(name);
  error = error < 0 ? -error : error;
  if (error == 0) return MakeFeature(name, true, Cat(part.made, " in a scratch network namespace"));
  if (error == missing_error) {
    return MakeFeature(name, false,
                       Cat("the kernel has no ", part.what, ": ", DescribeError(error, kernel_message),
                           "; it needs ", part.config, " built in, or module ", part.module, " installed"));
  }
  if (error == EPERM || error == EACCES) {
    return MakeFeature(name, false,
                       Cat("could not probe the ", part.what, ": ", DescribeError(error, kernel_message),
                           "; the agent needs CAP_NET_ADMIN"));
  }
  return MakeFeature(name, true,
                     Cat("the kernel knows the ", part.what,
                         " but refused the probe's request: ", DescribeError(error, kernel_message)));
}

// --- rtnetlink ------------------------------------------------------------------------------------

// Options the kernel accepts, so a kernel that has the kind creates it rather than refusing the
// message. libnl needs some of them too: prio's message builder calls BUG() (abort) without a
// priomap, and tbf's refuses to build without a rate and a limit.
int SetMinimalOptions(rtnl_qdisc* qdisc, std::string_view kind) {
  if (kind == "tbf") {
    // tc's "rate 1mbit burst 32k limit 32k": 125000 bytes/s, a 32 KiB bucket.
    rtnl_qdisc_tbf_set_limit(qdisc, 32 * 1024);
    rtnl_qdisc_tbf_set_rate(qdisc, 125000, 32 * 1024, 0);
  } else if (kind == "prio") {
    uint8_t priomap[] = QDISC_PRIO_DEFAULT_PRIOMAP;
    rtnl_qdisc_prio_set_bands(qdisc, 3);
    return rtnl_qdisc_prio_set_priomap(qdisc, priomap, sizeof(priomap));
  } else if (kind == "netem") {
    rtnl_netem_set_limit(qdisc, 1000);
  }
  return 0;
}

// Asks for a root qdisc of `kind` on lo. qdisc_create (net/sched/sch_api.c) looks the kind up first
// (trying to load module sch_<kind>) and answers ENOENT "Specified qdisc kind is unknown" when it
// has none; any later refusal is about the options, so the kind exists.
Feature ProbeQdisc(RouteSocket& socket, std::string_view kind) {
  std::unique_ptr<rtnl_qdisc, decltype(&rtnl_qdisc_put)> qdisc(rtnl_qdisc_alloc(), &rtnl_qdisc_put);
  if (qdisc == nullptr) return MakeFeature(kind, false, "could not probe: libnl: out of memory");
  rtnl_tc* tc = TC_CAST(qdisc.get());
  rtnl_tc_set_ifindex(tc, kLoopbackIfindex);
  // Kind first: libnl's kind-specific setters abort the process when the kind is not set yet.
  if (int err = rtnl_tc_set_kind(tc, std::string(kind).c_str()); err < 0) {
    return MakeFeature(kind, false, Cat("could not probe: libnl: ", nl_geterror(err)));
  }
  rtnl_tc_set_parent(tc, TC_H_ROOT);
  if (int err = SetMinimalOptions(qdisc.get(), kind); err < 0) {
    return MakeFeature(kind, false, Cat("could not probe: libnl: ", nl_geterror(err)));
  }

  auto answer = socket.RunLibnl(
      [&](nl_sock* sock) { return rtnl_qdisc_add(sock, qdisc.get(), NLM_F_CREATE | NLM_F_EXCL); });
  if (!answer.ok()) return MakeFeature(kind, false, Cat("could not probe: ", answer.status().message()));
  if (answer->error == 0) {
    // Not strictly needed (the namespace takes it along), but the probe leaves nothing it made.
    (void)socket.RunLibnl([&](nl_sock* sock) { return rtnl_qdisc_delete(sock, qdisc.get()); });
  }
  return FromAnswer(kind, answer->error, answer->message, ENOENT);
}

// Asks for an ifb device. rtnl_newlink (net/core/rtnetlink.c) answers EOPNOTSUPP "Unknown device
// type" for a link kind it has no rtnl_link_ops for (after trying module rtnl-link-<kind>).
Feature ProbeIfb(RouteSocket& socket) {
  std::unique_ptr<rtnl_link, decltype(&rtnl_link_put)> link(rtnl_link_alloc(), &rtnl_link_put);
  if (link == nullptr) return MakeFeature("ifb", false, "could not probe: libnl: out of memory");
  rtnl_link_set_name(link.get(), "flprobe0");
  if (int err = rtnl_link_set_type(link.get(), "ifb"); err < 0) {
    return MakeFeature("ifb", false, Cat("could not probe: libnl: ", nl_geterror(err)));
  }
  auto answer = socket.RunLibnl(
      [&](nl_sock* sock) { return rtnl_link_add(sock, link.get(), NLM_F_CREATE | NLM_F_EXCL); });
  if (!answer.ok()) return MakeFeature("ifb", false, Cat("could not probe: ", answer.status().message()));
  if (answer->error == 0) {
    (void)socket.RunLibnl([&](nl_sock* sock) { return rtnl_link_delete(sock, link.get()); });
  }
  return FromAnswer("ifb", answer->error, answer->message, EOPNOTSUPP);
}

// --- libbpf ---------------------------------------------------------------------------------------

// libbpf prints through one process-wide callback. While a probe runs, lines printed on a thread that
// is capturing are kept for the feature details; lines from any other thread go on to the callback
// that was installed before, which is put back when the probe ends.
std::mutex probe_mutex;  // one probe at a time, as they share the callback
std::atomic<libbpf_print_fn_t> previous_print{nullptr};
thread_local std::vector<std::string>* captured_lines = nullptr;

int CapturingPrint(libbpf_print_level level, const char* format, va_list args) {
  if (captured_lines == nullptr) {
    libbpf_print_fn_t previous = previous_print.load();
    return previous != nullptr ? previous(level, format, args) : 0;
  }
  char line[512];
  int length = vsnprintf(line, sizeof(line), format, args);
  std::string_view text(line);
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  captured_lines->emplace_back(text);
  return length;
}

class LibbpfPrintRedirect {
 public:
  LibbpfPrintRedirect() { previous_print = libbpf_set_print(&CapturingPrint); }
  ~LibbpfPrintRedirect() { libbpf_set_print(previous_print.load()); }
  LibbpfPrintRedirect(const LibbpfPrintRedirect&) = delete;
  LibbpfPrintRedirect& operator=(const LibbpfPrintRedirect&) = delete;
};

// Runs one libbpf call with its output captured. Returns its result; `kernel_message` gets the
// extended-ack text libbpf printed as "Kernel error message: ..." (libbpf's netlink.c), if any.
int CallLibbpf(std::string* kernel_message, const std::function<int()>& call) {
  std::vector<std::string> lines;
  captured_lines = &lines;
  int result = call();
  captured_lines = nullptr;
  constexpr std::string_view kPrefix = "Kernel error message: ";
  kernel_message->clear();
  for (const std::string& line : lines) {
    if (auto at = line.find(kPrefix); at != std::string::npos)
      *kernel_message = line.substr(at + kPrefix.size());
  }
  return result;
}

// Loads "r0 = TC_ACT_UNSPEC; exit", the smallest program the verifier accepts as sched_cls. Returns
// the program's fd, or a negative errno with `detail` saying why.
int LoadTrivialSchedCls(std::string* detail) {
  const bpf_insn program[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K,
       .dst_reg = BPF_REG_0,
       .src_reg = 0,
       .off = 0,
       .imm = TC_ACT_UNSPEC},
      {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
  };
  char verifier_log[1024] = "";
  bpf_prog_load_opts opts{};
  opts.sz = sizeof(opts);
  // With a buffer, libbpf retries a failed load with log_level 1 so the verifier says why.
  opts.log_buf = verifier_log;
  opts.log_size = sizeof(verifier_log);
  std::string unused;
  int fd = CallLibbpf(&unused, [&] {
    return bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "fl_probe", "GPL", program, std::size(program), &opts);
  });
  if (fd >= 0) return fd;
  std::string_view log(verifier_log);
  log = log.substr(0, log.find('\n'));
  *detail = Cat("the kernel refused a trivial sched_cls program: ", DescribeError(fd));
  if (fd == -EPERM || fd == -EACCES)
    *detail += "; the agent needs CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN)";
  if (!log.empty()) *detail += Cat("; verifier: ", log);
  return fd;
}

// Sends a request whose answer changes nothing (a probe's cleanup); a request that could not be built
// is not sent.
void Send(RouteSocket& socket, NetlinkMessage request) {
  if (request != nullptr) (void)socket.Request(std::move(request));
}

// Feature `name` as the kernel's answer to `request` says, ENOENT meaning the kernel lacks it.
Feature FromRequest(std::string_view name, RouteSocket& socket, NetlinkMessage request) {
  if (request == nullptr)
    return MakeFeature(name, false, "could not probe: cannot build the netlink request");
  auto answer = socket.Request(std::move(request));
  if (!answer.ok()) return MakeFeature(name, false, Cat("could not probe: ", answer.status().message()));
  return FromAnswer(name, answer->error, answer->message, ENOENT);
}

// The redirect filter ingress shaping attaches (RedirectFilterRequest), from lo's ingress to lo's
// egress, on a clsact hook that exists. tcf_action_init_1 (net/sched/act_api.c) answers ENOENT "Failed
// to load TC action module" for an action kind it has none of (after trying module act_<kind>).
Feature ProbeMirred(RouteSocket& socket, int program_fd) {
  constexpr uint32_t kPriority = 1;
  auto request = RedirectFilterRequest(kLoopbackIfindex, kPriority, program_fd, kLoopbackIfindex);
  if (!request.ok())
    return MakeFeature("mirred", false, Cat("could not probe: ", request.status().message()));
  Feature mirred = FromRequest("mirred", socket, *std::move(request));
  if (mirred.available()) Send(socket, DeleteFilterRequest(kLoopbackIfindex, Hook::kIngress, 1, kPriority));
  return mirred;
}

// bpf, clsact, cls_bpf and mirred, in that order of dependence. clsact, cls_bpf and mirred are tried
// only when the thread is in the scratch namespace, with `socket` open there: the requests the hooks
// and filters send (kernel/tc.h).
void ProbeBpf(const std::string& no_netns_reason, RouteSocket* socket, std::map<std::string, Feature>* out) {
  std::string detail;
  api::FileDescriptor program(LoadTrivialSchedCls(&detail));
  (*out)["bpf"] =
      program.get() >= 0
          ? MakeFeature("bpf", true, "loaded and unloaded a sched_cls program (r0 = TC_ACT_UNSPEC)")
          : MakeFeature("bpf", false, detail);
  if (socket == nullptr) {
    for (const char* name : {"clsact", "cls_bpf", "mirred"})
      (*out)[name] = MakeFeature(name, false, no_netns_reason);
    return;
  }

  // The kernel answers ENOENT for the kind as for any qdisc it does not have.
  (*out)["clsact"] = FromRequest("clsact", *socket, ClsactRequest(RTM_NEWQDISC, kLoopbackIfindex));
  if (!(*out)["clsact"].available()) {
    (*out)["cls_bpf"] =
        MakeFeature("cls_bpf", false, "not probed: it is attached to a clsact hook, which could not be made");
    (*out)["mirred"] = MakeFeature("mirred", false,
                                   "not probed: it runs in a cls_bpf filter on a clsact hook, "
                                   "which could not be made");
    return;
  }

  if (program.get() < 0) {
    (*out)["cls_bpf"] = MakeFeature("cls_bpf", false,
                                    "not probed: it runs a BPF program, and none could be loaded (see bpf)");
    (*out)["mirred"] = MakeFeature(
        "mirred", false, "not probed: it runs in a cls_bpf filter, and no BPF program could be loaded");
  } else {
    // tcf_proto_lookup_ops (net/sched/cls_api.c) answers ENOENT "TC classifier not found" for a
    // classifier kind the kernel does not have; the hook exists, so no other ENOENT is possible.
    constexpr uint32_t kPriority = 1;
    (*out)["cls_bpf"] =
        FromRequest("cls_bpf", *socket,
                    BpfFilterRequest(kLoopbackIfindex, Hook::kEgress, kPriority, program.get(), "fl_probe"));
    if ((*out)["cls_bpf"].available()) {
      Send(*socket, DeleteFilterRequest(kLoopbackIfindex, Hook::kEgress, 1, kPriority));
      (*out)["mirred"] = ProbeMirred(*socket, program.get());
    } else {
      (*out)["mirred"] =
          MakeFeature("mirred", false, "not probed: it runs in a cls_bpf filter (see cls_bpf)");
    }
  }
  Send(*socket, ClsactRequest(RTM_DELQDISC, kLoopbackIfindex));
}

Feature ProbeBtf() {
  std::string unused;
  btf* vmlinux = nullptr;
  int err = CallLibbpf(&unused, [&] {
    vmlinux = btf__load_vmlinux_btf();
    return vmlinux == nullptr ? -errno : 0;
  });
  if (vmlinux == nullptr) {
    return MakeFeature(
        "btf", false,
        Cat("libbpf found no kernel BTF: ", DescribeError(err),
            "; the kernel needs CONFIG_DEBUG_INFO_BTF (it then serves /sys/kernel/btf/vmlinux)"));
  }
  unsigned types = btf__type_cnt(vmlinux);
  btf__free(vmlinux);
  return MakeFeature("btf", true, Cat("loaded the kernel's BTF: ", types, " types"));
}

// Everything that needs the kernel's netlink and tc machinery, run on a thread of its own.
// unshare(CLONE_NEWNET) moves only the calling thread into the new namespace (each thread has its
// own nsproxy), and the namespace is freed when its last reference goes: the thread's, at exit, once
// every socket and program made here is closed. Nothing here ever runs in the agent's namespace.
std::map<std::string, Feature> ProbeInScratchNetns() {
  std::map<std::string, Feature> out;
  bool in_scratch = unshare(CLONE_NEWNET) == 0;
  std::string reason;
  if (!in_scratch) {
    int err = errno;
    reason = Cat("not probed: could not create a scratch network namespace to probe in: ", DescribeError(err),
                 err == EPERM ? "; the agent needs CAP_SYS_ADMIN" : "");
  }

  std::unique_ptr<RouteSocket> socket;
  if (in_scratch) {
    auto opened = RouteSocket::Open();
    if (opened.ok()) {
      socket = *std::move(opened);
    } else {
      reason = Cat("not probed: ", opened.status().message());
    }
  }
  for (std::string_view kind : {"netem", "tbf", "htb", "prio", "fq"}) {
    out[std::string(kind)] = socket ? ProbeQdisc(*socket, kind) : MakeFeature(kind, false, reason);
  }
  out["ifb"] = socket ? ProbeIfb(*socket) : MakeFeature("ifb", false, reason);
  ProbeBpf(reason, socket.get(), &out);
  socket.reset();
  out["btf"] = ProbeBtf();
  return out;
}

// --- cgroup2 --------------------------------------------------------------------------------------

}  // namespace

bool IsCgroup2(const std::string& path) {
  struct statfs fs {};
  return statfs(path.c_str(), &fs) == 0 && static_cast<unsigned long>(fs.f_type) == CGROUP2_SUPER_MAGIC;
}

namespace {

// Undoes mountinfo's octal escapes (\040 for a space, show_path in fs/proc_namespace.c).
std::string UnescapeMountPath(std::string_view path) {
  std::string out;
  for (size_t i = 0; i < path.size(); ++i) {
    bool octal =
        path[i] == '\\' && path.size() - i >= 4 &&
        std::all_of(path.begin() + i + 1, path.begin() + i + 4, [](char c) { return c >= '0' && c <= '7'; });
    if (octal) {
      out += static_cast<char>((path[i + 1] - '0') * 64 + (path[i + 2] - '0') * 8 + (path[i + 3] - '0'));
      i += 3;
    } else {
      out += path[i];
    }
  }
  return out;
}

}  // namespace

std::string FindCgroup2Mount() {
  if (IsCgroup2("/sys/fs/cgroup")) return "/sys/fs/cgroup";
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) {
    // "36 35 98:0 / /mnt/a rw,relatime shared:1 - cgroup2 cgroup2 rw" (proc(5)): fields up to the
    // " - " separator, then the filesystem type.
    size_t separator = line.find(" - ");
    if (separator == std::string::npos) continue;
    std::istringstream tail(line.substr(separator + 3));
    std::string fstype;
    tail >> fstype;
    if (fstype != "cgroup2") continue;
    std::istringstream head(line.substr(0, separator));
    std::string skipped;  // mount id, parent id, major:minor, root
    std::string mount_point;
    head >> skipped >> skipped >> skipped >> skipped >> mount_point;
    std::string path = UnescapeMountPath(mount_point);
    if (IsCgroup2(path)) return path;
  }
  return "";
}

namespace {

bool KernelKnowsFilesystem(std::string_view type) {
  std::ifstream filesystems("/proc/filesystems");
  std::string line;
  while (std::getline(filesystems, line)) {
    // "nodev\tcgroup2" or "\text4"
    if (std::string_view(line).substr(line.rfind('\t') + 1) == type) return true;
  }
  return false;
}

Feature ProbeCgroup2() {
  std::string mount = FindCgroup2Mount();
  if (mount.empty()) {
    return MakeFeature("cgroup2", false,
                       KernelKnowsFilesystem("cgroup2")
                           ? "the kernel has cgroup2 but none is mounted here; mount one with "
                             "`mount -t cgroup2 none /sys/fs/cgroup` (or /sys/fs/cgroup/unified)"
                           : "the kernel has no cgroup2 filesystem (not in /proc/filesystems)");
  }
  std::ifstream file(mount + "/cgroup.controllers");
  if (!file.is_open()) {
    return MakeFeature(
        "cgroup2", true,
        Cat("mounted at ", mount, "; cannot read its cgroup.controllers: ", std::strerror(errno)));
  }
  std::string controllers;
  std::getline(file, controllers);
  // The root's cgroup.controllers lists what this hierarchy can use: controllers bound to a cgroup v1
  // hierarchy are missing from it.
  return MakeFeature(
      "cgroup2", true,
      Cat("mounted at ", mount, "; controllers: ",
          controllers.empty() ? "none (each is bound to a cgroup v1 hierarchy or not built)" : controllers));
}

std::string KernelRelease() {
  utsname name{};
  return uname(&name) == 0 ? std::string(name.release) : std::string();
}

}  // namespace

bool KernelFeatures::Has(std::string_view name) const {
  const Feature* feature = Find(name);
  return feature != nullptr && feature->available();
}

const Feature* KernelFeatures::Find(std::string_view name) const {
  auto it = std::find_if(features.begin(), features.end(),
                         [&](const Feature& feature) { return feature.name() == name; });
  return it == features.end() ? nullptr : &*it;
}

KernelFeatures ProbeKernelFeatures() {
  KernelFeatures result;
  result.release = KernelRelease();
  std::map<std::string, Feature> found;
  {
    std::lock_guard lock(probe_mutex);
    LibbpfPrintRedirect redirect;
    std::string failure;
    try {
      std::thread prober([&] {
        try {
          found = ProbeInScratchNetns();
        } catch (const std::exception& e) {
          failure = e.what();
        }
      });
      prober.join();
    } catch (const std::exception& e) {
      failure = Cat("could not start the probe's thread: ", e.what());
    }
    if (!failure.empty()) found.clear();
    for (std::string_view name : kProbedFeatures) {
      if (name != "cgroup2" && !found.contains(std::string(name))) {
        found[std::string(name)] = MakeFeature(name, false, Cat("not probed: ", failure));
      }
    }
  }
  found["cgroup2"] = ProbeCgroup2();
  for (std::string_view name : kProbedFeatures) result.features.push_back(found[std::string(name)]);
  return result;
}

}  // namespace faultline::kernel
