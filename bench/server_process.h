// ServerProcess: a kyrodb_server child process for benchmarks. Start() runs the binary with
// ephemeral ports and --port-file in a scratch directory and returns once the port file appears
// (the server is serving and recovered); Stop() sends SIGTERM and reaps it.
// The server's log goes to <dir>/server.log; a start-up failure returns its last lines.
// Thread-safety: one thread owns a ServerProcess.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kyrodb/status.h"

namespace kyrodb::bench {

class ServerProcess {
 public:
  // `extra_args` are appended to the command line (e.g. "--set", "hnsw.dimension=768").
  // `dir` must exist; the data directory and the port file are created inside it.
  static Result<std::unique_ptr<ServerProcess>> Start(const std::string& binary, const std::string& dir,
                                                      const std::vector<std::string>& extra_args,
                                                      std::chrono::seconds ready_timeout);
  ~ServerProcess();  // SIGKILL if still running

  uint16_t http_port() const { return http_port_; }
  uint16_t grpc_port() const { return grpc_port_; }
  pid_t pid() const { return pid_; }

  // The server's user+system CPU seconds so far (/proc/<pid>/stat), all threads; -1 if unreadable.
  double CpuSeconds() const;

  // SIGTERM, then waits up to `timeout` for the exit. Returns the exit code, or an error if the
  // process did not exit in time (it is then killed) or died of a signal.
  Result<int> Stop(std::chrono::seconds timeout);

 private:
  ServerProcess(pid_t pid, int pidfd, std::string log_path)
      : pid_(pid), pidfd_(pidfd), log_path_(std::move(log_path)) {}

  // Last lines of the server's log, for error messages.
  std::string LogTail() const;

  pid_t pid_;
  int pidfd_;
  std::string log_path_;
  uint16_t http_port_ = 0;
  uint16_t grpc_port_ = 0;
  bool reaped_ = false;
};

}  // namespace kyrodb::bench
