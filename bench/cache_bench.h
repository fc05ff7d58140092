// `kyrodb_bench cache`: the L1 cache's workload simulator and micro-benchmarks. Each workload
// trace (uniform; Zipf 0.8/1.0/1.2; Zipf 1.0 whose hot set moves every --drift-every requests;
// a sequential scan mixed with a hot set) is replayed through the real LearnedCache with
// strategy `learned` and with strategy `lru` at the same byte budget (the model's memory is
// charged to the learned cache), and Belady's offline optimum is computed on the same trace at
// LRU's entry capacity. Then: L1 get-by-id latency, access-log append cost, model prediction
// cost. Results are JSON lines on stdout (see docs/cache.md); progress goes to stderr.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace kyrodb::bench {

struct CacheBenchConfig {
  uint64_t docs = 1000000;
  double cache_fraction = 0.01;  // cache budget = this share of the documents' bytes
  uint64_t requests = 10000000;  // per workload
  uint64_t train_every = 100000;  // requests between TrainNow() calls (the training interval)
  uint64_t drift_every = 500000;  // drifting workload: requests between hot-set moves
  size_t dim = 384;               // embedding floats per cached document
  size_t shards = 16;
  double half_life = 0;             // model decay half-life in accesses; 0: cache default
  double protected_fraction = 0.8;  // budget share for the model's hot ids
  std::vector<std::string> workloads = {"uniform",  "zipf_0.8", "zipf_1.0",
                                        "zipf_1.2", "zipf_1.0_drift", "scan_hot"};
  bool latency = true;
  uint64_t seed = 1;
};

// Adds the `cache` subcommand and its flags (which fill *config) to `app`.
CLI::App* AddCacheCommand(CLI::App* app, CacheBenchConfig* config);

// Runs the benchmark; returns the process exit code.
int RunCacheBench(const CacheBenchConfig& config);

}  // namespace kyrodb::bench
