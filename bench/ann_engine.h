// AnnEngine: the one interface the ANN benchmark measures, so the timing code is written once
// and every engine (KyroDB and its contenders) goes through exactly the same loop.
//
// Labels are row numbers of the base matrix. Build() is called once; Search() and
// MemoryBytes() only after a successful Build(), from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "index/metric.h"
#include "kyrodb/status.h"

namespace kyrodb::bench {

struct AnnEngineParams {
  size_t dim = 0;
  // kL2; or kInnerProduct / kCosine, both searched by inner product (for kCosine the data is
  // normalized up front, and KyroDB normalizes it again).
  index::Metric metric = index::Metric::kL2;
  uint32_t m = 16;
  uint32_t ef_construction = 200;
  uint64_t seed = 1;
};

class AnnEngine {
 public:
  virtual ~AnnEngine() = default;

  virtual std::string_view Name() const = 0;
  // A fairness note printed with every result line of this engine; empty when none.
  virtual std::string_view Caveat() const { return {}; }

  // Indexes the n rows of `data` (n x dim, row-major) as labels 0..n-1 on `threads` threads.
  virtual Status Build(const float* data, size_t n, size_t threads) = 0;

  // The labels of the (approximate) k nearest rows, closest first, searching with candidate
  // list size `ef`. Single-threaded.
  virtual Status Search(const float* query, size_t k, size_t ef, std::vector<uint64_t>* out) = 0;

  // The engine's own count of the memory its index holds (vectors, graph, maps).
  virtual size_t MemoryBytes() const = 0;
};

std::unique_ptr<AnnEngine> NewHnswlibEngine(const AnnEngineParams& params);
std::unique_ptr<AnnEngine> NewFaissEngine(const AnnEngineParams& params);
std::unique_ptr<AnnEngine> NewKyroDbEngine(const AnnEngineParams& params);

}  // namespace kyrodb::bench
