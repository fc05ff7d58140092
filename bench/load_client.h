// Closed-loop load generators for kyrodb_server: `concurrency` clients, each with one request in
// flight, for a warm-up and then a measured window. Two implementations of one contract:
//   RunHttpLoad: keep-alive HTTP/1.1 connections (Boost.Beast) driven asynchronously by
//                `client_threads` io_context threads, requests pre-serialized;
//   RunGrpcLoad: one TCP connection per client, either
//                * `h2` (default): HTTP/2 framed by nghttp2, gRPC's message framing written by
//                  us, `client_threads` epoll threads (grpc_h2_load_client.cc), or
//                * `grpcpp`: gRPC's C++ library, one channel per client, asynchronous stub
//                  whose completion queues are polled by `client_threads` threads.
//                Messages pre-built either way; see grpc_h2_load_client.cc for why two.
// Both are used by `kyrodb_bench load` and `kyrodb_bench server`.
//
// What one request is, per op:
//   search: k/ef search with vectors[i], i cycling through all rows in order across clients (so
//           the server's result cache sees each query again only after vectors.rows others);
//   insert: a new document, ids first_insert_id, first_insert_id + 1, ... (never repeated),
//           embedding cycling through the rows;
//   query:  get-by-id of a uniformly random id in [1, id_space];
//   mixed:  90% search, 10% insert, drawn per request.
// Thread-safety: Run*Load blocks the calling thread; the spec's vectors must outlive the call.
// The window hooks run on the calling thread at the window's start and end (e.g. to sample a
// server's CPU time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dataset.h"
#include "kyrodb/status.h"

namespace kyrodb::bench {

enum class LoadOp { kInsert, kSearch, kQuery, kMixed };

// The gRPC load client: HTTP/2 through nghttp2 (lean), or gRPC's C++ library.
enum class GrpcClient { kH2, kGrpcpp };
std::optional<GrpcClient> ParseGrpcClient(const std::string& name);
const char* GrpcClientName(GrpcClient client);

std::optional<LoadOp> ParseLoadOp(const std::string& name);
const char* LoadOpName(LoadOp op);

// Share of searches in kMixed, in percent (the rest are inserts).
inline constexpr uint32_t kMixedSearchPercent = 90;

struct LoadSpec {
  std::string target;  // HTTP: "http://host:port" (or "host:port"); gRPC: "host:port"
  LoadOp op = LoadOp::kSearch;
  size_t concurrency = 64;
  size_t client_threads = 1;  // threads driving the clients (HTTP io_contexts, gRPC queues)
  double warmup_s = 1;
  double duration_s = 10;
  std::string collection;  // "" = the server's default collection
  std::string api_key;     // sent as x-api-key when not empty
  uint32_t k = 10;
  uint32_t ef = 64;
  uint64_t id_space = 100000;       // query ids are drawn from [1, id_space]
  uint64_t first_insert_id = 1;     // inserts use ids from here on
  bool include_embedding = false;   // query: ask for the stored vector too
  uint64_t seed = 1;                // per-client random streams (query ids, mixed draws)
  // The client threads run SCHED_BATCH: a response that wakes one does not preempt the server
  // thread running on that core, so on a machine the client shares with the server it takes
  // its turn instead of forcing a context switch per response (docs/benchmarks.md).
  bool batch_scheduling = true;
  GrpcClient grpc_client = GrpcClient::kH2;  // gRPC only
  const FloatMatrix* vectors = nullptr;  // search queries / insert embeddings (rows >= 1)
  std::function<void()> on_window_begin;
  std::function<void()> on_window_end;
};

struct LoadResult {
  double seconds = 0;         // the measured window
  uint64_t requests = 0;      // successful requests completed in the window
  uint64_t searches = 0;      // of which searches (mixed, search)
  uint64_t inserts = 0;       // of which inserts
  uint64_t not_found = 0;     // queries of an absent id (counted in requests, not an error)
  uint64_t errors = 0;        // failed requests completed in the window
  uint64_t errors_total = 0;  // failed requests over the whole run (warm-up and drain too)
  std::string first_error;    // the first failure of the whole run, if any
  uint64_t next_insert_id = 0;  // first id no insert has used
  std::vector<double> latency_us;  // of the successful requests in the window
  double client_cpu_s = 0;         // this process's user+system CPU over the window
  const char* client_sched = "normal";  // the client threads' scheduling policy: batch or normal
};

// Connection setup failures are returned as a Status; request failures during the run are
// counted in the result.
Result<LoadResult> RunHttpLoad(const LoadSpec& spec);
Result<LoadResult> RunGrpcLoad(const LoadSpec& spec);  // by spec.grpc_client:
Result<LoadResult> RunGrpcH2Load(const LoadSpec& spec);
Result<LoadResult> RunGrpcLibraryLoad(const LoadSpec& spec);

// `rows` random unit vectors (Gaussian, normalized) of `dim` from `seed`: request vectors.
FloatMatrix RandomUnitVectors(size_t rows, size_t dim, uint64_t seed);

// This process's user+system CPU seconds so far (getrusage).
double ProcessCpuSeconds();

// CPU seconds all cores of the machine have spent busy (not idle or waiting for I/O) so far,
// from /proc/stat; with the client's and the server's CPU it shows what other processes took.
double MachineBusyCpuSeconds();

}  // namespace kyrodb::bench
