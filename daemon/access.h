// Who may call the agent, and what they may do. A caller is identified by the listener its call came
// in on; a role says which calls it may make:
//   viewer    Capabilities, Get, List, Watch
//   operator  also Inject, Revert, Halt, RenewLease
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace faultline {

enum class Role { kNone, kViewer, kOperator };

std::string_view RoleName(Role role);

// The role a call of the Agent API needs, by method name ("Inject"). Unknown names need operator.
Role RequiredRole(std::string_view call);

// The --access file: which certificate identities hold which role. One entry a line:
//   ROLE IDENTITY      operator alice.example.com
//                      viewer   spiffe://example.org/ci/runner
//                      viewer   *.ci.example.com      (exactly one DNS label in place of the *)
// Blank lines and lines starting with # are ignored. An exact entry wins over a wildcard one.
class AccessPolicy {
 public:
  AccessPolicy() = default;
  static absl::StatusOr<AccessPolicy> Load(const std::string& path);
  // `source` names the text in errors: "FILE:LINE: ...".
  static absl::StatusOr<AccessPolicy> Parse(std::string_view text, std::string_view source);

  Role RoleOf(std::string_view identity) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    Role role;
    std::string identity;  // for a wildcard, the suffix after the "*"
    bool wildcard;
    int line;
  };
  std::vector<Entry> entries_;
};

// The caller of one request.
struct Caller {
  std::string identity;  // empty: the connection proved none
  std::string peer;      // gRPC's peer address: "ipv4:127.0.0.1:40312", "unix:"
  Role role = Role::kNone;
};

// How the agent's listeners identify callers:
//   TLS (--listen)               the client certificate's DNS and URI SANs, or its CN when it has
//                                none; the role is the best the policy gives any of them
//   unix socket                  operator, as "unix:SOCKET": whoever can open the socket (0600, or
//                                0660 with --socket-group) is root or trusted like it. gRPC 1.51 does
//                                not expose the connection's fd, so SO_PEERCRED cannot name the uid.
//   plain TCP (--insecure-listen) operator, as "insecure:PEER"; loopback only
class CallerIdentifier {
 public:
  CallerIdentifier(AccessPolicy policy, std::string socket_path)
      : policy_(std::move(policy)), socket_path_(std::move(socket_path)) {}
  Caller Identify(const grpc::ServerContext& context) const;

 private:
  const AccessPolicy policy_;
  const std::string socket_path_;
};

// OK when `caller` may make `call`; else UNAUTHENTICATED (no identity) or PERMISSION_DENIED.
grpc::Status Authorize(const Caller& caller, std::string_view call);

}  // namespace faultline
