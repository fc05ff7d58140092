// FlatIndex: exact k-NN by scanning every vector. The ground truth that HNSW recall is measured
// against, and the search of small sets (the hot tier). Distances are the same as
// HnswIndex's for the same metric. Not thread-safe for writers; concurrent const calls are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "index/hnsw_index.h"
#include "index/metric.h"

namespace kyrodb::index {

class FlatIndex {
 public:
  FlatIndex(size_t dim, Metric metric) : dim_(dim), metric_(metric) {}

  // Appends (no upsert). Cosine vectors are normalized; a zero vector stays zero.
  void Add(uint64_t label, const float* vector);
  std::vector<SearchHit> Search(const float* query, size_t k) const;
  size_t size() const { return labels_.size(); }

 private:
  size_t dim_;
  Metric metric_;
  std::vector<uint64_t> labels_;
  std::vector<float> data_;
};

// Normalizes v[0..dim) to unit length in place; returns false (leaving v) when its norm is 0.
bool NormalizeInPlace(float* v, size_t dim);

}  // namespace kyrodb::index
