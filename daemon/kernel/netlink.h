// A NETLINK_ROUTE socket that keeps what libnl alone loses: the kernel's errno (libnl folds ENOENT and
// ESRCH both into NLE_OBJ_NOTFOUND) and its extended-ack text ("Specified qdisc kind is unknown").
// Opened in the calling thread's network namespace; the qdisc layer and the capability probe both
// speak rtnetlink through it.
#pragma once

#include <linux/rtnetlink.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

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

  // Sends one request and waits for the kernel's acknowledgement. An error status only when libnl
  // failed before the kernel answered; the kernel's refusals are in the answer.
  absl::StatusOr<NetlinkAnswer> Request(NetlinkMessage msg);

  // Runs one libnl request that sends and waits itself (rtnl_qdisc_add, rtnl_link_add, ...). As with
  // Request, an error status only when libnl failed before the kernel answered; on success the
  // answer carries no warning text, which libnl does not pass on.
  absl::StatusOr<NetlinkAnswer> RunLibnl(const std::function<int(nl_sock*)>& request);

  // Dumps objects of one type (RTM_GETQDISC, RTM_GETTCLASS, RTM_GETTFILTER) for `request`, passing each
  // message to `each`.
  absl::Status Dump(int type, const tcmsg& request, const std::function<void(nlmsghdr*)>& each);

 private:
  RouteSocket() = default;

  nl_cb* Callbacks();
  static int OnError(sockaddr_nl* from, nlmsgerr* err, void* arg);
  static int OnAck(nl_msg* msg, void* arg);

  nl_sock* sock_ = nullptr;
  std::optional<NetlinkAnswer> answer_;
};

}  // namespace faultline::kernel
