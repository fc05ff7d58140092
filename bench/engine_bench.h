// `kyrodb_bench engine`: the engine in process — insert rate, flush time, search QPS of a
// collection (the reference the servers' QPS is compared with), and get-by-id latency per tier.
// JSON lines on stdout; progress on stderr; data in a scratch directory removed afterwards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace kyrodb::bench {

struct EngineBenchConfig {
  std::string dir;           // parent of the scratch directory; empty: /tmp
  size_t n = 100000;         // documents
  size_t dim = 768;
  std::string metric = "cosine";
  size_t queries = 1000;
  uint32_t k = 10;
  uint32_t ef = 64;
  size_t lookups = 200000;   // get-by-id calls per tier
  size_t threads = 0;        // search threads for the multi-threaded line; 0: all cores
  uint64_t seed = 1;
};

CLI::App* AddEngineCommand(CLI::App* app, EngineBenchConfig* config);
int RunEngineBench(const EngineBenchConfig& config);

}  // namespace kyrodb::bench
