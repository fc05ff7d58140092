// kyrodb_server: wiring only. Config -> Service -> HTTP and gRPC servers -> recovery -> wait
// for a signal -> graceful shutdown (stop accepting, drain in-flight requests, sync the WAL).
#include <absl/synchronization/mutex.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "server/common/config.h"
#include "server/common/service.h"
#include "server/grpc/grpc_server.h"
#include "server/http/http_server.h"

namespace {

using kyrodb::server::GrpcServer;
using kyrodb::server::HttpServer;
using kyrodb::server::Service;

// Written once serving and recovered, so scripts and tests can wait for it (rename: atomic).
bool WritePortFile(const std::string& path, uint16_t http, uint16_t grpc) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << "{\"http\":" << http << ",\"grpc\":" << grpc << ",\"pid\":" << getpid() << "}\n";
    if (!f.flush()) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil is built with deadlock detection on: every absl::Mutex lock inside gRPC
  // then walks a lock graph (GraphCycles), a few % of each RPC's CPU. Off, as in release builds.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  auto launch = kyrodb::server::LoadLaunchOptions(argc, argv);
  if (!launch.ok()) {
    if (launch.status().code() == kyrodb::StatusCode::kFailedPrecondition) {  // --help
      std::fputs(launch.status().message().c_str(), stdout);
      return 0;
    }
    std::fprintf(stderr, "kyrodb_server: %s\n", launch.status().message().c_str());
    return 2;
  }
  if (launch->generate_config) {
    std::fputs(kyrodb::server::GenerateConfigYaml().c_str(), stdout);
    return 0;
  }
  const kyrodb::server::ServerConfig& config = launch->config;
  spdlog::set_level(spdlog::level::from_str(config.server.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  // Signals are taken by sigwait below; every thread started from here on inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  spdlog::info("kyrodb_server starting: data_dir={} fsync_policy={} bind={}", config.persistence.data_dir,
               config.persistence.fsync_policy, config.server.bind);
  auto created = Service::Create(config);
  if (!created.ok()) {
    spdlog::error("{}", created.status().message());
    return 2;
  }
  std::unique_ptr<Service> service = std::move(created).value();
  auto http = HttpServer::Start(*service);
  if (!http.ok()) {
    spdlog::error("HTTP server: {}", http.status().message());
    return 1;
  }
  auto grpc = GrpcServer::Start(*service);
  if (!grpc.ok()) {
    spdlog::error("gRPC server: {}", grpc.status().message());
    (*http)->Stop(std::chrono::milliseconds(0));
    return 1;
  }
  spdlog::info("listening: http={}:{} grpc={}:{} (not ready until recovery is done)", config.server.bind,
               (*http)->port(), config.server.bind, (*grpc)->port());

  if (kyrodb::Status s = service->Recover(); !s.ok()) {
    spdlog::error("recovery failed: {}", s.ToString());
    (*grpc)->Stop(std::chrono::milliseconds(0));
    (*http)->Stop(std::chrono::milliseconds(0));
    return 1;
  }
  if (!launch->port_file.empty() && !WritePortFile(launch->port_file, (*http)->port(), (*grpc)->port())) {
    spdlog::error("cannot write --port-file {}", launch->port_file);
    return 1;
  }
  spdlog::info("ready");

  int sig = 0;
  for (;;) {
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      if (kyrodb::Status s = service->ReloadKeys(); !s.ok()) {
        spdlog::error("SIGHUP: keeping the current API keys: {}", s.message());
      }
      continue;
    }
    break;
  }
  const auto drain = std::chrono::seconds(config.server.shutdown_timeout_secs);
  spdlog::info("{}: shutting down (draining in-flight requests for at most {} s)",
               sig == SIGTERM ? "SIGTERM" : "SIGINT", config.server.shutdown_timeout_secs);
  const auto t0 = std::chrono::steady_clock::now();
  (*http)->Stop(std::chrono::duration_cast<std::chrono::milliseconds>(drain));
  (*grpc)->Stop(std::chrono::duration_cast<std::chrono::milliseconds>(drain));
  kyrodb::Status closed = service->Close();
  spdlog::info("stopped in {:.0f} ms{}",
               std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(),
               closed.ok() ? "" : " (WAL sync failed: " + closed.ToString() + ")");
  return closed.ok() ? 0 : 1;
}
