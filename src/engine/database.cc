// Database: the catalog of collections, the durable Storage under them, and the background
// task. It is the Storage's StateMachine: every logged record is applied here, live or replayed.
#include "base/clock.h"
#include "kyrodb/database.h"

#include <absl/container/flat_hash_map.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <thread>

#include "base/coding.h"
#include "engine/collection_impl.h"
#include "storage/storage.h"

namespace kyrodb {
namespace {

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
  });
}

Status CheckOptions(const CollectionOptions& o) {
  if (o.dimension < 1 || o.dimension > 65536) {
    return Status::InvalidArgument("dimension must be in 1..65536");
  }
  if (static_cast<int>(o.metric) < 0 || static_cast<int>(o.metric) > 2) {
    return Status::InvalidArgument("metric must be l2, inner_product or cosine");
  }
  if (o.m < 2 || o.m > 128) return Status::InvalidArgument("m must be in 2..128");
  if (o.ef_construction < 1 || o.ef_construction > 10000) {
    return Status::InvalidArgument("ef_construction must be in 1..10000");
  }
  if (o.ef_search < 1 || o.ef_search > 10000) {
    return Status::InvalidArgument("ef_search must be in 1..10000");
  }
  return Status::Ok();
}

storage::CollectionSpec ToSpec(const CollectionOptions& o) {
  storage::CollectionSpec s;
  s.dimension = o.dimension;
  s.metric = static_cast<uint8_t>(o.metric);
  s.m = o.m;
  s.ef_construction = o.ef_construction;
  s.ef_search = o.ef_search;
  return s;
}

CollectionOptions FromSpec(const storage::CollectionSpec& s) {
  CollectionOptions o;
  o.dimension = s.dimension;
  o.metric = static_cast<Metric>(s.metric);
  o.m = s.m;
  o.ef_construction = s.ef_construction;
  o.ef_search = s.ef_search;
  return o;
}

bool SameOptions(const CollectionOptions& a, const CollectionOptions& b) {
  return ToSpec(a) == ToSpec(b);
}

}  // namespace

const char* SearchPathName(SearchPath p) {
  switch (p) {
    case SearchPath::kCacheHit: return "cache_hit";
    case SearchPath::kHotTierOnly: return "hot_tier_only";
    case SearchPath::kColdTierOnly: return "cold_tier_only";
    case SearchPath::kHotAndCold: return "hot_and_cold";
    case SearchPath::kUnknown: break;
  }
  return "unknown";
}

const char* TierName(Tier t) {
  switch (t) {
    case Tier::kCache: return "cache";
    case Tier::kHotTier: return "hot_tier";
    case Tier::kColdTier: return "cold_tier";
  }
  return "unknown";
}

class Database::Impl final : public DatabaseWriter, public storage::StateMachine {
 public:
  explicit Impl(const DatabaseOptions& o) : opt_(o) {}

  Status Open() {
    storage::StorageOptions so;
    so.dir = opt_.data_dir;
    if (opt_.file_system != nullptr) so.fs = opt_.file_system;
    so.fsync_policy = static_cast<storage::FsyncPolicy>(opt_.fsync_policy);
    so.wal_flush_interval_ms = opt_.wal_flush_interval_ms;
    so.wal_segment_bytes = opt_.wal_segment_bytes;
    so.recovery_mode = static_cast<storage::RecoveryMode>(opt_.recovery_mode);
    storage::RecoveryReport report;
    auto st = storage::Storage::Open(so, this, &report);
    if (!st.ok()) return st.status();
    storage_ = std::move(st).value();
    recovery_summary_ = report.ToString();
    last_snapshot_ms_ = NowMs();
    if (opt_.start_background) {
      storage_->Start();
      StartBackground();
    }
    return Status::Ok();
  }

  ~Impl() override { Close().IgnoreError(); }

