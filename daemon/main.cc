// faultlined: the faultline node agent. Wires flags, the kernel probe, the drivers, the experiment
// manager and the gRPC server together; everything else lives in the libraries.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "agent_service.h"
#include "experiment_manager.h"
#include "faultline/api/cat.h"
#include "faultline/api/units.h"
#include "faults/drivers.h"
#include "kernel/capabilities.h"
#include "log.h"

namespace {

using faultline::api::Cat;

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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"faultlined: the faultline fault injection agent"};
  std::string socket_path = "/run/faultline/faultlined.sock";
  std::string state_dir = "/var/lib/faultline";
  std::string max_duration_text = "1h";
  bool debug = false;
  app.add_option("--socket", socket_path, "unix socket to serve the agent API on (mode 0600)")
      ->capture_default_str();
  app.add_option("--state-dir", state_dir, "directory for the agent's state")->capture_default_str();
  app.add_option("--max-duration", max_duration_text, "longest experiment accepted, e.g. 30m, 1h")
      ->capture_default_str();
  app.add_flag("--debug", debug, "log debug events");
  CLI11_PARSE(app, argc, argv);
  if (debug) faultline::log::SetMinimumLevel(faultline::log::Level::kDebug);

  auto max_duration = faultline::api::ParseDuration(max_duration_text);
  if (!max_duration.ok()) return Fail(Cat("--max-duration: ", max_duration.status().message()));
  faultline::api::Limits limits{*max_duration};

  // The socket and every state file are private to the agent's user.
  umask(077);
  std::error_code error;
  std::filesystem::create_directories(state_dir, error);
  if (error) return Fail(Cat("--state-dir ", state_dir, ": ", error.message()));
  std::filesystem::create_directories(std::filesystem::path(socket_path).parent_path(), error);
  if (error) return Fail(Cat("--socket ", socket_path, ": ", error.message()));
  if (std::filesystem::exists(socket_path)) {
    if (SomeoneListens(socket_path)) return Fail(Cat("another agent is already listening on ", socket_path));
    std::filesystem::remove(socket_path, error);
  }

  // Signals are taken by sigwait below; block them before any thread starts so none of them gets one.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  faultline::kernel::KernelFeatures features = faultline::kernel::ProbeKernelFeatures();
  for (const auto& feature : features.features) {
    faultline::log::Info("kernel.feature")
        .With("name", feature.name())
        .With("available", feature.available())
        .With("detail", feature.detail());
  }
  faultline::faults::FaultDrivers drivers(features);
  faultline::ExperimentManager manager(drivers, limits);
  faultline::AgentService service(manager, features, limits);

  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket_path, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) return Fail(Cat("cannot listen on unix:", socket_path));
  // bind() made it 0700 under the umask already; connecting needs no execute bit.
  if (chmod(socket_path.c_str(), 0600) != 0)
    return Fail(Cat("chmod ", socket_path, ": ", std::strerror(errno)));
  faultline::log::Info("agent.ready")
      .With("socket", socket_path)
      .With("kernel", features.release)
      .With("version", FAULTLINE_VERSION)
      .With("pid", static_cast<int>(getpid()));

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  faultline::log::Info("agent.stopping").With("signal", strsignal(signal_number));
  // Stop taking requests first, so no Inject can land after the halt; in-flight calls finish.
  manager.CloseSubscriptions();
  server->Shutdown(std::chrono::system_clock::now());
  const char* name = sigabbrev_np(signal_number);
  manager.Halt(Cat("agent stopping on SIG", name != nullptr ? name : "NAL"), "agent");
  std::filesystem::remove(socket_path, error);
  faultline::log::Info("agent.stopped");
  return 0;
}
