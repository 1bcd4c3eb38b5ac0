#include "kernel/qdisc.h"

#include <linux/gen_stats.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/class.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/htb.h>
#include <netlink/route/qdisc/prio.h>
#include <netlink/route/tc.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <functional>
#include <ios>
#include <map>
#include <set>
#include <string_view>

#include "faultline/api/cat.h"
#include "kernel/netlink.h"
#include "log.h"

namespace faultline::kernel {
namespace {

using api::Cat;

std::string Where(const std::string& interface, const Netns& netns) {
  return Cat("interface ", interface, " in ", netns.Describe());
}

// --- rtnetlink ----------------------------------------------------------------------------------------

// The calling thread inside a namespace with a socket there and the interface's index. Members go in
// reverse order: the socket is closed before the thread leaves the namespace.
struct Session {
  std::unique_ptr<NetnsScope> scope;
  std::unique_ptr<RouteSocket> socket;
  int ifindex = 0;
};

// Enters the namespace and opens a socket there; `context` prefixes errors.
absl::StatusOr<Session> EnterNetns(const Netns& netns, const std::string& context) {
  Session session;
  auto scope = NetnsScope::Enter(netns);
  if (!scope.ok()) return scope.status();
  session.scope = *std::move(scope);
  auto socket = RouteSocket::Open();
  if (!socket.ok()) {
    return absl::Status(socket.status().code(), Cat(context, ": ", socket.status().message()));
  }
  session.socket = *std::move(socket);
  return session;
}

// The interface by name, or by `ifindex` when it is not 0: what faultline made is changed and undone on
// the device it was made on, not on one renamed or re-created under its name since.
absl::StatusOr<Session> OpenSession(const Netns& netns, const std::string& interface, int ifindex = 0) {
  auto session = EnterNetns(netns, Where(interface, netns));
  if (!session.ok()) return session.status();
  session->ifindex = ifindex;
  // if_nametoindex asks through a socket it opens, so in the namespace the thread is in now.
  if (ifindex == 0) session->ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
  if (session->ifindex == 0) {
    return absl::NotFoundError(Cat("interface ", interface, ": no such device in ", netns.Describe()));
  }
  return session;
}

// Runs one request and turns a refusal into a status: "<where>: cannot <what>: <kernel's reason>".
// A warning the kernel attached to a success is logged.
absl::Status Ask(RouteSocket& socket, NetlinkMessage msg, const std::string& where, const std::string& what) {
  auto answer = socket.Request(std::move(msg));
  if (!answer.ok()) {
    return absl::Status(answer.status().code(),
                        Cat(where, ": cannot ", what, ": ", answer.status().message()));
  }
  if (answer->error != 0) {
    return StatusFromErrno(answer->error, Cat(where, ": cannot ", what, ": ",
                                              DescribeKernelError(answer->error, answer->message)));
  }
  if (!answer->message.empty()) {
    log::Warning("kernel.tc_warning")
        .With("where", where)
        .With("request", what)
        .With("kernel", answer->message);
  }
  return absl::OkStatus();
}

// TCA_OPTIONS as tc sends it, without NLA_F_NESTED: for netem (and prio, fifo) it is not a nest but a
// struct, for netem followed by attributes (parse_attr in net/sched/sch_netem.c).
nlattr* BeginOptions(nl_msg* msg) {
  auto* start = static_cast<nlattr*>(nlmsg_tail(nlmsg_hdr(msg)));
  return nla_put(msg, TCA_OPTIONS, 0, nullptr) < 0 ? nullptr : start;
}

void EndOptions(nl_msg* msg, nlattr* start) {
  start->nla_len =
      static_cast<uint16_t>(static_cast<char*>(nlmsg_tail(nlmsg_hdr(msg))) - reinterpret_cast<char*>(start));
}

absl::Status OutOfMemory(const std::string& where, const std::string& what) {
  return absl::ResourceExhaustedError(
      Cat(where, ": cannot ", what, ": the request does not fit a netlink message"));
}

// Deletes a qdisc or class faultline added (`type` RTM_DELQDISC or RTM_DELTCLASS; `noun` "qdisc" or
// "class" names the log events): "removed", or NOT_FOUND when it is not there any more. A qdisc's
// TCA_KIND makes the kernel refuse to delete another kind that took the place (tc_get_qdisc: "Invalid
// qdisc name"). Answers meaning "not there any more" are fine: a parent deleted first takes its
// children along, a qdisc its classes.
absl::StatusOr<std::string> DeleteTc(const Netns& netns, const std::string& interface, int ifindex, int type,
                                     const std::string& kind, uint32_t parent, uint32_t handle,
                                     std::string_view noun, const std::string& description) {
  std::string gone = Cat("kernel.", noun, "_gone");
  std::string failed = Cat("kernel.", noun, "_remove_failed");
  auto session = OpenSession(netns, interface, ifindex);
  if (!session.ok()) {
    log::Info(gone).With(noun, description).With("reason", session.status().ToString());
    return absl::NotFoundError(session.status().message());
  }
  auto answer = session->socket->Request(TcMessage(type, 0, session->ifindex, parent, handle, kind));
  if (!answer.ok()) {
    log::Error(failed).With(noun, description).With("error", answer.status().ToString());
    return answer.status();
  }
  std::string reason = DescribeKernelError(answer->error, answer->message);
  if (answer->error == ENOENT || answer->error == EINVAL || answer->error == ENODEV) {
    log::Info(gone).With(noun, description).With("reason", reason);
    return absl::NotFoundError(Cat("the ", noun, " is gone: ", reason));
  }
  if (answer->error != 0) {
    log::Error(failed).With(noun, description).With("error", reason);
    return StatusFromErrno(answer->error, Cat("cannot delete the ", noun, ": ", reason));
  }
  log::Info(Cat("kernel.", noun, "_removed")).With(noun, description);
  return "removed";
}

// Whether a deletion left nothing behind, so its journal entry is done.
bool NothingLeft(const absl::StatusOr<std::string>& deleted) {
  return deleted.ok() || absl::IsNotFound(deleted.status());
}

// --- netem ------------------------------------------------------------------------------------------

// netem's probabilities and correlations: fractions of UINT32_MAX, rounded as tc's set_percent does.
uint32_t Probability(double percent) {
  double scaled = std::rint(percent / 100.0 * UINT32_MAX);
  return static_cast<uint32_t>(std::clamp(scaled, 0.0, static_cast<double>(UINT32_MAX)));
}

absl::Status CheckPercent(std::string_view field, double value) {
  if (!(value >= 0 && value <= 100)) {
    return absl::InvalidArgumentError(Cat("netem: ", field, " ", value, " is not a percentage (0 to 100)"));
  }
  return absl::OkStatus();
}

// Adds netem's TCA_OPTIONS: struct tc_netem_qopt, then attributes. Every attribute netem_change
// reads only when present is always sent, so a change resets what the new parameters leave out:
// without TCA_NETEM_CORR, _REORDER, _CORRUPT or _RATE it would keep the old values, and without
// TCA_NETEM_LOSS it goes back to random loss.
bool PutNetemOptions(nl_msg* msg, const NetemParams& params, const std::vector<int16_t>& table) {
  tc_netem_qopt qopt{};
  // 32-bit latency and jitter stay 0: TCA_NETEM_LATENCY64/JITTER64 replace them (as with tc since
  // iproute2 4.15; the kernel has read them since 4.15 too).
  qopt.limit = params.limit_packets;
  qopt.loss = Probability(params.loss_percent);
  qopt.duplicate = Probability(params.duplicate_percent);
  // tc's default: with a reorder chance and no gap, every packet is a candidate.
  qopt.gap = params.reorder_percent > 0 && params.gap == 0 ? 1 : params.gap;

  nlattr* options = BeginOptions(msg);
  if (options == nullptr || nlmsg_append(msg, &qopt, sizeof(qopt), NLMSG_ALIGNTO) < 0) return false;
  if (nla_put_s64(msg, TCA_NETEM_LATENCY64, static_cast<int64_t>(params.latency_ns)) < 0 ||
      nla_put_s64(msg, TCA_NETEM_JITTER64, static_cast<int64_t>(params.jitter_ns)) < 0) {
    return false;
  }
  tc_netem_corr correlation{Probability(params.delay_correlation), Probability(params.loss_correlation),
                            Probability(params.duplicate_correlation)};
  tc_netem_reorder reorder{Probability(params.reorder_percent), Probability(params.reorder_correlation)};
  tc_netem_corrupt corrupt{Probability(params.corrupt_percent), Probability(params.corrupt_correlation)};
  if (nla_put(msg, TCA_NETEM_CORR, sizeof(correlation), &correlation) < 0 ||
      nla_put(msg, TCA_NETEM_REORDER, sizeof(reorder), &reorder) < 0 ||
      nla_put(msg, TCA_NETEM_CORRUPT, sizeof(corrupt), &corrupt) < 0) {
    return false;
  }
  if (params.gilbert_elliott) {
    const GilbertElliott& ge = *params.gilbert_elliott;
    // The kernel keeps h, the chance of delivery in the bad state; tc takes 1-h (q_netem.c).
    tc_netem_gemodel model{Probability(ge.p), Probability(ge.r), UINT32_MAX - Probability(ge.loss_in_bad),
                           Probability(ge.loss_in_good)};
    nlattr* loss = nla_nest_start(msg, TCA_NETEM_LOSS);
    if (loss == nullptr || nla_put(msg, NETEM_LOSS_GE, sizeof(model), &model) < 0 ||
        nla_nest_end(msg, loss) < 0) {
      return false;
    }
  }
  // Rates from 4 GiB/s on go in TCA_NETEM_RATE64, with the 32-bit field saturated (netem_change
  // takes the larger of the two).
  tc_netem_rate rate{};
  rate.rate = static_cast<uint32_t>(std::min<uint64_t>(params.rate_bytes_per_second, UINT32_MAX));
  if (params.rate_bytes_per_second >= (uint64_t{1} << 32) &&
      nla_put_u64(msg, TCA_NETEM_RATE64, params.rate_bytes_per_second) < 0) {
    return false;
  }
  if (nla_put(msg, TCA_NETEM_RATE, sizeof(rate), &rate) < 0) return false;
  if (!table.empty() && nla_put(msg, TCA_NETEM_DELAY_DIST, static_cast<int>(table.size() * sizeof(int16_t)),
                                table.data()) < 0) {
    return false;
  }
  EndOptions(msg, options);
  return true;
}

// --- adding qdiscs and classes ------------------------------------------------------------------------

absl::Status CheckQdiscHandle(uint32_t handle) {
  if (TC_H_MIN(handle) != 0 || TC_H_MAJ(handle) == 0 || TC_H_MAJ(handle) == TC_H_MAJ(TC_H_ROOT) ||
      TC_H_MAJ(handle) == TC_H_MAJ(TC_H_INGRESS)) {
    return absl::InvalidArgumentError(
        Cat("handle ", FormatTcHandle(handle), " is not a qdisc handle (major 1 to fffe, minor 0)"));
  }
  return absl::OkStatus();
}

std::string Placement(uint32_t parent) {
  return parent == TC_H_ROOT ? "as root" : Cat("under ", FormatTcHandle(parent));
}

// At the root: replace what is there (NLM_F_REPLACE), but never modify a root that has our handle,
// which is what tc_modify_qdisc (net/sched/sch_api.c) does for a matching handle unless NLM_F_EXCL
// is set. Elsewhere: create, and refuse a class whose qdisc someone already replaced.
int AddFlags(uint32_t parent) {
  return parent == TC_H_ROOT ? NLM_F_CREATE | NLM_F_REPLACE | NLM_F_EXCL : NLM_F_CREATE | NLM_F_EXCL;
}

// Builds the request once the interface's index is known; nullptr when it did not fit.
using BuildMessage = std::function<absl::StatusOr<NetlinkMessage>(int ifindex)>;
// The journal's record of the change a request makes, once the interface's index is known.
using RecordChangeOf = std::function<journal::Change(int ifindex)>;

struct Made {
  int ifindex;
  JournalEntry entry;
};

// Enters the namespace and asks for one change on the interface (found by name when `ifindex` is 0):
// "<where>: cannot <what>: <why>". With `record`, the change is journaled before it is asked for.
absl::StatusOr<Made> RequestIn(const Netns& netns, const std::string& interface, int ifindex,
                               const std::string& what, const BuildMessage& build,
                               const RecordChangeOf& record = nullptr) {
  auto session = OpenSession(netns, interface, ifindex);
  if (!session.ok()) return session.status();
  std::string where = Where(interface, netns);
  auto msg = build(session->ifindex);
  if (!msg.ok()) {
    return absl::Status(msg.status().code(), Cat(where, ": cannot ", what, ": ", msg.status().message()));
  }
  if (*msg == nullptr) return OutOfMemory(where, what);
  JournalEntry entry;
  if (record) {
    auto recorded = RecordChange(record(session->ifindex));
    if (!recorded.ok()) return recorded.status();
    entry = *std::move(recorded);
  }
  if (auto status = Ask(*session->socket, *std::move(msg), where, what); !status.ok()) {
    entry.Done();  // refused: nothing was made
    return status;
  }
  return Made{session->ifindex, std::move(entry)};
}

std::string DescribeHtbClass(uint32_t parent, uint32_t classid, const std::string& interface,
                             const Netns& netns) {
  return Cat("htb class ", FormatTcHandle(classid), " parent ", FormatTcHandle(parent), " on ", interface,
             " in ", netns.Describe());
}

std::string DescribeQdisc(std::string_view kind, uint32_t parent, uint32_t handle,
                          const std::string& interface, const Netns& netns) {
  return Cat(kind, " ", FormatTcHandle(handle),
             parent == TC_H_ROOT ? std::string(" root") : Cat(" parent ", FormatTcHandle(parent)), " on ",
             interface, " in ", netns.Describe());
}

// A qdisc faultline adds; at the root with `replacing`, the root it replaces.
RecordChangeOf QdiscRecord(const Netns& netns, const std::string& interface, std::string_view kind,
                           uint32_t parent, uint32_t handle, const RootQdisc* replacing = nullptr) {
  return [&netns, &interface, kind, parent, handle, replacing](int ifindex) {
    journal::Change change;
    std::string what = DescribeQdisc(kind, parent, handle, interface, netns);
    if (replacing != nullptr) {
      change.set_what(Cat(what, " replacing ", replacing->Describe()));
      journal::RootReplaced* root = change.mutable_root();
      *root = replacing->Record();
      *root->mutable_device() = RecordDevice(netns, interface, ifindex);
      root->set_kind(std::string(kind));
      root->set_handle(handle);
      return change;
    }
    change.set_what(what);
    journal::Qdisc* qdisc = change.mutable_qdisc();
    *qdisc->mutable_device() = RecordDevice(netns, interface, ifindex);
    qdisc->set_kind(std::string(kind));
    qdisc->set_parent(parent);
    qdisc->set_handle(handle);
    return change;
  };
}

std::string AddWhat(std::string_view kind, uint32_t parent, uint32_t handle) {
  return Cat("add ", kind, " qdisc ", FormatTcHandle(handle), " ", Placement(parent));
}

struct RtnlQdiscDeleter {
  void operator()(rtnl_qdisc* qdisc) const { rtnl_qdisc_put(qdisc); }
};
using RtnlQdisc = std::unique_ptr<rtnl_qdisc, RtnlQdiscDeleter>;

// A libnl qdisc object, its kind set first: libnl's kind-specific setters abort the process when the
// kind is not set yet.
absl::StatusOr<RtnlQdisc> NewRtnlQdisc(int ifindex, uint32_t parent, uint32_t handle, const char* kind) {
  RtnlQdisc qdisc(rtnl_qdisc_alloc());
  if (qdisc == nullptr) return absl::ResourceExhaustedError("libnl: out of memory");
  rtnl_tc* tc = TC_CAST(qdisc.get());
  if (int err = rtnl_tc_set_kind(tc, kind); err < 0) {
    return absl::InternalError(Cat("libnl: ", nl_geterror(err)));
  }
  rtnl_tc_set_ifindex(tc, ifindex);
  rtnl_tc_set_parent(tc, parent);
  rtnl_tc_set_handle(tc, handle);
  return qdisc;
}

absl::StatusOr<NetlinkMessage> QdiscAddRequest(rtnl_qdisc* qdisc, int flags) {
  nl_msg* msg = nullptr;
  if (int err = rtnl_qdisc_build_add_request(qdisc, flags, &msg); err < 0) {
    return absl::InternalError(Cat("libnl: ", nl_geterror(err)));
  }
  return NetlinkMessage(msg);
}

// tbf's TCA_OPTIONS, built here rather than with libnl 3.7, whose tbf takes an int rate (no
// TCA_TBF_RATE64) and sends no TCA_TBF_BURST, so the kernel would derive the bucket from a time
// rounded to microseconds. With TCA_TBF_BURST the kernel sizes the bucket in bytes exactly as asked
// (tbf_change in net/sched/sch_tbf.c), as for `tc qdisc add ... tbf rate R burst B limit L`.
bool PutTbfOptions(nl_msg* msg, const TbfParams& params) {
  tc_tbf_qopt qopt{};
  qopt.rate.rate = static_cast<uint32_t>(std::min<uint64_t>(params.rate_bytes_per_second, UINT32_MAX));
  // With the link layer given, the kernel needs no rate table (psched_ratecfg_precompute).
  qopt.rate.linklayer = TC_LINKLAYER_ETHERNET;
  qopt.limit = params.limit_bytes;
  // The bucket as time in ticks of 64 ns (PSCHED_SHIFT), for kernels that ignore TCA_TBF_BURST.
  double ticks =
      static_cast<double>(params.burst_bytes) * 1e9 / static_cast<double>(params.rate_bytes_per_second) / 64;
  qopt.buffer = static_cast<uint32_t>(std::min(ticks, static_cast<double>(UINT32_MAX)));
  nlattr* options = BeginOptions(msg);
  if (options == nullptr || nla_put(msg, TCA_TBF_PARMS, sizeof(qopt), &qopt) < 0 ||
      nla_put_u32(msg, TCA_TBF_BURST, params.burst_bytes) < 0) {
    return false;
  }
  if (params.rate_bytes_per_second >= (uint64_t{1} << 32) &&
      nla_put_u64(msg, TCA_TBF_RATE64, params.rate_bytes_per_second) < 0) {
    return false;
  }
  EndOptions(msg, options);
  return true;
}

}  // namespace

std::string FormatTcHandle(uint32_t handle) {
  if (handle == TC_H_ROOT) return "root";
  if (handle == 0) return "none";
  std::string text = Cat(std::hex, TC_H_MAJ(handle) >> 16, ":");
  if (TC_H_MIN(handle) != 0) text += Cat(std::hex, TC_H_MIN(handle));
  return text;
}

absl::Status ValidateNetemParams(const NetemParams& params) {
  const std::pair<std::string_view, double> percentages[] = {
      {"delay_correlation", params.delay_correlation},
      {"loss_percent", params.loss_percent},
      {"loss_correlation", params.loss_correlation},
      {"duplicate_percent", params.duplicate_percent},
      {"duplicate_correlation", params.duplicate_correlation},
      {"corrupt_percent", params.corrupt_percent},
      {"corrupt_correlation", params.corrupt_correlation},
      {"reorder_percent", params.reorder_percent},
      {"reorder_correlation", params.reorder_correlation}};
  for (const auto& [field, value] : percentages) {
    if (auto status = CheckPercent(field, value); !status.ok()) return status;
  }
  if (params.gilbert_elliott) {
    const GilbertElliott& ge = *params.gilbert_elliott;
    const std::pair<std::string_view, double> chances[] = {{"gilbert_elliott.p", ge.p},
                                                           {"gilbert_elliott.r", ge.r},
                                                           {"gilbert_elliott.loss_in_bad", ge.loss_in_bad},
                                                           {"gilbert_elliott.loss_in_good", ge.loss_in_good}};
    for (const auto& [field, value] : chances) {
      if (auto status = CheckPercent(field, value); !status.ok()) return status;
    }
    // netem runs one loss model: TCA_NETEM_LOSS selects Gilbert-Elliott, and the random loss in the
    // qopt is then ignored (loss_event in net/sched/sch_netem.c).
    if (params.loss_percent > 0) {
      return absl::InvalidArgumentError("netem: loss_percent and gilbert_elliott exclude each other");
    }
  }
  if (params.latency_ns > static_cast<uint64_t>(INT64_MAX)) {
    return absl::InvalidArgumentError("netem: latency_ns does not fit netem's signed 64-bit latency");
  }
  // tabledist (sch_netem.c) takes a 32-bit sigma; newer kernels cap the jitter there silently.
  if (params.jitter_ns > static_cast<uint64_t>(INT32_MAX)) {
    return absl::InvalidArgumentError(
        Cat("netem: jitter_ns ", params.jitter_ns, " is more than netem's 2147483647 ns (a 32-bit jitter)"));
  }
  if (params.distribution != DelayDistribution::kUniform && params.jitter_ns == 0) {
    return absl::InvalidArgumentError(Cat("netem: a ", DelayDistributionName(params.distribution),
                                          " distribution needs a jitter: its table scales the jitter"));
  }
  if (params.reorder_percent > 0 && params.latency_ns == 0) {
    return absl::InvalidArgumentError(
        "netem: reorder_percent needs a latency: packets can only overtake packets that are delayed");
  }
  if (params.gap > 0 && params.reorder_percent == 0) {
    return absl::InvalidArgumentError("netem: gap without reorder_percent would reorder nothing");
  }
  if (params.limit_packets == 0) {
    return absl::InvalidArgumentError("netem: limit_packets 0 would drop every packet");
  }
  return absl::OkStatus();
}

// --- Qdisc ------------------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Qdisc>> Qdisc::AddNetem(std::shared_ptr<Netns> netns,
                                                       const std::string& interface, uint32_t parent,
                                                       uint32_t handle, const NetemParams& params) {
  if (auto status = CheckQdiscHandle(handle); !status.ok()) return status;
  if (auto status = ValidateNetemParams(params); !status.ok()) return status;
  std::vector<int16_t> table = NetemDistributionTable(params.distribution);
  auto made = RequestIn(
      *netns, interface, 0, AddWhat("netem", parent, handle),
      [&](int index) {
        NetlinkMessage msg = TcMessage(RTM_NEWQDISC, AddFlags(parent), index, parent, handle, "netem",
                                       1024 + table.size() * sizeof(int16_t));
        if (msg != nullptr && !PutNetemOptions(msg.get(), params, table)) msg.reset();
        return absl::StatusOr<NetlinkMessage>(std::move(msg));
      },
      QdiscRecord(*netns, interface, "netem", parent, handle));
  if (!made.ok()) return made.status();
  auto qdisc = std::unique_ptr<Qdisc>(
      new Qdisc(std::move(netns), interface, made->ifindex, "netem", parent, handle, params.distribution));
  qdisc->entry_ = std::move(made->entry);
  log::Info("kernel.qdisc_added").With("qdisc", qdisc->Describe());
  return qdisc;
}

