#include "chromium.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "faultline/api/cat.h"

extern char** environ;

namespace faultline::test {
namespace {

using api::Cat;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::optional<fs::path> OnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream directories(path != nullptr ? path : "/usr/bin:/bin");
  for (std::string directory; std::getline(directories, directory, ':');) {
    fs::path candidate = fs::path(directory) / name;
    if (!directory.empty() && access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// The processes whose parent is `parent`, from /proc/PID/stat ("PID (COMM) STATE PPID ...").
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> children;
  for (const fs::directory_entry& entry : fs::directory_iterator("/proc")) {
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;  // not a process, or it just ended
    size_t paren = line.rfind(')');
    if (paren == std::string::npos) continue;
    char state;
    int ppid;
    if (std::sscanf(line.c_str() + paren + 1, " %c %d", &state, &ppid) == 2 && ppid == parent) {
      children.push_back(std::stoi(entry.path().filename().string()));
    }
  }
  return children;
}

// Kills Chromium's process group, then every process left below this one, and reaps them all. Chromium's
// crash handler double-forks into a session of its own, out of the group: as a child subreaper (set
// before the fork) this process inherits it, and every other orphan, instead of init.
absl::Status KillEverythingBelow(pid_t group) {
  kill(-group, SIGKILL);
  for (auto deadline = Clock::now() + std::chrono::seconds(10); Clock::now() < deadline;) {
    for (pid_t child : ChildrenOf(getpid())) kill(child, SIGKILL);
    pid_t reaped = waitpid(-1, nullptr, WNOHANG);
    if (reaped < 0 && errno == ECHILD) return absl::OkStatus();
    if (reaped == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::InternalError(
      Cat("Chromium's processes (group ", group, ") were still there 10 s after SIGKILL"));
}

std::string LastLines(const fs::path& log, size_t count) {
  std::ifstream in(log);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::string tail;
  for (size_t i = lines.size() > count ? lines.size() - count : 0; i < lines.size(); ++i)
    tail += "\n  " + lines[i];
  return tail.empty() ? " (it printed nothing)" : tail;
}

// Everything Chromium writes goes below the scratch directory: its profile, and through HOME and the XDG
// directories its crash database and dconf cache, which it puts in the home directory regardless.
std::vector<std::string> Environment(const fs::path& home) {
  std::vector<std::string> environment;
  for (char** variable = environ; *variable != nullptr; ++variable) {
    std::string_view name(*variable);
    name = name.substr(0, name.find('='));
    if (name != "HOME" && name != "XDG_CONFIG_HOME" && name != "XDG_CACHE_HOME")
      environment.emplace_back(*variable);
  }
  environment.push_back("HOME=" + home.string());
  environment.push_back("XDG_CONFIG_HOME=" + (home / ".config").string());
  environment.push_back("XDG_CACHE_HOME=" + (home / ".cache").string());
  return environment;
}

std::vector<std::string> Arguments(const ScreenshotRequest& request) {
  // --no-sandbox: Chromium refuses to run as root with its sandbox, and the page is our own file.
  // --force-device-scale-factor: one CSS pixel is one pixel of the PNG.
  return {request.chromium.string(),
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--hide-scrollbars",
          "--no-first-run",
          "--no-default-browser-check",
          "--force-device-scale-factor=1",
          "--user-data-dir=" + (request.scratch / "profile").string(),
          "--screenshot=" + request.png.string(),
          Cat("--window-size=", request.width, ",", request.height),
          "file://" + fs::absolute(request.page).string()};
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> pointers(strings.size() + 1, nullptr);
  std::ranges::transform(strings, pointers.begin(), [](std::string& string) { return string.data(); });
  return pointers;
}

// Waits for `pid` until the deadline: its wait status, or nullopt if it is still running.
std::optional<int> WaitUntil(pid_t pid, Clock::time_point deadline) {
  for (;;) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return status;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace

std::optional<fs::path> FindChromium() {
  if (const char* chosen = std::getenv("FAULTLINE_CHROMIUM"); chosen != nullptr && *chosen != '\0')
    return chosen;
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    if (auto path = OnPath(name)) return path;
  }
  return std::nullopt;
}

absl::Status TakeScreenshot(const ScreenshotRequest& request) {
  std::error_code error;
  fs::create_directories(request.scratch / "home", error);
  if (error) return absl::InternalError(Cat("creating ", request.scratch, ": ", error.message()));
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    return absl::InternalError(Cat("prctl(PR_SET_CHILD_SUBREAPER): ", std::strerror(errno)));
  }
  // Everything the child needs is made before the fork: after it, only async-signal-safe calls.
  std::vector<std::string> arguments = Arguments(request);
  std::vector<std::string> environment = Environment(request.scratch / "home");
  std::vector<char*> argv = Pointers(arguments);
  std::vector<char*> envp = Pointers(environment);
  fs::path log = request.scratch / "chromium.log";
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError(Cat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    setpgid(0, 0);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
    }
    if (null >= 0) dup2(null, STDIN_FILENO);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  setpgid(pid, pid);  // as the child does: whichever runs first, the group exists before any kill
  std::optional<int> status = WaitUntil(pid, Clock::now() + request.timeout);
  absl::Status killed = KillEverythingBelow(pid);
  if (!status) {
    return absl::DeadlineExceededError(Cat(request.chromium, " did not finish within ",
                                           request.timeout.count(),
                                           " s and was killed; its last lines:", LastLines(log, 15)));
  }
  if (!killed.ok()) return killed;
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::InternalError(
        Cat(request.chromium, " exited with wait status ", *status, "; its last lines:", LastLines(log, 15)));
  }
  if (!fs::exists(request.png) || fs::file_size(request.png) == 0) {
    return absl::InternalError(Cat(request.chromium, " wrote no screenshot to ", request.png,
                                   "; its last lines:", LastLines(log, 15)));
  }
  return absl::OkStatus();
}

}  // namespace faultline::test
