#include "server/http/http_server.h"
// Stub so that kyrodb_server links; the real server replaces this file.
namespace kyrodb::server {
class HttpServer::Impl {};
HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() = default;
Result<std::unique_ptr<HttpServer>> HttpServer::Start(Service&) { return Status::NotSupported("not built yet"); }
uint16_t HttpServer::port() const { return 0; }
void HttpServer::Stop(std::chrono::milliseconds) {}
}  // namespace kyrodb::server