absl::StatusOr<std::unique_ptr<Qdisc>> Qdisc::AddTbf(std::shared_ptr<Netns> netns,
                                                     const std::string& interface, uint32_t parent,
                                                     uint32_t handle, const TbfParams& params) {
  if (auto status = CheckQdiscHandle(handle); !status.ok()) return status;
  if (params.rate_bytes_per_second == 0 || params.burst_bytes == 0 || params.limit_bytes == 0) {
    return absl::InvalidArgumentError(
        "tbf: rate_bytes_per_second, burst_bytes and limit_bytes must all be set");
  }
  // tbf reports its bucket as a 32-bit count of 64 ns ticks (tbf_dump): a longer one would come back
  // wrong from the kernel, and tc refuses it too ("burst out of range").
  if (static_cast<double>(params.burst_bytes) * 1e9 / static_cast<double>(params.rate_bytes_per_second) /
          64 >=
      UINT32_MAX) {
    return absl::InvalidArgumentError(Cat("tbf: a burst of ", params.burst_bytes, " bytes at ",
                                          params.rate_bytes_per_second,
                                          " bytes/s lasts more than tbf's 274 s bucket"));
  }
  auto made = RequestIn(
      *netns, interface, 0, AddWhat("tbf", parent, handle),
      [&](int index) {
        NetlinkMessage msg = TcMessage(RTM_NEWQDISC, AddFlags(parent), index, parent, handle, "tbf");
        if (msg != nullptr && !PutTbfOptions(msg.get(), params)) msg.reset();
        return absl::StatusOr<NetlinkMessage>(std::move(msg));
      },
      QdiscRecord(*netns, interface, "tbf", parent, handle));
  if (!made.ok()) return made.status();
  auto qdisc = std::unique_ptr<Qdisc>(new Qdisc(std::move(netns), interface, made->ifindex, "tbf", parent,
                                                handle, DelayDistribution::kUniform));
  qdisc->entry_ = std::move(made->entry);
  log::Info("kernel.qdisc_added").With("qdisc", qdisc->Describe());
  return qdisc;
}

