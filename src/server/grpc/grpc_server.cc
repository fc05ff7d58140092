#include "server/grpc/grpc_server.h"

#include <grpcpp/alarm.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <string>

#include "server/grpc/grpc_service.h"
#include "server/grpc/grpc_tls.h"

namespace kyrodb::server {

namespace {

// How often the grpc.health.v1 status is re-checked while recovery runs.
constexpr auto kReadyPollInterval = std::chrono::milliseconds(50);

std::string HostPort(const std::string& host, uint32_t port) {
  const bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

int MillisArg(uint32_t secs) {
  return static_cast<int>(
      std::min<uint64_t>(uint64_t{secs} * 1000, std::numeric_limits<int>::max()));
}

}  // namespace

class GrpcServer::Impl {
 public:
  explicit Impl(Service& service) : service_(service), rpcs_(service) {}

  Status Start() {
    const ServerConfig::Server& cfg = service_.config().server;
    if (cfg.grpc_port > std::numeric_limits<uint16_t>::max()) {
      return Status::InvalidArgument("server.grpc_port: " + std::to_string(cfg.grpc_port) +
                                     " is not a port");
    }
    ::grpc::EnableDefaultHealthCheckService(true);
    ::grpc::reflection::InitProtoReflectionServerBuilderPlugin();

    auto credentials = GrpcServerCredentials(service_.config().tls);
    if (!credentials.ok()) return credentials.status();

    ::grpc::ServerBuilder builder;
    const std::string address = HostPort(cfg.bind, cfg.grpc_port);
    int selected_port = 0;
    builder.AddListeningPort(address, *credentials, &selected_port);
    // Without this a second server could bind the same port (gRPC sets SO_REUSEPORT).
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    // limits.max_connections bounds the calls in progress over all connections (CallGate; gRPC
    // 1.51 has no connection limit). It is also each connection's HTTP/2 stream limit, so one
    // client's extra calls wait in its own channel instead of being refused.
    const ServerConfig::Limits& limits = service_.config().limits;
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONCURRENT_STREAMS,
        static_cast<int>(std::min<uint32_t>(limits.max_connections, std::numeric_limits<int>::max())));
    // A connection that has not finished its handshake (TCP, TLS, HTTP/2 preface) within the
    // read timeout is closed, as is one with no call for the idle timeout (clients reconnect).
    builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                               MillisArg(limits.read_timeout_secs));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                               MillisArg(limits.idle_timeout_secs));
    const uint64_t max_bytes = std::min<uint64_t>(cfg.max_body_mb << 20,
                                                  std::numeric_limits<int>::max());
    builder.SetMaxReceiveMessageSize(static_cast<int>(max_bytes));
    builder.SetMaxSendMessageSize(static_cast<int>(max_bytes));
    // config.server.grpc_threads is not applied: the callback API runs handlers on gRPC's own
    // event-engine threads (sized from the core count); ResourceQuota::SetMaxThreads only
    // bounds the sync server's pool.
    builder.RegisterService(&rpcs_);
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || selected_port == 0) {
      server_.reset();
      return Status::IoError("gRPC server: cannot listen on " + address +
                             " (port in use or address not available)");
    }
    port_ = static_cast<uint16_t>(selected_port);
    UpdateHealth();
    return Status::Ok();
  }

  uint16_t port() const { return port_; }

  void Stop(std::chrono::milliseconds drain) {
    if (server_ == nullptr) return;
    {
      std::unique_lock<std::mutex> lock(mu_);
      stopping_ = true;
      if (alarm_armed_) alarm_->Cancel();
      cv_.wait(lock, [this] { return !alarm_armed_; });
    }
    server_->Shutdown(std::chrono::system_clock::now() + drain);
    server_->Wait();
    server_.reset();
  }

 private:
  // grpc.health.v1 says SERVING (overall and for every service) once Service is ready; until
  // then NOT_SERVING, re-checked by an alarm (no thread of ours).
  void UpdateHealth() {
    const bool ready = service_.ready();
    SetServing(ready);
    if (ready) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) ArmLocked();
  }

  void SetServing(bool serving) {
    ::grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
    health->SetServingStatus(::kyrodb::v1::KyroDBService::service_full_name(), serving);
    health->SetServingStatus(serving);  // overall ("") and every service named so far
  }

  void ArmLocked() {
    alarm_armed_ = true;
    // A fresh alarm each time: the previous one may be the one whose callback is running (its
    // implementation is reference-counted, so dropping it here is safe).
    alarm_ = std::make_unique<::grpc::Alarm>();
    alarm_->Set(std::chrono::system_clock::now() + kReadyPollInterval, [this](bool fired) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!fired || stopping_) {
          alarm_armed_ = false;
          cv_.notify_all();
          return;
        }
      }
      // Still armed: Stop() waits before it shuts the server down. Only a change is published
      // (every SetServingStatus call is an update to Watch clients).
      const bool ready = service_.ready();
      if (ready) SetServing(true);
      std::lock_guard<std::mutex> lock(mu_);
      if (ready || stopping_) {
        alarm_armed_ = false;
        cv_.notify_all();
      } else {
        ArmLocked();
      }
    });
  }

  Service& service_;
  GrpcService rpcs_;
  std::unique_ptr<::grpc::Server> server_;
  uint16_t port_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<::grpc::Alarm> alarm_;  // guarded by mu_
  bool alarm_armed_ = false;               // guarded by mu_
  bool stopping_ = false;     // guarded by mu_
};

Result<std::unique_ptr<GrpcServer>> GrpcServer::Start(Service& service) {
  auto impl = std::make_unique<Impl>(service);
  KYRODB_RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<GrpcServer>(new GrpcServer(std::move(impl)));
}

GrpcServer::GrpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GrpcServer::~GrpcServer() { Stop(std::chrono::milliseconds(0)); }

uint16_t GrpcServer::port() const { return impl_->port(); }

void GrpcServer::Stop(std::chrono::milliseconds drain) { impl_->Stop(drain); }

}  // namespace kyrodb::server
