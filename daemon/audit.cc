#include "audit.h"

#include <fcntl.h>
#include <google/protobuf/util/time_util.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "experiment_manager.h"
#include "faultline/api/cat.h"
#include "faultline/api/validate.h"
#include "log.h"

namespace faultline {

using api::Cat;
using google::protobuf::util::TimeUtil;

namespace {

// The manager's reason for an experiment whose lease was not renewed (ExperimentManager::TimerLoop).
constexpr std::string_view kLeaseLost = "lease lost";

std::string ResultText(const grpc::Status& status) {
  if (status.ok()) return "ok";
  return Cat(absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())), ": ",
             status.error_message());
}

}  // namespace

AuditRecord& AuditRecord::About(const v1::Experiment& spec) {
  experiment = spec.id();
  faults.clear();
  for (const auto& fault : spec.faults()) faults.push_back(api::DescribeFault(fault));
  return *this;
}

AuditRecord& AuditRecord::About(const v1::ExperimentStatus& status) {
  About(status.experiment());
  state = v1::ExperimentState_Name(status.state()).substr(6);  // without "STATE_"
  return *this;
}

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InvalidArgumentError(Cat(path, ": ", std::strerror(errno)));
  return std::unique_ptr<AuditLog>(new AuditLog(fd, path));
}

AuditLog::~AuditLog() { close(fd_); }

void AuditLog::Write(const AuditRecord& record) {
  std::string line = Cat("{\"time\":\"", log::Timestamp(), "\",\"action\":", log::JsonQuote(record.action),
                         ",\"client\":", log::JsonQuote(record.client));
  if (!record.peer.empty()) line += Cat(",\"peer\":", log::JsonQuote(record.peer));
  line += Cat(",\"experiment\":", record.experiment.empty() ? "null" : log::JsonQuote(record.experiment),
              ",\"faults\":[");
  for (size_t i = 0; i < record.faults.size(); i++)
    line += Cat(i ? "," : "", log::JsonQuote(record.faults[i]));
  line += "]";
  if (!record.state.empty()) line += Cat(",\"state\":", log::JsonQuote(record.state));
  line += Cat(",\"result\":", log::JsonQuote(ResultText(record.result)), "}\n");
  ssize_t written = write(fd_, line.data(), line.size());
  if (written != static_cast<ssize_t>(line.size())) {
    log::Error("audit.write_failed")
        .With("path", path_)
        .With("error", written < 0 ? std::strerror(errno) : "short write")
        .With("line", line);
  }
}

void AuditLog::WriteHalt(AuditRecord record, const v1::HaltResponse& halted) {
  if (halted.reverted().empty()) Write(record);
  for (const auto& status : halted.reverted()) Write(record.About(status));
}

ExpiryAuditor::ExpiryAuditor(ExperimentManager& manager, AuditLog& audit) : manager_(manager), audit_(audit) {
  // A new subscription first replays the current states, which are no news: only what changes from
  // now on is audited.
  const google::protobuf::Timestamp since = TimeUtil::GetCurrentTime();
  subscription_ = manager_.Subscribe("");
  thread_ = std::thread([this, since] {
    v1::ExperimentEvent event;
    while (!stopping_ && !subscription_->closed()) {
      if (!subscription_->Next(event, std::chrono::milliseconds(200)) || event.time() < since) continue;
      bool expired = event.state() == v1::STATE_EXPIRED;
      bool lease_lost = event.state() == v1::STATE_ABORTED && event.reason().starts_with(kLeaseLost);
      if (!expired && !lease_lost) continue;
      AuditRecord record(expired ? "expire" : "lease-lost", "");
      if (auto status = manager_.Get(event.experiment_id()); status.ok()) {
        record.client = status->client();
        record.About(*status);
      }
      record.experiment = event.experiment_id();
      audit_.Write(record);
    }
  });
}

ExpiryAuditor::~ExpiryAuditor() {
  stopping_ = true;
  thread_.join();
}

}  // namespace faultline
