#include "cache/rmi_model.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_map>
#include <utility>

namespace kyrodb::cache {
namespace {

constexpr double kTwoPow64 = 18446744073709551616.0;
inline double Unit(uint64_t h) { return static_cast<double>(h) / kTwoPow64; }

// Least-squares fit y = slope * x + intercept; a constant when x does not vary.
std::pair<double, double> FitLine(std::span<const double> x, std::span<const double> y) {
  const size_t n = x.size();
  if (n == 0) return {0, 0};
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= static_cast<double>(n);
  my /= static_cast<double>(n);
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
  }
  const double slope = sxx > 0 ? std::max(0.0, sxy / sxx) : 0;  // monotone: keys stay sorted
  return {slope, my - slope * mx};
}

}  // namespace

size_t RmiModel::LeafOf(double x) const {
  const double p = root_slope_ * x + root_intercept_;
  if (!(p > 0)) return 0;
  const size_t last = leaves_.size() - 1;
  return p >= static_cast<double>(last) ? last : static_cast<size_t>(p);
}

float RmiModel::ScoreOfHash(uint64_t h) const {
  if (hashes_.empty()) return 0;
  const double x = Unit(h);
  const Leaf& leaf = leaves_[LeafOf(x)];
  if (leaf.begin == leaf.end) return 0;
  const double p = leaf.slope * x + leaf.intercept;
  const int64_t guess = std::clamp<int64_t>(static_cast<int64_t>(p), leaf.begin, leaf.end - 1);
  const int64_t lo = std::max<int64_t>(leaf.begin, guess - leaf.max_err);
  const int64_t hi = std::min<int64_t>(leaf.end, guess + leaf.max_err + 1);
  const auto first = hashes_.begin() + lo;
  const auto it = std::lower_bound(first, hashes_.begin() + hi, h);
  if (it == hashes_.begin() + hi || *it != h) return 0;
  return scores_[static_cast<size_t>(it - hashes_.begin())];
}

uint32_t RmiModel::max_leaf_error() const {
  uint32_t e = 0;
  for (const Leaf& l : leaves_) e = std::max(e, l.max_err);
  return e;
}

size_t RmiModel::MemoryBytes() const {
  return sizeof(*this) + leaves_.capacity() * sizeof(Leaf) +
         hashes_.capacity() * sizeof(uint64_t) + scores_.capacity() * sizeof(float);
}

Result<std::shared_ptr<const RmiModel>> RmiModel::Train(std::span<const AccessRecord> records,
                                                        const RmiModel* previous,
                                                        const RmiTrainOptions& options) {
  if (options.num_leaves == 0 || options.max_keys == 0) {
    return Status::InvalidArgument("rmi: num_leaves and max_keys must be > 0");
  }
  if (records.empty() && previous == nullptr) {
    return Status::FailedPrecondition("rmi: no accesses to learn from");
  }
  uint64_t now = previous != nullptr ? previous->trained_at_ : 0;
  uint64_t first = records.empty() ? now : records.front().seq;
  for (const AccessRecord& r : records) now = std::max(now, r.seq + 1);
  const double half_life =
      options.half_life > 0 ? options.half_life : std::max<double>(1.0, double(now - first));

  // Per-key decayed frequency: each access weighs 2^(-age / half_life).
  std::unordered_map<uint64_t, double> score;
  score.reserve(records.size() / 2 + (previous != nullptr ? previous->num_keys() : 0) + 16);
  for (const AccessRecord& r : records) {
    score[Mix64(r.doc_id)] += std::exp2(-static_cast<double>(now - 1 - r.seq) / half_life);
  }
  if (previous != nullptr) {
    const double carry =
        std::exp2(-static_cast<double>(now - previous->trained_at_) / half_life);
    for (size_t i = 0; i < previous->hashes_.size(); ++i) {
      score[previous->hashes_[i]] += carry * previous->scores_[i];
    }
  }

  std::vector<std::pair<uint64_t, float>> keys;
  keys.reserve(score.size());
  for (const auto& [h, s] : score) keys.emplace_back(h, static_cast<float>(s));
  const auto hotter = [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  };
  if (keys.size() > options.max_keys) {
    std::nth_element(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(options.max_keys),
                     keys.end(), hotter);
    keys.resize(options.max_keys);
  }
  auto model = std::shared_ptr<RmiModel>(new RmiModel());
  model->trained_at_ = now;
  {
    // The hot threshold: the score of the hot_keys-th hottest id.
    const size_t hot = options.hot_keys == 0 ? keys.size() : std::min(options.hot_keys, keys.size());
    if (hot > 0) {
      std::vector<float> s(keys.size());
      for (size_t i = 0; i < keys.size(); ++i) s[i] = keys[i].second;
      std::nth_element(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(hot - 1), s.end(),
                       std::greater<float>());
      model->hot_threshold_ = s[hot - 1];
    }
  }
  std::sort(keys.begin(), keys.end());
  const size_t n = keys.size();
  model->hashes_.resize(n);
  model->scores_.resize(n);
  std::vector<double> x(n), y(n);
  for (size_t i = 0; i < n; ++i) {
    model->hashes_[i] = keys[i].first;
    model->scores_[i] = keys[i].second;
    x[i] = Unit(keys[i].first);
  }

  // Stage 1: the root maps x to a leaf, fitted to x -> rank * leaves / n (the keys' CDF).
  const size_t num_leaves = std::max<size_t>(1, std::min(options.num_leaves, std::max<size_t>(n, 1)));
  model->leaves_.resize(num_leaves);
  for (size_t i = 0; i < n; ++i) {
    y[i] = static_cast<double>(i) * static_cast<double>(num_leaves) / static_cast<double>(n);
  }
  std::tie(model->root_slope_, model->root_intercept_) = FitLine(x, y);

  // Stage 2: the root is monotone, so each leaf owns a contiguous run of the sorted keys; fit
  // x -> position within it and record the worst miss.
  size_t i = 0;
  for (size_t l = 0; l < num_leaves; ++l) {
    Leaf& leaf = model->leaves_[l];
    leaf.begin = static_cast<uint32_t>(i);
    while (i < n && model->LeafOf(x[i]) == l) ++i;
    leaf.end = static_cast<uint32_t>(i);
    const std::span<const double> lx(x.data() + leaf.begin, leaf.end - leaf.begin);
    std::vector<double> ly(lx.size());
    for (size_t j = 0; j < ly.size(); ++j) ly[j] = static_cast<double>(leaf.begin + j);
    std::tie(leaf.slope, leaf.intercept) = FitLine(lx, ly);
    double err = 0;
    for (size_t j = 0; j < ly.size(); ++j) {
      const double p = std::clamp(leaf.slope * lx[j] + leaf.intercept,
                                  static_cast<double>(leaf.begin), static_cast<double>(leaf.end - 1));
      err = std::max(err, std::abs(std::floor(p) - ly[j]));
    }
    leaf.max_err = static_cast<uint32_t>(err) + 1;
  }
  if (i != n) return Status::Internal("rmi: root routing is not monotone");
  return std::shared_ptr<const RmiModel>(std::move(model));
}

}  // namespace kyrodb::cache
