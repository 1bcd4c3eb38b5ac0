// Network namespaces: opening one by path, and running the calling thread inside it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "kernel/journal.pb.h"

namespace faultline::kernel {

// An open handle on a network namespace. Holding it keeps the namespace alive, so a fault in it can
// always be reverted, even when the last process in it has gone.
class Netns {
 public:
  // `path` is /proc/PID/ns/net or /run/netns/NAME; empty means the agent's own namespace.
  static absl::StatusOr<std::shared_ptr<Netns>> Open(const std::string& path);
  // The namespace a journal entry names, if its path still leads to it: NOT_FOUND when the path is
  // gone or leads to another namespace now (a path re-used, a pid given to another process).
  static absl::StatusOr<std::shared_ptr<Netns>> Reopen(const journal::Netns& recorded);
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  int fd() const { return fd_; }
  // The namespace's identity: two paths name the same namespace when these are equal.
  dev_t device() const { return device_; }
  ino_t inode() const { return inode_; }
  // Its path and identity, for the journal.
  journal::Netns Record() const;
  // "netns /run/netns/x" or "the agent's netns", for messages.
  std::string Describe() const;

 private:
  Netns(int fd, std::string path, dev_t device, ino_t inode)
      : fd_(fd), path_(std::move(path)), device_(device), inode_(inode) {}
  // SO_NETNS_COOKIE of a socket made inside (Linux 5.14): unlike the inode number, never given to
  // another namespace while the machine runs. 0 where the kernel has no cookies.
  uint64_t cookie() const;

  int fd_;
  std::string path_;
  dev_t device_;
  ino_t inode_;
  mutable std::once_flag cookie_read_;
  mutable uint64_t cookie_ = 0;
};

// Moves the calling thread into a namespace (setns only changes the calling thread's namespace)
// and back when destroyed. Sockets opened inside stay bound to the namespace they were opened in,
// so netlink and BPF calls made in the scope act on the target namespace. A scope ends on the thread
// that entered it, after every scope entered inside it: hold it as a local.
class NetnsScope {
 public:
  static absl::StatusOr<std::unique_ptr<NetnsScope>> Enter(const Netns& netns);
  ~NetnsScope();
  NetnsScope(const NetnsScope&) = delete;
  NetnsScope& operator=(const NetnsScope&) = delete;

 private:
  NetnsScope(int original_fd, bool returns_home) : original_fd_(original_fd), returns_home_(returns_home) {}
  // -1 when the thread was already in the target namespace; else where to go back to.
  int original_fd_;
  // original_fd_ is the thread's own namespace, which it keeps open while it lives (netns.cc), rather
  // than a descriptor this scope opened and closes.
  bool returns_home_;
};

}  // namespace faultline::kernel
