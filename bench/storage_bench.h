// `kyrodb_bench storage`: throughput of the durability layer — WAL group commit under each
// fsync policy, WAL replay, snapshot save/load, and restart from a saved HNSW graph against
// rebuilding it. Results are JSON lines on stdout (see docs/benchmarks.md); progress goes to
// stderr. Everything is written under a temporary directory that is removed afterwards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace kyrodb::bench {

struct StorageBenchConfig {
  std::string dir;  // parent of the scratch directory; empty: /tmp
  std::vector<std::string> parts = {"wal", "replay", "snapshot", "restart"};
  double seconds = 3;                        // per WAL append run
  uint64_t records = 0;                      // per WAL append run, 0: no budget (time only)
  std::vector<size_t> writers = {1, 8, 64};  // concurrent writers under fsync policy `always`
  size_t append_dim = 768;                   // floats per upsert record
  uint64_t replay_small = 1000000;           // small (delete) records written, then replayed
  uint64_t replay_large = 200000;            // upserts of append_dim floats, then replayed
  size_t n = 200000;                         // snapshot: vectors
  size_t dim = 768;                          // snapshot and restart: dimension
  size_t graph_n = 200000;                   // restart: vectors in the HNSW graph
  size_t threads = 0;                        // graph build threads, 0: all cores
  uint64_t seed = 1;
};

// Adds the `storage` subcommand and its flags (which fill *config) to `app`.
CLI::App* AddStorageCommand(CLI::App* app, StorageBenchConfig* config);

// Runs the benchmark; returns the process exit code.
int RunStorageBench(const StorageBenchConfig& config);

}  // namespace kyrodb::bench
