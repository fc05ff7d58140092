// The hnswlib contender. This translation unit alone is compiled with -march=native (see
// CMakeLists.txt) so that hnswlib's header-only distance functions get their best SIMD
// kernels (AVX-512 where the CPU has it): the contender is never weakened by our generic flags.
#include <atomic>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

// /usr/include is a system directory, so GCC already hides the header's warnings; the pragma
// keeps this TU clean under -Werror wherever hnswlib comes from. hnswlib 0.6.2 warns only
// -Wtype-limits ("unsigned < 0", hnswalg.h:1077 and :1143).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtype-limits"
#include <hnswlib/hnswlib.h>
#pragma GCC diagnostic pop

#include "ann_engine.h"

namespace kyrodb::bench {
namespace {

class HnswlibEngine final : public AnnEngine {
 public:
  explicit HnswlibEngine(const AnnEngineParams& p) : params_(p) {
    if (p.metric == index::Metric::kL2) {
      space_ = std::make_unique<hnswlib::L2Space>(p.dim);
    } else {
      space_ = std::make_unique<hnswlib::InnerProductSpace>(p.dim);
    }
  }

  std::string_view Name() const override { return "hnswlib"; }

  Status Build(const float* data, size_t n, size_t threads) override {
    try {
      index_ = std::make_unique<hnswlib::HierarchicalNSW<float>>(
          space_.get(), n, params_.m, params_.ef_construction, params_.seed);
      if (n == 0) return Status::Ok();
      const size_t dim = params_.dim;
      // Like hnswlib's Python bindings: the first point alone, then a ParallelFor in which
      // each thread takes the next row from an atomic counter.
      index_->addPoint(data, 0);
      std::atomic<size_t> next{1};
      std::exception_ptr error;
      std::atomic<bool> failed{false};
      auto worker = [&] {
        try {
          for (size_t i; !failed.load(std::memory_order_relaxed) &&
                         (i = next.fetch_add(1, std::memory_order_relaxed)) < n;) {
            index_->addPoint(data + i * dim, i);
          }
        } catch (...) {
          if (!failed.exchange(true)) error = std::current_exception();
        }
      };
      std::vector<std::thread> pool;
      for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
      worker();
      for (auto& t : pool) t.join();
      if (error) std::rethrow_exception(error);
    } catch (const std::exception& e) {
      return Status::Internal(std::string("hnswlib build: ") + e.what());
    }
    return Status::Ok();
  }

  Status Search(const float* query, size_t k, size_t ef, std::vector<uint64_t>* out) override {
    try {
      index_->setEf(ef);
      auto result = index_->searchKnn(query, k);  // max-heap: farthest on top
      out->resize(result.size());
      for (size_t i = result.size(); i-- > 0;) {
        (*out)[i] = result.top().second;
        result.pop();
      }
    } catch (const std::exception& e) {
      return Status::Internal(std::string("hnswlib search: ") + e.what());
    }
    return Status::Ok();
  }

  // hnswlib keeps no total; computed from its public fields: the level-0 block (vector, links,
  // label) for max_elements slots, the upper-level link lists, the per-slot pointer, level and
  // lock arrays, and the label map's nodes and buckets.
  size_t MemoryBytes() const override {
    const auto& h = *index_;
    size_t bytes = h.max_elements_ * h.size_data_per_element_;
    for (size_t i = 0; i < h.cur_element_count; ++i) {
      if (h.element_levels_[i] > 0) {
        bytes += h.size_links_per_element_ * static_cast<size_t>(h.element_levels_[i]);
      }
    }
    bytes += h.max_elements_ * (sizeof(void*) + sizeof(int) + sizeof(std::mutex));
    bytes += h.label_lookup_.size() *
                 (sizeof(void*) + sizeof(std::pair<hnswlib::labeltype, hnswlib::tableint>)) +
             h.label_lookup_.bucket_count() * sizeof(void*);
    return bytes;
  }

 private:
  AnnEngineParams params_;
  std::unique_ptr<hnswlib::SpaceInterface<float>> space_;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> index_;
};

}  // namespace

std::unique_ptr<AnnEngine> NewHnswlibEngine(const AnnEngineParams& params) {
  return std::make_unique<HnswlibEngine>(params);
}

}  // namespace kyrodb::bench
