// Distance kernels for float32 vectors and for 8-bit codes, one set per instruction set
// (scalar reference, AVX2+FMA, AVX-512), chosen once at start-up from CPUID.
//
// Conventions: every "distance" is smaller-is-closer.
//   L2Sq(a,b)    = sum (a_i - b_i)^2
//   Dot(a,b)     = sum a_i * b_i            (a similarity; the index uses 1 - Dot)
//   CosineDistance(a,b) = 1 - Dot/(|a||b|)  (1 when either vector is zero)
//   DotU8S8(c,q) = sum c_i * q_i over uint8 codes and int8 query codes, exact in int32
//                  for n <= 66,000.
// No alignment is required of any pointer; kernels never read past n elements.
// Thread-safety: all functions are pure.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kyrodb::distance {

enum class SimdLevel { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

using FloatKernel = float (*)(const float*, const float*, size_t);
using CodeKernel = int32_t (*)(const uint8_t*, const int8_t*, size_t);

struct Kernels {
  SimdLevel level;
  const char* name;
  FloatKernel l2sq;
  FloatKernel dot;
  FloatKernel cosine;
  CodeKernel dot_u8s8;
};

// The kernels for `level`, or nullptr when this CPU (or OS) cannot run them.
const Kernels* KernelsFor(SimdLevel level);

// The best kernels this CPU runs; the choice is made once.
const Kernels& Active();

inline float L2Sq(const float* a, const float* b, size_t n) { return Active().l2sq(a, b, n); }
inline float Dot(const float* a, const float* b, size_t n) { return Active().dot(a, b, n); }
inline float CosineDistance(const float* a, const float* b, size_t n) {
  return Active().cosine(a, b, n);
}
inline int32_t DotU8S8(const uint8_t* c, const int8_t* q, size_t n) {
  return Active().dot_u8s8(c, q, n);
}

// Per-instruction-set tables, defined in their own translation units (compiled with their
// own -m flags). Callers use KernelsFor()/Active(), which check the CPU first.
namespace internal {
extern const Kernels kScalarKernels;
extern const Kernels kAvx2Kernels;
extern const Kernels kAvx512Kernels;
extern const Kernels kAvx512VnniKernels;
}  // namespace internal

}  // namespace kyrodb::distance
