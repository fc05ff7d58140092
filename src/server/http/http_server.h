// The HTTP/JSON server (Boost.Beast, asynchronous, keep-alive) on config.server.http_port.
// Every request is decoded (simdjson), handed to Service, and answered with a JSON body written
// without a DOM; errors as {"error": ..., "error_code": ...} with HttpStatus(code).
// Thread-safety: Start/Stop from one thread; the server runs on its own io threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "kyrodb/status.h"
#include "server/common/service.h"

namespace kyrodb::server {

class HttpServer {
 public:
  // Binds config.server.bind:http_port (0 = any free port) and starts serving on
  // config.server.http_threads threads. Fails with a clear message if the port is taken.
  static Result<std::unique_ptr<HttpServer>> Start(Service& service);
  ~HttpServer();  // Stop() if not stopped

  uint16_t port() const;
  // Stops accepting, lets in-flight requests finish for at most `drain`, closes connections,
  // joins the threads.
  void Stop(std::chrono::milliseconds drain);

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kyrodb::server
