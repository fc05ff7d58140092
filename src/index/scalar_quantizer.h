// ScalarQuantizer: 8-bit per-dimension codes for fast approximate distances.
//
// A vector x is stored as codes c_i = round((x_i - lo_i) / s_i) in [0, 255], with lo and s
// trained per dimension. A query q is turned into int8 weights w8 ~ w / s_w (w_i = q_i * s_i
// for inner product, (q_i - mu_i) * s_i for L2, mu the training mean), so that
//     approx_distance(q, x) = query_const + bias(x) - factor * dot(c, w8)
// is one uint8 x int8 dot product (VNNI) per node. bias(x) = |x - mu|^2 for L2 (exact, from
// the float vector) and 0 for inner product. Approximate distances rank candidates only; the
// index re-ranks with exact float distances.
// Thread-safety: immutable after Train(); all methods are const.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kyrodb::index {

class ScalarQuantizer {
 public:
  enum class Mode { kL2 = 0, kInnerProduct = 1 };

  struct QueryCode {
    float query_const = 0;
    float factor = 0;
  };

  ScalarQuantizer() = default;
  // Trains lo, s and mu from n vectors of `dim` floats spaced `stride` floats apart.
  static ScalarQuantizer Train(Mode mode, const float* vectors, size_t n, size_t dim,
                               size_t stride);
  // Rebuilds a trained quantizer from saved parameters.
  ScalarQuantizer(Mode mode, std::vector<float> lo, std::vector<float> scale,
                  std::vector<float> mean);

  // Bytes of one code: dim rounded up to 64 (zero padded, so kernels need no tail).
  static size_t CodeBytes(size_t dim) { return (dim + 63) / 64 * 64; }
  size_t code_bytes() const { return CodeBytes(lo_.size()); }
  size_t dim() const { return lo_.size(); }
  Mode mode() const { return mode_; }

  // Writes code_bytes() bytes; returns bias(x).
  float Encode(const float* x, uint8_t* code) const;
  // Writes code_bytes() int8 weights.
  QueryCode EncodeQuery(const float* q, int8_t* w8) const;

  const std::vector<float>& lo() const { return lo_; }
  const std::vector<float>& scale() const { return scale_; }
  const std::vector<float>& mean() const { return mean_; }

 private:
  Mode mode_ = Mode::kL2;
  std::vector<float> lo_, scale_, mean_;
};

}  // namespace kyrodb::index
