#include "index/flat_index.h"

#include <algorithm>
#include <cmath>

#include "distance/distance.h"

namespace kyrodb::index {

bool NormalizeInPlace(float* v, size_t dim) {
  float n2 = distance::Dot(v, v, dim);
  if (!(n2 > 0) || !std::isfinite(n2)) return false;
  float inv = 1.0f / std::sqrt(n2);
  for (size_t i = 0; i < dim; ++i) v[i] *= inv;
  return true;
}

void FlatIndex::Add(uint64_t label, const float* vector) {
  size_t off = data_.size();
  data_.insert(data_.end(), vector, vector + dim_);
  if (metric_ == Metric::kCosine) NormalizeInPlace(data_.data() + off, dim_);
  labels_.push_back(label);
}

std::vector<SearchHit> FlatIndex::Search(const float* query, size_t k) const {
  std::vector<float> q(query, query + dim_);
  if (metric_ == Metric::kCosine) NormalizeInPlace(q.data(), dim_);
  std::vector<SearchHit> all(labels_.size());
  for (size_t i = 0; i < labels_.size(); ++i) {
    const float* x = data_.data() + i * dim_;
    float d = metric_ == Metric::kL2 ? distance::L2Sq(q.data(), x, dim_)
                                     : 1.0f - distance::Dot(q.data(), x, dim_);
    all[i] = {labels_[i], d};
  }
  k = std::min(k, all.size());
  auto less = [](const SearchHit& a, const SearchHit& b) {
    return a.distance < b.distance || (a.distance == b.distance && a.label < b.label);
  };
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end(), less);
  all.resize(k);
  return all;
}

}  // namespace kyrodb::index
