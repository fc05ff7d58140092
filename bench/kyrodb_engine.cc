// KyroDB's own HNSW index (src/index), driven through its public API.
#include <memory>
#include <numeric>
#include <vector>

#include "ann_engine.h"
#include "index/hnsw_index.h"

namespace kyrodb::bench {
namespace {

class KyroDbEngine final : public AnnEngine {
 public:
  explicit KyroDbEngine(const AnnEngineParams& p) : params_(p) {}

  std::string_view Name() const override { return "kyrodb"; }

  Status Build(const float* data, size_t n, size_t threads) override {
    if (n > UINT32_MAX) return Status::InvalidArgument("kyrodb: more than 2^32 vectors");
    index::HnswOptions options;
    options.dim = params_.dim;
    options.metric = params_.metric;
    options.m = params_.m;
    options.ef_construction = params_.ef_construction;
    options.max_elements = static_cast<uint32_t>(n);
    options.seed = params_.seed;
    auto created = index::HnswIndex::Create(options);
    if (!created.ok()) return created.status();
    index_ = std::move(created).value();
    std::vector<uint64_t> labels(n);
    std::iota(labels.begin(), labels.end(), uint64_t{0});
    return index_->AddBatch(labels, data, threads);
  }

  Status Search(const float* query, size_t k, size_t ef, std::vector<uint64_t>* out) override {
    KYRODB_RETURN_IF_ERROR(index_->Search(query, k, ef, &hits_));
    out->resize(hits_.size());
    for (size_t i = 0; i < hits_.size(); ++i) (*out)[i] = hits_[i].label;
    return Status::Ok();
  }

  size_t MemoryBytes() const override { return index_->Stats().memory_bytes; }

 private:
  AnnEngineParams params_;
  std::unique_ptr<index::HnswIndex> index_;
  std::vector<index::SearchHit> hits_;
};

}  // namespace

std::unique_ptr<AnnEngine> NewKyroDbEngine(const AnnEngineParams& params) {
  return std::make_unique<KyroDbEngine>(params);
}

}  // namespace kyrodb::bench
