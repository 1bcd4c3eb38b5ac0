#include "kernel/netlink.h"

#include <linux/gen_stats.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "faultline/api/cat.h"

namespace faultline::kernel {
namespace {

using api::Cat;

// The text of the kernel's extended ack. netlink_ack (net/netlink/af_netlink.c) appends its
// attributes after struct nlmsgerr and, unless the ack is capped, after a copy of the request. Acks
// of successful requests can carry one too: a warning (htb's "quantum of class ... is big").
std::string ExtackMessage(const nlmsghdr* reply) {
  if (!(reply->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  const auto* err = static_cast<const nlmsgerr*>(nlmsg_data(reply));
  size_t offset = NLMSG_ALIGN(sizeof(nlmsgerr));
  if (!(reply->nlmsg_flags & NLM_F_CAPPED) && err->msg.nlmsg_len > NLMSG_HDRLEN) {
    offset += NLMSG_ALIGN(err->msg.nlmsg_len - NLMSG_HDRLEN);
  }
  size_t payload = reply->nlmsg_len - NLMSG_HDRLEN;
  if (offset >= payload) return "";
  nlattr* attrs[NLMSGERR_ATTR_MAX + 1] = {};
  auto* head = reinterpret_cast<nlattr*>(const_cast<char*>(reinterpret_cast<const char*>(err) + offset));
  if (nla_parse(attrs, NLMSGERR_ATTR_MAX, head, static_cast<int>(payload - offset), nullptr) < 0) return "";
  const nlattr* text = attrs[NLMSGERR_ATTR_MSG];
  if (text == nullptr) return "";
  const char* chars = static_cast<const char*>(nla_data(text));
  return std::string(chars, strnlen(chars, static_cast<size_t>(nla_len(text))));
}

std::optional<DumpedTc> ParseTcMessage(nlmsghdr* header) {
  if (nlmsg_datalen(header) < static_cast<int>(sizeof(tcmsg))) return std::nullopt;
  nlattr* attrs[TCA_MAX + 1] = {};
  if (nlmsg_parse(header, sizeof(tcmsg), attrs, TCA_MAX, nullptr) < 0) return std::nullopt;
  const auto* tcm = static_cast<const tcmsg*>(nlmsg_data(header));
  DumpedTc dumped;
  dumped.ifindex = tcm->tcm_ifindex;
  dumped.handle = tcm->tcm_handle;
  dumped.parent = tcm->tcm_parent;
  dumped.info = tcm->tcm_info;
  if (const nlattr* kind = attrs[TCA_KIND]) {
    const char* chars = static_cast<const char*>(nla_data(kind));
    dumped.kind.assign(chars, strnlen(chars, static_cast<size_t>(nla_len(kind))));
  }
  if (const nlattr* options = attrs[TCA_OPTIONS]) {
    const auto* bytes = static_cast<const uint8_t*>(nla_data(options));
    dumped.options.assign(bytes, bytes + nla_len(options));
  }
  // qdisc_dump_stab reports only a size table's base, never its data.
  dumped.has_stab = attrs[TCA_STAB] != nullptr;
  // gnet_stats_copy_rate_est reports an estimate only when an estimator runs; its interval and time
  // constant are never reported.
  if (attrs[TCA_STATS2] != nullptr) {
    nlattr* stats[TCA_STATS_MAX + 1] = {};
    if (nla_parse_nested(stats, TCA_STATS_MAX, attrs[TCA_STATS2], nullptr) == 0) {
      dumped.has_rate_estimator =
          stats[TCA_STATS_RATE_EST] != nullptr || stats[TCA_STATS_RATE_EST64] != nullptr;
    }
  }
  return dumped;
}

tcmsg TcRequest(int ifindex, uint32_t parent) {
  tcmsg request{};
  request.tcm_family = AF_UNSPEC;
  request.tcm_ifindex = ifindex;
  request.tcm_parent = parent;
  return request;
}

}  // namespace

std::string DescribeKernelError(int error, std::string_view kernel_message) {
  const char* name = strerrorname_np(error);
  const char* words = strerrordesc_np(error);
  return Cat(kernel_message.empty() ? std::string_view(words ? words : "unknown error") : kernel_message,
             " (", name ? std::string(name) : Cat("errno ", error), ")");
}

absl::Status StatusFromErrno(int error, const std::string& message) {
  switch (error) {
    case EEXIST:
      return absl::AlreadyExistsError(message);
    case ENODEV:
      return absl::NotFoundError(message);
    case EPERM:
    case EACCES:
      return absl::PermissionDeniedError(message);
    case EINVAL:
    case ERANGE:
    case E2BIG:
      return absl::InvalidArgumentError(message);
    // ENOENT: an unknown kind (qdisc_lookup_ops fails after trying to load sch_<kind>) or a parent
    // that is not there; EOPNOTSUPP: an unknown link kind or an operation the device refuses.
    case ENOENT:
    case EOPNOTSUPP:
    case EBUSY:
      return absl::FailedPreconditionError(message);
    case ENOMEM:
    case ENOBUFS:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::StatusOr<std::unique_ptr<RouteSocket>> RouteSocket::Open() {
  auto socket = std::unique_ptr<RouteSocket>(new RouteSocket());
  socket->sock_ = nl_socket_alloc();
  if (socket->sock_ == nullptr) return absl::UnavailableError("cannot allocate a netlink socket");
  // On the socket's own callbacks too, so libnl's requests that wait for their ack (RunLibnl) keep
  // the kernel's errno and text; Request and Dump set it on their copies anyway.
  nl_cb* own = nl_socket_get_cb(socket->sock_);  // takes a reference
  nl_cb_err(own, NL_CB_CUSTOM, &RouteSocket::OnError, socket.get());
  nl_cb_put(own);
  if (int err = nl_connect(socket->sock_, NETLINK_ROUTE); err < 0) {
    return absl::UnavailableError(Cat("cannot open a rtnetlink socket: ", nl_geterror(err)));
  }
  // The kernel's error text without the echoed request (kernels before 4.12 ignore these; errors
  // then carry the errno alone). Peeking lets libnl size its buffer to large dump messages.
  int one = 1;
  int fd = nl_socket_get_fd(socket->sock_);
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  nl_socket_enable_msg_peek(socket->sock_);
  return socket;
}

RouteSocket::~RouteSocket() {
  if (sock_ != nullptr) nl_socket_free(sock_);
}

int RouteSocket::fd() const { return nl_socket_get_fd(sock_); }

absl::StatusOr<NetlinkAnswer> RouteSocket::Request(NetlinkMessage msg,
                                                   const std::function<void(nlmsghdr*)>& each) {
  return Transact(std::move(msg), /*dump=*/false, each);
}

absl::StatusOr<NetlinkAnswer> RouteSocket::RunLibnl(const std::function<int(nl_sock*)>& request) {
  answer_.reset();
  int err = request(sock_);
  if (err == 0) return NetlinkAnswer{};
  if (answer_.has_value()) return *answer_;
  return absl::UnavailableError(Cat("libnl: ", nl_geterror(err)));
}

absl::Status RouteSocket::Dump(int type, const tcmsg& request, const std::function<void(nlmsghdr*)>& each) {
  auto answer = Exchange(type, NLM_F_DUMP, request, each);
  if (!answer.ok()) return answer.status();
  if (answer->error != 0)
    return StatusFromErrno(answer->error, DescribeKernelError(answer->error, answer->message));
  return absl::OkStatus();
}

absl::StatusOr<NetlinkAnswer> RouteSocket::Get(int type, const tcmsg& request,
                                               const std::function<void(nlmsghdr*)>& each) {
  // The qdisc layer answers a get as it notifies a change: to the asker only when it asks for an echo.
  return Exchange(type, NLM_F_ECHO, request, each);
}

absl::StatusOr<NetlinkAnswer> RouteSocket::Exchange(int type, int flags, const tcmsg& request,
                                                    const std::function<void(nlmsghdr*)>& each) {
  NetlinkMessage msg(nlmsg_alloc_simple(type, flags));
  tcmsg header = request;
  if (msg == nullptr || nlmsg_append(msg.get(), &header, sizeof(header), NLMSG_ALIGNTO) < 0) {
    return absl::UnavailableError("libnl: out of memory");
  }
  return Transact(std::move(msg), flags == NLM_F_DUMP, each);
}

absl::StatusOr<NetlinkAnswer> RouteSocket::Transact(NetlinkMessage msg, bool dump,
                                                    const std::function<void(nlmsghdr*)>& each) {
  answer_.reset();
  // Before the request goes: once it is sent, its answer must be read.
  nl_cb* cb = Callbacks();
  if (cb == nullptr) return absl::UnavailableError("libnl: out of memory");
  absl::Cleanup release = [cb] { nl_cb_put(cb); };
  if (int err = nl_send_auto(sock_, msg.get()); err < 0) {
    return absl::UnavailableError(Cat("cannot send to rtnetlink: ", nl_geterror(err)));
  }
  // This request's messages only: what an earlier request left unread, when reading its answer
  // failed, is skipped instead of taken for this one's (the socket lives as long as its owner).
  expected_seq_ = nlmsg_hdr(msg.get())->nlmsg_seq;
  nl_cb_set(cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, &RouteSocket::OnSequence, this);
  if (each) {
    auto on_valid = [](nl_msg* got, void* arg) {
      (*static_cast<const std::function<void(nlmsghdr*)>*>(arg))(nlmsg_hdr(got));
      return static_cast<int>(NL_OK);
    };
    nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_valid, const_cast<std::function<void(nlmsghdr*)>*>(&each));
  }
  nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, &RouteSocket::OnAck, this);
  bool done = false;  // a dump's NLMSG_DONE: a dump ends with it and no acknowledgement
  auto on_done = [](nl_msg*, void* arg) {
    *static_cast<bool*>(arg) = true;
    return static_cast<int>(NL_STOP);
  };
  if (dump) nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, on_done, &done);
  // Until the acknowledgement (or the kernel's refusal), or a dump's end. What a get or an echo asks
  // for comes in a read of its own before the acknowledgement.
  int err = 0;
  while (err >= 0 && !answer_.has_value() && !done) err = nl_recvmsgs(sock_, cb);
  if (answer_.has_value()) return *answer_;
  if (err < 0) return absl::UnavailableError(Cat("no answer from rtnetlink: ", nl_geterror(err)));
  return NetlinkAnswer{};
}

nl_cb* RouteSocket::Callbacks() {
  nl_cb* own = nl_socket_get_cb(sock_);  // takes a reference
  nl_cb* cb = nl_cb_clone(own);
  nl_cb_put(own);
  if (cb != nullptr) nl_cb_err(cb, NL_CB_CUSTOM, &RouteSocket::OnError, this);
  return cb;
}

int RouteSocket::OnError(sockaddr_nl* /*from*/, nlmsgerr* err, void* arg) {
  const auto* reply = reinterpret_cast<const nlmsghdr*>(reinterpret_cast<const char*>(err) - NLMSG_HDRLEN);
  static_cast<RouteSocket*>(arg)->answer_ = NetlinkAnswer{-err->error, ExtackMessage(reply)};
  return NL_STOP;
}

int RouteSocket::OnSequence(nl_msg* msg, void* arg) {
  return nlmsg_hdr(msg)->nlmsg_seq == static_cast<RouteSocket*>(arg)->expected_seq_ ? NL_OK : NL_SKIP;
}

int RouteSocket::OnAck(nl_msg* msg, void* arg) {
  static_cast<RouteSocket*>(arg)->answer_ = NetlinkAnswer{0, ExtackMessage(nlmsg_hdr(msg))};
  return NL_STOP;
}

NetlinkMessage TcMessage(int type, int flags, int ifindex, uint32_t parent, uint32_t handle,
                         std::string_view kind, size_t payload) {
  NetlinkMessage msg(nlmsg_alloc_size(NLMSG_SPACE(sizeof(tcmsg)) + payload));
  if (msg == nullptr || nlmsg_put(msg.get(), NL_AUTO_PORT, NL_AUTO_SEQ, type, 0, flags) == nullptr) {
    return nullptr;
  }
  tcmsg header{};
  header.tcm_family = AF_UNSPEC;
  header.tcm_ifindex = ifindex;
  header.tcm_parent = parent;
  header.tcm_handle = handle;
  if (nlmsg_append(msg.get(), &header, sizeof(header), NLMSG_ALIGNTO) < 0) return nullptr;
  if (!kind.empty() && nla_put_string(msg.get(), TCA_KIND, std::string(kind).c_str()) < 0) return nullptr;
  return msg;
}

absl::StatusOr<std::vector<DumpedTc>> DumpTc(RouteSocket& socket, int type, int ifindex, uint32_t parent) {
  std::vector<DumpedTc> found;
  auto status = socket.Dump(type, TcRequest(ifindex, parent), [&](nlmsghdr* header) {
    // tc_dump_qdisc lists every device's qdiscs whatever the request says.
    if (auto dumped = ParseTcMessage(header); dumped && dumped->ifindex == ifindex) {
      found.push_back(*std::move(dumped));
    }
  });
  if (!status.ok()) return status;
  return found;
}

absl::StatusOr<std::optional<DumpedTc>> GetTc(RouteSocket& socket, int type, int ifindex, uint32_t parent) {
  std::optional<DumpedTc> found;
  auto answer = socket.Get(type, TcRequest(ifindex, parent), [&](nlmsghdr* header) {
    if (auto got = ParseTcMessage(header); got && got->ifindex == ifindex && got->parent == parent)
      found = *got;
  });
  if (!answer.ok()) return answer.status();
  if (answer->error == ENOENT) return std::nullopt;
  if (answer->error != 0)
    return StatusFromErrno(answer->error, DescribeKernelError(answer->error, answer->message));
  return found;
}

}  // namespace faultline::kernel
