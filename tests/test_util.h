// Helpers shared by index tests: deterministic clustered data and recall against brute force.
#pragma once

#include <cstdlib>
#include <cstdint>
#include <set>
#include <vector>

#include "dataset.h"
#include "index/flat_index.h"
#include "index/hnsw_index.h"

namespace kyrodb::testing {

// The benchmark's clustered generator (bench/dataset.h): base vectors and queries drawn from
// the same Gaussian mixture, deterministic for a seed.
struct Dataset {
  std::vector<float> base, queries;
};
inline Dataset Clustered(size_t n, size_t dim, size_t num_queries, uint64_t seed) {
  bench::ClusteredSpec spec;
  spec.n = n;
  spec.dim = dim;
  spec.num_queries = num_queries;
  spec.seed = seed;
  auto r = bench::GenerateClustered(spec, 2);
  if (!r.ok()) std::abort();
  return {std::move(r->base.data), std::move(r->queries.data)};
}
inline std::vector<float> ClusteredVectors(size_t n, size_t dim, uint64_t seed) {
  return Clustered(n, dim, 0, seed).base;
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
