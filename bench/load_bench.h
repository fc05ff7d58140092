// `kyrodb_bench load`: drives a running kyrodb_server over HTTP or gRPC with C concurrent
// clients for a fixed time and prints one JSON line: throughput, latency percentiles, errors,
// and the client's CPU time. Request vectors are random unit vectors from a fixed seed.
// Thread-safety: run from main.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "json_line.h"
#include "load_client.h"

namespace CLI {
class App;
}

namespace kyrodb::bench {

struct LoadBenchConfig {
  std::string http;  // http://host:port
  std::string grpc;  // host:port
  std::string op = "search";
  size_t concurrency = 64;
  size_t client_threads = 1;
  std::string client_sched = "batch";  // client threads' scheduling: batch or normal
  std::string grpc_client = "h2";      // h2 (nghttp2) or grpcpp (gRPC's C++ library)
  double duration_s = 10;
  double warmup_s = 1;
  size_t dim = 768;
  std::string collection;
  std::string api_key;
  uint32_t k = 10;
  uint32_t ef = 64;
  uint64_t id_space = 100000;
  uint64_t first_insert_id = 0;  // 0: id_space + 1
  bool include_embedding = false;
  size_t pool = 1000;  // distinct request vectors
  uint64_t seed = 1;
};

CLI::App* AddLoadCommand(CLI::App* app, LoadBenchConfig* config);
int RunLoadBench(const LoadBenchConfig& config);

// The JSON line of one load run: bench "load", protocol, op, parameters, throughput, latency
// percentiles, errors (with the first message), client CPU.
JsonLine LoadLine(const char* protocol, const LoadSpec& spec, const LoadResult& result);

}  // namespace kyrodb::bench
