// What the ANN benchmark computes from raw results: recall against ground truth, latency
// percentiles, and the QPS an engine reaches at a given recall (interpolated over its ef sweep).
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "dataset.h"

namespace kyrodb::bench {

// Marks a missing result slot (an engine returned fewer than k hits).
inline constexpr uint64_t kNoLabel = UINT64_MAX;

// Mean over queries of |found ∩ true top-k| / k. `found` holds truth.rows x k labels, k <=
// truth.cols (extra ground-truth columns are ignored).
double RecallAtK(std::span<const uint64_t> found, const IdMatrix& truth, size_t k);

// Nearest-rank percentile (p in [0, 100]) of unsorted samples; 0 when empty.
double Percentile(std::vector<double> samples, double p);

// One point of an engine's ef sweep.
struct RecallQps {
  size_t ef = 0;
  double recall = 0;
  double qps = 0;
};

// QPS at `target` recall over points sorted by ef: the first point when it already reaches the
// target; otherwise linear interpolation (in recall) between the first two consecutive points
// whose recalls bracket the target; nullopt when no point reaches it.
std::optional<double> QpsAtRecall(std::span<const RecallQps> points, double target);

}  // namespace kyrodb::bench
