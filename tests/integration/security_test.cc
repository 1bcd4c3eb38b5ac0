// The agent's security, against a real faultlined: mutual TLS 1.3 on --listen with certificates made
// by the openssl command, roles from the access file, the plain-text listener kept to loopback, the
// unix socket's group, and an audit line for every change.
#include <grp.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent_client.h"
#include "faultline/api/cat.h"
#include "pki.h"
#include "sandbox.h"

namespace faultline::test {
namespace {

using api::Cat;
namespace v1 = faultline::v1;

std::unique_ptr<grpc::ClientContext> Deadline() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return context;
}

class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!MissingPkiTools().empty()) return;
    pki_ = new TestPki();
    sandbox_ = new Sandbox();
    agent_ = new AgentProcess({"--listen", "127.0.0.1:0", "--tls-cert", pki_->Path("server.pem"), "--tls-key",
                               pki_->Path("server.key"), "--client-ca", pki_->Path("ca.pem"), "--access",
                               pki_->Path("access"), "--insecure-listen", "127.0.0.1:0"});
    tls_address_ = new std::string(agent_->ReadyField("listen"));
    insecure_address_ = new std::string(agent_->ReadyField("insecure_listen"));
  }
  static void TearDownTestSuite() {
    delete agent_;
    delete sandbox_;
    delete pki_;
    delete tls_address_;
    delete insecure_address_;
    agent_ = nullptr;
    sandbox_ = nullptr;
    pki_ = nullptr;
    tls_address_ = insecure_address_ = nullptr;
  }
  void SetUp() override {
    if (std::string missing = MissingPkiTools(); !missing.empty()) GTEST_SKIP() << missing;
    clean_state_ = sandbox_->HostTcState();
  }
  void TearDown() override {
    if (agent_ == nullptr) return;
    v1::HaltResponse halted;
    agent_->stub().Halt(Deadline().get(), {}, &halted);
    EXPECT_EQ(sandbox_->HostTcState(), clean_state_) << "the test left kernel state behind";
  }

  // A stub that presents `name`'s certificate on the TLS listener.
  static std::unique_ptr<v1::Agent::Stub> As(const std::string& name) {
    auto stub = ctl::ConnectAgent(*tls_address_, pki_->Client(name));
    EXPECT_TRUE(stub.ok()) << stub.status();
    return stub.ok() ? *std::move(stub) : nullptr;
  }

  static v1::InjectRequest Partition(const std::string& id, int seconds = 30) {
    v1::InjectRequest request;
    v1::Experiment* experiment = request.mutable_experiment();
    experiment->set_id(id);
    experiment->mutable_duration()->set_seconds(seconds);
    v1::Fault* fault = experiment->add_faults();
    fault->mutable_partition();
    fault->mutable_target()->set_netns_path(sandbox_->host_netns());
    fault->mutable_target()->set_interface(Sandbox::kHostInterface);
    fault->mutable_target()->add_peers("198.18.0.2/32");
    return request;
  }

  static grpc::Status Inject(v1::Agent::Stub& stub, const v1::InjectRequest& request) {
    v1::InjectResponse response;
    return stub.Inject(Deadline().get(), request, &response);
  }

  static std::string AuditLog() {
    std::ifstream in(std::filesystem::path(agent_->socket_path()).parent_path() / "state" / "audit.log");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  // The audit line that holds every one of `parts`, waiting up to 5 s for it; empty if none.
  static std::string AuditLine(const std::vector<std::string>& parts) {
    for (int i = 0; i < 500; i++) {
      std::istringstream lines(AuditLog());
      for (std::string line; std::getline(lines, line);) {
        bool all = true;
        for (const auto& part : parts) all = all && line.find(part) != std::string::npos;
        if (all) return line;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return "";
  }

  static TestPki* pki_;
  static Sandbox* sandbox_;
  static AgentProcess* agent_;
  static std::string* tls_address_;
  static std::string* insecure_address_;
  std::string clean_state_;
};

TestPki* SecurityTest::pki_ = nullptr;
Sandbox* SecurityTest::sandbox_ = nullptr;
AgentProcess* SecurityTest::agent_ = nullptr;
std::string* SecurityTest::tls_address_ = nullptr;
std::string* SecurityTest::insecure_address_ = nullptr;

TEST_F(SecurityTest, OnlyTls13IsOffered) {
  std::string client =
      Cat("openssl s_client -connect ", *tls_address_, " -CAfile ", pki_->Path("ca.pem"), " -cert ",
          pki_->Path("operator.pem"), " -key ", pki_->Path("operator.key"), " </dev/null");
  CommandResult tls13 = RunCommand(client + " -tls1_3");
  EXPECT_NE(tls13.output.find("New, TLSv1.3"), std::string::npos) << tls13.output;
  CommandResult tls12 = RunCommand(client + " -tls1_2");
  EXPECT_NE(tls12.exit_code, 0) << tls12.output;
  EXPECT_EQ(tls12.output.find("New, TLSv1.2"), std::string::npos) << tls12.output;
}

TEST_F(SecurityTest, ClientsWithoutAValidCertificateAreRefused) {
  // No certificate at all: only the CA to check the agent with.
  grpc::SslCredentialsOptions anonymous;
  std::ifstream ca(pki_->Path("ca.pem"));
  anonymous.pem_root_certs.assign(std::istreambuf_iterator<char>(ca), {});
  auto no_certificate =
      v1::Agent::NewStub(grpc::CreateChannel(*tls_address_, grpc::SslCredentials(anonymous)));
  // Another CA's and an expired certificate, both naming the operator.
  auto other_ca = As("other-ca-operator");
  auto expired = As("expired-operator");
  for (auto [name, stub] : {std::pair{"no-certificate", no_certificate.get()},
                            std::pair{"another-ca", other_ca.get()}, std::pair{"expired", expired.get()}}) {
    grpc::Status status = Inject(*stub, Partition(Cat("refused-", name)));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << name << ": " << status.error_message();
    v1::ListResponse list;
    EXPECT_FALSE(stub->List(Deadline().get(), {}, &list).ok()) << name;
  }
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);
  // The handshake failed: no call was read, so none is audited.
  EXPECT_EQ(AuditLog().find("refused-"), std::string::npos) << AuditLog();
}

TEST_F(SecurityTest, CallersWithoutARoleAreRefused) {
  v1::ListResponse list;
  grpc::Status stranger = As("stranger")->List(Deadline().get(), {}, &list);
  EXPECT_EQ(stranger.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(stranger.error_message(),
            "client mallory.example has no role in the agent's access file; List needs viewer");
  grpc::Status anonymous = As("anonymous")->List(Deadline().get(), {}, &list);
  EXPECT_EQ(anonymous.error_code(), grpc::StatusCode::UNAUTHENTICATED) << anonymous.error_message();
}

TEST_F(SecurityTest, ACommonNameIdentifiesACertificateWithoutSans) {
  auto runner = As("common-name");
  v1::ListResponse list;
  EXPECT_TRUE(runner->List(Deadline().get(), {}, &list).ok());
  v1::HaltResponse halted;
  grpc::Status halt = runner->Halt(Deadline().get(), {}, &halted);
  EXPECT_EQ(halt.error_message(), "client nightly-runner is a viewer; Halt needs the operator role");
}

TEST_F(SecurityTest, AViewerReadsButCannotChange) {
  auto viewer = As("viewer");
  v1::CapabilitiesResponse caps;
  EXPECT_TRUE(viewer->Capabilities(Deadline().get(), {}, &caps).ok());
  v1::ListResponse list;
  EXPECT_TRUE(viewer->List(Deadline().get(), {}, &list).ok());

  grpc::Status inject = Inject(*viewer, Partition("viewer-inject"));
  EXPECT_EQ(inject.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(inject.error_message(),
            "client spiffe://faultline.test/ci is a viewer; Inject needs the operator role");
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);
  v1::HaltResponse halted;
  EXPECT_EQ(viewer->Halt(Deadline().get(), {}, &halted).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  v1::RevertRequest revert;
  revert.set_id("viewer-inject");
  v1::ExperimentStatus reverted;
  EXPECT_EQ(viewer->Revert(Deadline().get(), revert, &reverted).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // Refused changes are audited too.
  EXPECT_NE(AuditLine({"\"action\":\"inject\"", "\"client\":\"spiffe://faultline.test/ci\"",
                       "\"experiment\":\"viewer-inject\"", "\"result\":\"PERMISSION_DENIED: client"}),
            "")
      << AuditLog();
}

TEST_F(SecurityTest, AnOperatorInjectsAndReverts) {
  auto operator_stub = As("operator");
  ASSERT_TRUE(Inject(*operator_stub, Partition("operator-cut")).ok());
  EXPECT_NE(sandbox_->HostTcState(), clean_state_);
  // Who started it is on the record, for anyone who can read it.
  v1::GetRequest get;
  get.set_id("operator-cut");
  v1::ExperimentStatus status;
  ASSERT_TRUE(As("viewer")->Get(Deadline().get(), get, &status).ok());
  EXPECT_EQ(status.client(), "alice.example");

  v1::RevertRequest revert;
  revert.set_id("operator-cut");
  ASSERT_TRUE(operator_stub->Revert(Deadline().get(), revert, &status).ok());
  EXPECT_EQ(status.state(), v1::STATE_REVERTED);
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);

  std::string injected = AuditLine({"\"action\":\"inject\"", "\"experiment\":\"operator-cut\""});
  EXPECT_NE(injected.find("\"client\":\"alice.example\",\"peer\":\"ipv4:127.0.0.1:"), std::string::npos)
      << AuditLog();
  EXPECT_NE(injected.find(Cat("\"faults\":[\"partition both 198.18.0.2/32 on fl-host in ",
                              sandbox_->host_netns(), "\"],\"state\":\"ACTIVE\",\"result\":\"ok\"}")),
            std::string::npos)
      << injected;
  EXPECT_NE(AuditLine({"\"action\":\"revert\"", "\"client\":\"alice.example\"",
                       "\"experiment\":\"operator-cut\"", "\"state\":\"REVERTED\"", "\"result\":\"ok\""}),
            "")
      << AuditLog();
}

TEST_F(SecurityTest, TheAuditLogHasALineForEveryChange) {
  auto operator_stub = As("operator");
  ASSERT_TRUE(Inject(*operator_stub, Partition("audit-expires", 1)).ok());
  v1::InjectRequest leased = Partition("audit-lease");
  leased.mutable_experiment()->mutable_lease()->mutable_ttl()->set_seconds(1);
  ASSERT_TRUE(Inject(*operator_stub, leased).ok());
  // The agent ends these two itself, about a second from now, in the name of who started them.
  EXPECT_NE(
      AuditLine({"\"action\":\"expire\"", "\"client\":\"alice.example\"", "\"experiment\":\"audit-expires\"",
                 "\"faults\":[\"partition both 198.18.0.2/32", "\"state\":\"EXPIRED\"", "\"result\":\"ok\""}),
      "")
      << AuditLog();
  EXPECT_NE(AuditLine({"\"action\":\"lease-lost\"", "\"client\":\"alice.example\"",
                       "\"experiment\":\"audit-lease\"", "\"state\":\"ABORTED\"", "\"result\":\"ok\""}),
            "")
      << AuditLog();
  ASSERT_TRUE(Inject(*operator_stub, Partition("audit-halted")).ok());
  v1::HaltRequest halt;
  halt.set_reason("drill");
  v1::HaltResponse halted;
  ASSERT_TRUE(operator_stub->Halt(Deadline().get(), halt, &halted).ok());
  EXPECT_NE(AuditLine({"\"action\":\"halt\"", "\"client\":\"alice.example\"",
                       "\"experiment\":\"audit-halted\"", "\"state\":\"ABORTED\"", "\"result\":\"ok\""}),
            "")
      << AuditLog();

  struct stat st {};
  ASSERT_EQ(
      stat((std::filesystem::path(agent_->socket_path()).parent_path() / "state" / "audit.log").c_str(), &st),
      0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::istringstream lines(AuditLog());
  for (std::string line; std::getline(lines, line);) {
    EXPECT_TRUE(line.starts_with("{\"time\":\"") && line.ends_with("}")) << line;
  }
}

TEST_F(SecurityTest, FaultctlSpeaksTls) {
  std::string target = Cat("--netns ", sandbox_->host_netns(), " --iface ", Sandbox::kHostInterface);
  std::string faultctl = Cat(FAULTCTL_PATH, " --agent ", *tls_address_, " ");
  CommandResult injected = RunCommand(Cat(faultctl, pki_->FaultctlFlags("operator"), " inject partition ",
                                          target, " --duration 30s --id tls-cli"));
  ASSERT_EQ(injected.exit_code, 0) << injected.output;
  EXPECT_NE(sandbox_->HostTcState(), clean_state_);
  // The same files from the environment.
  CommandResult got = RunCommand(
      Cat("FAULTLINE_TLS_CERT=", pki_->Path("viewer.pem"), " FAULTLINE_TLS_KEY=", pki_->Path("viewer.key"),
          " FAULTLINE_CA=", pki_->Path("ca.pem"), " ", faultctl, "--json get tls-cli"));
  EXPECT_EQ(got.exit_code, 0) << got.output;
  EXPECT_NE(got.output.find("\"client\":\"alice.example\""), std::string::npos) << got.output;
  CommandResult denied = RunCommand(Cat(faultctl, pki_->FaultctlFlags("viewer"), " revert tls-cli"));
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_EQ(denied.output,
            "faultctl: client spiffe://faultline.test/ci is a viewer; Revert needs the operator role\n");
  CommandResult reverted = RunCommand(Cat(faultctl, pki_->FaultctlFlags("operator"), " revert tls-cli"));
  EXPECT_EQ(reverted.exit_code, 0) << reverted.output;
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);

  // Wrong files are a usage error, before anything is sent.
  CommandResult wrong_key =
      RunCommand(Cat(faultctl, "--tls-cert ", pki_->Path("operator.pem"), " --tls-key ",
                     pki_->Path("viewer.key"), " --ca ", pki_->Path("ca.pem"), " list"));
  EXPECT_EQ(wrong_key.exit_code, 2);
  EXPECT_NE(wrong_key.output.find("is not the key of the certificate in --tls-cert"), std::string::npos)
      << wrong_key.output;
  // Plain text goes to loopback addresses only.
  CommandResult plain = RunCommand(Cat(FAULTCTL_PATH, " --agent 198.18.0.1:7443 list"));
  EXPECT_EQ(plain.exit_code, 2);
  EXPECT_NE(plain.output.find("not a loopback address, so the connection needs TLS"), std::string::npos)
      << plain.output;
}

TEST_F(SecurityTest, PlainTextAndUnixSocketClientsAreOperators) {
  std::string target = Cat("--netns ", sandbox_->host_netns(), " --iface ", Sandbox::kHostInterface);
  CommandResult injected = RunCommand(Cat(FAULTCTL_PATH, " --agent ", *insecure_address_,
                                          " inject partition ", target, " --duration 30s --id plain-cli"));
  ASSERT_EQ(injected.exit_code, 0) << injected.output;
  v1::GetRequest get;
  get.set_id("plain-cli");
  v1::ExperimentStatus status;
  ASSERT_TRUE(agent_->stub().Get(Deadline().get(), get, &status).ok());
  EXPECT_TRUE(status.client().starts_with("insecure:ipv4:127.0.0.1:")) << status.client();

  v1::RevertRequest revert;
  revert.set_id("plain-cli");
  ASSERT_TRUE(agent_->stub().Revert(Deadline().get(), revert, &status).ok());
  EXPECT_NE(AuditLine({"\"action\":\"revert\"", Cat("\"client\":\"unix:", agent_->socket_path(), "\""),
                       "\"peer\":\"unix:\"", "\"experiment\":\"plain-cli\""}),
            "")
      << AuditLog();
}

// Flags the agent checks before it starts anything.
TEST(SecurityFlagsTest, StartRefusesUnsafeOrIncompleteFlags) {
  if (std::system("openssl version >/dev/null 2>&1") != 0) GTEST_SKIP() << "needs the openssl command";
  TestPki pki;
  std::string faultlined =
      Cat(FAULTLINED_PATH, " --socket ", pki.Path("agent.sock"), " --state-dir ", pki.Path("state"), " ");
  std::string tls = Cat(" --tls-cert ", pki.Path("server.pem"), " --tls-key ", pki.Path("server.key"),
                        " --client-ca ", pki.Path("ca.pem"));
  for (const char* address : {"198.18.0.1:7444", "0.0.0.0:7444", "[2001:db8::1]:7444", "[::]:7444"}) {
    CommandResult started = RunCommand(Cat(faultlined, "--insecure-listen ", address));
    EXPECT_EQ(started.exit_code, 1) << started.output;
    EXPECT_NE(started.output.find(Cat("faultlined: --insecure-listen ", address,
                                      ": plain-text TCP is only served on loopback addresses")),
              std::string::npos)
        << started.output;
  }
  struct Case {
    std::string flags;
    std::string error;
  };
  std::ofstream(pki.Path("bad-access")) << "operator alice.example\nadmin bob.example\n";
  for (const Case& bad : std::vector<Case>{
           {"--listen 127.0.0.1:0" + tls, "--listen needs --access"},
           {Cat("--listen 127.0.0.1:0 --access ", pki.Path("access")),
            "--listen needs TLS: --tls-cert: required"},
           {Cat("--listen 127.0.0.1:0 --access ", pki.Path("access"), " --tls-cert ", pki.Path("server.pem"),
                " --tls-key ", pki.Path("operator.key"), " --client-ca ", pki.Path("ca.pem")),
            Cat("--tls-key ", pki.Path("operator.key"), " is not the key of the certificate in --tls-cert")},
           {Cat("--listen 127.0.0.1:0", tls, " --access ", pki.Path("bad-access")),
            Cat("--access ", pki.Path("bad-access"), ":2: \"admin\" is not a role (viewer or operator)")},
           {Cat("--access ", pki.Path("access")),
            "--tls-cert, --tls-key, --client-ca and --access go with --listen"},
       }) {
    CommandResult started = RunCommand(faultlined + bad.flags);
    EXPECT_EQ(started.exit_code, 1) << bad.flags << "\n" << started.output;
    EXPECT_NE(started.output.find(bad.error), std::string::npos) << started.output;
  }
  EXPECT_FALSE(std::filesystem::exists(pki.Path("agent.sock")));
}

TEST(SocketGroupTest, TheSocketIsSharedWithItsGroup) {
  if (std::string missing = MissingPrivileges(); !missing.empty()) GTEST_SKIP() << missing;
  group* daemon_group = getgrnam("daemon");
  if (daemon_group == nullptr) GTEST_SKIP() << "no group named daemon";
  AgentProcess agent({"--socket-group", "daemon"});
  struct stat st {};
  ASSERT_EQ(stat(agent.socket_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_gid, daemon_group->gr_gid);
}

}  // namespace
}  // namespace faultline::test
