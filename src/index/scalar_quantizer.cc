#include "index/scalar_quantizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace kyrodb::index {

ScalarQuantizer ScalarQuantizer::Train(Mode mode, const float* vectors, size_t n, size_t dim,
                                       size_t stride) {
  std::vector<float> lo(dim, std::numeric_limits<float>::max());
  std::vector<float> hi(dim, std::numeric_limits<float>::lowest());
  std::vector<double> sum(dim, 0.0);
  for (size_t r = 0; r < n; ++r) {
    const float* x = vectors + r * stride;
    for (size_t i = 0; i < dim; ++i) {
      lo[i] = std::min(lo[i], x[i]);
      hi[i] = std::max(hi[i], x[i]);
      sum[i] += x[i];
    }
  }
  std::vector<float> scale(dim), mean(dim);
  for (size_t i = 0; i < dim; ++i) {
    if (n == 0) lo[i] = hi[i] = 0;
    scale[i] = std::max((hi[i] - lo[i]) / 255.0f, 1e-30f);
    mean[i] = n == 0 ? 0.0f : static_cast<float>(sum[i] / static_cast<double>(n));
  }
  return ScalarQuantizer(mode, std::move(lo), std::move(scale), std::move(mean));
}

ScalarQuantizer::ScalarQuantizer(Mode mode, std::vector<float> lo, std::vector<float> scale,
                                 std::vector<float> mean)
    : mode_(mode), lo_(std::move(lo)), scale_(std::move(scale)), mean_(std::move(mean)) {}

float ScalarQuantizer::Encode(const float* x, uint8_t* code) const {
  const size_t d = dim();
  float bias = 0;
  for (size_t i = 0; i < d; ++i) {
    float v = std::nearbyint((x[i] - lo_[i]) / scale_[i]);
    v = std::clamp(v, 0.0f, 255.0f);
    code[i] = static_cast<uint8_t>(v);
    if (mode_ == Mode::kL2) {
      float c = x[i] - mean_[i];
      bias += c * c;
    }
  }
  std::memset(code + d, 0, code_bytes() - d);
  return bias;
}

ScalarQuantizer::QueryCode ScalarQuantizer::EncodeQuery(const float* q, int8_t* w8) const {
  const size_t d = dim();
  QueryCode qc;
  const bool l2 = mode_ == Mode::kL2;
  auto weight = [&](size_t i) { return (l2 ? q[i] - mean_[i] : q[i]) * scale_[i]; };
  float wmax = 0, qq = 0, qlo = 0;
  for (size_t i = 0; i < d; ++i) {
    if (l2) {
      float c = q[i] - mean_[i];
      qq += c * c;
      qlo += c * (lo_[i] - mean_[i]);
    } else {
      qlo += q[i] * lo_[i];
    }
    wmax = std::max(wmax, std::fabs(weight(i)));
  }
  qc.query_const = l2 ? qq - 2 * qlo : 1.0f - qlo;
  const float sw = wmax > 0 ? wmax / 127.0f : 1.0f;
  const float inv = 1.0f / sw;
  for (size_t i = 0; i < d; ++i) {
    w8[i] = static_cast<int8_t>(std::clamp(std::nearbyint(weight(i) * inv), -127.0f, 127.0f));
  }
  std::memset(w8 + d, 0, code_bytes() - d);
  qc.factor = mode_ == Mode::kL2 ? 2 * sw : sw;
  return qc;
}

}  // namespace kyrodb::index
