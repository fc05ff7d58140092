#include "distance/distance.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace kyrodb::distance {
namespace {

std::vector<size_t> Dims() {
  std::vector<size_t> d;
  for (size_t i = 1; i <= 1100; ++i) d.push_back(i);
  for (size_t i : {1536, 3072, 4096}) d.push_back(i);
  return d;
}

std::vector<const Kernels*> SimdKernels() {
  std::vector<const Kernels*> out;
  for (SimdLevel l : {SimdLevel::kAvx2, SimdLevel::kAvx512}) {
    if (const Kernels* k = KernelsFor(l)) out.push_back(k);
  }
  return out;
}

TEST(DistanceTest, ScalarMatchesDoublePrecisionDefinition) {
  const Kernels& s = *KernelsFor(SimdLevel::kScalar);
  std::mt19937 rng(7);
  std::normal_distribution<float> g;
  std::vector<float> a(777), b(777);
  for (auto& x : a) x = g(rng);
  for (auto& x : b) x = g(rng);
  double l2 = 0, dot = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    l2 += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    dot += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  EXPECT_NEAR(s.l2sq(a.data(), b.data(), a.size()), l2, 1e-3 * l2);
  EXPECT_NEAR(s.dot(a.data(), b.data(), a.size()), dot, 1e-3 * std::sqrt(aa * bb));
  EXPECT_NEAR(s.cosine(a.data(), b.data(), a.size()), 1 - dot / std::sqrt(aa * bb), 1e-4);
}

TEST(DistanceTest, ActiveKernelsAreTheBestTheCpuRuns) {
  const Kernels& a = Active();
  for (const Kernels* k : SimdKernels()) EXPECT_GE(static_cast<int>(a.level), static_cast<int>(k->level));
}

// Every SIMD variant agrees with the scalar reference for every dimension 1..1100 and a few
// large ones, on inputs that start at an unaligned address.
TEST(DistanceTest, SimdFloatKernelsMatchScalarForAllDimsAndAlignments) {
  const Kernels& ref = *KernelsFor(SimdLevel::kScalar);
  std::mt19937 rng(42);
  std::normal_distribution<float> g;
  std::vector<float> buf_a(4096 + 8), buf_b(4096 + 8);
  for (auto& x : buf_a) x = g(rng);
  for (auto& x : buf_b) x = g(rng);
  for (const Kernels* k : SimdKernels()) {
    SCOPED_TRACE(k->name);
    for (size_t offset : {0, 1, 3}) {
      const float* a = buf_a.data() + offset;
      const float* b = buf_b.data() + offset;
      for (size_t n : Dims()) {
        double mag = 0;
        for (size_t i = 0; i < n; ++i) mag += std::fabs(double(a[i]) * b[i]) + double(a[i]) * a[i];
        const double tol = 1e-5 * mag + 1e-6;
        ASSERT_NEAR(k->l2sq(a, b, n), ref.l2sq(a, b, n), 4 * tol) << "l2sq n=" << n;
        ASSERT_NEAR(k->dot(a, b, n), ref.dot(a, b, n), tol) << "dot n=" << n;
        ASSERT_NEAR(k->cosine(a, b, n), ref.cosine(a, b, n), 1e-4) << "cosine n=" << n;
      }
    }
  }
}

TEST(DistanceTest, SimdCodeKernelIsExactForAllDimsAndAlignments) {
  const Kernels& ref = *KernelsFor(SimdLevel::kScalar);
  std::mt19937 rng(3);
  std::vector<uint8_t> c(4096 + 8);
  std::vector<int8_t> q(4096 + 8);
  for (auto& x : c) x = static_cast<uint8_t>(rng());
  for (auto& x : q) x = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  // Extremes: saturating instructions would get these wrong.
  for (size_t i = 0; i < 64; ++i) { c[i] = 255; q[i] = 127; }
  for (const Kernels* k : SimdKernels()) {
    SCOPED_TRACE(k->name);
    for (size_t offset : {0, 1, 5}) {
      for (size_t n : Dims()) {
        ASSERT_EQ(k->dot_u8s8(c.data() + offset, q.data() + offset, n),
                  ref.dot_u8s8(c.data() + offset, q.data() + offset, n))
            << "n=" << n;
      }
    }
  }
}

TEST(DistanceTest, CosineOfZeroVectorIsOne) {
  std::vector<float> z(33, 0.0f), x(33, 1.0f);
  for (SimdLevel l : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
    if (const Kernels* k = KernelsFor(l)) {
      EXPECT_EQ(k->cosine(z.data(), x.data(), 33), 1.0f) << k->name;
      EXPECT_NEAR(k->cosine(x.data(), x.data(), 33), 0.0f, 1e-6) << k->name;
    }
  }
}

}  // namespace
}  // namespace kyrodb::distance