absl::StatusOr<std::unique_ptr<Qdisc>> Qdisc::AddHtbRoot(std::shared_ptr<Netns> netns,
                                                         const std::string& interface, uint32_t handle,
                                                         uint32_t default_class_minor,
                                                         const RootQdisc* replacing) {
  if (auto status = CheckQdiscHandle(handle); !status.ok()) return status;
  if (default_class_minor > TC_H_MIN_MASK) {
    return absl::InvalidArgumentError(
        Cat("htb: default class minor ", default_class_minor, " is above ffff"));
  }
  auto made = RequestIn(
      *netns, interface, 0, AddWhat("htb", TC_H_ROOT, handle),
      [&](int index) -> absl::StatusOr<NetlinkMessage> {
        auto qdisc = NewRtnlQdisc(index, TC_H_ROOT, handle, "htb");
        if (!qdisc.ok()) return qdisc.status();
        // The default class as a minor, as tc sends it: htb looks it up under its own major
        // (htb_classify).
        rtnl_htb_set_defcls(qdisc->get(), default_class_minor);
        rtnl_htb_set_rate2quantum(qdisc->get(), 10);  // tc's default r2q
        return QdiscAddRequest(qdisc->get(), AddFlags(TC_H_ROOT));
      },
      QdiscRecord(*netns, interface, "htb", TC_H_ROOT, handle, replacing));
  if (!made.ok()) return made.status();
  auto qdisc = std::unique_ptr<Qdisc>(new Qdisc(std::move(netns), interface, made->ifindex, "htb", TC_H_ROOT,
                                                handle, DelayDistribution::kUniform));
  qdisc->entry_ = std::move(made->entry);
  if (replacing != nullptr) qdisc->replaced_ = std::make_unique<RootQdisc>(*replacing);
  log::Info("kernel.qdisc_added").With("qdisc", qdisc->Describe());
  return qdisc;
}

