#include "access.h"

#include <grpc/grpc_security_constants.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "faultline/api/cat.h"

namespace faultline {

using api::Cat;

namespace {

std::string_view Trim(std::string_view text) {
  const char* blanks = " \t\r";
  size_t first = text.find_first_not_of(blanks);
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(blanks) - first + 1);
}

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> fields;
  while (!(line = Trim(line)).empty()) {
    size_t end = line.find_first_of(" \t");
    fields.push_back(line.substr(0, end));
    line = end == std::string_view::npos ? std::string_view() : line.substr(end);
  }
  return fields;
}

std::vector<std::string> Values(const grpc::AuthContext& auth, const char* property) {
  std::vector<std::string> values;
  for (const grpc::string_ref& value : auth.FindPropertyValues(property)) {
    values.emplace_back(value.data(), value.size());
  }
  return values;
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kOperator:
      return "operator";
    case Role::kNone:
      break;
  }
  return "none";
}

Role RequiredRole(std::string_view call) {
  for (std::string_view read : {"Capabilities", "Get", "List", "Watch"}) {
    if (call == read) return Role::kViewer;
  }
  return Role::kOperator;
}

absl::StatusOr<AccessPolicy> AccessPolicy::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(Cat(path, ": cannot read it: ", std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path);
}

absl::StatusOr<AccessPolicy> AccessPolicy::Parse(std::string_view text, std::string_view source) {
  AccessPolicy policy;
  int number = 0;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = Trim(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    number++;
    if (line.empty() || line.front() == '#') continue;
    auto error = [&](const auto&... parts) {
      return absl::InvalidArgumentError(Cat(source, ":", number, ": ", parts...));
    };
    std::vector<std::string_view> fields = Fields(line);
    if (fields.size() != 2) {
      return error("expected \"ROLE IDENTITY\", e.g. \"operator alice.example.com\", got \"", line, "\"");
    }
    Entry entry{Role::kNone, std::string(fields[1]), false, number};
    if (fields[0] == "viewer") {
      entry.role = Role::kViewer;
    } else if (fields[0] == "operator") {
      entry.role = Role::kOperator;
    } else {
      return error("\"", fields[0], "\" is not a role (viewer or operator)");
    }
    if (entry.identity.find('*') != std::string::npos) {
      if (!entry.identity.starts_with("*.") || entry.identity.size() < 3 ||
          entry.identity.find('*', 1) != std::string::npos) {
        return error(
            "\"", entry.identity,
            "\": a wildcard is \"*.\" before a domain, e.g. *.ci.example.com, and stands for one label");
      }
      entry.identity = entry.identity.substr(1);
      entry.wildcard = true;
    }
    for (const Entry& other : policy.entries_) {
      if (other.identity == entry.identity && other.wildcard == entry.wildcard) {
        return error(fields[1], " is already listed on line ", other.line);
      }
    }
    policy.entries_.push_back(std::move(entry));
  }
  return policy;
}

Role AccessPolicy::RoleOf(std::string_view identity) const {
  Role wildcard = Role::kNone;
  for (const Entry& entry : entries_) {
    if (!entry.wildcard) {
      if (entry.identity == identity) return entry.role;
      continue;
    }
    // "*.ci.example.com" takes "runner-7.ci.example.com", not "a.b.ci.example.com" nor a URI.
    if (identity.size() <= entry.identity.size() || !identity.ends_with(entry.identity)) continue;
    std::string_view label = identity.substr(0, identity.size() - entry.identity.size());
    if (label.find_first_of(".:/") == std::string_view::npos) wildcard = entry.role;
  }
  return wildcard;
}

Caller CallerIdentifier::Identify(const grpc::ServerContext& context) const {
  Caller caller;
  caller.peer = context.peer();
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  std::vector<std::string> security =
      auth ? Values(*auth, GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME) : std::vector<std::string>{};
  if (security.size() != 1) return caller;
  if (security[0] == GRPC_SSL_TRANSPORT_SECURITY_TYPE) {
    std::vector<std::string> identities = Values(*auth, GRPC_PEER_DNS_PROPERTY_NAME);
    for (auto& uri : Values(*auth, GRPC_PEER_URI_PROPERTY_NAME)) identities.push_back(std::move(uri));
    if (identities.empty()) identities = Values(*auth, GRPC_X509_CN_PROPERTY_NAME);
    for (auto& identity : identities) {
      Role role = policy_.RoleOf(identity);
      if (caller.identity.empty() || role > caller.role) {
        caller.identity = std::move(identity);
        caller.role = role;
      }
    }
    return caller;
  }
  // Only the unix socket and --insecure-listen serve without TLS; anything else proves nothing.
  if (security[0] != "insecure") return caller;
  caller.identity = caller.peer.starts_with("unix:") ? "unix:" + socket_path_ : "insecure:" + caller.peer;
  caller.role = Role::kOperator;
  return caller;
}

grpc::Status Authorize(const Caller& caller, std::string_view call) {
  Role needed = RequiredRole(call);
  if (caller.identity.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "no client identity: the client certificate has no DNS or URI subject alternative "
                        "name and no common name");
  }
  if (caller.role >= needed) return grpc::Status::OK;
  if (caller.role == Role::kNone) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        Cat("client ", caller.identity, " has no role in the agent's access file; ", call,
                            " needs ", RoleName(needed)));
  }
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      Cat("client ", caller.identity, " is a ", RoleName(caller.role), "; ", call,
                          " needs the ", RoleName(needed), " role"));
}

}  // namespace faultline
