// KyroDB's engine API: a Database holds collections (per tenant), each a tiered vector store.
//
//   auto db = Database::Open(options);                  // recovers from options.data_dir
//   auto c = (*db)->CreateCollection("tenant", "docs", {768, Metric::kCosine});
//   (*c)->Upsert({DocKey::String("doc_1"), embedding, {{"lang", "en"}}});
//   auto hits = (*c)->Search({query, 10});
//
// Writes are logged (WAL, per options.fsync_policy) before they are acknowledged and are
// visible to reads as soon as they return. Reads see: the hot tier (recent writes, exact scan)
// over the cold tier (HNSW); the newest version of a document wins; deleted documents never
// appear. Flushing moves the hot tier into HNSW without blocking readers or writers.
//
// Thread-safety: every method of Database and Collection may be called concurrently. A
// Collection handle stays valid after DropCollection (its calls then fail with NotFound).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kyrodb/status.h"
#include "kyrodb/types.h"

namespace kyrodb {
namespace io {
class FileSystem;
}

enum class FsyncPolicy { kAlways, kData, kNever };
enum class RecoveryMode { kStrict, kBestEffort };

struct DatabaseOptions {
  std::string data_dir = "./data";
  FsyncPolicy fsync_policy = FsyncPolicy::kData;
  uint32_t wal_flush_interval_ms = 100;
  uint64_t wal_segment_bytes = 64ull << 20;
  RecoveryMode recovery_mode = RecoveryMode::kStrict;
  // Hot tier: flushed into HNSW when its oldest entry is older than this, or it is larger.
  uint32_t hot_tier_flush_interval_ms = 600'000;
  uint64_t hot_tier_max_bytes = 100ull << 20;
  // Snapshots: every interval, or after this many mutations (0: never by count).
  uint32_t snapshot_interval_ms = 86'400'000;
  uint64_t snapshot_every_mutations = 0;
  // Capacity of each collection's HNSW index (address space reserved, not memory).
  uint32_t max_vectors_per_collection = 1u << 24;
  // L1 cache of documents by id, per collection: "learned" (hotness model, falls back to LRU
  // by itself) or "lru"; retrained every cache_training_interval_ms by the background task.
  bool cache_learned = true;
  uint64_t cache_max_bytes = 64ull << 20;
  uint32_t cache_training_interval_ms = 600'000;
  // Result cache per collection: identical repeated searches answered from memory, at most
  // this many distinct ones (least recently used evicted); 0 turns it off.
  uint32_t search_cache_entries = 1024;
  // Background task period (flush checks, cache training, snapshots). The WAL's sync timer
  // (policy data) and write probe run on a thread of their own, so a long flush or snapshot
  // never delays them.
  uint32_t background_tick_ms = 100;
  // false: no background threads; RunBackgroundOnce() does one round of all of it.
  bool start_background = true;
  // Where files go; null: the real (POSIX) file system. Tests put fault injection here.
  io::FileSystem* file_system = nullptr;
};

struct DatabaseStats {
  // False while the WAL refuses writes (after a failed fsync or a full disk, until a probe
  // write succeeds).
  bool writable = true;
  uint64_t wal_records = 0;
  uint64_t wal_bytes = 0;
  uint64_t wal_syncs = 0;
  uint64_t wal_batches = 0;
  uint64_t snapshots = 0;  // taken since Open
};

class Collection {
 public:
  ~Collection();
  const std::string& tenant() const;
  const std::string& name() const;
  const CollectionOptions& options() const;

  // Inserts or replaces. InvalidArgument: wrong dimension, non-finite values, zero vector for
  // cosine, bad id. Returns the document's key (string ids keep their string).
  Status Upsert(const Document& doc);
  // Per-document statuses in `results` (same order); returns the first error, if any.
  Status UpsertBatch(const std::vector<Document>& docs, std::vector<Status>* results);
  Status Delete(const DocKey& key);  // NotFound if absent
  Status UpdateMetadata(const DocKey& key, const Metadata& metadata, bool merge);
  Result<GetResult> Get(const DocKey& key, bool include_embedding) const;
  // `path`, if given, says which tiers answered.
  Result<std::vector<SearchHit>> Search(const SearchRequest& request, SearchPath* path = nullptr) const;
  Result<FlushResult> Flush();
  CollectionStats Stats() const;
  // Live documents, O(1) (Stats() walks the hot tier).
  uint64_t document_count() const;
  // Keys of the documents whose metadata `pred` accepts (a full scan: for batch delete by
  // filter, not for queries).
  std::vector<DocKey> FindKeys(const std::function<bool(const Metadata&)>& pred) const;

  class Impl;

 private:
  friend class Database;
  explicit Collection(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

class Database {
 public:
  static Result<std::unique_ptr<Database>> Open(const DatabaseOptions& options);
  ~Database();

  Result<std::shared_ptr<Collection>> CreateCollection(const std::string& tenant,
                                                       const std::string& name,
                                                       const CollectionOptions& options);
  Result<std::shared_ptr<Collection>> GetCollection(const std::string& tenant,
                                                    const std::string& name) const;
  Status DropCollection(const std::string& tenant, const std::string& name);
  std::vector<CollectionInfo> ListCollections(const std::string& tenant) const;
  // Every tenant's collections (operators' metrics).
  std::vector<CollectionInfo> ListAllCollections() const;
  DatabaseStats Stats() const;

  // Checkpoint now: snapshot every collection (vectors, metadata, ids, HNSW graphs).
  Status Snapshot();
  // Flushes every collection's hot tier.
  Status FlushAll();
  // One round of background work (tests call it instead of waiting for the thread).
  void RunBackgroundOnce();
  // What recovery did at Open, as one line for the log.
  const std::string& recovery_summary() const;
  // Stops background work and syncs the WAL.
  Status Close();

  class Impl;

 private:
  explicit Database(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kyrodb