absl::StatusOr<std::unique_ptr<Qdisc>> Qdisc::AddPrioRoot(std::shared_ptr<Netns> netns,
                                                          const std::string& interface, uint32_t handle,
                                                          int bands, const RootQdisc* replacing) {
  if (auto status = CheckQdiscHandle(handle); !status.ok()) return status;
  // prio_tune (net/sched/sch_prio.c) takes TCQ_MIN_PRIO_BANDS to TCQ_PRIO_BANDS bands.
  if (bands < TCQ_MIN_PRIO_BANDS || bands > TCQ_PRIO_BANDS) {
    return absl::InvalidArgumentError(
        Cat("prio: ", bands, " bands; prio has ", TCQ_MIN_PRIO_BANDS, " to ", TCQ_PRIO_BANDS));
  }
  auto made = RequestIn(
      *netns, interface, 0, AddWhat("prio", TC_H_ROOT, handle),
      [&](int index) -> absl::StatusOr<NetlinkMessage> {
        auto qdisc = NewRtnlQdisc(index, TC_H_ROOT, handle, "prio");
        if (!qdisc.ok()) return qdisc.status();
        rtnl_qdisc_prio_set_bands(qdisc->get(), bands);
        // Every priority to band index 0, class handle:1 (prio_classify falls back on the priomap for
        // packets no filter classified). libnl 3.7's prio builder calls BUG() without a priomap.
        uint8_t priomap[TC_PRIO_MAX + 1] = {};
        if (int err = rtnl_qdisc_prio_set_priomap(qdisc->get(), priomap, sizeof(priomap)); err < 0) {
          return absl::InternalError(Cat("libnl: ", nl_geterror(err)));
        }
        return QdiscAddRequest(qdisc->get(), AddFlags(TC_H_ROOT));
      },
      QdiscRecord(*netns, interface, "prio", TC_H_ROOT, handle, replacing));
  if (!made.ok()) return made.status();
  auto qdisc = std::unique_ptr<Qdisc>(new Qdisc(std::move(netns), interface, made->ifindex, "prio", TC_H_ROOT,
                                                handle, DelayDistribution::kUniform));
  qdisc->entry_ = std::move(made->entry);
  if (replacing != nullptr) qdisc->replaced_ = std::make_unique<RootQdisc>(*replacing);
  log::Info("kernel.qdisc_added").With("qdisc", qdisc->Describe());
  return qdisc;
}

absl::Status Qdisc::ChangeNetem(const NetemParams& params) {
  if (kind_ != "netem") {
    return absl::FailedPreconditionError(Cat(Describe(), ": ChangeNetem on a ", kind_, " qdisc"));
  }
  if (auto status = ValidateNetemParams(params); !status.ok()) return status;
  // netem_change swaps in a delay table only when it is given one: the old table would stay.
  if (params.distribution == DelayDistribution::kUniform && distribution_ != DelayDistribution::kUniform) {
    return absl::FailedPreconditionError(
        Cat(Describe(), ": netem keeps its ", DelayDistributionName(distribution_),
            " delay table when changed in place; add a new netem qdisc for uniform jitter"));
  }
  std::vector<int16_t> table = NetemDistributionTable(params.distribution);
  auto changed = RequestIn(*netns_, interface_, ifindex_, Cat("change netem qdisc ", FormatTcHandle(handle_)),
                           [&](int index) {
                             // Neither NLM_F_CREATE nor NLM_F_REPLACE: the kernel changes the qdisc at
                             // (parent, handle) and refuses when there is none (tc_modify_qdisc).
                             NetlinkMessage msg = TcMessage(RTM_NEWQDISC, 0, index, parent_, handle_, "netem",
                                                            1024 + table.size() * sizeof(int16_t));
                             if (msg != nullptr && !PutNetemOptions(msg.get(), params, table)) msg.reset();
                             return absl::StatusOr<NetlinkMessage>(std::move(msg));
                           });
  if (!changed.ok()) return changed.status();
  distribution_ = params.distribution;
  log::Info("kernel.qdisc_changed").With("qdisc", Describe());
  return absl::OkStatus();
}

