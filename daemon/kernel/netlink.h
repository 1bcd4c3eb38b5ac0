// A NETLINK_ROUTE socket that keeps what libnl alone loses: the kernel's errno (libnl folds ENOENT and
// ESRCH both into NLE_OBJ_NOTFOUND) and its extended-ack text ("Specified qdisc kind is unknown").
// Opened in the calling thread's network namespace; the qdisc layer and the capability probe both
// speak rtnetlink through it.
#pragma once

#include <linux/rtnetlink.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace faultline::kernel {

// The kernel's answer to one request: its errno (0 for success) and its extended-ack text, which on
// success is a warning.
struct NetlinkAnswer {
  int error = 0;
  std::string message;
};

struct NlMsgDeleter {
  void operator()(nl_msg* msg) const { nlmsg_free(msg); }
};
using NetlinkMessage = std::unique_ptr<nl_msg, NlMsgDeleter>;

// "Specified qdisc kind is unknown (ENOENT)": the kernel's words when it gave some, else strerror's.
std::string DescribeKernelError(int error, std::string_view kernel_message);

// The status code an errno from rtnetlink means, with `message`.
absl::Status StatusFromErrno(int error, const std::string& message);

class RouteSocket {
 public:
  // A socket in the calling thread's network namespace.
  static absl::StatusOr<std::unique_ptr<RouteSocket>> Open();
  ~RouteSocket();
  RouteSocket(const RouteSocket&) = delete;
  RouteSocket& operator=(const RouteSocket&) = delete;

  // The socket's descriptor, for ioctls that ask about its namespace's devices.
  int fd() const;

  // Sends one request and waits for the kernel's acknowledgement, passing what the kernel sends
  // before it (the object, to a request with NLM_F_ECHO) to `each`. An error status only when libnl
  // failed before the kernel answered; the kernel's refusals are in the answer.
  absl::StatusOr<NetlinkAnswer> Request(NetlinkMessage msg, const std::function<void(nlmsghdr*)>& each = {});

  // Runs one libnl request that sends and waits itself (rtnl_qdisc_add, rtnl_link_add, ...). As with
  // Request, an error status only when libnl failed before the kernel answered; on success the
  // answer carries no warning text, which libnl does not pass on.
  absl::StatusOr<NetlinkAnswer> RunLibnl(const std::function<int(nl_sock*)>& request);

  // Dumps objects of one type (RTM_GETQDISC, RTM_GETTCLASS, RTM_GETTFILTER) for `request`, passing each
  // message to `each`.
  absl::Status Dump(int type, const tcmsg& request, const std::function<void(nlmsghdr*)>& each);

  // Asks for the one object `request` names, passing it to `each`. As with Request, an error status
  // only when libnl failed before the kernel answered; a refusal (ENOENT: no such object) is in the
  // answer.
  absl::StatusOr<NetlinkAnswer> Get(int type, const tcmsg& request,
                                    const std::function<void(nlmsghdr*)>& each);

 private:
  RouteSocket() = default;

  nl_cb* Callbacks();
  absl::StatusOr<NetlinkAnswer> Exchange(int type, int flags, const tcmsg& request,
                                         const std::function<void(nlmsghdr*)>& each);
  absl::StatusOr<NetlinkAnswer> Transact(NetlinkMessage msg, bool dump,
                                         const std::function<void(nlmsghdr*)>& each);
  static int OnError(sockaddr_nl* from, nlmsgerr* err, void* arg);
  static int OnAck(nl_msg* msg, void* arg);
  static int OnSequence(nl_msg* msg, void* arg);

  nl_sock* sock_ = nullptr;
  std::optional<NetlinkAnswer> answer_;
  uint32_t expected_seq_ = 0;  // the sequence number of the request in flight
};

// A tc request (`type` RTM_NEWQDISC, RTM_DELTCLASS, ...): struct tcmsg, then TCA_KIND when `kind` is not
// empty, with room for `payload` bytes of attributes (the default fits netem's delay table); null
// when it cannot be built.
NetlinkMessage TcMessage(int type, int flags, int ifindex, uint32_t parent, uint32_t handle,
                         std::string_view kind, size_t payload = 1024);

// A qdisc, class or filter as the kernel dumped it.
struct DumpedTc {
  int ifindex = 0;
  std::string kind;
  uint32_t handle = 0;
  uint32_t parent = 0;
  uint32_t info = 0;             // a filter's priority (upper 16 bits) and protocol
  std::vector<uint8_t> options;  // TCA_OPTIONS' payload
  bool has_stab = false;
  bool has_rate_estimator = false;
};

// The qdiscs, classes or filters (`type` RTM_GETQDISC, RTM_GETTCLASS, RTM_GETTFILTER) of device
// `ifindex`; for filters, those attached to `parent`.
absl::StatusOr<std::vector<DumpedTc>> DumpTc(RouteSocket& socket, int type, int ifindex, uint32_t parent);

// The one qdisc or class of device `ifindex` at `parent` (a get, not a dump); nullopt when the kernel
// has none there (ENOENT).
absl::StatusOr<std::optional<DumpedTc>> GetTc(RouteSocket& socket, int type, int ifindex, uint32_t parent);

}  // namespace faultline::kernel
