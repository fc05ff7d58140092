// Value types of the public KyroDB engine API. Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace kyrodb {

// Distance metric of a collection. Stable numeric values (they are stored on disk).
enum class Metric { kL2 = 0, kInnerProduct = 1, kCosine = 2 };

using Metadata = std::vector<std::pair<std::string, std::string>>;

// Which tier answered a lookup by id.
enum class Tier { kCache = 0, kHotTier = 1, kColdTier = 2 };
const char* TierName(Tier t);  // "cache", "hot_tier", "cold_tier"

// How a client names a document: a numeric id in 1..2^63-1, or a string id ("doc_123").
// A string id round-trips exactly and never addresses the same document as another string or
// any numeric id (string ids get internal ids from the upper half of the 64-bit range).
struct DocKey {
  uint64_t id = 0;        // used when external is empty
  std::string external;   // string id, if the client gave one

  static DocKey Numeric(uint64_t id) { return {id, {}}; }
  static DocKey String(std::string s) { return {0, std::move(s)}; }
  bool is_string() const { return !external.empty(); }
};

struct Document {
  DocKey key;
  std::vector<float> embedding;
  Metadata metadata;
};

struct CollectionOptions {
  uint32_t dimension = 0;
  Metric metric = Metric::kCosine;
  uint32_t m = 16;
  uint32_t ef_construction = 200;
  uint32_t ef_search = 50;
};

struct CollectionInfo {
  std::string tenant;
  std::string name;
  CollectionOptions options;
  uint64_t documents = 0;
};

struct GetResult {
  DocKey key;
  std::vector<float> embedding;  // empty unless asked for
  Metadata metadata;
  Tier served_from = Tier::kHotTier;
};

struct SearchRequest {
  std::vector<float> query;
  uint32_t k = 10;
  uint32_t ef = 0;              // 0: the collection's ef_search
  bool has_min_score = false;
  float min_score = 0;          // results with score < min_score are dropped
  bool include_embeddings = false;
  bool include_metadata = true;
  bool use_result_cache = true;  // false: always search (benchmarks)
  // Optional metadata predicate: only documents it accepts are returned. Exact over the hot
  // tier; over HNSW the search widens (k and ef grow) and filters the candidates, so a very
  // selective filter can return fewer than k. Filtered searches bypass the result cache.
  std::function<bool(const Metadata&)> filter;
};

// Which tiers answered a search.
enum class SearchPath { kUnknown = 0, kCacheHit = 1, kHotTierOnly = 2, kColdTierOnly = 3, kHotAndCold = 4 };
const char* SearchPathName(SearchPath p);  // "cache_hit", "hot_tier_only", "cold_tier_only", "hot_and_cold"

struct SearchHit {
  DocKey key;
  float score = 0;     // higher is closer: 1/(1+l2^2) for l2, dot for inner product, cos for cosine
  float distance = 0;  // the index's distance (smaller is closer)
  std::vector<float> embedding;
  Metadata metadata;
};

struct FlushResult {
  uint64_t docs_flushed = 0;
  double duration_ms = 0;
};

struct CollectionStats {
  uint64_t documents = 0;
  uint64_t hot_documents = 0;
  uint64_t cold_documents = 0;
  uint64_t hot_bytes = 0;
  uint64_t flushes = 0;
  uint64_t memory_bytes = 0;
  uint64_t search_cache_hits = 0;
  uint64_t search_cache_misses = 0;
  // L1 cache of documents by id.
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;
  uint64_t cache_entries = 0;
  uint64_t cache_bytes = 0;
  uint64_t cache_trainings = 0;
  uint64_t cache_training_failures = 0;
  std::string cache_mode;  // "learned", "lru", or "lru_fallback..." (see docs/cache.md)
};

}  // namespace kyrodb