  // ---- DatabaseWriter ----
  Status Log(const storage::WalRecord& record, Collection::Impl* target) override {
    auto lsn = storage_->Write(record, [&] {
      target->Apply(record);
      return Status::Ok();
    });
    if (!lsn.ok()) return lsn.status();
    mutations_.fetch_add(1, std::memory_order_relaxed);
    return Status::Ok();
  }

  Status LogBatch(const std::vector<const storage::WalRecord*>& records, Collection::Impl* target,
                  size_t* logged) override {
    Status s = storage_->WriteBatch(records, [&](size_t i) { target->Apply(*records[i]); }, logged);
    mutations_.fetch_add(*logged, std::memory_order_relaxed);
    return s;
  }

  // ---- StateMachine ----
  Status Apply(const storage::WalRecord& r) override {
    switch (r.type) {
      case storage::RecordType::kCreateCollection:
        return CreateLocked(r.tenant, r.collection, FromSpec(r.spec)).status();
      case storage::RecordType::kDropCollection: {
        std::unique_lock<std::shared_mutex> l(mu_);
        auto it = collections_.find(Key(r.tenant, r.collection));
        if (it != collections_.end()) {
          it->second->MarkDropped();
          collections_.erase(it);
        }
        return Status::Ok();
      }
      default: {
        auto c = Find(r.tenant, r.collection);
        if (c != nullptr) c->Apply(r);  // a collection dropped later in the log is gone
        return Status::Ok();
      }
    }
  }

  Status SaveSnapshot(storage::SnapshotWriter* w) override {
    std::vector<std::shared_ptr<Collection::Impl>> all;
    {
      std::shared_lock<std::shared_mutex> l(mu_);
      for (const auto& [k, c] : collections_) all.push_back(c);
    }
    std::string catalog;
    coding::PutFixed64(&catalog, all.size());
    for (size_t i = 0; i < all.size(); ++i) {
      std::string prefix = "c";
      prefix += std::to_string(i);
      coding::PutLengthPrefixed(&catalog, prefix);
      coding::PutLengthPrefixed(&catalog, all[i]->tenant());
      coding::PutLengthPrefixed(&catalog, all[i]->name());
      storage::WalRecord spec;
      spec.type = storage::RecordType::kCreateCollection;
      spec.spec = ToSpec(all[i]->options());
      coding::PutLengthPrefixed(&catalog, storage::EncodePayload(spec));
      KYRODB_RETURN_IF_ERROR(all[i]->SaveTo(w, prefix));
    }
    auto f = w->NewFile("catalog");
    if (!f.ok()) return f.status();
    KYRODB_RETURN_IF_ERROR((*f)->Append(catalog.data(), catalog.size()));
    return (*f)->Close();
  }

  Status LoadSnapshot(const storage::SnapshotReader& r) override {
    const std::string path = r.PathOf("catalog");
    auto data = io::ReadFileToString(r.fs(), path);
    if (!data.ok()) return data.status();
    std::string_view in(*data);
    auto bad = [&] { return Status::Corruption(path + ": malformed catalog"); };
    uint64_t n;
    if (!coding::GetFixed64(&in, &n)) return bad();
    decltype(collections_) loaded;
    for (uint64_t i = 0; i < n; ++i) {
      std::string_view prefix, tenant, name, spec_payload;
      if (!coding::GetLengthPrefixed(&in, &prefix) || !coding::GetLengthPrefixed(&in, &tenant) ||
          !coding::GetLengthPrefixed(&in, &name) || !coding::GetLengthPrefixed(&in, &spec_payload)) {
        return bad();
      }
      storage::WalRecord spec;
      KYRODB_RETURN_IF_ERROR(
          storage::DecodePayload(storage::RecordType::kCreateCollection, spec_payload, &spec));
      auto c = Collection::Impl::LoadFrom(r, std::string(prefix), std::string(tenant),
                                          std::string(name), FromSpec(spec.spec),
                                          opt_.max_vectors_per_collection, this, Runtime());
      if (!c.ok()) return c.status();
      loaded[Key(std::string(tenant), std::string(name))] = std::move(c).value();
    }
    if (!in.empty()) return bad();
    std::unique_lock<std::shared_mutex> l(mu_);
    collections_ = std::move(loaded);
    return Status::Ok();
  }