Qdisc::~Qdisc() {
  if (replaced_ != nullptr) {
    // Restore deletes this root, and everything under it, before it re-creates the one replaced.
    if (absl::Status restored = replaced_->Restore(); restored.ok()) {
      entry_.Done();
    } else {
      log::Error("kernel.root_restore_failed").With("root", Describe()).With("error", restored.ToString());
    }
    return;
  }
  if (NothingLeft(DeleteTc(*netns_, interface_, ifindex_, RTM_DELQDISC, kind_, parent_, handle_, "qdisc",
                           Describe()))) {
    entry_.Done();
  }
}

std::string Qdisc::Describe() const { return DescribeQdisc(kind_, parent_, handle_, interface_, *netns_); }

// --- HtbClass -----------------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<HtbClass>> HtbClass::Add(std::shared_ptr<Netns> netns,
                                                        const std::string& interface, uint32_t parent,
                                                        uint32_t classid, uint64_t rate, uint64_t ceil) {
  if (TC_H_MIN(classid) == 0 || TC_H_MAJ(classid) == 0) {
    return absl::InvalidArgumentError(
        Cat("htb: classid ", FormatTcHandle(classid), " is not a class (major:minor, both set)"));
  }
  // htb_change_class refuses a class outside its qdisc's major with a bare EINVAL.
  if (parent != TC_H_ROOT && TC_H_MAJ(parent) != TC_H_MAJ(classid)) {
    return absl::InvalidArgumentError(Cat("htb: class ", FormatTcHandle(classid), " cannot be under ",
                                          FormatTcHandle(parent), ": a class takes its qdisc's major"));
  }
  if (ceil == 0) ceil = rate;
  if (rate == 0 || ceil < rate) {
    return absl::InvalidArgumentError(Cat("htb: class ", FormatTcHandle(classid), ": rate ", rate,
                                          " and ceil ", ceil,
                                          " bytes/s (rate must be set, ceil at least rate)"));
  }
  std::string what = Cat("add htb class ", FormatTcHandle(classid), " ", Placement(parent));
  auto record = [&](int ifindex) {
    journal::Change change;
    change.set_what(DescribeHtbClass(parent, classid, interface, *netns));
    journal::HtbClass* recorded = change.mutable_htb_class();
    *recorded->mutable_device() = RecordDevice(*netns, interface, ifindex);
    recorded->set_parent(parent);
    recorded->set_classid(classid);
    return change;
  };
  auto made = RequestIn(
      *netns, interface, 0, what,
      [&](int index) -> absl::StatusOr<NetlinkMessage> {
        std::unique_ptr<rtnl_class, decltype(&rtnl_class_put)> cls(rtnl_class_alloc(), &rtnl_class_put);
        if (cls == nullptr) return absl::ResourceExhaustedError("libnl: out of memory");
        rtnl_tc* tc = TC_CAST(cls.get());
        if (int err = rtnl_tc_set_kind(tc, "htb"); err < 0) {
          return absl::InternalError(Cat("libnl: ", nl_geterror(err)));
        }
        rtnl_tc_set_ifindex(tc, index);
        rtnl_tc_set_parent(tc, parent);
        rtnl_tc_set_handle(tc, classid);
        // libnl puts rates from 4 GiB/s in TCA_HTB_RATE64/CEIL64 with the 32-bit fields saturated,
        // which htb_change_class reads as the kernel's own dump writes them.
        rtnl_htb_set_rate64(cls.get(), rate);
        rtnl_htb_set_ceil64(cls.get(), ceil);
        nl_msg* msg = nullptr;
        if (int err = rtnl_class_build_add_request(cls.get(), NLM_F_CREATE | NLM_F_EXCL, &msg); err < 0) {
          return absl::InternalError(Cat("libnl: ", nl_geterror(err)));
        }
        return NetlinkMessage(msg);
      },
      record);
  if (!made.ok()) return made.status();
  auto added =
      std::unique_ptr<HtbClass>(new HtbClass(std::move(netns), interface, made->ifindex, parent, classid));
  added->entry_ = std::move(made->entry);
  log::Info("kernel.class_added").With("class", added->Describe());
  return added;
}

HtbClass::~HtbClass() {
  if (NothingLeft(DeleteTc(*netns_, interface_, ifindex_, RTM_DELTCLASS, "", parent_, classid_, "class",
                           Describe()))) {
    entry_.Done();
  }
}

std::string HtbClass::Describe() const { return DescribeHtbClass(parent_, classid_, interface_, *netns_); }

// --- RootQdisc ----------------------------------------------------------------------------------------

namespace {

using Dumped = DumpedTc;

using RestoreOptions = absl::StatusOr<std::vector<uint8_t>> (*)(const std::vector<uint8_t>& dumped);

absl::StatusOr<std::vector<uint8_t>> Verbatim(const std::vector<uint8_t>& dumped) { return dumped; }

// htb_dump writes TCA_HTB_INIT with version HTB_VER (3.17) and the direct_pkts counter, but htb_init
// wants version TC_HTB_PROTOVER (3): everything else goes back as dumped, TCA_HTB_DIRECT_QLEN included.
absl::StatusOr<std::vector<uint8_t>> HtbQdiscOptions(const std::vector<uint8_t>& dumped) {
  std::vector<uint8_t> options = dumped;
  bool found = false;
  nlattr* attr;
  int remaining;
  nla_for_each_attr(attr, reinterpret_cast<nlattr*>(options.data()), static_cast<int>(options.size()),
                    remaining) {
    if (nla_type(attr) == TCA_HTB_INIT && nla_len(attr) >= static_cast<int>(sizeof(tc_htb_glob))) {
      auto* glob = static_cast<tc_htb_glob*>(nla_data(attr));
      glob->version = TC_HTB_PROTOVER;
      glob->direct_pkts = 0;
      found = true;
    }
  }
  if (!found) return absl::FailedPreconditionError("came without its parameters (TCA_HTB_INIT)");
  return options;
}

// netem reports every parameter it was given (netem_dump) except its delay and slot distribution
// tables: with a jitter, which table it draws from cannot be known, so it could not be put back.
absl::StatusOr<std::vector<uint8_t>> NetemOptions(const std::vector<uint8_t>& dumped) {
  if (dumped.size() < sizeof(tc_netem_qopt)) {
    return absl::FailedPreconditionError("came without its parameters");
  }
  tc_netem_qopt qopt;
  std::memcpy(&qopt, dumped.data(), sizeof(qopt));
  int64_t jitter = qopt.jitter;
  int64_t slot_jitter = 0;
  std::vector<uint8_t> copy = dumped;
  size_t start = NLA_ALIGN(sizeof(qopt));
  if (copy.size() > start) {
    nlattr* attr;
    int remaining;
    nla_for_each_attr(attr, reinterpret_cast<nlattr*>(copy.data() + start),
                      static_cast<int>(copy.size() - start), remaining) {
      if (nla_type(attr) == TCA_NETEM_JITTER64 && nla_len(attr) >= static_cast<int>(sizeof(int64_t))) {
        jitter = nla_get_s64(attr);
      } else if (nla_type(attr) == TCA_NETEM_SLOT &&
                 nla_len(attr) >= static_cast<int>(sizeof(tc_netem_slot))) {
        slot_jitter = static_cast<const tc_netem_slot*>(nla_data(attr))->dist_jitter;
      }
    }
  }
  if (jitter != 0 || slot_jitter != 0) {
    return absl::FailedPreconditionError(
        "has a jitter drawn from a delay distribution table, which the kernel never reports back");
  }
  return dumped;
}

// The kinds faultline re-creates exactly, from the options the kernel dumped.
struct RestorableKind {
  std::string_view kind;
  // htb's classes are made one by one and must be re-created; prio's bands and the single class of
  // tbf and netem come with the qdisc.
  bool classes_made_by_user;
  RestoreOptions options;
};

constexpr RestorableKind kRestorable[] = {
    {"htb", true, &HtbQdiscOptions},       {"tbf", false, &Verbatim},   {"prio", false, &Verbatim},
    {"netem", false, &NetemOptions},       {"pfifo", false, &Verbatim}, {"bfifo", false, &Verbatim},
    {"pfifo_head_drop", false, &Verbatim},
};

const RestorableKind* FindRestorable(std::string_view kind) {
  for (const RestorableKind& restorable : kRestorable) {
    if (restorable.kind == kind) return &restorable;
  }
  return nullptr;
}

// "the root netem 7:", "pfifo 20: under 1:20", "htb class 1:10": the subject of a reason.
std::string Subject(const Dumped& dumped, bool is_class) {
  if (is_class) return Cat(dumped.kind, " class ", FormatTcHandle(dumped.handle));
  if (dumped.parent == TC_H_ROOT) return Cat("the root ", dumped.kind, " ", FormatTcHandle(dumped.handle));
  return Cat(dumped.kind, " ", FormatTcHandle(dumped.handle), " under ", FormatTcHandle(dumped.parent));
}

// Why one qdisc or class could not be re-created exactly, or nothing.
std::optional<std::string> CannotRestore(const Dumped& dumped, bool is_class) {
  std::string subject = Subject(dumped, is_class);
  const RestorableKind* restorable = FindRestorable(dumped.kind);
  if (restorable == nullptr) return Cat(subject, " is of a kind faultline does not re-create");
  if (dumped.has_stab) return Cat(subject, " has a size table, which the kernel reports without its data");
  if (dumped.has_rate_estimator) {
    return Cat(subject, " has a rate estimator, whose interval the kernel does not report");
  }
  if (!is_class) {
    if (auto options = restorable->options(dumped.options); !options.ok()) {
      return Cat(subject, " ", options.status().message());
    }
  }
  return std::nullopt;
}

// Filters attached to the qdisc or class `parent`, as "u32 filter (pref 49152) on 1:".
absl::StatusOr<std::vector<std::string>> FiltersOn(RouteSocket& socket, int ifindex, uint32_t parent) {
  auto filters = DumpTc(socket, RTM_GETTFILTER, ifindex, parent);
  if (!filters.ok()) return filters.status();
  std::vector<std::string> found;
  std::set<std::string> seen;  // a u32 filter dumps one message per hash table and key
  for (const Dumped& filter : *filters) {
    std::string text = Cat(filter.kind, " filter (pref ", TC_H_MAJ(filter.info) >> 16, ") on ",
                           parent == 0 ? std::string("the root") : FormatTcHandle(parent));
    if (seen.insert(text).second) found.push_back(text);
  }
  return found;
}

}  // namespace

