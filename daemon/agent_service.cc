#include "agent_service.h"

#include "faultline/api/cat.h"
#include "faults/drivers.h"
#include "log.h"

namespace faultline {
namespace {

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// An audit line about a call of `caller`.
AuditRecord CallRecord(const char* action, const Caller& caller) {
  return AuditRecord(action, caller.identity, caller.peer);
}

}  // namespace

grpc::Status AgentService::Refused(const Caller& caller, const char* call, const grpc::Status& status) const {
  const std::string code = absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
  log::Warning("request.refused")
      .With("call", call)
      .With("client", caller.identity)
      .With("peer", caller.peer)
      .With("code", code)
      .With("error", status.error_message());
  metrics_.errors.Increment(code);
  return status;
}

grpc::Status AgentService::Refused(const Caller& caller, const char* call, const absl::Status& status) const {
  return Refused(caller, call, ToGrpc(status));
}

AgentService::Admission AgentService::Admit(const grpc::ServerContext& context, const char* call) const {
  Admission admission{callers_.Identify(context), grpc::Status::OK};
  admission.status = Authorize(admission.caller, call);
  if (!admission.status.ok()) {
    Refused(admission.caller, call, admission.status);
  } else {
    // Before the call does anything: an Inject must not cut the connection it came on.
    guard_.GuardController(admission.caller.peer);
  }
  return admission;
}

grpc::Status AgentService::Capabilities(grpc::ServerContext* context, const v1::CapabilitiesRequest*,
                                        v1::CapabilitiesResponse* response) {
  if (Admission admission = Admit(*context, "Capabilities"); !admission.status.ok()) return admission.status;
  response->set_kernel_release(features_.release);
  response->set_agent_version(FAULTLINE_VERSION);
  for (const auto& feature : features_.features) *response->add_features() = feature;
  for (const auto& kind : faults::FaultDrivers::Implemented()) response->add_implemented_faults(kind);
  *response->mutable_max_duration() = limits_.max_duration;
  response->set_max_experiments(static_cast<uint32_t>(limits_.max_experiments));
  for (auto& endpoint : guard_.Describe()) response->add_guarded_endpoints(std::move(endpoint));
  return grpc::Status::OK;
}

grpc::Status AgentService::Inject(grpc::ServerContext* context, const v1::InjectRequest* request,
                                  v1::InjectResponse* response) {
  Admission admission = Admit(*context, "Inject");
  AuditRecord audit = CallRecord("inject", admission.caller).About(request->experiment());
  grpc::Status status = admission.status;
  if (status.ok()) {
    if (absl::Status s = api::ValidateExperiment(request->experiment(), limits_); !s.ok()) {
      status = Refused(admission.caller, "Inject", s);
    }
  }
  if (status.ok()) {
    auto result = manager_.Inject(request->experiment(), admission.caller.identity);
    if (result.ok()) {
      *response = std::move(*result);
      audit.About(response->status());
    } else {
      status = Refused(admission.caller, "Inject", result.status());
    }
  }
  audit.result = status;
  audit_.Write(audit);
  return status;
}

grpc::Status AgentService::Get(grpc::ServerContext* context, const v1::GetRequest* request,
                               v1::ExperimentStatus* response) {
  Admission admission = Admit(*context, "Get");
  if (!admission.status.ok()) return admission.status;
  auto result = manager_.Get(request->id());
  if (!result.ok()) return Refused(admission.caller, "Get", result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status AgentService::List(grpc::ServerContext* context, const v1::ListRequest* request,
                                v1::ListResponse* response) {
  if (Admission admission = Admit(*context, "List"); !admission.status.ok()) return admission.status;
  std::vector<v1::ExperimentState> states;
  for (int state : request->states()) states.push_back(static_cast<v1::ExperimentState>(state));
  *response = manager_.List(states);
  return grpc::Status::OK;
}

grpc::Status AgentService::Revert(grpc::ServerContext* context, const v1::RevertRequest* request,
                                  v1::ExperimentStatus* response) {
  Admission admission = Admit(*context, "Revert");
  AuditRecord audit = CallRecord("revert", admission.caller);
  audit.experiment = request->id();
  grpc::Status status = admission.status;
  if (status.ok()) {
    std::string reason = request->reason().empty() ? "reverted on request" : request->reason();
    auto result = manager_.Revert(request->id(), reason, admission.caller.identity);
    if (result.ok()) {
      *response = std::move(*result);
      audit.About(*response);
    } else {
      status = Refused(admission.caller, "Revert", result.status());
    }
  }
  audit.result = status;
  audit_.Write(audit);
  return status;
}

grpc::Status AgentService::Halt(grpc::ServerContext* context, const v1::HaltRequest* request,
                                v1::HaltResponse* response) {
  Admission admission = Admit(*context, "Halt");
  AuditRecord audit = CallRecord("halt", admission.caller);
  audit.result = admission.status;
  if (admission.status.ok()) {
    *response = manager_.Halt(request->reason().empty() ? "halted on request" : request->reason(),
                              admission.caller.identity);
  }
  audit_.WriteHalt(audit, *response);
  return admission.status;
}

grpc::Status AgentService::Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                                 grpc::ServerWriter<v1::ExperimentEvent>* writer) {
  Admission admission = Admit(*context, "Watch");
  if (!admission.status.ok()) return admission.status;
  if (!request->id().empty()) {
    if (auto found = manager_.Get(request->id()); !found.ok())
      return Refused(admission.caller, "Watch", found.status());
  }
  auto subscription = manager_.Subscribe(request->id());
  v1::ExperimentEvent event;
  while (!context->IsCancelled() && !subscription->closed()) {
    if (!subscription->Next(event, std::chrono::milliseconds(200))) continue;
    if (!writer->Write(event)) break;
  }
  return grpc::Status::OK;
}

grpc::Status AgentService::RenewLease(grpc::ServerContext* context, const v1::RenewLeaseRequest* request,
                                      v1::RenewLeaseResponse* response) {
  Admission admission = Admit(*context, "RenewLease");
  if (!admission.status.ok()) return admission.status;
  auto result = manager_.RenewLease(request->id());
  if (!result.ok()) return Refused(admission.caller, "RenewLease", result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

// One Halt call, from its arrival to its answer.
struct HaltLane::Call {
  grpc::ServerContext context;
  v1::HaltRequest request;
  v1::HaltResponse response;
  grpc::ServerAsyncResponseWriter<v1::HaltResponse> responder{&context};
  bool answered = false;
};

HaltLane::HaltLane(AgentService& service, grpc::Server& server,
                   std::unique_ptr<grpc::ServerCompletionQueue> queue)
    : service_(service), server_(server), queue_(std::move(queue)) {
  Request();
  thread_ = std::thread([this] { Serve(); });
}

HaltLane::~HaltLane() {
  // gRPC wants the server shut down before its queues; Shutdown again is a no-op.
  server_.Shutdown();
  queue_->Shutdown();
  thread_.join();
}

void HaltLane::Request() {
  Call* call = new Call;
  service_.RequestHalt(&call->context, &call->request, &call->responder, queue_.get(), queue_.get(), call);
}

void HaltLane::Serve() {
  void* tag = nullptr;
  bool ok = false;
  // Next returns false once the queue is shut down and drained.
  while (queue_->Next(&tag, &ok)) {
    std::unique_ptr<Call> call(static_cast<Call*>(tag));
    if (call->answered || !ok) continue;  // an answer sent, or the server shutting down: done with it
    Request();                            // the next Halt waits on the queue meanwhile
    grpc::Status status = service_.Halt(&call->context, &call->request, &call->response);
    call->answered = true;
    // The call lives until its answer is sent, when the queue hands it back.
    Call* answering = call.release();
    answering->responder.Finish(answering->response, status, answering);
  }
}

}  // namespace faultline
