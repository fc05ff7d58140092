// Tests of the ANN harness's own pieces: file formats, generator, ground truth, metrics.
#include "dataset.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "ann_metrics.h"

namespace kyrodb::bench {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir()
      : path_(fs::temp_directory_path() / ("kyrodb_bench_test_" + std::to_string(::getpid()))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

ClusteredData Generate(size_t n, size_t dim, size_t nq, uint64_t seed, size_t threads = 2) {
  auto r = GenerateClustered(ClusteredSpec{n, dim, nq, 0, seed}, threads);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::move(r).value();
}

TEST(TexmexFilesTest, FvecsAndIvecsRoundTrip) {
  TempDir dir;
  FloatMatrix f{3, 4, {1, 2, 3, 4, -5, 6.5f, 7, 8, 0, 0, 0, 1e-30f}};
  ASSERT_TRUE(WriteFvecs(dir.File("a.fvecs"), f).ok());
  auto f2 = ReadFvecs(dir.File("a.fvecs"));
  ASSERT_TRUE(f2.ok()) << f2.status().ToString();
  EXPECT_EQ(f2->rows, 3u);
  EXPECT_EQ(f2->dim, 4u);
  EXPECT_EQ(f2->data, f.data);

  IdMatrix ids{2, 3, {0, 7, 99, 5, 4, 2147483647u}};
  ASSERT_TRUE(WriteIvecs(dir.File("a.ivecs"), ids).ok());
  auto ids2 = ReadIvecs(dir.File("a.ivecs"));
  ASSERT_TRUE(ids2.ok()) << ids2.status().ToString();
  EXPECT_EQ(ids2->rows, 2u);
  EXPECT_EQ(ids2->cols, 3u);
  EXPECT_EQ(ids2->data, ids.data);
}

TEST(TexmexFilesTest, RefusesTruncatedFile) {
  TempDir dir;
  FloatMatrix f{5, 8, std::vector<float>(40, 1.5f)};
  const std::string path = dir.File("t.fvecs");
  ASSERT_TRUE(WriteFvecs(path, f).ok());
  fs::resize_file(path, fs::file_size(path) - 6);
  auto r = ReadFvecs(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos) << r.status().message();
}

TEST(TexmexFilesTest, RefusesRaggedAndNegativeAndEmpty) {
  TempDir dir;
  // Two rows of 12 bytes each, where the second declares dimension 3 instead of 2.
  IdMatrix bad{2, 2, {1, 2, 3, 4}};
  const std::string ragged = dir.File("r.ivecs");
  ASSERT_TRUE(WriteIvecs(ragged, bad).ok());
  {
    std::FILE* f = std::fopen(ragged.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    const int32_t three = 3;
    std::fseek(f, 12, SEEK_SET);
    std::fwrite(&three, 4, 1, f);
    std::fclose(f);
  }
  auto r = ReadIvecs(ragged);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("row 1"), std::string::npos) << r.status().message();

  IdMatrix negative{1, 2, {1, 0xFFFFFFFFu}};
  ASSERT_TRUE(WriteIvecs(dir.File("n.ivecs"), negative).ok());
  EXPECT_FALSE(ReadIvecs(dir.File("n.ivecs")).ok());

  {
    std::FILE* f = std::fopen(dir.File("e.fvecs").c_str(), "wb");
    std::fclose(f);
  }
  EXPECT_FALSE(ReadFvecs(dir.File("e.fvecs")).ok());
  EXPECT_FALSE(ReadFvecs(dir.File("missing.fvecs")).ok());
}

TEST(ClusteredGeneratorTest, DeterministicForSeedAndThreadCount) {
  ClusteredData a = Generate(3000, 16, 50, 7, /*threads=*/1);
  ClusteredData b = Generate(3000, 16, 50, 7, /*threads=*/3);
  EXPECT_EQ(a.base.data, b.base.data);
  EXPECT_EQ(a.queries.data, b.queries.data);
  ASSERT_EQ(a.base.rows, 3000u);
  ASSERT_EQ(a.base.dim, 16u);
  ASSERT_EQ(a.queries.rows, 50u);
}

TEST(ClusteredGeneratorTest, DiffersAcrossSeeds) {
  ClusteredData a = Generate(2000, 16, 20, 1);
  ClusteredData b = Generate(2000, 16, 20, 2);
  EXPECT_NE(a.base.data, b.base.data);
  EXPECT_NE(a.queries.data, b.queries.data);
}

TEST(ClusteredGeneratorTest, QueriesAreNotCopiesOfBaseVectors) {
  ClusteredData d = Generate(4000, 8, 200, 3);
  for (size_t q = 0; q < d.queries.rows; ++q) {
    for (size_t i = 0; i < d.base.rows; ++i) {
      ASSERT_FALSE(std::equal(d.queries.Row(q), d.queries.Row(q) + 8, d.base.Row(i)))
          << "query " << q << " copies base row " << i;
    }
  }
}

TEST(ClusteredGeneratorTest, PointsAreClusteredAndClustersAreUneven) {
  // With 100 clusters of spread <= 0.5 around N(0,1) centres, each point's nearest other point
  // is much closer than a random pair; non-uniform weights make the nearest-neighbour
  // distances vary. A uniform or isotropic blob would fail the first check.
  ClusteredData d = Generate(5000, 32, 0, 4);
  double nn_sum = 0, random_sum = 0;
  for (size_t i = 0; i < 200; ++i) {
    float best = 1e30f;
    for (size_t j = 0; j < d.base.rows; ++j) {
      if (j == i) continue;
      float s = 0;
      for (size_t k = 0; k < 32; ++k)
        s += (d.base.Row(i)[k] - d.base.Row(j)[k]) * (d.base.Row(i)[k] - d.base.Row(j)[k]);
      best = std::min(best, s);
    }
    float r = 0;
    const size_t j = (i * 7919 + 13) % d.base.rows;
    for (size_t k = 0; k < 32; ++k)
      r += (d.base.Row(i)[k] - d.base.Row(j)[k]) * (d.base.Row(i)[k] - d.base.Row(j)[k]);
    nn_sum += best;
    random_sum += r;
  }
  EXPECT_LT(nn_sum * 10, random_sum);
}

TEST(ClusteredGeneratorTest, RejectsEmptySpec) {
  EXPECT_FALSE(GenerateClustered(ClusteredSpec{0, 8, 1, 0, 1}, 1).ok());
  EXPECT_FALSE(GenerateClustered(ClusteredSpec{10, 0, 1, 0, 1}, 1).ok());
}

// Naive reference: every distance in double, full sort by (distance, id).
IdMatrix NaiveTopK(const FloatMatrix& base, const FloatMatrix& queries, size_t k, bool l2) {
  IdMatrix out{queries.rows, k, {}};
  for (size_t q = 0; q < queries.rows; ++q) {
    std::vector<std::pair<double, uint32_t>> all;
    for (size_t i = 0; i < base.rows; ++i) {
      double s = 0;
      for (size_t d = 0; d < base.dim; ++d) {
        const double a = queries.Row(q)[d], b = base.Row(i)[d];
        s += l2 ? (a - b) * (a - b) : -a * b;
      }
      all.emplace_back(s, static_cast<uint32_t>(i));
    }
    std::sort(all.begin(), all.end());
    for (size_t j = 0; j < k; ++j) out.data.push_back(all[j].second);
  }
  return out;
}

TEST(ExactTopKTest, MatchesNaiveScanForL2AndInnerProduct) {
  ClusteredData d = Generate(1500, 24, 37, 5);  // 37 queries: a partial last block
  for (index::Metric metric : {index::Metric::kL2, index::Metric::kInnerProduct}) {
    auto got = ExactTopK(d.base, d.queries, 10, metric, 3);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    IdMatrix want = NaiveTopK(d.base, d.queries, 10, metric == index::Metric::kL2);
    EXPECT_EQ(got->rows, 37u);
    EXPECT_EQ(got->cols, 10u);
    EXPECT_EQ(got->data, want.data) << "metric " << static_cast<int>(metric);
  }
}

TEST(ExactTopKTest, CosineIsInnerProductOnNormalizedRows) {
  ClusteredData d = Generate(800, 12, 9, 6);
  ASSERT_TRUE(NormalizeRows(&d.base).ok());
  ASSERT_TRUE(NormalizeRows(&d.queries).ok());
  for (size_t i = 0; i < d.base.rows; ++i) {
    double s = 0;
    for (size_t k = 0; k < 12; ++k) s += d.base.Row(i)[k] * d.base.Row(i)[k];
    ASSERT_NEAR(s, 1.0, 1e-5);
  }
  auto got = ExactTopK(d.base, d.queries, 5, index::Metric::kCosine, 2);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->data, NaiveTopK(d.base, d.queries, 5, /*l2=*/false).data);

  FloatMatrix zero{1, 3, {0, 0, 0}};
  EXPECT_FALSE(NormalizeRows(&zero).ok());
}

TEST(ExactTopKTest, RejectsBadK) {
  ClusteredData d = Generate(20, 4, 2, 1);
  EXPECT_FALSE(ExactTopK(d.base, d.queries, 0, index::Metric::kL2, 1).ok());
  EXPECT_FALSE(ExactTopK(d.base, d.queries, 21, index::Metric::kL2, 1).ok());
}

TEST(AnnMetricsTest, RecallCountsTrueNeighboursInAnyOrder) {
  IdMatrix truth{2, 2, {1, 2, 3, 4}};
  std::vector<uint64_t> found = {2, 1, 3, kNoLabel};
  EXPECT_DOUBLE_EQ(RecallAtK(found, truth, 2), 0.75);
}

TEST(AnnMetricsTest, PercentileIsNearestRank) {
  std::vector<double> v(100);
  std::iota(v.begin(), v.end(), 1.0);
  std::reverse(v.begin(), v.end());
  EXPECT_DOUBLE_EQ(Percentile(v, 50), 50);
  EXPECT_DOUBLE_EQ(Percentile(v, 99), 99);
  EXPECT_DOUBLE_EQ(Percentile(v, 100), 100);
  EXPECT_DOUBLE_EQ(Percentile({}, 50), 0);
}

TEST(AnnMetricsTest, QpsAtRecallInterpolatesBetweenBracketingEfs) {
  const std::vector<RecallQps> points = {{10, 0.80, 9000}, {20, 0.90, 7000}, {40, 0.97, 4000}};
  auto q = QpsAtRecall(points, 0.95);
  ASSERT_TRUE(q.has_value());
  EXPECT_NEAR(*q, 7000 + (0.05 / 0.07) * (4000 - 7000), 1e-6);
  EXPECT_NEAR(*QpsAtRecall(points, 0.90), 7000, 1e-9);  // exactly on a point
}

TEST(AnnMetricsTest, QpsAtRecallIsNulloptWhenNeverReached) {
  const std::vector<RecallQps> points = {{10, 0.80, 9000}, {20, 0.90, 7000}};
  EXPECT_FALSE(QpsAtRecall(points, 0.95).has_value());
  EXPECT_FALSE(QpsAtRecall({}, 0.95).has_value());
}

TEST(AnnMetricsTest, QpsAtRecallUsesFirstPointWhenAlreadyAbove) {
  const std::vector<RecallQps> points = {{10, 0.96, 9000}, {20, 0.99, 7000}};
  EXPECT_DOUBLE_EQ(*QpsAtRecall(points, 0.95), 9000);
}

}  // namespace
}  // namespace kyrodb::bench
