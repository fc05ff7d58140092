// Concurrency of the HNSW index: runs in the default suite and under the tsan preset.
#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <thread>

#include "index/hnsw_index.h"
#include "test_util.h"

namespace kyrodb::index {
namespace {

using kyrodb::testing::ClusteredVectors;

#if defined(__SANITIZE_THREAD__)
constexpr size_t kScale = 1;  // TSan is ~10x slower
#else
constexpr size_t kScale = 4;
#endif

// 4 threads insert disjoint label ranges while 2 threads search; every result a search returns
// is a label that some inserter has already started to insert, and the final index holds every
// vector with good recall.
TEST(HnswConcurrencyTest, FourInsertersTwoSearchers) {
  const size_t dim = 24, per_thread = 1000 * kScale, n = 4 * per_thread;
  auto data = ClusteredVectors(n, dim, 41);
  HnswOptions o;
  o.dim = dim;
  o.max_elements = static_cast<uint32_t>(n + 16);
  auto idx = std::move(HnswIndex::Create(o)).value();
  std::atomic<int> inserters_done{0};
  std::atomic<size_t> searches{0}, bad{0};
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = t * per_thread; i < (t + 1) * per_thread; ++i) {
        ASSERT_TRUE(idx->Add(i + 1, &data[i * dim]).ok());
      }
      inserters_done.fetch_add(1);
    });
  }
  for (size_t t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::vector<SearchHit> hits;
      size_t q = t;
      while (inserters_done.load() < 4) {
        ASSERT_TRUE(idx->Search(&data[(q % n) * dim], 10, 32, &hits).ok());
        for (auto& h : hits) bad += (h.label < 1 || h.label > n);
        ++searches;
        q += 7;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(searches.load(), 0u);
  EXPECT_EQ(idx->Size(), n);
  // Every vector is findable as its own nearest neighbour.
  std::vector<SearchHit> hits;
  size_t found = 0;
  for (size_t i = 0; i < n; i += 5) {
    ASSERT_TRUE(idx->Search(&data[i * dim], 1, 64, &hits).ok());
    found += !hits.empty() && hits[0].label == i + 1;
  }
  EXPECT_GE(static_cast<double>(found) / static_cast<double>((n + 4) / 5), 0.97);
}

// Parallel builds of small graphs: every vector must be reachable (an exhaustive search from
// its own vector finds it). Catches an inserter overwriting links that a concurrent inserter
// had just added to the new node, which left small unreachable islands.
TEST(HnswConcurrencyTest, ParallelBuildLeavesNoUnreachableNode) {
  for (int it = 0; it < 60; ++it) {
    const size_t n = 50 + static_cast<size_t>(it) * 5, dim = 12;
    auto data = ClusteredVectors(n, dim, 1000 + it);
    HnswOptions o;
    o.dim = dim;
    o.max_elements = 4096;
    auto idx = std::move(HnswIndex::Create(o)).value();
    std::vector<uint64_t> labels(n);
    std::iota(labels.begin(), labels.end(), 1);
    ASSERT_TRUE(idx->AddBatch(labels, data.data(), 4).ok());
    std::vector<SearchHit> hits;
    for (size_t i = 0; i < n; ++i) {
      ASSERT_TRUE(idx->Search(&data[i * dim], n, 5000, &hits).ok());
      ASSERT_EQ(hits.size(), n) << "iteration " << it << ": only " << hits.size() << " of " << n
                                << " nodes reachable";
    }
  }
}

// Removes, upserts and consolidation (slot recycling) race with searches: removed labels that
// were removed before a search began must not come back, and nothing crashes or races.
TEST(HnswConcurrencyTest, RemoveAndConsolidateWhileSearching) {
  const size_t dim = 16, n = 2000 * kScale;
  auto data = ClusteredVectors(2 * n, dim, 43);
  HnswOptions o;
  o.dim = dim;
  o.max_elements = static_cast<uint32_t>(2 * n);
  auto idx = std::move(HnswIndex::Create(o)).value();
  std::vector<uint64_t> labels(n);
  std::iota(labels.begin(), labels.end(), 1);
  ASSERT_TRUE(idx->AddBatch(labels, data.data(), 2).ok());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> removed_below{0};  // labels < this (odd ones) are removed for good
  std::atomic<size_t> violations{0};
  std::vector<std::thread> searchers;
  for (int t = 0; t < 2; ++t) {
    searchers.emplace_back([&, t] {
      std::vector<SearchHit> hits;
      size_t q = static_cast<size_t>(t);
      while (!stop.load()) {
        uint64_t limit = removed_below.load();
        ASSERT_TRUE(idx->Search(&data[(q % n) * dim], 10, 32, &hits).ok());
        for (auto& h : hits) violations += (h.label % 2 == 1 && h.label < limit);
        q += 13;
      }
    });
  }
  std::thread writer([&] {
    for (uint64_t l = 1; l <= n; l += 2) {
      ASSERT_TRUE(idx->Remove(l).ok());
      removed_below.store(l + 1);
      if (l % 257 == 0) idx->Consolidate();
      // Upsert an even label to a new vector, exercising slot reuse.
      ASSERT_TRUE(idx->Add(l + 1, &data[(n + l) * dim]).ok());
    }
    idx->Consolidate();
    stop = true;
  });
  writer.join();
  for (auto& th : searchers) th.join();
  EXPECT_EQ(violations.load(), 0u);
  EXPECT_EQ(idx->Size(), n / 2);
  HnswStats st = idx->Stats();
  EXPECT_EQ(st.deleted, 0u);
  EXPECT_LE(st.slots, n + n / 10 + 64);
}

}  // namespace
}  // namespace kyrodb::index
