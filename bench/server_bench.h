// `kyrodb_bench server`: the servers against the engine they wrap, in one run. Starts
// kyrodb_server (2 HTTP + 2 gRPC threads, ephemeral ports) on a scratch directory, loads n
// clustered vectors over gRPC BulkInsert, flushes them into HNSW, and measures:
//   the in-process engine's search QPS on a copy of the server's snapshot (the same graph) and the
//   same queries (the reference),
//   search QPS over HTTP and over gRPC, point-query QPS over both,
//   search p50 and QPS with auth + all rate limits on (a second search server, same data)
//   against the first, in alternating rounds (issue #6's overhead bar),
//   and, on a server with fsync_policy=always, the insert rate over both;
// then a summary line with the ratios to the reference and to the 10,000 inserts/s bar.
// Every line carries the client's and the server's CPU seconds over its window (they share
// the machine's cores). JSON lines on stdout, progress on stderr.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace kyrodb::bench {

struct ServerBenchConfig {
  size_t n = 100000;
  size_t dim = 768;
  size_t queries = 1000;  // the query pool has queries * 10 distinct vectors (see the .cc)
  size_t concurrency = 64;
  double duration_s = 10;
  double warmup_s = 1;
  uint32_t k = 10;
  uint32_t ef = 64;
  size_t client_threads = 1;  // load generator threads
  std::string client_sched = "batch";  // their scheduling policy: batch or normal
  std::string grpc_client = "h2";      // the gRPC load client: h2 (nghttp2) or grpcpp (library)
  bool grpc_library_search = true;     // also a gRPC search run with the other client, reported
  bool ceilings = true;                // each round also runs loopback tcp and grpc ceiling windows
  size_t search_rounds = 15;      // rounds of in-process, HTTP and gRPC search windows in turn
  double search_duration_s = 2;   // measured seconds per search window
  size_t server_threads = 2;  // server.http_threads and server.grpc_threads; in-process threads
  uint64_t insert_hot_tier_mb = 4096;  // second server: hot tier big enough that no flush runs
  std::string server_bin;  // default: kyrodb_server next to kyrodb_bench
  std::string dir;         // parent of the scratch directory; empty: /tmp
  size_t auth_rounds = 6;      // per protocol and side; 0: no auth comparison
  double auth_duration_s = 4;  // measured seconds per auth round
  uint64_t seed = 1;
};

CLI::App* AddServerCommand(CLI::App* app, ServerBenchConfig* config);
int RunServerBench(const ServerBenchConfig& config);

}  // namespace kyrodb::bench
