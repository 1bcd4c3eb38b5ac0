// The audit log (--audit-log): one JSON object a line for every change to the kernel's faults and who
// asked for it: Inject, Revert and Halt calls (refused ones too), and the experiments the agent ends
// by itself when their duration or their lease runs out.
//   {"time":"2026-11-26T07:19:46.120Z","action":"inject","client":"alice.example","peer":"ipv4:...",
//    "experiment":"cut-db","faults":["partition both 198.18.0.2/32 on veth0"],"state":"ACTIVE",
//    "result":"ok"}
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "faultline/v1/agent.pb.h"

namespace faultline {

class ExperimentManager;
class Subscription;

struct AuditRecord {
  AuditRecord(std::string action, std::string client, std::string peer = {})
      : action(std::move(action)), client(std::move(client)), peer(std::move(peer)) {}

  std::string action;      // inject, revert, halt, expire, lease-lost
  std::string client;      // who asked; for expire and lease-lost, who started the experiment
  std::string peer;        // the caller's address; empty when the agent acted by itself
  std::string experiment;  // empty: a halt that found nothing active
  std::vector<std::string> faults;
  std::string state;  // the experiment's state after the change, e.g. "REVERTED"; empty if unknown
  grpc::Status result;

  // Experiment, faults and state from an experiment's status.
  AuditRecord& About(const faultline::v1::ExperimentStatus& status);
  AuditRecord& About(const faultline::v1::Experiment& experiment);
};

class AuditLog {
 public:
  // Opens (or creates, mode 0600) `path` for appending.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& path);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends one line with one write(2) on an O_APPEND descriptor, so lines from several threads
  // never interleave. A failed write is logged; the change it records has already happened.
  void Write(const AuditRecord& record);
  // One line for each experiment a halt reverted, or one without an experiment if there was none.
  void WriteHalt(AuditRecord record, const faultline::v1::HaltResponse& halted);

 private:
  AuditLog(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  const int fd_;
  const std::string path_;
};

// Writes the lines of the experiments the agent ends by itself (EXPIRED, and ABORTED for a lost
// lease), which no call reports: it follows the manager's state changes as a Watch stream does.
class ExpiryAuditor {
 public:
  ExpiryAuditor(ExperimentManager& manager, AuditLog& audit);
  // Stops following; also ends when the manager closes its subscriptions.
  ~ExpiryAuditor();
  ExpiryAuditor(const ExpiryAuditor&) = delete;
  ExpiryAuditor& operator=(const ExpiryAuditor&) = delete;

 private:
  ExperimentManager& manager_;
  AuditLog& audit_;
  std::shared_ptr<Subscription> subscription_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace faultline
