// Golden files: index files written by earlier format versions must keep loading.
// Regenerate (only when adding a new version!) with KYRODB_WRITE_GOLDEN=1.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "index/flat_index.h"
#include "index/hnsw_index.h"

#ifndef KYRODB_COMPAT_DIR
#error "KYRODB_COMPAT_DIR must point at tests/compat"
#endif

namespace kyrodb::index {
namespace {

constexpr size_t kN = 1200, kDim = 8;  // above kQuantizerTrainSize: codes are stored too

std::vector<float> GoldenVector(size_t i) {
  std::vector<float> v(kDim);
  for (size_t d = 0; d < kDim; ++d) {
    v[d] = std::sin(static_cast<float>(i) * 0.37f + static_cast<float>(d) * 1.1f) *
           (1.0f + static_cast<float>(i % 7));
  }
  return v;
}

TEST(HnswCompatTest, Version1GoldenFileLoadsAndAnswers) {
  const std::string path = std::string(KYRODB_COMPAT_DIR) + "/hnsw_v1.kyrohnsw";
  if (std::getenv("KYRODB_WRITE_GOLDEN") != nullptr) {
    HnswOptions o;
    o.dim = kDim;
    o.max_elements = 2048;
    auto idx = std::move(HnswIndex::Create(o)).value();
    for (size_t i = 0; i < kN; ++i) ASSERT_TRUE(idx->Add(i + 1, GoldenVector(i).data()).ok());
    for (uint64_t l = 10; l <= 100; l += 10) ASSERT_TRUE(idx->Remove(l).ok());
    ASSERT_TRUE(idx->Save(path).ok());
  }
  auto loaded = HnswIndex::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  HnswIndex& idx = **loaded;
  EXPECT_EQ(idx.Size(), kN - 10);
  EXPECT_TRUE(idx.Stats().quantized);
  EXPECT_FALSE(idx.Contains(50));
  std::vector<float> got(kDim);
  ASSERT_TRUE(idx.GetVector(7, got.data()).ok());
  EXPECT_EQ(got, GoldenVector(6));
  FlatIndex exact(kDim, Metric::kL2);
  for (size_t i = 0; i < kN; ++i) {
    if ((i + 1) % 10 == 0 && i + 1 <= 100) continue;
    exact.Add(i + 1, GoldenVector(i).data());
  }
  std::vector<SearchHit> hits;
  size_t agree = 0;
  for (size_t q = 0; q < 50; ++q) {
    auto qv = GoldenVector(5000 + q);
    ASSERT_TRUE(idx.Search(qv.data(), 1, 100, &hits).ok());
    agree += !hits.empty() && hits[0].label == exact.Search(qv.data(), 1)[0].label;
  }
  EXPECT_GE(agree, 48u);
}

}  // namespace
}  // namespace kyrodb::index
