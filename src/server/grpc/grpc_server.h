// The gRPC server (KyroDB v1 protocol, proto/kyrodb/v1/kyrodb.proto) on
// config.server.grpc_port, callback API, with grpc.health.v1 and server reflection. Over TLS when
// config.tls.enabled (grpc_tls.h: mutual TLS with tls.ca_file); limits.max_connections bounds
// the calls in progress (call_gate.h), read_timeout_secs the connection handshake and
// idle_timeout_secs an idle connection.
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
  // Binds config.server.bind:grpc_port (0 = any free port). Fails if the port is taken, or
  // with InvalidArgument naming the tls.* file that cannot be read or holds no usable PEM.
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
