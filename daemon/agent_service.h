// The gRPC face of the agent: validates requests, then hands them to the ExperimentManager.
#pragma once

#include "experiment_manager.h"
#include "faultline/v1/agent.grpc.pb.h"
#include "kernel/capabilities.h"

namespace faultline {

class AgentService final : public faultline::v1::Agent::Service {
 public:
  AgentService(ExperimentManager& manager, const kernel::KernelFeatures& features, api::Limits limits)
      : manager_(manager), features_(features), limits_(std::move(limits)) {}

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
  grpc::Status Halt(grpc::ServerContext* context, const faultline::v1::HaltRequest* request,
                    faultline::v1::HaltResponse* response) override;
  grpc::Status Watch(grpc::ServerContext* context, const faultline::v1::WatchRequest* request,
                     grpc::ServerWriter<faultline::v1::ExperimentEvent>* writer) override;
  grpc::Status RenewLease(grpc::ServerContext* context, const faultline::v1::RenewLeaseRequest* request,
                          faultline::v1::RenewLeaseResponse* response) override;

 private:
  ExperimentManager& manager_;
  const kernel::KernelFeatures& features_;
  const api::Limits limits_;
};

}  // namespace faultline
