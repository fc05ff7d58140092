// kyrodb_bench loopback: what this machine's loopback TCP lets any server keep of the engine's
// throughput when the load generator shares the cores. A minimal server (epoll, `server_threads`
// threads, each request answered after `work_us` of busy CPU, standing for the search) and a
// minimal client (one epoll thread, `connections` connections, one request in flight each)
// exchange requests and responses of the sizes the HTTP search path uses. No HTTP, no JSON: the
// kernel's cost per request and the wake-ups are all that is left. The line gives the CPU per
// request beyond the work and the ceiling ratio, achieved throughput over cores * 1e6 / work_us
// (what the in-process engine gets from the same cores), to set against `kyrodb_bench server`'s
// search ratios.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace kyrodb::bench {

struct LoopbackBenchConfig {
  size_t request_bytes = 7700;  // a 768-float JSON search body and its headers
  size_t response_bytes = 1000;
  double work_us = 125;         // ~ the in-process engine's CPU per search (100k x 768, ef 64)
  size_t connections = 64;
  size_t server_threads = 2;
  double seconds = 5;
  std::string client_sched = "batch";  // as kyrodb_bench load: batch or normal
};

CLI::App* AddLoopbackCommand(CLI::App* app, LoopbackBenchConfig* config);
int RunLoopbackBench(const LoopbackBenchConfig& config);

}  // namespace kyrodb::bench
