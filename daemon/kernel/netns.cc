#include "kernel/netns.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "faultline/api/cat.h"
#include "log.h"

namespace faultline::kernel {

using api::Cat;

absl::StatusOr<std::shared_ptr<Netns>> Netns::Open(const std::string& path) {
  const std::string& open_path = path.empty() ? std::string("/proc/self/ns/net") : path;
  int fd = open(open_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    auto message = Cat("netns ", open_path, ": ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(message) : absl::FailedPreconditionError(message);
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    close(fd);
    return absl::InternalError(Cat("netns ", open_path, ": fstat: ", std::strerror(errno)));
  }
  // NS_GET_NSTYPE tells what kind of namespace an nsfs file is; anything else would fail setns later.
  if (ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET) {
    close(fd);
    return absl::InvalidArgumentError(Cat("netns ", open_path, ": not a network namespace"));
  }
  return std::shared_ptr<Netns>(new Netns(fd, path, st.st_dev, st.st_ino));
}

uint64_t Netns::cookie() const {
  // Read once, when first asked: it takes two setns calls, which a caller that only wants the
  // namespace's identity (faults::Place) or its fd should not pay.
  std::call_once(cookie_read_, [this] {
    auto scope = NetnsScope::Enter(*this);
    if (!scope.ok()) return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    socklen_t length = sizeof(cookie_);
    if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie_, &length) != 0) cookie_ = 0;
    close(fd);
  });
  return cookie_;
}

absl::StatusOr<std::shared_ptr<Netns>> Netns::Reopen(const journal::Netns& recorded) {
  auto netns = Open(recorded.path());
  if (absl::IsNotFound(netns.status()))
    return absl::NotFoundError(Cat("netns ", recorded.path(), " is gone"));
  if (!netns.ok()) return netns.status();
  if ((*netns)->device() != recorded.device() || (*netns)->inode() != recorded.inode()) {
    return absl::NotFoundError(Cat((*netns)->Describe(), " is another namespace now (inode ",
                                   (*netns)->inode(), ", not ", recorded.inode(),
                                   "): the recorded one is gone"));
  }
  // The kernel gives a freed inode number to the next namespace made: only the cookie tells them apart.
  if (recorded.cookie() != 0 && (*netns)->cookie() != recorded.cookie()) {
    return absl::NotFoundError(Cat((*netns)->Describe(), " is another namespace now (cookie ",
                                   (*netns)->cookie(), ", not ", recorded.cookie(),
                                   "): the recorded one is gone"));
  }
  return netns;
}

journal::Netns Netns::Record() const {
  journal::Netns recorded;
  recorded.set_path(path_);
  recorded.set_device(device_);
  recorded.set_inode(inode_);
  recorded.set_cookie(cookie());
  return recorded;
}

Netns::~Netns() { close(fd_); }

std::string Netns::Describe() const { return path_.empty() ? "the agent's netns" : Cat("netns ", path_); }

namespace {

// The calling thread's namespace outside every NetnsScope, opened by its first scope and kept while the
// thread lives: opening /proc/thread-self/ns/net walks /proc, a tenth of an inject's CPU
// (bench/inject-latency). It stays right while only NetnsScope moves the thread after that.
struct Home {
  int fd = -1;
  dev_t device = 0;
  ino_t inode = 0;
  bool away = false;  // a scope has moved the thread out of it
  Home() = default;
  Home(const Home&) = delete;
  Home& operator=(const Home&) = delete;
  ~Home() {
    if (fd >= 0) close(fd);
    fd = -1;
  }
};
thread_local Home home;

// The calling thread's namespace, open, and its identity in `st`.
absl::StatusOr<int> OpenCurrent(struct stat* st) {
  int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(Cat("open /proc/thread-self/ns/net: ", std::strerror(errno)));
  if (fstat(fd, st) != 0) {
    int err = errno;
    close(fd);
    return absl::InternalError(Cat("fstat /proc/thread-self/ns/net: ", std::strerror(err)));
  }
  return fd;
}

bool Names(const Netns& netns, dev_t device, ino_t inode) {
  return netns.device() == device && netns.inode() == inode;
}

}  // namespace

absl::StatusOr<std::unique_ptr<NetnsScope>> NetnsScope::Enter(const Netns& netns) {
  if (!home.away) {  // the common case: from home, and back to the home fd
    if (home.fd < 0) {
      struct stat st {};
      absl::StatusOr<int> current = OpenCurrent(&st);
      if (!current.ok()) return current.status();
      home.fd = *current;
      home.device = st.st_dev;
      home.inode = st.st_ino;
    }
    if (Names(netns, home.device, home.inode)) return std::unique_ptr<NetnsScope>(new NetnsScope(-1, false));
    if (setns(netns.fd(), CLONE_NEWNET) != 0) {
      return absl::FailedPreconditionError(
          Cat("cannot enter ", netns.Describe(), ": ", std::strerror(errno)));
    }
    home.away = true;
    return std::unique_ptr<NetnsScope>(new NetnsScope(home.fd, true));
  }
  // Inside another scope: back to where the thread is now, opened for this scope alone.
  struct stat st {};
  absl::StatusOr<int> current = OpenCurrent(&st);
  if (!current.ok()) return current.status();
  if (Names(netns, st.st_dev, st.st_ino)) {
    close(*current);
    return std::unique_ptr<NetnsScope>(new NetnsScope(-1, false));
  }
  if (setns(netns.fd(), CLONE_NEWNET) != 0) {
    int err = errno;
    close(*current);
    return absl::FailedPreconditionError(Cat("cannot enter ", netns.Describe(), ": ", std::strerror(err)));
  }
  return std::unique_ptr<NetnsScope>(new NetnsScope(*current, false));
}

NetnsScope::~NetnsScope() {
  if (original_fd_ < 0) return;
  if (setns(original_fd_, CLONE_NEWNET) != 0) {
    log::Error("netns.return_failed").With("error", std::strerror(errno));
    std::abort();  // see Netns::Open
  }
  if (returns_home_) {
    home.away = false;
  } else {
    close(original_fd_);
  }
}

}  // namespace faultline::kernel