absl::StatusOr<RootQdisc> RootQdisc::Take(std::shared_ptr<Netns> netns, const std::string& interface) {
  std::string where = Where(interface, *netns);
  auto session = OpenSession(*netns, interface);
  if (!session.ok()) return session.status();
  RouteSocket& socket = *session->socket;
  auto qdiscs = DumpTc(socket, RTM_GETQDISC, session->ifindex, 0);
  if (!qdiscs.ok()) {
    return absl::Status(qdiscs.status().code(),
                        Cat(where, ": cannot list qdiscs: ", qdiscs.status().message()));
  }

  // The egress tree: the root and every qdisc under it. ingress and clsact hang off TC_H_INGRESS
  // (= TC_H_CLSACT) and are neither replaced nor touched.
  std::optional<Dumped> root;
  std::vector<Dumped> under_root;
  for (Dumped& qdisc : *qdiscs) {
    if (qdisc.parent == TC_H_ROOT) {
      root = std::move(qdisc);
    } else if (qdisc.parent != TC_H_INGRESS) {
      under_root.push_back(std::move(qdisc));
    }
  }
  if (!root) return absl::InternalError(Cat(where, ": the kernel reported no root qdisc"));

  std::vector<std::string> reasons;
  auto refuse = [&]() {
    std::string joined;
    for (const std::string& reason : reasons) joined += Cat(joined.empty() ? "" : "; ", reason);
    return absl::FailedPreconditionError(
        Cat(where, ": faultline could not put the root qdisc back exactly, so it changes nothing: ", joined));
  };
  // A reason for each filter on the qdisc or class `parent`: faultline would lose it.
  auto note_filters_on = [&](uint32_t parent) -> absl::Status {
    auto filters = FiltersOn(socket, session->ifindex, parent);
    if (!filters.ok()) {
      return absl::Status(filters.status().code(),
                          Cat(where, ": cannot list filters: ", filters.status().message()));
    }
    for (const std::string& filter : *filters) {
      reasons.push_back(Cat("the ", filter, " would be lost, as faultline does not re-create filters"));
    }
    return absl::OkStatus();
  };

  if (root->handle == 0) {
    // The kernel's default root: it comes back by itself, but not what someone added under it (mq's
    // per-queue qdiscs), nor filters on it (fq_codel takes some).
    for (const Dumped& qdisc : under_root) {
      if (qdisc.handle != 0) {
        reasons.push_back(Cat(Subject(qdisc, false), " was added under the default ", root->kind,
                              " root; deleting faultline's root brings back the default alone"));
      }
    }
    if (auto status = note_filters_on(0); !status.ok()) return status;
    if (!reasons.empty()) return refuse();
    log::Info("kernel.root_taken")
        .With("interface", interface)
        .With("netns", netns->Describe())
        .With("root", root->kind)
        .With("default", true);
    return RootQdisc(std::move(netns), interface, session->ifindex, root->kind, 0, {});
  }

  // Classes of the tree's qdiscs; the kernel also lists the classes that come with a qdisc.
  auto classes = DumpTc(socket, RTM_GETTCLASS, session->ifindex, 0);
  if (!classes.ok()) {
    return absl::Status(classes.status().code(),
                        Cat(where, ": cannot list classes: ", classes.status().message()));
  }

  std::vector<const Dumped*> tree_qdiscs = {&*root};
  for (const Dumped& qdisc : under_root) {
    // Visible qdiscs with handle 0 are defaults their parent makes again by itself.
    if (qdisc.handle != 0) tree_qdiscs.push_back(&qdisc);
  }
  std::map<uint32_t, const RestorableKind*> kind_of_major;
  for (const Dumped* qdisc : tree_qdiscs) {
    if (auto reason = CannotRestore(*qdisc, false)) reasons.push_back(*reason);
    kind_of_major[TC_H_MAJ(qdisc->handle)] = FindRestorable(qdisc->kind);
  }
  std::vector<const Dumped*> user_classes;
  for (const Dumped& cls : *classes) {
    auto owner = kind_of_major.find(TC_H_MAJ(cls.handle));
    if (owner == kind_of_major.end() || owner->second == nullptr || !owner->second->classes_made_by_user) {
      continue;
    }
    if (auto reason = CannotRestore(cls, true)) reasons.push_back(*reason);
    user_classes.push_back(&cls);
  }
  // Filters hang off a qdisc or a class (each has its own block); the dump of one names them all.
  std::vector<uint32_t> filter_parents;
  for (const Dumped* qdisc : tree_qdiscs) filter_parents.push_back(qdisc->handle);
  for (const Dumped& cls : *classes) {
    if (kind_of_major.contains(TC_H_MAJ(cls.handle))) filter_parents.push_back(cls.handle);
  }
  for (uint32_t parent : filter_parents) {
    if (auto status = note_filters_on(parent); !status.ok()) return status;
  }
  if (!reasons.empty()) return refuse();

  // Creation order: the root, then anything whose parent exists already. A class's parent is its
  // qdisc (TC_H_ROOT in htb's dump of a top class, or major:0) or a class made before; a qdisc's is a
  // class made before or one that came with its qdisc.
  std::vector<TcObject> objects;
  std::set<uint32_t> made_classes;
  std::set<uint32_t> majors_with_builtin_classes;
  auto add_qdisc = [&](const Dumped& qdisc) {
    const RestorableKind* restorable = FindRestorable(qdisc.kind);
    objects.push_back(
        TcObject{false, qdisc.kind, qdisc.handle, qdisc.parent, *restorable->options(qdisc.options)});
    if (!restorable->classes_made_by_user) majors_with_builtin_classes.insert(TC_H_MAJ(qdisc.handle));
  };
  add_qdisc(*root);
  std::vector<const Dumped*> pending_qdiscs(tree_qdiscs.begin() + 1, tree_qdiscs.end());
  std::vector<const Dumped*> pending_classes = user_classes;
  while (!pending_qdiscs.empty() || !pending_classes.empty()) {
    bool progress = false;
    std::erase_if(pending_classes, [&](const Dumped* cls) {
      bool qdisc_made = std::any_of(objects.begin(), objects.end(), [&](const TcObject& object) {
        return !object.is_class && TC_H_MAJ(object.handle) == TC_H_MAJ(cls->handle);
      });
      bool ready = qdisc_made && (cls->parent == TC_H_ROOT || TC_H_MIN(cls->parent) == 0 ||
                                  made_classes.contains(cls->parent));
      if (!ready) return false;
      objects.push_back(TcObject{true, cls->kind, cls->handle, cls->parent, cls->options});
      made_classes.insert(cls->handle);
      return progress = true;
    });
    std::erase_if(pending_qdiscs, [&](const Dumped* qdisc) {
      bool ready = made_classes.contains(qdisc->parent) ||
                   majors_with_builtin_classes.contains(TC_H_MAJ(qdisc->parent));
      if (!ready) return false;
      add_qdisc(*qdisc);
      return progress = true;
    });
    if (!progress) {
      const Dumped* stuck = pending_qdiscs.empty() ? pending_classes.front() : pending_qdiscs.front();
      reasons.push_back(Cat("the parent of ", Subject(*stuck, pending_qdiscs.empty()),
                            " is not in the tree the kernel reported"));
      return refuse();
    }
  }
  log::Info("kernel.root_taken")
      .With("interface", interface)
      .With("netns", netns->Describe())
      .With("root", Cat(root->kind, " ", FormatTcHandle(root->handle)))
      .With("objects", objects.size());
  return RootQdisc(std::move(netns), interface, session->ifindex, root->kind, root->handle,
                   std::move(objects));
}

