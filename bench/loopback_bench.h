// kyrodb_bench loopback: what this machine's loopback TCP lets any server keep of the engine's
// throughput when the load generator shares the cores. A minimal server (epoll, `server_threads`
// threads, each request answered after `work_us` of busy CPU, standing for the search) and a
// minimal client (one epoll thread, `connections` connections, one request in flight each)
// exchange requests and responses of the sizes the HTTP search path uses. No HTTP, no JSON: the
// kernel's cost per request and the wake-ups are all that is left. The line gives the CPU per
// request beyond the work and the ceiling ratio, achieved throughput over cores * 1e6 / work_us
// (what the in-process engine gets from the same cores), to set against `kyrodb_bench server`'s
// search ratios.
//
// `protocol` grpc / grpc-async puts gRPC's C++ library in place of the minimal server (callback
// API, as kyrodb_server; or the completion-queue API with `server_threads` threads), answering
// kyrodb.v1 Search calls from the h2 load client (`kyrodb_bench load --grpc`, one thread): the
// same work per call and a 10-hit response like the real server's. What it leaves of the engine
// is the ceiling of any server built on gRPC's library on this machine.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "kyrodb/status.h"

namespace kyrodb::bench {

struct LoopbackBenchConfig {
  size_t request_bytes = 7700;  // a 768-float JSON search body and its headers
  size_t response_bytes = 1000;
  double work_us = 125;         // ~ the in-process engine's CPU per search (100k x 768, ef 64)
  size_t connections = 64;
  size_t server_threads = 2;
  double seconds = 5;
  std::string client_sched = "batch";  // as kyrodb_bench load: batch or normal
  std::string protocol = "tcp";        // tcp, grpc (callback API) or grpc-async (queues)
  size_t dim = 768;                    // gRPC: the query vectors' dimension
};

struct LoopbackResult {
  double seconds = 0;                  // the measured window
  uint64_t requests = 0;               // answered in it
  uint64_t errors = 0;                 // failed calls (gRPC; the whole run)
  double cpu_s = 0;                    // this process's CPU over the window: client and server
  double other_processes_cpu_s = 0;    // the machine's other busy CPU over the window
  double requests_per_s = 0;
  double cpu_us_per_request = 0;
  std::optional<double> ceiling_ratio;  // requests_per_s / (cores * 1e6 / work_us); none if work_us = 0
};

// One window of the configured protocol (kyrodb_bench server runs these beside its rounds).
Result<LoopbackResult> RunLoopback(const LoopbackBenchConfig& config);

CLI::App* AddLoopbackCommand(CLI::App* app, LoopbackBenchConfig* config);
int RunLoopbackBench(const LoopbackBenchConfig& config);

}  // namespace kyrodb::bench
