// What the CPU we run on can do, read once from CPUID (and XGETBV for OS support).
// Thread-safe: the result is computed once and immutable.
#pragma once

namespace kyrodb {

struct CpuFeatures {
  bool sse42 = false;
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512vnni = false;
};

const CpuFeatures& GetCpuFeatures();

}  // namespace kyrodb
