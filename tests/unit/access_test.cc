#include "access.h"

#include <gtest/gtest.h>

#include <string>

namespace faultline {
namespace {

AccessPolicy Parse(std::string_view text) {
  absl::StatusOr<AccessPolicy> policy = AccessPolicy::Parse(text, "access");
  EXPECT_TRUE(policy.ok()) << policy.status();
  return policy.ok() ? *std::move(policy) : AccessPolicy();
}

std::string ParseError(std::string_view text) {
  absl::StatusOr<AccessPolicy> policy = AccessPolicy::Parse(text, "/etc/faultline/access");
  EXPECT_FALSE(policy.ok()) << text;
  return std::string(policy.status().message());
}

TEST(AccessPolicy, GivesEachListedIdentityItsRole) {
  AccessPolicy policy = Parse(
      "# the SRE team operates, CI watches\n"
      "\n"
      "operator alice.example\n"
      "  viewer\tspiffe://example.org/ci   \r\n"
      "viewer *.ci.example\n"
      "operator deploy.ci.example\n");
  EXPECT_EQ(policy.size(), 4u);
  EXPECT_EQ(policy.RoleOf("alice.example"), Role::kOperator);
  EXPECT_EQ(policy.RoleOf("spiffe://example.org/ci"), Role::kViewer);
  EXPECT_EQ(policy.RoleOf("runner-7.ci.example"), Role::kViewer);
  // An exact entry wins over a wildcard one.
  EXPECT_EQ(policy.RoleOf("deploy.ci.example"), Role::kOperator);
  // A wildcard stands for exactly one DNS label.
  EXPECT_EQ(policy.RoleOf("a.b.ci.example"), Role::kNone);
  EXPECT_EQ(policy.RoleOf("ci.example"), Role::kNone);
  EXPECT_EQ(policy.RoleOf("spiffe://x.ci.example"), Role::kNone);
  // Matching is exact: no case folding, no prefixes.
  EXPECT_EQ(policy.RoleOf("Alice.example"), Role::kNone);
  EXPECT_EQ(policy.RoleOf("alice.example.evil"), Role::kNone);
  EXPECT_EQ(policy.RoleOf(""), Role::kNone);
}

TEST(AccessPolicy, AnEmptyFileGivesNoRoles) {
  AccessPolicy policy = Parse("# nobody yet\n");
  EXPECT_EQ(policy.size(), 0u);
  EXPECT_EQ(policy.RoleOf("alice.example"), Role::kNone);
}

TEST(AccessPolicy, ErrorsNameTheFileAndLine) {
  EXPECT_EQ(ParseError("operator alice.example\nadmin bob.example\n"),
            "/etc/faultline/access:2: \"admin\" is not a role (viewer or operator)");
  EXPECT_EQ(ParseError("operator\n"),
            "/etc/faultline/access:1: expected \"ROLE IDENTITY\", e.g. \"operator alice.example.com\", got "
            "\"operator\"");
  EXPECT_EQ(ParseError("\n\nviewer a.example b.example\n"),
            "/etc/faultline/access:3: expected \"ROLE IDENTITY\", e.g. \"operator alice.example.com\", got "
            "\"viewer a.example b.example\"");
  EXPECT_EQ(ParseError("viewer a.example # a comment\n"),
            "/etc/faultline/access:1: expected \"ROLE IDENTITY\", e.g. \"operator alice.example.com\", got "
            "\"viewer a.example # a comment\"");
  EXPECT_EQ(ParseError("viewer alice.example\noperator alice.example\n"),
            "/etc/faultline/access:2: alice.example is already listed on line 1");
  for (std::string_view wildcard : {"viewer *", "viewer *.", "viewer a.*.example", "viewer *.*.example",
                                    "viewer *example", "viewer spiffe://*"}) {
    std::string error = ParseError(wildcard);
    EXPECT_NE(error.find("a wildcard is \"*.\" before a domain"), std::string::npos) << error;
  }
}

TEST(RequiredRole, ViewersReadAndOperatorsChange) {
  for (std::string_view call : {"Capabilities", "Get", "List", "Watch"}) {
    EXPECT_EQ(RequiredRole(call), Role::kViewer) << call;
  }
  for (std::string_view call : {"Inject", "Revert", "Halt", "RenewLease", "SomethingNew"}) {
    EXPECT_EQ(RequiredRole(call), Role::kOperator) << call;
  }
}

TEST(Authorize, SaysWhyACallIsRefused) {
  EXPECT_TRUE(Authorize({"alice.example", "ipv4:127.0.0.1:1", Role::kOperator}, "Inject").ok());
  EXPECT_TRUE(Authorize({"ci", "ipv4:127.0.0.1:1", Role::kViewer}, "Watch").ok());
  grpc::Status viewer = Authorize({"ci", "ipv4:127.0.0.1:1", Role::kViewer}, "Halt");
  EXPECT_EQ(viewer.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(viewer.error_message(), "client ci is a viewer; Halt needs the operator role");
  grpc::Status stranger = Authorize({"mallory.example", "ipv4:127.0.0.1:1", Role::kNone}, "Get");
  EXPECT_EQ(stranger.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(stranger.error_message(),
            "client mallory.example has no role in the agent's access file; Get needs viewer");
  EXPECT_EQ(Authorize({"", "ipv4:127.0.0.1:1", Role::kNone}, "Get").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace
}  // namespace faultline
