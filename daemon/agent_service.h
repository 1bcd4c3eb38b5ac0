// The gRPC face of the agent: admits callers by their role (access.h), guards the connection of
// every admitted controller (control_plane_guard.h), validates requests, hands them to the
// ExperimentManager, writes every change to the audit log, and counts errors in the metrics.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <thread>

#include "access.h"
#include "audit.h"
#include "control_plane_guard.h"
#include "experiment_manager.h"
#include "faultline/v1/agent.grpc.pb.h"
#include "kernel/capabilities.h"
#include "metrics.h"

namespace faultline {

// Halt is asynchronous for gRPC (HaltLane serves it); every other method is served by the
// synchronous server's thread pool.
class AgentService final : public faultline::v1::Agent::WithAsyncMethod_Halt<faultline::v1::Agent::Service> {
 public:
  AgentService(ExperimentManager& manager, const kernel::KernelFeatures& features, api::Limits limits,
               const CallerIdentifier& callers, AuditLog& audit, ControlPlaneGuard& guard,
               metrics::AgentMetrics& metrics)
      : manager_(manager),
        features_(features),
        limits_(std::move(limits)),
        callers_(callers),
        audit_(audit),
        guard_(guard),
        metrics_(metrics) {}

  grpc::Status Capabilities(grpc::ServerContext* context, const faultline::v1::CapabilitiesRequest* request,
                            faultline::v1::CapabilitiesResponse* response) override;
  grpc::Status Inject(grpc::ServerContext* context, const faultline::v1::InjectRequest* request,
                      faultline::v1::InjectResponse* response) override;
  grpc::Status Get(grpc::ServerContext* context, const faultline::v1::GetRequest* request,
                   faultline::v1::ExperimentStatus* response) override;
  grpc::Status List(grpc::ServerContext* context, const faultline::v1::ListRequest* request,
                    faultline::v1::ListResponse* response) override;
  grpc::Status Revert(grpc::ServerContext* context, const faultline::v1::RevertRequest* request,
                      faultline::v1::ExperimentStatus* response) override;
  // Called by HaltLane, not by gRPC's thread pool.
  grpc::Status Halt(grpc::ServerContext* context, const faultline::v1::HaltRequest* request,
                    faultline::v1::HaltResponse* response) override;
  grpc::Status Watch(grpc::ServerContext* context, const faultline::v1::WatchRequest* request,
                     grpc::ServerWriter<faultline::v1::ExperimentEvent>* writer) override;
  grpc::Status RenewLease(grpc::ServerContext* context, const faultline::v1::RenewLeaseRequest* request,
                          faultline::v1::RenewLeaseResponse* response) override;

 private:
  struct Admission {
    Caller caller;
    grpc::Status status;  // OK, or why the call is refused
  };
  // The one gate of every method: who calls, and whether their role allows `call`. An admitted
  // caller's connection is guarded from then on.
  Admission Admit(const grpc::ServerContext& context, const char* call) const;
  // Logs and counts a call answered with an error; returns `status`.
  grpc::Status Refused(const Caller& caller, const char* call, const grpc::Status& status) const;
  grpc::Status Refused(const Caller& caller, const char* call, const absl::Status& status) const;

  ExperimentManager& manager_;
  const kernel::KernelFeatures& features_;
  const api::Limits limits_;
  const CallerIdentifier& callers_;
  AuditLog& audit_;
  ControlPlaneGuard& guard_;
  metrics::AgentMetrics& metrics_;
};

// Serves Halt on a completion queue and a thread of its own, so that `faultctl halt` gets through when
// the agent is overloaded: when slow calls or Watch streams hold every thread of the synchronous pool
// (--max-rpc-threads), gRPC refuses further calls with RESOURCE_EXHAUSTED, but not a Halt. Halts are
// answered one at a time, in the order they come.
class HaltLane {
 public:
  // `queue` comes from the ServerBuilder that built `server` (AddCompletionQueue).
  HaltLane(AgentService& service, grpc::Server& server, std::unique_ptr<grpc::ServerCompletionQueue> queue);
  // Shuts the server down (if it is not yet), then the queue, and joins the thread.
  ~HaltLane();
  HaltLane(const HaltLane&) = delete;
  HaltLane& operator=(const HaltLane&) = delete;

 private:
  struct Call;
  void Request();
  void Serve();

  AgentService& service_;
  grpc::Server& server_;
  std::unique_ptr<grpc::ServerCompletionQueue> queue_;
  std::thread thread_;
};

}  // namespace faultline
