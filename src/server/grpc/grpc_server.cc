#include "server/grpc/grpc_server.h"
// Stub so that kyrodb_server links; the real server replaces this file.
namespace kyrodb::server {
class GrpcServer::Impl {};
GrpcServer::GrpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrpcServer::~GrpcServer() = default;
Result<std::unique_ptr<GrpcServer>> GrpcServer::Start(Service&) { return Status::NotSupported("not built yet"); }
uint16_t GrpcServer::port() const { return 0; }
void GrpcServer::Stop(std::chrono::milliseconds) {}
}  // namespace kyrodb::server
