// The gRPC server (KyroDB v1 protocol, proto/kyrodb/v1/kyrodb.proto) on
// config.server.grpc_port, callback API, with grpc.health.v1 and server reflection.
// Thread-safety: Start/Stop from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "kyrodb/status.h"
#include "server/common/service.h"

namespace kyrodb::server {

class GrpcServer {
 public:
  // Binds config.server.bind:grpc_port (0 = any free port). Fails if the port is taken.
  static Result<std::unique_ptr<GrpcServer>> Start(Service& service);
  ~GrpcServer();  // Stop() if not stopped

  uint16_t port() const;
  // Stops accepting, waits at most `drain` for in-flight calls, then cancels the rest.
  void Stop(std::chrono::milliseconds drain);

  class Impl;

 private:
  explicit GrpcServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kyrodb::server
