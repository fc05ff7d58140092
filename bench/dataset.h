// Datasets for the ANN benchmark: the TEXMEX .fvecs/.ivecs formats, a deterministic clustered
// generator, row normalization and exact (brute-force) ground truth.
//
// Everything here is deterministic for given inputs, independent of the thread count.
// Thread-safety: free functions on caller-owned values; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "index/metric.h"
#include "kyrodb/status.h"

namespace kyrodb::bench {

// Row-major rows x dim float32 matrix.
struct FloatMatrix {
  size_t rows = 0;
  size_t dim = 0;
  std::vector<float> data;

  const float* Row(size_t i) const { return data.data() + i * dim; }
  float* Row(size_t i) { return data.data() + i * dim; }
};

// Row-major rows x cols matrix of row ids (ground-truth neighbours, closest first).
struct IdMatrix {
  size_t rows = 0;
  size_t cols = 0;
  std::vector<uint32_t> data;

  const uint32_t* Row(size_t i) const { return data.data() + i * cols; }
};

// TEXMEX formats: each row is an int32 (little-endian) count d, then d float32 (.fvecs) or
// int32 (.ivecs) values. All rows must have the same d. Reading refuses empty, truncated or
// ragged files, non-finite floats and negative ids with InvalidArgument/Corruption naming the
// file and row.
Result<FloatMatrix> ReadFvecs(const std::string& path);
Result<IdMatrix> ReadIvecs(const std::string& path);
Status WriteFvecs(const std::string& path, const FloatMatrix& m);
Status WriteIvecs(const std::string& path, const IdMatrix& m);

// A Gaussian mixture: `clusters` centres ~ N(0, 1) per dimension; each cluster has its own
// per-dimension standard deviation, log-uniform in [0.05, 0.5] (elongated, axis-aligned
// clusters); points pick a cluster with log-normal (non-uniform) weights. Queries come from the
// same mixture through an independent random stream, so they are not copies of base vectors.
struct ClusteredSpec {
  size_t n = 0;
  size_t dim = 0;
  size_t num_queries = 0;
  size_t clusters = 0;  // 0: max(100, n / 1000)
  uint64_t seed = 1;
};

struct ClusteredData {
  FloatMatrix base;
  FloatMatrix queries;
};

// Same spec and seed -> bit-identical output whatever `threads` is.
Result<ClusteredData> GenerateClustered(const ClusteredSpec& spec, size_t threads);

// Scales every row to unit L2 norm. InvalidArgument on a zero row (cosine is undefined there).
Status NormalizeRows(FloatMatrix* m);

// Exact top-k rows of `base` for every query, closest first (ties: smaller id first), by
// squared L2 for kL2 and by largest inner product for kInnerProduct and kCosine (for cosine
// the caller normalizes base and queries first). Runs on `threads` threads.
Result<IdMatrix> ExactTopK(const FloatMatrix& base, const FloatMatrix& queries, size_t k,
                           index::Metric metric, size_t threads);

}  // namespace kyrodb::bench