absl::Status RootQdisc::Restore() const {
  std::string where = Where(interface_, *netns_);
  auto session = OpenSession(*netns_, interface_, ifindex_);
  if (!session.ok()) return session.status();
  RouteSocket& socket = *session->socket;
  int ifindex = session->ifindex;
  // Deleting the root takes everything under it; dev_activate then attaches the kernel's default.
  // A default root cannot be deleted (ENOENT "Cannot delete qdisc with handle of zero"): it is there.
  auto delete_root = [&]() -> absl::Status {
    auto answer = socket.Request(TcMessage(RTM_DELQDISC, 0, ifindex, TC_H_ROOT, 0, ""));
    if (!answer.ok()) {
      return absl::Status(answer.status().code(),
                          Cat(where, ": cannot delete the root qdisc: ", answer.status().message()));
    }
    if (answer->error != 0 && answer->error != ENOENT) {
      return StatusFromErrno(answer->error, Cat(where, ": cannot delete the root qdisc: ",
                                                DescribeKernelError(answer->error, answer->message)));
    }
    return absl::OkStatus();
  };
  if (auto status = delete_root(); !status.ok()) return status;
  for (const TcObject& object : objects_) {
    std::string what = Cat("re-create ", object.kind, object.is_class ? " class " : " qdisc ",
                           FormatTcHandle(object.handle), " ", Placement(object.parent));
    NetlinkMessage msg =
        TcMessage(object.is_class ? RTM_NEWTCLASS : RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, ifindex,
                  object.parent, object.handle, object.kind, object.options.size() + 64);
    if (msg == nullptr ||
        (!object.options.empty() && nla_put(msg.get(), TCA_OPTIONS, static_cast<int>(object.options.size()),
                                            object.options.data()) < 0)) {
      return OutOfMemory(where, what);
    }
    if (auto status = Ask(socket, std::move(msg), where, what); !status.ok()) {
      // Rather the kernel's default than half of the old tree.
      auto cleanup = delete_root();
      return absl::Status(
          status.code(),
          Cat(status.message(), cleanup.ok() ? "; the kernel's default root is there instead" : ""));
    }
  }
  log::Info("kernel.root_restored").With("root", Describe());
  return absl::OkStatus();
}

std::string RootQdisc::Describe() const {
  std::string on = Cat(" of ", interface_, " in ", netns_->Describe());
  if (is_default()) return Cat("the default root (", root_kind_, ")", on);
  size_t classes =
      std::count_if(objects_.begin(), objects_.end(), [](const TcObject& object) { return object.is_class; });
  size_t qdiscs = objects_.size() - classes - 1;
  std::string under = classes + qdiscs == 0
                          ? ""
                          : Cat(" (with ", classes, classes == 1 ? " class" : " classes", " and ", qdiscs,
                                qdiscs == 1 ? " qdisc" : " qdiscs", " under it)");
  return Cat("root ", root_kind_, " ", FormatTcHandle(root_handle_), under, on);
}

journal::RootReplaced RootQdisc::Record() const {
  journal::RootReplaced recorded;
  recorded.set_original_kind(root_kind_);
  recorded.set_original_handle(root_handle_);
  for (const TcObject& object : objects_) {
    journal::TcObject* saved = recorded.add_original();
    saved->set_is_class(object.is_class);
    saved->set_kind(object.kind);
    saved->set_handle(object.handle);
    saved->set_parent(object.parent);
    saved->set_options(std::string(object.options.begin(), object.options.end()));
  }
  return recorded;
}

RootQdisc RootQdisc::FromRecord(std::shared_ptr<Netns> netns, const journal::RootReplaced& recorded) {
  std::vector<TcObject> objects;
  for (const journal::TcObject& saved : recorded.original()) {
    objects.push_back(TcObject{saved.is_class(), saved.kind(), saved.handle(), saved.parent(),
                               std::vector<uint8_t>(saved.options().begin(), saved.options().end())});
  }
  return RootQdisc(std::move(netns), recorded.device().name(), recorded.device().ifindex(),
                   recorded.original_kind(), recorded.original_handle(), std::move(objects));
}

// --- IfbDevice ----------------------------------------------------------------------------------------

namespace {

// Deletes device `ifindex` (in the socket's namespace): "removed", or NOT_FOUND when it is gone.
absl::StatusOr<std::string> DeleteLink(RouteSocket& socket, int ifindex) {
  std::unique_ptr<rtnl_link, decltype(&rtnl_link_put)> link(rtnl_link_alloc(), &rtnl_link_put);
  nl_msg* msg = nullptr;
  if (link != nullptr) rtnl_link_set_ifindex(link.get(), ifindex);
  if (link == nullptr || rtnl_link_build_delete_request(link.get(), &msg) < 0) {
    return absl::ResourceExhaustedError("libnl: cannot build the request");
  }
  auto answer = socket.Request(NetlinkMessage(msg));
  if (!answer.ok()) return answer.status();
  if (answer->error == ENODEV) return absl::NotFoundError("the device is gone");
  if (answer->error != 0) {
    return StatusFromErrno(answer->error, DescribeKernelError(answer->error, answer->message));
  }
  return "removed";
}

}  // namespace

