// Collection::Impl: one collection's tiers and how mutations reach them.
//
//   live_   hot tier: ordered map id -> entry (a document, or a tombstone that hides older
//           versions below it), written by every upsert/delete;
//   frozen_ the previous hot map while a flush moves it into the cold tier (immutable);
//   cold_   HnswIndex with the embeddings, plus cold_meta_ (string id, metadata).
// Precedence on every read: live_ > frozen_ > cold. An upsert removes older cold versions at
// once, a delete removes the cold version and leaves a tombstone only where a frozen version
// exists, so cold never answers for a document that has a newer state above it (and a search
// re-checks, for the short window of a flush).
//
// Locking: mu_ (shared for reads, exclusive for the short map updates) guards the maps;
// flush_mu_ serializes flushes and snapshots of this collection. HNSW inserts run without mu_.
#pragma once

#include <absl/container/btree_map.h>
#include <absl/container/flat_hash_map.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "cache/learned_cache.h"
#include "engine/search_cache.h"
#include "index/hnsw_index.h"
#include "kyrodb/database.h"
#include "storage/snapshot.h"
#include "storage/wal_record.h"

namespace kyrodb {

class DatabaseWriter;  // the Database side: logs a record, then applies it

struct StoredDoc {
  uint64_t id = 0;
  std::string external;
  std::vector<float> embedding;  // unit length for cosine collections
  Metadata metadata;
  size_t Bytes() const;
};

// What a collection takes from the database's options (besides its own CollectionOptions).
struct CollectionRuntime {
  cache::LearnedCacheOptions l1;       // the L1 cache of documents by id
  size_t search_cache_entries = 1024;  // SearchCache capacity; 0: repeated searches are not cached
};

class Collection::Impl {
 public:
  static constexpr uint64_t kFirstStringId = 1ull << 63;

  Impl(std::string tenant, std::string name, const CollectionOptions& options,
       std::unique_ptr<index::HnswIndex> cold, DatabaseWriter* db, const CollectionRuntime& runtime);

  const std::string& tenant() const { return tenant_; }
  const std::string& name() const { return name_; }
  const CollectionOptions& options() const { return opt_; }
  void MarkDropped() { dropped_.store(true); }

  // Client operations: validate, log through db_, apply.
  Status Upsert(const Document& doc);
  Status UpsertBatch(const std::vector<Document>& docs, std::vector<Status>* results);
  // Validates `doc`, resolves (assigns) its id and fills the WAL record of its upsert.
  Status MakeUpsertRecord(const Document& doc, storage::WalRecord* r);
  Status Delete(const DocKey& key);
  Status UpdateMetadata(const DocKey& key, const Metadata& metadata, bool merge);
  Result<GetResult> Get(const DocKey& key, bool include_embedding) const;
  Result<std::vector<SearchHit>> Search(const SearchRequest& request, SearchPath* path) const;
  Result<std::vector<SearchHit>> SearchUncached(const SearchRequest& request, SearchPath* path) const;
  Result<FlushResult> Flush();
  CollectionStats Stats() const;
  uint64_t document_count() const { return live_docs_.load(std::memory_order_relaxed); }
  std::vector<DocKey> FindKeys(const std::function<bool(const Metadata&)>& pred) const;

  // State machine side: apply a logged record (live or replayed). Idempotent.
  void Apply(const storage::WalRecord& r);

  // Snapshot files "<prefix>.docs" and "<prefix>.hnsw".
  Status SaveTo(storage::SnapshotWriter* w, const std::string& prefix);
  static Result<std::shared_ptr<Impl>> LoadFrom(const storage::SnapshotReader& r,
                                                const std::string& prefix, std::string tenant,
                                                std::string name, const CollectionOptions& options,
                                                uint32_t max_vectors, DatabaseWriter* db,
                                                const CollectionRuntime& runtime);

  // The L1 cache (the background task trains it).
  cache::LearnedCache& l1() const { return *l1_; }

  // Relinks the HNSW graph around removed documents once they exceed 10% of it (the
  // background task calls this; it never holds the collection lock while doing so).
  void MaintainColdTier();

