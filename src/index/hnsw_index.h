// HnswIndex: the cold tier's approximate k-NN index (Hierarchical Navigable Small World graph).
//
// What it holds: for each vector an external 64-bit label, the float32 vector (normalized for
// cosine), an 8-bit scalar-quantized code of it, and its graph links. Search walks the graph
// with the 8-bit codes (4x less memory traffic than floats, integer SIMD) and re-ranks the
// candidates it found with exact float distances, so the reported distances are exact.
// Until enough vectors exist to train the quantizer (kQuantizerTrainSize), or when
// options.quantize is false, the walk uses the float vectors.
//
// Memory: node storage is reserved up front as virtual address space for max_elements nodes
// (MAP_NORESERVE) and committed page by page as nodes are added, so pointers never move and
// readers never see a reallocation.
//
// Thread-safety: Add, AddBatch, Remove, Search, Contains, GetVector and Save may all be called
// concurrently from any threads. Searches take no lock: graph links are read with atomic
// loads, and a node's slot is recycled only after every search that might still see it has
// finished (an epoch grace period). Inserts lock one node at a time, plus a short global lock
// when the entry point moves. Consolidate and Save exclude inserts (not searches) while they run.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "index/metric.h"
#include "io/file_system.h"
#include "kyrodb/status.h"

namespace kyrodb::index {

struct HnswOptions {
  size_t dim = 0;
  Metric metric = Metric::kL2;
  uint32_t m = 16;                  // links per node on upper levels; 2*m on level 0
  uint32_t ef_construction = 200;   // candidate list size while inserting
  uint32_t ef_search = 50;          // default candidate list size while searching
  uint32_t max_elements = 1u << 22; // capacity (slots); address space only, see above
  bool quantize = true;             // walk with 8-bit codes and re-rank exactly
  uint64_t seed = 42;               // level generator seed
};

struct SearchHit {
  uint64_t label;
  float distance;  // smaller is closer; see Metric
};

struct HnswStats {
  size_t live = 0;         // vectors that searches can return
  size_t deleted = 0;      // removed, still in the graph until Consolidate()
  size_t slots = 0;        // node slots in use (live + deleted)
  size_t free_slots = 0;   // recycled slots waiting for reuse
  size_t memory_bytes = 0; // committed bytes for vectors, codes, links and maps
  double bytes_per_vector = 0;
  bool quantized = false;  // searches walk the 8-bit codes
  int max_level = -1;
};

class HnswIndex {
 public:
  // Number of vectors after which the scalar quantizer is trained (if options.quantize).
  static constexpr size_t kQuantizerTrainSize = 1024;

  static Result<std::unique_ptr<HnswIndex>> Create(const HnswOptions& options);
  ~HnswIndex();
  HnswIndex(const HnswIndex&) = delete;
  HnswIndex& operator=(const HnswIndex&) = delete;

  // Inserts or replaces (upsert) the vector for `label`. InvalidArgument for non-finite values
  // or (cosine) a zero vector; ResourceExhausted when max_elements slots are in use.
  Status Add(uint64_t label, const float* vector);

  // Adds n vectors (row-major, n*dim floats) using `num_threads` threads (0: all cores).
  // Trains the quantizer from the batch first when it is not trained yet.
  Status AddBatch(std::span<const uint64_t> labels, const float* vectors, size_t num_threads = 0);

  // Removes `label`: it never appears in results again. NotFound if absent.
  Status Remove(uint64_t label);

  // The k nearest live vectors to `query`, closest first. ef = 0 uses options.ef_search;
  // ef is raised to k when smaller.
  Status Search(const float* query, size_t k, size_t ef, std::vector<SearchHit>* out) const;

  bool Contains(uint64_t label) const;
  // Copies the stored vector (normalized, for cosine) into out[0..dim).
  Status GetVector(uint64_t label, float* out) const;

  // Relinks the neighbours of removed nodes and recycles their slots. Returns slots recycled.
  // Also runs by itself from Add once removed nodes exceed 10% of the slots.
  size_t Consolidate();

  HnswStats Stats() const;  // O(1): counters only
  size_t Size() const;  // live vectors
  const HnswOptions& options() const;

  // Save writes the whole index (vectors, codes, quantizer, graph, labels) in the format of
  // docs/formats/hnsw.md, atomically (temp file, fsync, rename, fsync dir).
  Status Save(const std::string& path, io::FileSystem* fs = io::FileSystem::Default()) const;
  // Load refuses truncated or corrupted files with Corruption naming what is wrong.
  // max_elements = 0 keeps the saved capacity (or the node count, if larger).
  static Result<std::unique_ptr<HnswIndex>> Load(const std::string& path,
                                                 io::FileSystem* fs = io::FileSystem::Default(),
                                                 uint32_t max_elements = 0);

 private:
  class Impl;
  explicit HnswIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kyrodb::index
