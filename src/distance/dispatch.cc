#include <initializer_list>

#include "base/cpu.h"
#include "distance/distance.h"

namespace kyrodb::distance {

const Kernels* KernelsFor(SimdLevel level) {
  const CpuFeatures& f = GetCpuFeatures();
  switch (level) {
    case SimdLevel::kScalar:
      return &internal::kScalarKernels;
    case SimdLevel::kAvx2:
      return (f.avx2 && f.fma) ? &internal::kAvx2Kernels : nullptr;
    case SimdLevel::kAvx512:
      if (!(f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx2 && f.fma)) return nullptr;
      return f.avx512vnni ? &internal::kAvx512VnniKernels : &internal::kAvx512Kernels;
  }
  return nullptr;
}

namespace {
const Kernels& Choose() {
  for (SimdLevel l : {SimdLevel::kAvx512, SimdLevel::kAvx2}) {
    if (const Kernels* k = KernelsFor(l)) return *k;
  }
  return internal::kScalarKernels;
}
}  // namespace

const Kernels& Active() {
  static const Kernels& k = Choose();
  return k;
}

}  // namespace kyrodb::distance