absl::StatusOr<std::unique_ptr<IfbDevice>> IfbDevice::Create(std::shared_ptr<Netns> netns,
                                                             const std::string& name) {
  // dev_valid_name (net/core/dev.c): up to IFNAMSIZ - 1 bytes, not "." or "..", no '/', ':' or space.
  if (name.empty() || name.size() >= IFNAMSIZ || name == "." || name == ".." ||
      name.find_first_of("/: \t\n") != std::string::npos) {
    return absl::InvalidArgumentError(Cat("\"", name, "\" is not a valid interface name"));
  }
  std::string where = netns->Describe();
  std::string what = Cat("create ifb device ", name);
  auto session = EnterNetns(*netns, where);
  if (!session.ok()) return session.status();
  std::unique_ptr<rtnl_link, decltype(&rtnl_link_put)> link(rtnl_link_alloc(), &rtnl_link_put);
  if (link == nullptr) {
    return absl::ResourceExhaustedError(Cat(where, ": cannot ", what, ": libnl: out of memory"));
  }
  rtnl_link_set_name(link.get(), name.c_str());
  if (int err = rtnl_link_set_type(link.get(), "ifb"); err < 0) {
    return absl::InternalError(Cat(where, ": cannot ", what, ": libnl: ", nl_geterror(err)));
  }
  // Up from the start: rtnl_newlink applies ifi_flags under ifi_change to the new device.
  rtnl_link_set_flags(link.get(), IFF_UP);
  nl_msg* msg = nullptr;
  if (int err = rtnl_link_build_add_request(link.get(), NLM_F_CREATE | NLM_F_EXCL, &msg); err < 0) {
    return absl::InternalError(Cat(where, ": cannot ", what, ": libnl: ", nl_geterror(err)));
  }
  NetlinkMessage request(msg);
  // Checked before the journal names the device: a replay must never delete someone else's device.
  if (if_nametoindex(name.c_str()) != 0) {
    return absl::AlreadyExistsError(Cat(where, ": cannot ", what, ": a device of that name exists"));
  }
  journal::Change change;
  change.set_what(Cat("ifb device ", name, " in ", netns->Describe()));
  *change.mutable_ifb()->mutable_netns() = netns->Record();
  change.mutable_ifb()->set_name(name);
  auto entry = RecordChange(std::move(change));
  if (!entry.ok()) return entry.status();
  if (auto status = Ask(*session->socket, std::move(request), where, what); !status.ok()) {
    entry->Done();  // refused: nothing was made
    return status;
  }
  int ifindex = static_cast<int>(if_nametoindex(name.c_str()));
  if (ifindex == 0) {
    return absl::InternalError(Cat(where, ": ifb device ", name, " was created but is not there"));
  }
  auto device = std::unique_ptr<IfbDevice>(new IfbDevice(std::move(netns), name, ifindex));
  device->entry_ = *std::move(entry);
  log::Info("kernel.ifb_created").With("device", device->Describe());
  return device;
}

IfbDevice::~IfbDevice() {
  std::string description = Describe();
  auto session = EnterNetns(*netns_, description);
  if (!session.ok()) {
    log::Error("kernel.ifb_remove_failed")
        .With("device", description)
        .With("error", session.status().ToString());
    return;
  }
  auto deleted = DeleteLink(*session->socket, ifindex_);
  if (deleted.ok()) {
    log::Info("kernel.ifb_removed").With("device", description);
  } else if (absl::IsNotFound(deleted.status())) {
    log::Info("kernel.ifb_gone").With("device", description);
  } else {
    log::Error("kernel.ifb_remove_failed")
        .With("device", description)
        .With("error", deleted.status().ToString());
    return;
  }
  entry_.Done();
}

std::string IfbDevice::Describe() const { return Cat("ifb device ", name_, " in ", netns_->Describe()); }

// --- replay --------------------------------------------------------------------------------------------

absl::StatusOr<std::string> UndoRecordedQdisc(const journal::Qdisc& recorded) {
  auto netns = ReopenDevice(recorded.device());
  if (!netns.ok()) return netns.status();
  const journal::Device& device = recorded.device();
  return DeleteTc(
      **netns, device.name(), device.ifindex(), RTM_DELQDISC, recorded.kind(), recorded.parent(),
      recorded.handle(), "qdisc",
      DescribeQdisc(recorded.kind(), recorded.parent(), recorded.handle(), device.name(), **netns));
}

absl::StatusOr<std::string> UndoRecordedHtbClass(const journal::HtbClass& recorded) {
  auto netns = ReopenDevice(recorded.device());
  if (!netns.ok()) return netns.status();
  const journal::Device& device = recorded.device();
  return DeleteTc(**netns, device.name(), device.ifindex(), RTM_DELTCLASS, "", recorded.parent(),
                  recorded.classid(), "class",
                  DescribeHtbClass(recorded.parent(), recorded.classid(), device.name(), **netns));
}

absl::StatusOr<std::string> UndoRecordedRoot(const journal::RootReplaced& recorded) {
  auto netns = ReopenDevice(recorded.device());
  if (!netns.ok()) return netns.status();
  const journal::Device& device = recorded.device();
  {
    auto session = OpenSession(**netns, device.name(), device.ifindex());
    if (!session.ok()) return session.status();
    auto qdiscs = DumpTc(*session->socket, RTM_GETQDISC, session->ifindex, 0);
    if (!qdiscs.ok()) return qdiscs.status();
    auto root = std::find_if(qdiscs->begin(), qdiscs->end(),
                             [](const Dumped& qdisc) { return qdisc.parent == TC_H_ROOT; });
    // Never replaced (a crash before the change), put back already, or replaced by someone since.
    if (root == qdiscs->end() || root->kind != recorded.kind() || root->handle != recorded.handle()) {
      return absl::NotFoundError(
          Cat("faultline's root ", recorded.kind(), " ", FormatTcHandle(recorded.handle()), " is not there (",
              root == qdiscs->end() ? std::string("no root")
                                    : Cat("the root is ", root->kind, " ", FormatTcHandle(root->handle)),
              ")"));
    }
  }
  RootQdisc original = RootQdisc::FromRecord(*netns, recorded);
  if (absl::Status restored = original.Restore(); !restored.ok()) return restored;
  return Cat("put back ", original.Describe());
}

absl::StatusOr<std::string> UndoRecordedIfb(const journal::IfbDevice& recorded) {
  auto netns = Netns::Reopen(recorded.netns());
  if (!netns.ok()) return netns.status();
  auto session = EnterNetns(**netns, (*netns)->Describe());
  if (!session.ok()) return session.status();
  int ifindex = static_cast<int>(if_nametoindex(recorded.name().c_str()));
  if (ifindex == 0)
    return absl::NotFoundError(Cat("no device ", recorded.name(), " in ", (*netns)->Describe()));
  rtnl_link* link = nullptr;
  auto answer = session->socket->RunLibnl(
      [&](nl_sock* sock) { return rtnl_link_get_kernel(sock, ifindex, nullptr, &link); });
  std::unique_ptr<rtnl_link, decltype(&rtnl_link_put)> owned(link, &rtnl_link_put);
  if (!answer.ok()) return answer.status();
  if (answer->error != 0 || link == nullptr) {
    return absl::NotFoundError(Cat("device ", recorded.name(), " is gone from ", (*netns)->Describe()));
  }
  const char* type = rtnl_link_get_type(link);
  if (type == nullptr || std::string_view(type) != "ifb") {
    return absl::NotFoundError(Cat("device ", recorded.name(), " is not an ifb device (",
                                   type == nullptr ? "no kind" : type, "): not faultline's"));
  }
  return DeleteLink(*session->socket, ifindex);
}

}  // namespace faultline::kernel
