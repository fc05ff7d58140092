// `kyrodb_bench ann`: recall / QPS / build-time benchmark of KyroDB's HNSW index against
// hnswlib and FAISS on the same data, with the same parameters, measured by the same loop.
// Results are JSON lines on stdout (see docs/benchmarks.md); progress goes to stderr.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace kyrodb::bench {

struct AnnBenchConfig {
  // Generated dataset (when no --base file is given).
  std::string dataset = "clustered";
  size_t n = 100000;
  size_t dim = 128;
  size_t num_queries = 1000;
  size_t clusters = 0;  // 0: max(100, n / 1000)
  uint64_t seed = 1;
  // TEXMEX files.
  std::string base_path;
  std::string query_path;
  std::string groundtruth_path;

  std::string metric = "l2";  // l2 | cosine | ip
  std::vector<std::string> engines = {"kyrodb", "hnswlib", "faiss"};
  uint32_t m = 16;
  uint32_t ef_construction = 200;
  size_t threads = 0;  // 0: all cores
  size_t k = 10;
  std::vector<size_t> efs = {10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384};
  std::string out_path;  // also append the JSON lines here
};

// Adds the `ann` subcommand and its flags (which fill *config) to `app`.
CLI::App* AddAnnCommand(CLI::App* app, AnnBenchConfig* config);

// Runs the benchmark; returns the process exit code.
int RunAnnBench(const AnnBenchConfig& config);

}  // namespace kyrodb::bench
