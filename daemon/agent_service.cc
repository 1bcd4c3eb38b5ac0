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

// Who sent the request, for logs and experiment records.
std::string Client(const grpc::ServerContext* context) { return context->peer(); }

grpc::Status Refused(const grpc::ServerContext* context, const char* call, const absl::Status& status) {
  log::Warning("request.refused")
      .With("call", call)
      .With("client", Client(context))
      .With("code", absl::StatusCodeToString(status.code()))
      .With("error", std::string(status.message()));
  return ToGrpc(status);
}

}  // namespace

grpc::Status AgentService::Capabilities(grpc::ServerContext*, const v1::CapabilitiesRequest*,
                                        v1::CapabilitiesResponse* response) {
  response->set_kernel_release(features_.release);
  response->set_agent_version(FAULTLINE_VERSION);
  for (const auto& feature : features_.features) *response->add_features() = feature;
  for (const auto& kind : faults::FaultDrivers::Implemented()) response->add_implemented_faults(kind);
  *response->mutable_max_duration() = limits_.max_duration;
  return grpc::Status::OK;
}

grpc::Status AgentService::Inject(grpc::ServerContext* context, const v1::InjectRequest* request,
                                  v1::InjectResponse* response) {
  if (absl::Status s = api::ValidateExperiment(request->experiment(), limits_); !s.ok()) {
    return Refused(context, "Inject", s);
  }
  auto result = manager_.Inject(request->experiment(), Client(context));
  if (!result.ok()) return Refused(context, "Inject", result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status AgentService::Get(grpc::ServerContext* context, const v1::GetRequest* request,
                               v1::ExperimentStatus* response) {
  auto result = manager_.Get(request->id());
  if (!result.ok()) return Refused(context, "Get", result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status AgentService::List(grpc::ServerContext*, const v1::ListRequest* request,
                                v1::ListResponse* response) {
  std::vector<v1::ExperimentState> states;
  for (int state : request->states()) states.push_back(static_cast<v1::ExperimentState>(state));
  *response = manager_.List(states);
  return grpc::Status::OK;
}

grpc::Status AgentService::Revert(grpc::ServerContext* context, const v1::RevertRequest* request,
                                  v1::ExperimentStatus* response) {
  std::string reason = request->reason().empty() ? "reverted on request" : request->reason();
  auto result = manager_.Revert(request->id(), reason, Client(context));
  if (!result.ok()) return Refused(context, "Revert", result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status AgentService::Halt(grpc::ServerContext* context, const v1::HaltRequest* request,
                                v1::HaltResponse* response) {
  *response =
      manager_.Halt(request->reason().empty() ? "halted on request" : request->reason(), Client(context));
  return grpc::Status::OK;
}

grpc::Status AgentService::Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                                 grpc::ServerWriter<v1::ExperimentEvent>* writer) {
  if (!request->id().empty()) {
    if (auto found = manager_.Get(request->id()); !found.ok())
      return Refused(context, "Watch", found.status());
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
  auto result = manager_.RenewLease(request->id());
  if (!result.ok()) return Refused(context, "RenewLease", result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

}  // namespace faultline
