// RmiModel: the L1 cache's learned hotness model — a two-stage recursive model index (RMI) over
// hashed document ids whose leaves hold per-key decayed access frequencies.
//
// Doc ids are arbitrary 64-bit keys, so hotness is not a smooth function of the id and no
// regression from id to hotness can work. What the model learns instead is *which* ids are hot
// and how hot: Train() counts each id's accesses in the access log with exponential decay by age
// (in accesses), adds the previous model's decayed scores (so history survives beyond one log
// window), and keeps the `max_keys` highest-scoring ids. Those ids are indexed by a two-stage
// RMI over h = Mix64(id): a root linear model maps h to one of `num_leaves` leaves, and each
// leaf's linear model maps h to the position of the key in a sorted array, searched within the
// leaf's recorded maximum error. The payload at that position is the key's hotness score.
// Ids the model does not know score 0.
//
// Thread-safety: immutable after Train(); any number of threads may call Score()/IsHot().
// Swapping models is the cache's job (it publishes a shared_ptr<const RmiModel>).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "cache/access_log.h"
#include "kyrodb/status.h"

namespace kyrodb::cache {

// A bijective 64-bit mixer (splitmix64's finalizer): spreads arbitrary ids uniformly.
inline uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

struct RmiTrainOptions {
  size_t num_leaves = 256;
  size_t max_keys = 0;     // ids the model remembers (the top by score); must be > 0
  size_t hot_keys = 0;     // the top `hot_keys` of them are "hot" (IsHot); 0: all
  double half_life = 0;    // decay half-life in accesses; 0: the span of the records
};

class RmiModel {
 public:
  // Builds a model from `records` (seq-ordered, as AccessLog::DrainSince returns them) and the
  // decayed scores of `previous` (may be null). Fails on bad options or when there is nothing
  // to learn from (no records and no previous model).
  static Result<std::shared_ptr<const RmiModel>> Train(std::span<const AccessRecord> records,
                                                       const RmiModel* previous,
                                                       const RmiTrainOptions& options);

  // Decayed access count of `doc_id` as of trained_at(); 0 if the model does not know it.
  float Score(uint64_t doc_id) const { return ScoreOfHash(Mix64(doc_id)); }
  // True when `doc_id` is among the model's `hot_keys` hottest ids.
  bool IsHot(uint64_t doc_id) const {
    const float s = Score(doc_id);
    return s > 0 && s >= hot_threshold_;
  }

  size_t num_keys() const { return hashes_.size(); }
  size_t num_leaves() const { return leaves_.size(); }
  uint64_t trained_at() const { return trained_at_; }  // logical time (access seq)
  float hot_threshold() const { return hot_threshold_; }
  // Largest distance between a leaf's predicted and true position (search window half-width).
  uint32_t max_leaf_error() const;
  size_t MemoryBytes() const;

 private:
  struct Leaf {
    double slope = 0;
    double intercept = 0;
    uint32_t begin = 0;  // [begin, end) in hashes_
    uint32_t end = 0;
    uint32_t max_err = 0;
  };
  RmiModel() = default;
  float ScoreOfHash(uint64_t h) const;
  size_t LeafOf(double x) const;

  double root_slope_ = 0;
  double root_intercept_ = 0;
  std::vector<Leaf> leaves_;
  std::vector<uint64_t> hashes_;  // Mix64(id) of the known ids, sorted
  std::vector<float> scores_;     // parallel to hashes_
  float hot_threshold_ = 0;
  uint64_t trained_at_ = 0;
};

}  // namespace kyrodb::cache
