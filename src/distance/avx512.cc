// AVX-512 (F, BW, VL, DQ) kernels, plus a VNNI variant of the code kernel. Compiled with
// AVX-512 flags; called only when CPUID says so. Tails use masked loads, never over-read.
// GCC 12's AVX-512 extract intrinsics use _mm256_undefined_*(), which -Wuninitialized flags
// once inlined (a header bug, not ours); silenced for this file only.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>

#include "distance/distance.h"

namespace kyrodb::distance::internal {
namespace {

// Own reductions: GCC 12's _mm512_reduce_add_* trip -Wuninitialized inside the header.
inline float ReduceAdd(__m512 v) {
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                           _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}
inline int32_t ReduceAdd(__m512i v) {
  __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  __m128i x = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0x4e));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0xb1));
  return _mm_cvtsi128_si32(x);
}

inline __mmask16 Mask16(size_t r) { return static_cast<__mmask16>((1u << r) - 1); }
inline __mmask64 Mask64(size_t r) { return r >= 64 ? ~0ULL : ((1ULL << r) - 1); }

float L2SqAvx512(const float* a, const float* b, size_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
    __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32));
    __m512 d3 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48));
    s0 = _mm512_fmadd_ps(d0, d0, s0);
    s1 = _mm512_fmadd_ps(d1, d1, s1);
    s2 = _mm512_fmadd_ps(d2, d2, s2);
    s3 = _mm512_fmadd_ps(d3, d3, s3);
  }
  for (; i + 16 <= n; i += 16) {
    __m512 d = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    s0 = _mm512_fmadd_ps(d, d, s0);
  }
  if (i < n) {
    __mmask16 m = Mask16(n - i);
    __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
    s1 = _mm512_fmadd_ps(d, d, s1);
  }
  return ReduceAdd(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

float DotAvx512(const float* a, const float* b, size_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
    s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
  }
  for (; i + 16 <= n; i += 16) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
  }
  if (i < n) {
    __mmask16 m = Mask16(n - i);
    s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
  }
  return ReduceAdd(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

float CosineAvx512(const float* a, const float* b, size_t n) {
  __m512 ab = _mm512_setzero_ps(), aa = _mm512_setzero_ps(), bb = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 x = _mm512_loadu_ps(a + i), y = _mm512_loadu_ps(b + i);
    ab = _mm512_fmadd_ps(x, y, ab);
    aa = _mm512_fmadd_ps(x, x, aa);
    bb = _mm512_fmadd_ps(y, y, bb);
  }
  if (i < n) {
    __mmask16 m = Mask16(n - i);
    __m512 x = _mm512_maskz_loadu_ps(m, a + i), y = _mm512_maskz_loadu_ps(m, b + i);
    ab = _mm512_fmadd_ps(x, y, ab);
    aa = _mm512_fmadd_ps(x, x, aa);
    bb = _mm512_fmadd_ps(y, y, bb);
  }
  float sab = ReduceAdd(ab), saa = ReduceAdd(aa);
  float sbb = ReduceAdd(bb);
  if (saa == 0 || sbb == 0) return 1.0f;
  return 1.0f - sab / std::sqrt(saa * sbb);
}

// Widen to 16 bits and multiply-add pairs: exact, no saturation.
int32_t DotU8S8Avx512Bw(const uint8_t* c, const int8_t* q, size_t n) {
  __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m512i c0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i)));
    __m512i q0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i)));
    __m512i c1 =
        _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + i + 32)));
    __m512i q1 =
        _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i + 32)));
    s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(c0, q0));
    s1 = _mm512_add_epi32(s1, _mm512_madd_epi16(c1, q1));
  }
  for (; i < n; i += 32) {
    __mmask32 m = static_cast<__mmask32>(Mask64(n - i) & 0xffffffffULL);
    __m512i c0 = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, c + i));
    __m512i q0 = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, q + i));
    s0 = _mm512_add_epi32(s0, _mm512_madd_epi16(c0, q0));
  }
  return ReduceAdd(_mm512_add_epi32(s0, s1));
}

// VNNI: vpdpbusd multiplies 64 u8 x s8 pairs and adds groups of four into int32 lanes.
__attribute__((target("avx512vnni"))) int32_t DotU8S8Avx512Vnni(const uint8_t* c,
                                                                const int8_t* q, size_t n) {
  __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(c + i), _mm512_loadu_si512(q + i));
    s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512(c + i + 64), _mm512_loadu_si512(q + i + 64));
  }
  for (; i < n; i += 64) {
    __mmask64 m = Mask64(n - i);
    s0 = _mm512_dpbusd_epi32(s0, _mm512_maskz_loadu_epi8(m, c + i),
                             _mm512_maskz_loadu_epi8(m, q + i));
  }
  return ReduceAdd(_mm512_add_epi32(s0, s1));
}

}  // namespace

const Kernels kAvx512Kernels = {SimdLevel::kAvx512, "avx512", L2SqAvx512, DotAvx512,
                                CosineAvx512, DotU8S8Avx512Bw};
const Kernels kAvx512VnniKernels = {SimdLevel::kAvx512, "avx512+vnni", L2SqAvx512, DotAvx512,
                                    CosineAvx512, DotU8S8Avx512Vnni};

}  // namespace kyrodb::distance::internal