  // Background policy inputs.
  uint64_t hot_bytes() const { return hot_bytes_.load(std::memory_order_relaxed); }
  // 0 when the hot tier is empty. O(1): the oldest born_ms of the entries that entered it since
  // it was last empty — older than the truth if that entry was deleted since (the age flush then
  // comes early, never late).
  int64_t oldest_hot_ms() const { return hot_since_ms_.load(std::memory_order_relaxed); }

 private:
  struct HotEntry {
    std::shared_ptr<const StoredDoc> doc;  // null: tombstone
    int64_t born_ms = 0;
  };
  using HotMap = absl::btree_map<uint64_t, HotEntry>;
  // Every write into live_ goes through here (mu_ held exclusively): keeps hot_since_ms_.
  void PutLiveLocked(uint64_t id, HotEntry entry) {
    const int64_t since = hot_since_ms_.load(std::memory_order_relaxed);
    if (since == 0 || entry.born_ms < since) hot_since_ms_.store(entry.born_ms, std::memory_order_relaxed);
    live_[id] = std::move(entry);
  }
  // After removals from live_ (mu_ held exclusively).
  void LiveShrankLocked() {
    if (live_.empty()) hot_since_ms_.store(0, std::memory_order_relaxed);
  }
  struct ColdMeta {
    std::string external;
    Metadata metadata;
  };

  Status CheckLive() const { return dropped_.load() ? DroppedError() : Status::Ok(); }
  Status DroppedError() const;
  Status CheckVector(const std::vector<float>& v, const char* what) const;
  // Resolves a key to an internal id; with `assign`, gives a new string id one.
  Result<uint64_t> Resolve(const DocKey& key, bool assign);
  // Numeric ids resolve inline, without a lock or a string; FindSlow does the rest (and errors).
  Result<uint64_t> Find(const DocKey& key) const {
    if (!key.is_string() && key.id != 0 && key.id < kFirstStringId) return key.id;
    return FindSlow(key);
  }
  Result<uint64_t> FindSlow(const DocKey& key) const;
  // Get's body: fills *out (a default GetResult) or returns why not.
  Status GetInto(const DocKey& key, bool include_embedding, GetResult* out) const;
  // The current version of `id`, and where it lives (caller holds mu_).
  const StoredDoc* FindHotLocked(uint64_t id, bool* tombstone) const;
  float Score(float distance) const;

  const std::string tenant_, name_;
  const CollectionOptions opt_;
  DatabaseWriter* const db_;
  std::atomic<bool> dropped_{false};
  // Next to dropped_: a get-by-id hit reads both, and nothing else of this object.
  std::unique_ptr<cache::LearnedCache> l1_;  // documents by id; invalidated by every Apply
  std::unique_ptr<index::HnswIndex> cold_;

  mutable std::shared_mutex mu_;
  HotMap live_;
  std::shared_ptr<const HotMap> frozen_;
  absl::flat_hash_map<uint64_t, ColdMeta> cold_meta_;
  absl::flat_hash_map<std::string, uint64_t> ext_to_id_;
  uint64_t next_string_id_ = kFirstStringId;

  std::mutex flush_mu_;
  // Bumped by every applied record and flush; search-cache entries of older generations are
  // dead.
  std::atomic<uint64_t> generation_{0};
  mutable SearchCache search_cache_;
  std::atomic<uint64_t> hot_bytes_{0};
  std::atomic<int64_t> hot_since_ms_{0};  // see oldest_hot_ms(); written under mu_
  std::atomic<uint64_t> live_docs_{0};  // live documents over both tiers (maintained by Apply)
  std::atomic<uint64_t> flushes_{0};
};

// What a Collection needs from its Database: log-then-apply, and the current time.
class DatabaseWriter {
 public:
  virtual ~DatabaseWriter() = default;
  virtual Status Log(const storage::WalRecord& record, Collection::Impl* target) = 0;
  // Logs the records with as few WAL writes as fit and applies each one logged; *logged says
  // how many (a prefix).
  virtual Status LogBatch(const std::vector<const storage::WalRecord*>& records,
                          Collection::Impl* target, size_t* logged) = 0;
};

}  // namespace kyrodb