  void Clear() override {
    std::unique_lock<std::shared_mutex> l(mu_);
    collections_.clear();
  }

  CollectionRuntime Runtime() const {
    CollectionRuntime r;
    r.l1.strategy = opt_.cache_learned ? cache::CacheStrategy::kLearned : cache::CacheStrategy::kLru;
    r.l1.max_bytes = opt_.cache_max_bytes;
    r.search_cache_entries = opt_.search_cache_entries;
    return r;
  }

  // ---- catalog ----
  static std::pair<std::string, std::string> Key(const std::string& t, const std::string& n) {
    return {t, n};
  }

  std::shared_ptr<Collection::Impl> Find(const std::string& tenant, const std::string& name) const {
    std::shared_lock<std::shared_mutex> l(mu_);
    auto it = collections_.find(Key(tenant, name));
    return it == collections_.end() ? nullptr : it->second;
  }

  // Creates the in-memory collection (idempotent for the same options).
  Result<std::shared_ptr<Collection::Impl>> CreateLocked(const std::string& tenant,
                                                         const std::string& name,
                                                         const CollectionOptions& o) {
    std::unique_lock<std::shared_mutex> l(mu_);
    auto it = collections_.find(Key(tenant, name));
    if (it != collections_.end()) {
      if (SameOptions(it->second->options(), o)) return it->second;
      return Status::AlreadyExists("collection '" + name + "' exists with other options");
    }
    index::HnswOptions io;
    io.dim = o.dimension;
    io.metric = o.metric;
    io.m = o.m;
    io.ef_construction = o.ef_construction;
    io.ef_search = o.ef_search;
    io.max_elements = opt_.max_vectors_per_collection;
    auto idx = index::HnswIndex::Create(io);
    if (!idx.ok()) return idx.status();
    auto c = std::make_shared<Collection::Impl>(tenant, name, o, std::move(idx).value(), this,
                                                Runtime());
    collections_[Key(tenant, name)] = c;
    return c;
  }

  Result<std::shared_ptr<Collection::Impl>> Create(const std::string& tenant,
                                                   const std::string& name,
                                                   const CollectionOptions& o) {
    if (!ValidName(tenant)) return Status::InvalidArgument("tenant must be 1..128 of [A-Za-z0-9_.-]");
    if (!ValidName(name)) {
      return Status::InvalidArgument("collection name must be 1..128 of [A-Za-z0-9_.-]");
    }
    KYRODB_RETURN_IF_ERROR(CheckOptions(o));
    if (auto existing = Find(tenant, name)) {
      if (SameOptions(existing->options(), o)) {
        return Status::AlreadyExists("collection '" + name + "' already exists");
      }
      return Status::AlreadyExists("collection '" + name + "' exists with other options");
    }
    storage::WalRecord r;
    r.type = storage::RecordType::kCreateCollection;
    r.tenant = tenant;
    r.collection = name;
    r.spec = ToSpec(o);
    Status applied;
    auto lsn = storage_->Write(r, [&] {
      applied = CreateLocked(tenant, name, o).status();
      return applied;
    });
    if (!lsn.ok()) return lsn.status();
    return Find(tenant, name);
  }

  Status Drop(const std::string& tenant, const std::string& name) {
    if (Find(tenant, name) == nullptr) {
      return Status::NotFound("collection '" + name + "' not found");
    }
    storage::WalRecord r;
    r.type = storage::RecordType::kDropCollection;
    r.tenant = tenant;
    r.collection = name;
    auto lsn = storage_->Write(r, [&] { return Apply(r); });
    return lsn.status();
  }

