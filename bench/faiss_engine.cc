// The FAISS contender: IndexHNSWFlat from Debian's libfaiss-dev 1.7.3, which is a generic
// x86-64 build (its distance loops are scalar), hence the caveat on every line.
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <omp.h>

#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "ann_engine.h"

namespace kyrodb::bench {
namespace {

class FaissEngine final : public AnnEngine {
 public:
  explicit FaissEngine(const AnnEngineParams& p) : params_(p) {}

  std::string_view Name() const override { return "faiss"; }
  std::string_view Caveat() const override {
    return "Debian FAISS 1.7.3 is a generic x86-64 build with scalar distance loops (2-4x "
           "slower than a native build)";
  }

  Status Build(const float* data, size_t n, size_t threads) override {
    try {
      const faiss::MetricType metric =
          params_.metric == index::Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
      index_ = std::make_unique<faiss::IndexHNSWFlat>(static_cast<int>(params_.dim),
                                                      static_cast<int>(params_.m), metric);
      index_->hnsw.efConstruction = static_cast<int>(params_.ef_construction);
      omp_set_num_threads(static_cast<int>(threads));
      index_->add(static_cast<faiss::Index::idx_t>(n), data);
      omp_set_num_threads(1);  // searches are single-threaded, one query per call
    } catch (const std::exception& e) {
      omp_set_num_threads(1);
      return Status::Internal(std::string("faiss build: ") + e.what());
    }
    return Status::Ok();
  }

  Status Search(const float* query, size_t k, size_t ef, std::vector<uint64_t>* out) override {
    distances_.resize(k);
    labels_.resize(k);
    try {
      index_->hnsw.efSearch = static_cast<int>(ef);
      index_->search(1, query, static_cast<faiss::Index::idx_t>(k), distances_.data(),
                     labels_.data());
    } catch (const std::exception& e) {
      return Status::Internal(std::string("faiss search: ") + e.what());
    }
    out->clear();
    for (faiss::Index::idx_t label : labels_) {
      if (label >= 0) out->push_back(static_cast<uint64_t>(label));  // -1: fewer than k found
    }
    return Status::Ok();
  }

  // Vector storage plus the graph arrays (neighbours, per-node offsets and levels).
  size_t MemoryBytes() const override {
    const faiss::HNSW& g = index_->hnsw;
    const auto* flat = dynamic_cast<const faiss::IndexFlatCodes*>(index_->storage);
    const size_t storage = flat != nullptr ? flat->codes.size() : 0;
    return storage + g.neighbors.size() * sizeof(faiss::HNSW::storage_idx_t) +
           g.offsets.size() * sizeof(size_t) + g.levels.size() * sizeof(int);
  }

 private:
  AnnEngineParams params_;
  std::unique_ptr<faiss::IndexHNSWFlat> index_;
  std::vector<float> distances_;
  std::vector<faiss::Index::idx_t> labels_;
};

}  // namespace

std::unique_ptr<AnnEngine> NewFaissEngine(const AnnEngineParams& params) {
  return std::make_unique<FaissEngine>(params);
}

}  // namespace kyrodb::bench
