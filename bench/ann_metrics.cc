#include "ann_metrics.h"

#include <algorithm>
#include <cmath>

namespace kyrodb::bench {

double RecallAtK(std::span<const uint64_t> found, const IdMatrix& truth, size_t k) {
  if (truth.rows == 0 || k == 0) return 0;
  size_t hits = 0;
  for (size_t q = 0; q < truth.rows; ++q) {
    const uint32_t* t = truth.Row(q);
    for (size_t i = 0; i < k; ++i) {
      const uint64_t label = found[q * k + i];
      if (label != kNoLabel && std::find(t, t + k, label) != t + k) ++hits;
    }
  }
  return static_cast<double>(hits) / static_cast<double>(truth.rows * k);
}

double Percentile(std::vector<double> samples, double p) {
  if (samples.empty()) return 0;
  const size_t rank =
      static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(samples.size())));
  const size_t idx = std::min(samples.size() - 1, rank == 0 ? 0 : rank - 1);
  std::nth_element(samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(idx),
                   samples.end());
  return samples[idx];
}

std::optional<double> QpsAtRecall(std::span<const RecallQps> points, double target) {
  if (points.empty()) return std::nullopt;
  if (points[0].recall >= target) return points[0].qps;
  for (size_t i = 1; i < points.size(); ++i) {
    const RecallQps& lo = points[i - 1];
    const RecallQps& hi = points[i];
    if (lo.recall < target && hi.recall >= target) {
      const double t = (target - lo.recall) / (hi.recall - lo.recall);
      return lo.qps + t * (hi.qps - lo.qps);
    }
  }
  return std::nullopt;
}

}  // namespace kyrodb::bench