  // Collections of `tenant`, or of every tenant when it is null.
  std::vector<CollectionInfo> List(const std::string* tenant) const {
    std::vector<CollectionInfo> out;
    std::shared_lock<std::shared_mutex> l(mu_);
    for (const auto& [k, c] : collections_) {
      if (tenant != nullptr && k.first != *tenant) continue;
      out.push_back({k.first, k.second, c->options(), c->Stats().documents});
    }
    std::sort(out.begin(), out.end(),
              [](const CollectionInfo& a, const CollectionInfo& b) { return a.name < b.name; });
    return out;
  }

  std::vector<std::shared_ptr<Collection::Impl>> All() const {
    std::vector<std::shared_ptr<Collection::Impl>> all;
    std::shared_lock<std::shared_mutex> l(mu_);
    for (const auto& [k, c] : collections_) all.push_back(c);
    return all;
  }

  Status Snapshot() {
    auto lsn = storage_->Checkpoint();
    if (!lsn.ok()) return lsn.status();
    mutations_at_snapshot_.store(mutations_.load());
    last_snapshot_ms_ = NowMs();
    snapshots_.fetch_add(1, std::memory_order_relaxed);
    return Status::Ok();
  }

  DatabaseStats Stats() const {
    DatabaseStats st;
    if (storage_ == nullptr) return st;
    const storage::WalStats w = storage_->wal().Stats();
    st.writable = storage_->writable();
    st.wal_records = w.records;
    st.wal_bytes = w.bytes;
    st.wal_syncs = w.syncs;
    st.wal_batches = w.batches;
    st.snapshots = snapshots_.load(std::memory_order_relaxed);
    return st;
  }

  Status FlushAll() {
    for (auto& c : All()) {
      auto r = c->Flush();
      if (!r.ok() && r.status().code() != StatusCode::kNotFound) return r.status();
    }
    return Status::Ok();
  }

  // ---- background ----
  void RunBackgroundOnce() {
    if (!opt_.start_background) storage_->Tick();  // otherwise its own thread runs it
    const int64_t now = NowMs();
    for (auto& c : All()) {
      c->MaintainColdTier();
      const int64_t oldest = c->oldest_hot_ms();
      if (c->hot_bytes() > opt_.hot_tier_max_bytes ||
          (oldest != 0 && now - oldest >= static_cast<int64_t>(opt_.hot_tier_flush_interval_ms))) {
        c->Flush().status().IgnoreError();
      }
    }
    if (now - last_training_ms_.load() >= static_cast<int64_t>(opt_.cache_training_interval_ms)) {
      last_training_ms_.store(now);
      for (auto& c : All()) c->l1().TrainNow().IgnoreError();  // failure: LRU fallback
    }
    const uint64_t since = mutations_.load() - mutations_at_snapshot_.load();
    const bool by_count = opt_.snapshot_every_mutations > 0 && since >= opt_.snapshot_every_mutations;
    const bool by_time = since > 0 && now - last_snapshot_ms_ >= static_cast<int64_t>(opt_.snapshot_interval_ms);
    if ((by_count || by_time) && storage_->writable()) Snapshot().IgnoreError();
  }

  void StartBackground() {
    std::lock_guard<std::mutex> l(bg_mu_);
    bg_stop_ = false;
    bg_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(bg_mu_);
      while (!bg_stop_) {
        lock.unlock();
        RunBackgroundOnce();
        lock.lock();
        bg_cv_.wait_for(lock, std::chrono::milliseconds(std::max<uint32_t>(1, opt_.background_tick_ms)),
                        [this] { return bg_stop_; });
      }
    });
  }

  Status Close() {
    {
      std::lock_guard<std::mutex> l(bg_mu_);
      bg_stop_ = true;
    }
    bg_cv_.notify_all();
    if (bg_.joinable()) bg_.join();
    if (storage_ == nullptr) return Status::Ok();
    Status s = storage_->Close();
    return s;
  }

  DatabaseOptions opt_;
  std::unique_ptr<storage::Storage> storage_;
  std::string recovery_summary_;
  mutable std::shared_mutex mu_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<Collection::Impl>> collections_;
  std::atomic<uint64_t> mutations_{0}, mutations_at_snapshot_{0};
  std::atomic<uint64_t> snapshots_{0};
  std::atomic<int64_t> last_snapshot_ms_{0};
  std::atomic<int64_t> last_training_ms_{NowMs()};
  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool bg_stop_ = false;
  std::thread bg_;
};

