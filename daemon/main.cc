// faultlined: the faultline node agent. Wires flags, the kernel probe, the drivers, the experiment
// manager and the gRPC server together; everything else lives in the libraries.
#include <grp.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>

#include "access.h"
#include "agent_service.h"
#include "audit.h"
#include "control_plane_guard.h"
#include "experiment_manager.h"
#include "faultline/api/cat.h"
#include "faultline/api/tls_files.h"
#include "faultline/api/units.h"
#include "faults/drivers.h"
#include "kernel/capabilities.h"
#include "kernel/guard_map.h"
#include "kernel/journal.h"
#include "kernel/program_pool.h"
#include "log.h"
#include "metrics.h"
#include "metrics_server.h"
#include "stress/worker.h"
#include "tls.h"

namespace {

using faultline::api::Cat;

// Instances of each BPF program kept loaded (kernel/program_pool.h): enough for two experiments with a
// partition and a loss, or a shaping fault both ways, to load nothing, as when a change of target
// reverts one and injects the next (bench/many-peers; docs/architecture.md, "The program pool").
constexpr size_t kPreloadedPrograms = 4;

// A socket file nobody listens on is left by an agent that died; one that answers is a live agent.
bool SomeoneListens(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  bool answered = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return answered;
}

int Fail(const std::string& message) {
  faultline::log::Error("agent.start_failed").With("error", message);
  std::fprintf(stderr, "faultlined: %s\n", message.c_str());
  return 1;
}

// The TCP listeners and how they are secured, checked before anything else starts.
struct Listeners {
  std::string tls_address;  // --listen; empty: none
  std::shared_ptr<grpc::ServerCredentials> tls;
  faultline::AccessPolicy access;
  std::string insecure_address;  // --insecure-listen; empty: none
  int tls_port = 0;              // the ports bound, once serving (for port 0: the one picked)
  int insecure_port = 0;
};

struct ListenerFlags {
  std::string listen;
  faultline::api::TlsFiles tls;
  std::string access;
  std::string insecure_listen;
};

absl::StatusOr<Listeners> CheckListeners(const ListenerFlags& flags) {
  Listeners listeners;
  if (flags.listen.empty()) {
    if (flags.tls.any() || !flags.access.empty()) {
      return absl::InvalidArgumentError("--tls-cert, --tls-key, --client-ca and --access go with --listen");
    }
  } else {
    if (auto endpoint = faultline::api::ParseHostPort(flags.listen); !endpoint.ok()) {
      return absl::InvalidArgumentError(Cat("--listen: ", endpoint.status().message()));
    }
    auto pem = faultline::api::LoadTlsFiles(flags.tls, {"--tls-cert", "--tls-key", "--client-ca"});
    if (!pem.ok()) return absl::InvalidArgumentError(Cat("--listen needs TLS: ", pem.status().message()));
    if (flags.access.empty()) {
      return absl::InvalidArgumentError("--listen needs --access, the file that gives clients their roles");
    }
    auto access = faultline::AccessPolicy::Load(flags.access);
    if (!access.ok()) return absl::InvalidArgumentError(Cat("--access ", access.status().message()));
    auto credentials = faultline::MutualTlsServerCredentials(*pem);
    if (!credentials.ok()) return credentials.status();
    listeners.tls_address = flags.listen;
    listeners.tls = *credentials;
    listeners.access = *std::move(access);
  }
  if (!flags.insecure_listen.empty()) {
    auto endpoint = faultline::api::ParseHostPort(flags.insecure_listen);
    if (!endpoint.ok()) {
      return absl::InvalidArgumentError(Cat("--insecure-listen: ", endpoint.status().message()));
    }
    // Plain text carries no identity and every client of it is an operator: only this machine's.
    if (!faultline::api::IsLoopbackHost(endpoint->host)) {
      return absl::InvalidArgumentError(
          Cat("--insecure-listen ", flags.insecure_listen,
              ": plain-text TCP is only served on loopback addresses (127.0.0.0/8, [::1], localhost); "
              "use --listen with TLS for other addresses"));
    }
    listeners.insecure_address = flags.insecure_listen;
  }
  return listeners;
}

std::string WithPort(const std::string& address, int port) {
  return Cat(address.substr(0, address.rfind(':')), ":", port);
}

// The agent's own listeners go into the control-plane guard once they are bound.
absl::Status GuardListeners(faultline::ControlPlaneGuard& guard, const Listeners& listeners,
                            const faultline::metrics::MetricsServer* metrics_server,
                            const std::string& metrics_listen) {
  std::vector<std::pair<const char*, std::string>> bound;
  if (listeners.tls) bound.emplace_back("--listen", WithPort(listeners.tls_address, listeners.tls_port));
  if (!listeners.insecure_address.empty())
    bound.emplace_back("--insecure-listen", WithPort(listeners.insecure_address, listeners.insecure_port));
  if (metrics_server != nullptr)
    bound.emplace_back("--metrics-listen", WithPort(metrics_listen, metrics_server->port()));
  for (const auto& [flag, address] : bound) {
    if (auto s = guard.GuardListener(flag, *faultline::api::ParseHostPort(address)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  // The agent runs its own stress workers: `faultlined --stress-worker FAULT` (stress/worker.h).
  if (argc == 3 && argv[1] == faultline::stress::kWorkerFlag) return faultline::stress::RunWorker(argv[2]);
  CLI::App app{"faultlined: the faultline fault injection agent"};
  std::string socket_path = "/run/faultline/faultlined.sock";
  std::string state_dir = "/var/lib/faultline";
  std::string max_duration_text = "1h";
  std::string socket_group;
  std::string audit_path;
  std::string metrics_listen;
  std::string memory_floor_text = "256MiB";
  int max_experiments = 64;
  int max_rpc_threads = 128;
  ListenerFlags listener_flags;
  bool debug = false;
  app.add_option("--socket", socket_path, "unix socket to serve the agent API on (mode 0600)")
      ->capture_default_str();
  app.add_option("--socket-group", socket_group, "make the socket 0660 and give it this group");
  app.add_option("--listen", listener_flags.listen, "also serve on HOST:PORT over mutual TLS 1.3");
  app.add_option("--tls-cert", listener_flags.tls.cert, "--listen: the agent's certificate chain (PEM)");
  app.add_option("--tls-key", listener_flags.tls.key, "--listen: the agent's private key (PEM)");
  app.add_option("--client-ca", listener_flags.tls.ca,
                 "--listen: CA certificates that sign client certificates");
  app.add_option("--access", listener_flags.access,
                 "--listen: file of \"ROLE IDENTITY\" lines (viewer, operator)");
  app.add_option("--insecure-listen", listener_flags.insecure_listen,
                 "also serve plain-text TCP on a loopback HOST:PORT; its clients are operators");
  app.add_option("--state-dir", state_dir, "directory for the agent's state")->capture_default_str();
  app.add_option("--audit-log", audit_path,
                 "append-only JSON lines of every change (default STATE_DIR/audit.log)");
  app.add_option("--max-duration", max_duration_text, "longest experiment accepted, e.g. 30m, 1h")
      ->capture_default_str();
  app.add_option("--max-experiments", max_experiments, "experiments that may be unended at once")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-rpc-threads", max_rpc_threads,
                 "threads serving calls (Watch streams hold one each); Halt has its own")
      ->check(CLI::Range(2, 4096))
      ->capture_default_str();
  app.add_option("--metrics-listen", metrics_listen, "serve Prometheus metrics on HOST:PORT at /metrics");
  app.add_option("--memory-floor", memory_floor_text,
                 "MemAvailable a memory fault must leave, e.g. 256MiB, 1GiB")
      ->capture_default_str();
  app.add_flag("--debug", debug, "log debug events");
  int crash_after_journal_writes = 0;  // hidden, for the crash-safety tests: kill -9 at a chosen step
  app.add_option("--test-crash-after-journal-writes", crash_after_journal_writes)->group("");
  CLI11_PARSE(app, argc, argv);
  if (debug) faultline::log::SetMinimumLevel(faultline::log::Level::kDebug);
  // Signals are taken by sigwait below; block them before any thread starts (gRPC's
  // start with the first credentials) so none of them gets one.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto max_duration = faultline::api::ParseDuration(max_duration_text);
  if (!max_duration.ok()) return Fail(Cat("--max-duration: ", max_duration.status().message()));
  faultline::api::Limits limits{*max_duration, max_experiments};
  auto memory_floor = faultline::api::ParseSize(memory_floor_text);
  if (!memory_floor.ok()) return Fail(Cat("--memory-floor: ", memory_floor.status().message()));
  std::optional<faultline::api::HostPort> metrics_address;
  if (!metrics_listen.empty()) {
    auto parsed = faultline::api::ParseHostPort(metrics_listen);
    if (!parsed.ok()) return Fail(Cat("--metrics-listen: ", parsed.status().message()));
    metrics_address = *parsed;
  }
  auto listeners = CheckListeners(listener_flags);
  if (!listeners.ok()) return Fail(std::string(listeners.status().message()));
  gid_t socket_gid = 0;
  if (!socket_group.empty()) {
    group* found = getgrnam(socket_group.c_str());
    if (found == nullptr) return Fail(Cat("--socket-group ", socket_group, ": no such group"));
    socket_gid = found->gr_gid;
  }

  // The socket and every state file are private to the agent's user.
  umask(077);
  std::error_code error;
  std::filesystem::create_directories(state_dir, error);
  if (error) return Fail(Cat("--state-dir ", state_dir, ": ", error.message()));
  const std::filesystem::path socket_dir = std::filesystem::path(socket_path).parent_path();
  const bool socket_dir_existed = std::filesystem::exists(socket_dir);
  std::filesystem::create_directories(socket_dir, error);
  if (error) return Fail(Cat("--socket ", socket_path, ": ", error.message()));
  // A directory the agent made is 0700 under its umask: the socket's group must be able to enter it.
  if (!socket_group.empty() && !socket_dir_existed &&
      (chown(socket_dir.c_str(), static_cast<uid_t>(-1), socket_gid) != 0 ||
       chmod(socket_dir.c_str(), 0710) != 0)) {
    return Fail(Cat("--socket-group: ", socket_dir.string(), ": ", std::strerror(errno)));
  }
  if (audit_path.empty()) audit_path = (std::filesystem::path(state_dir) / "audit.log").string();
  auto audit = faultline::AuditLog::Open(audit_path);
  if (!audit.ok()) return Fail(Cat("--audit-log ", audit.status().message()));
  if (std::filesystem::exists(socket_path)) {
    if (SomeoneListens(socket_path)) return Fail(Cat("another agent is already listening on ", socket_path));
    std::filesystem::remove(socket_path, error);
  }

  // What a crashed agent left in the kernel is undone first, before anything else can change it.
  auto journal = faultline::kernel::Journal::Open(state_dir);
  if (!journal.ok()) return Fail(Cat("--state-dir ", journal.status().message()));
  faultline::metrics::Registry metrics_registry;
  faultline::metrics::AgentMetrics metrics(metrics_registry);
  faultline::kernel::ReplaySummary replayed = (*journal)->Replay();
  metrics.JournalReplayed(replayed.undone, replayed.nothing_to_undo, replayed.failed);
  (*journal)->CrashAfterWrites(crash_after_journal_writes);
  faultline::kernel::Journal::Install(journal->get());

  faultline::kernel::KernelFeatures features = faultline::kernel::ProbeKernelFeatures();
  for (const auto& feature : features.features) {
    faultline::log::Info("kernel.feature")
        .With("name", feature.name())
        .With("available", feature.available())
        .With("detail", feature.detail());
  }
  // The control-plane guard's map, shared by every program loaded from now on.
  auto guard_map = faultline::kernel::GuardMap::Create();
  if (guard_map.ok()) {
    faultline::kernel::GuardMap::Install(guard_map->get());
  } else {
    faultline::log::Warning("guard.unavailable").With("error", std::string(guard_map.status().message()));
  }
  faultline::ControlPlaneGuard guard(guard_map.ok() ? guard_map->get() : nullptr);
  // Programs verified before a fault needs them; they share the guard's map, so after it.
  std::optional<faultline::kernel::ProgramPool> program_pool;
  if (features.Has("bpf")) {
    program_pool.emplace(kPreloadedPrograms);
    faultline::kernel::ProgramPool::Install(&*program_pool);
  }
  faultline::faults::FaultDrivers drivers(features, {.memory_floor_bytes = *memory_floor});
  // Protobuf builds a .proto file's descriptors the first time they are needed, and every inject
  // needs the API's two (a fault's kind, a state's name: the log and the audit): about 1 ms of CPU
  // that each agent's first inject paid (bench/fan-out, the first experiment). Built now instead.
  (void)faultline::v1::Fault::descriptor();
  (void)faultline::v1::ExperimentState_descriptor();
  faultline::ExperimentManager manager(drivers, limits, &metrics);
  metrics_registry.OnCollect([&] {
    faultline::ExperimentManager::Census census = manager.TakeCensus();
    for (int state = faultline::v1::STATE_PENDING; state <= faultline::v1::STATE_ABORTED; state++) {
      std::string name =
          faultline::v1::ExperimentState_Name(static_cast<faultline::v1::ExperimentState>(state));
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      metrics.experiments.Set(name.substr(6),
                              census.experiments[static_cast<faultline::v1::ExperimentState>(state)]);
    }
    for (const auto& kind : faultline::faults::FaultDrivers::Implemented())
      metrics.faults_active.Set(kind, census.active_faults[kind]);
  });
  faultline::ExpiryAuditor expiry_auditor(manager, **audit);
  faultline::CallerIdentifier callers(std::move(listeners->access), socket_path);
  faultline::AgentService service(manager, features, limits, callers, **audit, guard, metrics);

  grpc::ServerBuilder builder;
  // A bounded pool: past it, gRPC refuses calls with RESOURCE_EXHAUSTED instead of growing without
  // end. Halt does not depend on it: HaltLane serves it on a queue and thread of its own.
  grpc::ResourceQuota quota("faultlined");
  quota.SetMaxThreads(max_rpc_threads);
  builder.SetResourceQuota(quota);
  builder.AddListeningPort("unix:" + socket_path, grpc::InsecureServerCredentials());
  if (listeners->tls) builder.AddListeningPort(listeners->tls_address, listeners->tls, &listeners->tls_port);
  if (!listeners->insecure_address.empty()) {
    builder.AddListeningPort(listeners->insecure_address, grpc::InsecureServerCredentials(),
                             &listeners->insecure_port);
  }
  builder.RegisterService(&service);
  std::unique_ptr<grpc::ServerCompletionQueue> halt_queue = builder.AddCompletionQueue();
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::string addresses = "unix:" + socket_path;
    if (listeners->tls) addresses += ", --listen " + listeners->tls_address;
    if (!listeners->insecure_address.empty())
      addresses += ", --insecure-listen " + listeners->insecure_address;
    return Fail(Cat("cannot listen on ", addresses, " (an address in use, or not this machine's?)"));
  }
  faultline::HaltLane halt_lane(service, *server, std::move(halt_queue));
  std::unique_ptr<faultline::metrics::MetricsServer> metrics_server;
  if (metrics_address) {
    auto started = faultline::metrics::MetricsServer::Start(*metrics_address, metrics_registry);
    if (!started.ok()) return Fail(std::string(started.status().message()));
    metrics_server = *std::move(started);
  }
  if (auto s = GuardListeners(guard, *listeners, metrics_server.get(), metrics_listen); !s.ok())
    return Fail(Cat("control-plane guard: ", s.message()));
  // bind() made it 0700 under the umask already; connecting needs no execute bit. The group is set
  // before the mode lets it in.
  if (!socket_group.empty() && chown(socket_path.c_str(), static_cast<uid_t>(-1), socket_gid) != 0)
    return Fail(Cat("chown ", socket_path, ": ", std::strerror(errno)));
  if (chmod(socket_path.c_str(), socket_group.empty() ? 0600 : 0660) != 0)
    return Fail(Cat("chmod ", socket_path, ": ", std::strerror(errno)));
  {
    // One line, written when this scope ends: the listeners that are on depend on the flags.
    faultline::log::Event ready(faultline::log::Level::kInfo, "agent.ready");
    ready.With("socket", socket_path);
    if (listeners->tls) ready.With("listen", WithPort(listeners->tls_address, listeners->tls_port));
    if (!listeners->insecure_address.empty())
      ready.With("insecure_listen", WithPort(listeners->insecure_address, listeners->insecure_port));
    if (metrics_server) ready.With("metrics_listen", WithPort(metrics_listen, metrics_server->port()));
    ready.With("audit_log", audit_path)
        .With("kernel", features.release)
        .With("version", FAULTLINE_VERSION)
        .With("pid", static_cast<int>(getpid()));
  }

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  faultline::log::Info("agent.stopping").With("signal", strsignal(signal_number));
  // Stop taking requests first, so no Inject can land after the halt; in-flight calls finish.
  manager.CloseSubscriptions();
  server->Shutdown(std::chrono::system_clock::now());
  const char* name = sigabbrev_np(signal_number);
  (*audit)->WriteHalt(faultline::AuditRecord("halt", "agent"),
                      manager.Halt(Cat("agent stopping on SIG", name != nullptr ? name : "NAL"), "agent"));
  std::filesystem::remove(socket_path, error);
  faultline::log::Info("agent.stopped");
  return 0;
}
