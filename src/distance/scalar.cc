// Scalar reference kernels: the definition every SIMD variant is tested against.
#include <cmath>

#include "distance/distance.h"

namespace kyrodb::distance::internal {
namespace {

float L2SqScalar(const float* a, const float* b, size_t n) {
  float s = 0;
  for (size_t i = 0; i < n; ++i) {
    float d = a[i] - b[i];
    s += d * d;
  }
  return s;
}

float DotScalar(const float* a, const float* b, size_t n) {
  float s = 0;
  for (size_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

float CosineScalar(const float* a, const float* b, size_t n) {
  float ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < n; ++i) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  if (aa == 0 || bb == 0) return 1.0f;
  return 1.0f - ab / std::sqrt(aa * bb);
}

int32_t DotU8S8Scalar(const uint8_t* c, const int8_t* q, size_t n) {
  int32_t s = 0;
  for (size_t i = 0; i < n; ++i) s += static_cast<int32_t>(c[i]) * q[i];
  return s;
}

}  // namespace

const Kernels kScalarKernels = {SimdLevel::kScalar, "scalar", L2SqScalar, DotScalar, CosineScalar,
                                DotU8S8Scalar};

}  // namespace kyrodb::distance::internal