// ---------------- public wrappers ----------------

Collection::Collection(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Collection::~Collection() = default;
const std::string& Collection::tenant() const { return impl_->tenant(); }
const std::string& Collection::name() const { return impl_->name(); }
const CollectionOptions& Collection::options() const { return impl_->options(); }
Status Collection::Upsert(const Document& doc) { return impl_->Upsert(doc); }
Status Collection::UpsertBatch(const std::vector<Document>& docs, std::vector<Status>* results) {
  std::vector<Status> local;
  return impl_->UpsertBatch(docs, results != nullptr ? results : &local);
}
Status Collection::Delete(const DocKey& key) { return impl_->Delete(key); }
Status Collection::UpdateMetadata(const DocKey& key, const Metadata& metadata, bool merge) {
  return impl_->UpdateMetadata(key, metadata, merge);
}
Result<GetResult> Collection::Get(const DocKey& key, bool include_embedding) const {
  return impl_->Get(key, include_embedding);
}
Result<std::vector<SearchHit>> Collection::Search(const SearchRequest& request,
                                                  SearchPath* path) const {
  return impl_->Search(request, path);
}
Result<FlushResult> Collection::Flush() { return impl_->Flush(); }
CollectionStats Collection::Stats() const { return impl_->Stats(); }
uint64_t Collection::document_count() const { return impl_->document_count(); }
std::vector<DocKey> Collection::FindKeys(const std::function<bool(const Metadata&)>& pred) const {
  return impl_->FindKeys(pred);
}

Database::Database(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Database::~Database() = default;

Result<std::unique_ptr<Database>> Database::Open(const DatabaseOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  KYRODB_RETURN_IF_ERROR(impl->Open());
  return std::unique_ptr<Database>(new Database(std::move(impl)));
}

Result<std::shared_ptr<Collection>> Database::CreateCollection(const std::string& tenant,
                                                               const std::string& name,
                                                               const CollectionOptions& options) {
  auto c = impl_->Create(tenant, name, options);
  if (!c.ok()) return c.status();
  if (*c == nullptr) return Status::NotFound("collection '" + name + "' was dropped concurrently");
  return std::shared_ptr<Collection>(new Collection(std::move(c).value()));
}

Result<std::shared_ptr<Collection>> Database::GetCollection(const std::string& tenant,
                                                            const std::string& name) const {
  auto c = impl_->Find(tenant, name);
  if (c == nullptr) return Status::NotFound("collection '" + name + "' not found");
  return std::shared_ptr<Collection>(new Collection(std::move(c)));
}

Status Database::DropCollection(const std::string& tenant, const std::string& name) {
  return impl_->Drop(tenant, name);
}
std::vector<CollectionInfo> Database::ListCollections(const std::string& tenant) const {
  return impl_->List(&tenant);
}
std::vector<CollectionInfo> Database::ListAllCollections() const { return impl_->List(nullptr); }
DatabaseStats Database::Stats() const { return impl_->Stats(); }
Status Database::Snapshot() { return impl_->Snapshot(); }
Status Database::FlushAll() { return impl_->FlushAll(); }
void Database::RunBackgroundOnce() { impl_->RunBackgroundOnce(); }
const std::string& Database::recovery_summary() const { return impl_->recovery_summary_; }
Status Database::Close() { return impl_->Close(); }

}  // namespace kyrodb
