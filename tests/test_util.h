// Helpers shared by index tests: deterministic clustered data and recall against brute force.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "index/flat_index.h"
#include "index/hnsw_index.h"

namespace kyrodb::testing {

// n x dim vectors (row-major): a Gaussian mixture of `clusters` anisotropic clusters in a
// low-dimensional latent space, mapped to `dim` dimensions by a fixed random linear map,
// plus a little isotropic noise. Deterministic for a seed.
inline std::vector<float> ClusteredVectors(size_t n, size_t dim, uint64_t seed,
                                           size_t clusters = 100) {
  const size_t latent = std::min<size_t>(dim, 32);
  std::mt19937_64 shape_rng(12345);  // the mixture itself is the same for every seed
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::uniform_real_distribution<float> u(0.1f, 0.6f);
  std::vector<float> centers(clusters * latent), spread(clusters * latent), map(dim * latent);
  for (auto& c : centers) c = g(shape_rng);
  for (auto& s : spread) s = u(shape_rng);
  for (auto& a : map) a = g(shape_rng) / std::sqrt(static_cast<float>(latent));
  std::mt19937_64 rng(seed);
  std::vector<float> out(n * dim), z(latent);
  std::uniform_int_distribution<size_t> pick(0, clusters - 1);
  for (size_t i = 0; i < n; ++i) {
    size_t c = pick(rng);
    for (size_t l = 0; l < latent; ++l) z[l] = centers[c * latent + l] + spread[c * latent + l] * g(rng);
    for (size_t d = 0; d < dim; ++d) {
      float v = 0.4f * g(rng);
      for (size_t l = 0; l < latent; ++l) v += map[d * latent + l] * z[l];
      out[i * dim + d] = v;
    }
  }
  return out;
}

// Mean recall@k of `index` over the queries against an exact scan of the same data.
inline double RecallAtK(const index::HnswIndex& idx, const index::FlatIndex& exact,
                        const std::vector<float>& queries, size_t dim, size_t k, size_t ef) {
  size_t nq = queries.size() / dim, hit = 0;
  std::vector<index::SearchHit> got;
  for (size_t q = 0; q < nq; ++q) {
    auto truth = exact.Search(&queries[q * dim], k);
    if (!idx.Search(&queries[q * dim], k, ef, &got).ok()) return 0;
    std::set<uint64_t> want;
    for (auto& t : truth) want.insert(t.label);
    for (auto& h : got) hit += want.count(h.label);
  }
  return static_cast<double>(hit) / static_cast<double>(nq * k);
}

}  // namespace kyrodb::testing
