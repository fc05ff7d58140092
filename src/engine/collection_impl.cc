#include "base/clock.h"
#include "engine/collection_impl.h"

#include <absl/container/flat_hash_set.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "base/coding.h"
#include "distance/distance.h"
#include "index/flat_index.h"

namespace kyrodb {
namespace {

constexpr uint32_t kMaxK = 1000;
constexpr uint32_t kMaxEf = 10000;
constexpr size_t kMaxStringId = 512;

}  // namespace

size_t StoredDoc::Bytes() const {
  size_t b = sizeof(StoredDoc) + external.size() + embedding.size() * sizeof(float) + 64;
  for (const auto& [k, v] : metadata) b += k.size() + v.size() + 64;
  return b;
}

Collection::Impl::Impl(std::string tenant, std::string name, const CollectionOptions& options,
                       std::unique_ptr<index::HnswIndex> cold, DatabaseWriter* db,
                       const CollectionRuntime& runtime)
    : tenant_(std::move(tenant)),
      name_(std::move(name)),
      opt_(options),
      db_(db),
      l1_(std::make_unique<cache::LearnedCache>(runtime.l1)),
      cold_(std::move(cold)),
      search_cache_(runtime.search_cache_entries) {}

Status Collection::Impl::DroppedError() const {
  return Status::NotFound("collection '" + name_ + "' was dropped");
}

Status Collection::Impl::CheckVector(const std::vector<float>& v, const char* what) const {
  if (v.size() != opt_.dimension) {
    return Status::InvalidArgument(std::string(what) + " has dimension " +
                                   std::to_string(v.size()) + ", collection '" + name_ +
                                   "' expects " + std::to_string(opt_.dimension));
  }
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) {
      return Status::InvalidArgument(std::string(what) + " has a non-finite value at index " +
                                     std::to_string(i));
    }
  }
  if (opt_.metric == Metric::kCosine && distance::Dot(v.data(), v.data(), v.size()) == 0) {
    return Status::InvalidArgument(std::string(what) +
                                   " is a zero vector, which has no cosine direction");
  }
  return Status::Ok();
}

Result<uint64_t> Collection::Impl::FindSlow(const DocKey& key) const {
  if (!key.is_string()) return Status::InvalidArgument("numeric doc_id must be in 1..2^63-1");
  std::shared_lock<std::shared_mutex> l(mu_);
  auto it = ext_to_id_.find(key.external);
  if (it == ext_to_id_.end()) return Status::NotFound("document '" + key.external + "' not found");
  return it->second;
}

Result<uint64_t> Collection::Impl::Resolve(const DocKey& key, bool assign) {
  if (!key.is_string() || !assign) return Find(key);
  if (key.external.size() > kMaxStringId) {
    return Status::InvalidArgument("string doc_id longer than 512 bytes");
  }
  std::unique_lock<std::shared_mutex> l(mu_);
  auto [it, inserted] = ext_to_id_.try_emplace(key.external, next_string_id_);
  if (inserted) ++next_string_id_;  // reserved now, so concurrent upserts agree on the id
  return it->second;
}

const StoredDoc* Collection::Impl::FindHotLocked(uint64_t id, bool* tombstone) const {
  *tombstone = false;
  auto it = live_.find(id);
  if (it != live_.end()) {
    *tombstone = it->second.doc == nullptr;
    return it->second.doc.get();
  }
  if (frozen_ != nullptr) {
    auto ft = frozen_->find(id);
    if (ft != frozen_->end()) {
      *tombstone = ft->second.doc == nullptr;
      return ft->second.doc.get();
    }
  }
  return nullptr;
}

// ---- client operations ----

Status Collection::Impl::MakeUpsertRecord(const Document& doc, storage::WalRecord* r) {
  KYRODB_RETURN_IF_ERROR(CheckVector(doc.embedding, "embedding"));
  auto id = Resolve(doc.key, /*assign=*/true);
  if (!id.ok()) return id.status();
  r->type = storage::RecordType::kUpsert;
  r->tenant = tenant_;
  r->collection = name_;
  r->doc_id = *id;
  r->external_id = doc.key.external;
  r->embedding = doc.embedding;
  if (opt_.metric == Metric::kCosine) index::NormalizeInPlace(r->embedding.data(), r->embedding.size());
  r->metadata = doc.metadata;
  return Status::Ok();
}

Status Collection::Impl::Upsert(const Document& doc) {
  KYRODB_RETURN_IF_ERROR(CheckLive());
  storage::WalRecord r;
  KYRODB_RETURN_IF_ERROR(MakeUpsertRecord(doc, &r));
  return db_->Log(r, this);
}

Status Collection::Impl::UpsertBatch(const std::vector<Document>& docs,
                                     std::vector<Status>* results) {
  results->assign(docs.size(), Status::Ok());
  KYRODB_RETURN_IF_ERROR(CheckLive());
  // Chunks bound the memory of encoded records; each chunk is one group commit (or a few).
  constexpr size_t kChunk = 1024;
  Status first;
  for (size_t begin = 0; begin < docs.size(); begin += kChunk) {
    const size_t end = std::min(docs.size(), begin + kChunk);
    std::vector<storage::WalRecord> records;
    std::vector<size_t> index;  // records[j] is docs[index[j]]
    records.reserve(end - begin);
    for (size_t i = begin; i < end; ++i) {
      storage::WalRecord r;
      Status s = MakeUpsertRecord(docs[i], &r);
      if (!s.ok()) {
        if (first.ok()) first = s;
        (*results)[i] = std::move(s);
        continue;
      }
      records.push_back(std::move(r));
      index.push_back(i);
    }
    std::vector<const storage::WalRecord*> ptrs;
    ptrs.reserve(records.size());
    for (const auto& r : records) ptrs.push_back(&r);
    size_t logged = 0;
    Status s = db_->LogBatch(ptrs, this, &logged);
    if (!s.ok()) {
      for (size_t j = logged; j < index.size(); ++j) (*results)[index[j]] = s;
      if (first.ok()) first = s;
    }
  }
  return first;
}

Status Collection::Impl::Delete(const DocKey& key) {
  KYRODB_RETURN_IF_ERROR(CheckLive());
  auto id = Find(key);
  if (!id.ok()) return id.status();
  {
    std::shared_lock<std::shared_mutex> l(mu_);
    bool tomb;
    const StoredDoc* hot = FindHotLocked(*id, &tomb);
    if (hot == nullptr && (tomb || !cold_meta_.contains(*id))) {
      return Status::NotFound("document " + (key.is_string() ? "'" + key.external + "'"
                                                             : std::to_string(key.id)) +
                              " not found");
    }
  }
  storage::WalRecord r;
  r.type = storage::RecordType::kDelete;
  r.tenant = tenant_;
  r.collection = name_;
  r.doc_id = *id;
  return db_->Log(r, this);
}

Status Collection::Impl::UpdateMetadata(const DocKey& key, const Metadata& metadata, bool merge) {
  KYRODB_RETURN_IF_ERROR(CheckLive());
  auto got = Get(key, false);  // NotFound if absent
  if (!got.ok()) return got.status();
  auto id = Find(key);
  if (!id.ok()) return id.status();
  storage::WalRecord r;
  r.type = storage::RecordType::kUpdateMetadata;
  r.tenant = tenant_;
  r.collection = name_;
  r.doc_id = *id;
  r.metadata = metadata;
  r.merge_metadata = merge;
  return db_->Log(r, this);
}

Result<GetResult> Collection::Impl::Get(const DocKey& key, bool include_embedding) const {
  // One named result, built in place in the caller's frame: the GetResult is never moved.
  Result<GetResult> result(std::in_place);
  if (Status st = GetInto(key, include_embedding, &*result); !st.ok()) result = std::move(st);
  return result;
}

Status Collection::Impl::GetInto(const DocKey& key, bool include_embedding, GetResult* out) const {
  KYRODB_RETURN_IF_ERROR(CheckLive());
  auto found = Find(key);
  if (!found.ok()) return found.status();
  const uint64_t id = *found;
  out->key.id = key.id;
  if (key.is_string()) out->key.external = key.external;
  // L1: every read is logged there; a hit costs a hash probe and copies what was asked for.
  if (l1_->Read(id, &out->metadata, include_embedding ? &out->embedding : nullptr)) {
    out->served_from = Tier::kCache;
    return Status::Ok();
  }
  // Taken before reading the tiers: a write that lands meanwhile makes the fill below a no-op.
  const uint64_t ticket = l1_->FillTicket(id);
  auto doc = std::make_shared<cache::CachedDoc>();
  {
    std::shared_lock<std::shared_mutex> l(mu_);
    bool tomb;
    if (const StoredDoc* d = FindHotLocked(id, &tomb)) {
      doc->embedding = d->embedding;
      doc->metadata = d->metadata;
      out->served_from = Tier::kHotTier;
    } else {
      auto it = tomb ? cold_meta_.end() : cold_meta_.find(id);
      if (it == cold_meta_.end()) {
        return Status::NotFound("document " +
                                (key.is_string() ? "'" + key.external + "'" : std::to_string(key.id)) +
                                " not found");
      }
      doc->metadata = it->second.metadata;
      doc->embedding.resize(opt_.dimension);
      if (!cold_->GetVector(id, doc->embedding.data()).ok()) {
        return Status::NotFound("document " + std::to_string(id) + " not found");
      }
      out->served_from = Tier::kColdTier;
    }
  }
  out->metadata = doc->metadata;
  if (include_embedding) out->embedding = doc->embedding;
  l1_->Fill(id, std::move(doc), ticket);
  return Status::Ok();
}

float Collection::Impl::Score(float d) const {
  // L2: 1 / (1 + squared distance), the KyroDB v1 convention (in (0, 1], higher is closer).
  return opt_.metric == Metric::kL2 ? 1.0f / (1.0f + d) : 1.0f - d;
}

Result<std::vector<SearchHit>> Collection::Impl::Search(const SearchRequest& req,
                                                        SearchPath* path) const {
  KYRODB_RETURN_IF_ERROR(CheckLive());
  KYRODB_RETURN_IF_ERROR(CheckVector(req.query, "query_embedding"));
  if (req.k < 1 || req.k > kMaxK) return Status::InvalidArgument("k must be in 1..1000");
  if (req.ef > kMaxEf) return Status::InvalidArgument("ef_search must be at most 10000");
  if (!req.use_result_cache || req.filter || !search_cache_.enabled()) return SearchUncached(req, path);
  const uint64_t generation = generation_.load(std::memory_order_acquire);
  const uint64_t hash = SearchCache::HashOf(req);
  bool admit = false;
  if (auto cached = search_cache_.Lookup(req, hash, generation, &admit)) {
    if (path != nullptr) *path = SearchPath::kCacheHit;
    return std::move(*cached);
  }
  auto result = SearchUncached(req, path);
  if (result.ok() && admit) search_cache_.Insert(req, hash, generation, *result);
  return result;
}

Result<std::vector<SearchHit>> Collection::Impl::SearchUncached(const SearchRequest& req,
                                                                SearchPath* path) const {
  std::vector<float> q = req.query;
  if (opt_.metric == Metric::kCosine) index::NormalizeInPlace(q.data(), q.size());
  const size_t k = req.k;
  const size_t dim = opt_.dimension;

  struct Cand {
    float distance;
    uint64_t id;
    std::shared_ptr<const StoredDoc> hot;  // null: cold
  };
  std::vector<Cand> cands;
  size_t frozen_size = 0;
  size_t hot_seen = 0;
  {
    // Exact scan of the hot tier (live, then frozen entries that live does not shadow).
    std::shared_lock<std::shared_mutex> l(mu_);
    auto consider = [&](uint64_t id, const std::shared_ptr<const StoredDoc>& d) {
      ++hot_seen;
      if (req.filter && !req.filter(d->metadata)) return;
      float dist = opt_.metric == Metric::kL2 ? distance::L2Sq(q.data(), d->embedding.data(), dim)
                                              : 1.0f - distance::Dot(q.data(), d->embedding.data(), dim);
      cands.push_back({dist, id, d});
    };
    for (const auto& [id, e] : live_) {
      if (e.doc != nullptr) consider(id, e.doc);
    }
    if (frozen_ != nullptr) {
      frozen_size = frozen_->size();
      for (const auto& [id, e] : *frozen_) {
        if (e.doc != nullptr && !live_.contains(id)) consider(id, e.doc);
      }
    }
  }
  // The cold tier; during a flush some of its hits are frozen documents already scanned above,
  // so ask for a few more.
  std::vector<index::SearchHit> cold_hits;
  size_t cold_k = k + std::min(frozen_size, k);
  uint32_t ef = req.ef;
  if (req.filter) {
    // Widen the walk so that enough candidates survive the filter.
    cold_k = std::max<size_t>(cold_k * 10, 100);
    ef = std::max<uint32_t>(ef == 0 ? opt_.ef_search : ef, static_cast<uint32_t>(cold_k));
  }
  const bool cold_empty = cold_->Size() == 0;
  if (!cold_empty) KYRODB_RETURN_IF_ERROR(cold_->Search(q.data(), cold_k, ef, &cold_hits));
  {
    std::shared_lock<std::shared_mutex> l(mu_);
    for (const auto& h : cold_hits) {
      bool shadowed = live_.contains(h.label) || (frozen_ != nullptr && frozen_->contains(h.label));
      if (shadowed) continue;
      if (req.filter) {
        auto it = cold_meta_.find(h.label);
        if (it == cold_meta_.end() || !req.filter(it->second.metadata)) continue;
      }
      cands.push_back({h.distance, h.label, nullptr});
    }
  }
  if (path != nullptr) {
    *path = hot_seen == 0 ? SearchPath::kColdTierOnly
            : cold_empty  ? SearchPath::kHotTierOnly
                          : SearchPath::kHotAndCold;
  }
  // An id can appear twice: a frozen document scanned above whose flush finished (frozen_
  // dropped) before the cold search found it there. Both are the same version; keep one.
  std::sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) {
    return a.distance < b.distance || (a.distance == b.distance && a.id < b.id);
  });
  std::vector<SearchHit> out;
  // Only a search that saw a frozen tier can meet an id twice; the others skip the set.
  absl::flat_hash_set<uint64_t> seen;
  std::shared_lock<std::shared_mutex> l(mu_);
  for (const Cand& c : cands) {
    if (out.size() >= k) break;
    if (frozen_size > 0 && !seen.insert(c.id).second) continue;
    const float score = Score(c.distance);
    if (req.has_min_score && score < req.min_score) break;  // sorted: the rest score lower
    SearchHit hit;
    hit.distance = c.distance;
    hit.score = score;
    if (c.hot != nullptr) {
      hit.key = c.hot->external.empty() ? DocKey::Numeric(c.id) : DocKey::String(c.hot->external);
      hit.key.id = c.id;
      if (req.include_metadata) hit.metadata = c.hot->metadata;
      if (req.include_embeddings) hit.embedding = c.hot->embedding;
    } else {
      auto it = cold_meta_.find(c.id);
      if (it == cold_meta_.end()) continue;  // deleted since the cold search
      hit.key = it->second.external.empty() ? DocKey::Numeric(c.id) : DocKey::String(it->second.external);
      hit.key.id = c.id;
      if (req.include_metadata) hit.metadata = it->second.metadata;
      if (req.include_embeddings) {
        hit.embedding.resize(dim);
        if (!cold_->GetVector(c.id, hit.embedding.data()).ok()) continue;
      }
    }
    out.push_back(std::move(hit));
  }
  return out;
}

// ---- applying logged records ----

void Collection::Impl::Apply(const storage::WalRecord& r) {
  const int64_t now = NowMs();
  std::unique_lock<std::shared_mutex> l(mu_);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  l1_->Invalidate(r.doc_id);
  const uint64_t id = r.doc_id;
  auto drop_cold = [&] {
    cold_meta_.erase(id);
    if (cold_->Contains(id)) cold_->Remove(id).IgnoreError();
  };
  // Whether `id` is a live document before this record (for the document count).
  auto exists = [&] {
    bool tomb;
    return FindHotLocked(id, &tomb) != nullptr || (!tomb && cold_meta_.contains(id));
  };
  switch (r.type) {
    case storage::RecordType::kUpsert: {
      if (!exists()) live_docs_.fetch_add(1, std::memory_order_relaxed);
      auto doc = std::make_shared<StoredDoc>();
      doc->id = id;
      doc->external = r.external_id;
      doc->embedding = r.embedding;
      doc->metadata = r.metadata;
      if (!r.external_id.empty()) {
        ext_to_id_[r.external_id] = id;
        next_string_id_ = std::max(next_string_id_, id + 1);
      }
      auto it = live_.find(id);
      if (it != live_.end() && it->second.doc != nullptr) {
        hot_bytes_.fetch_sub(it->second.doc->Bytes());
      }
      hot_bytes_.fetch_add(doc->Bytes());
      PutLiveLocked(id, HotEntry{std::move(doc), it != live_.end() ? it->second.born_ms : now});
      drop_cold();
      break;
    }
    case storage::RecordType::kDelete: {
      if (exists()) live_docs_.fetch_sub(1, std::memory_order_relaxed);
      bool tomb;
      const StoredDoc* cur = FindHotLocked(id, &tomb);
      std::string external = cur != nullptr ? cur->external : std::string();
      if (cur == nullptr) {
        auto cm = cold_meta_.find(id);
        if (cm != cold_meta_.end()) external = cm->second.external;
      }
      if (!external.empty()) ext_to_id_.erase(external);
      auto it = live_.find(id);
      if (it != live_.end()) {
        if (it->second.doc != nullptr) hot_bytes_.fetch_sub(it->second.doc->Bytes());
        live_.erase(it);
        LiveShrankLocked();
      }
      // A tombstone is needed only to hide a version that is being flushed.
      if (frozen_ != nullptr && frozen_->contains(id)) PutLiveLocked(id, HotEntry{nullptr, now});
      drop_cold();
      break;
    }
    case storage::RecordType::kUpdateMetadata: {
      auto apply = [&](Metadata* md) {
        if (!r.merge_metadata) {
          *md = r.metadata;
          return;
        }
        for (const auto& [key, value] : r.metadata) {
          auto kv = std::find_if(md->begin(), md->end(), [&](const auto& p) { return p.first == key; });
          if (kv != md->end()) kv->second = value; else md->emplace_back(key, value);
        }
      };
      bool tomb;
      if (const StoredDoc* cur = FindHotLocked(id, &tomb)) {
        auto doc = std::make_shared<StoredDoc>(*cur);
        apply(&doc->metadata);
        auto it = live_.find(id);
        if (it != live_.end() && it->second.doc != nullptr) hot_bytes_.fetch_sub(it->second.doc->Bytes());
        hot_bytes_.fetch_add(doc->Bytes());
        PutLiveLocked(id, HotEntry{std::move(doc), it != live_.end() ? it->second.born_ms : now});
      } else if (!tomb) {
        auto cm = cold_meta_.find(id);
        if (cm != cold_meta_.end()) apply(&cm->second.metadata);
      }
      break;
    }
    case storage::RecordType::kCreateCollection:
    case storage::RecordType::kDropCollection:
      break;  // the Database handles these
  }
}

// ---- flush ----

Result<FlushResult> Collection::Impl::Flush() {
  KYRODB_RETURN_IF_ERROR(CheckLive());
  std::lock_guard<std::mutex> fl(flush_mu_);
  const auto t0 = std::chrono::steady_clock::now();
  std::shared_ptr<const HotMap> frozen;
  {
    std::unique_lock<std::shared_mutex> l(mu_);
    if (live_.empty()) return FlushResult{};
    frozen_ = std::make_shared<const HotMap>(std::move(live_));
    live_.clear();
    LiveShrankLocked();
    hot_bytes_.store(0);
    frozen = frozen_;
  }
  // Metadata first (readers of the cold tier need it), then the vectors, without mu_.
  std::vector<uint64_t> ids;
  std::vector<float> vectors;
  {
    std::unique_lock<std::shared_mutex> l(mu_);
    for (const auto& [id, e] : *frozen) {
      if (e.doc == nullptr || live_.contains(id)) continue;  // deleted or replaced meanwhile
      cold_meta_[id] = ColdMeta{e.doc->external, e.doc->metadata};
      ids.push_back(id);
    }
  }
  vectors.reserve(ids.size() * opt_.dimension);
  for (uint64_t id : ids) {
    const auto& d = frozen->at(id).doc;
    vectors.insert(vectors.end(), d->embedding.begin(), d->embedding.end());
  }
  Status s = cold_->AddBatch(ids, vectors.data());
  {
    std::unique_lock<std::shared_mutex> l(mu_);
    // Documents that were replaced or deleted while they were being inserted.
    for (uint64_t id : ids) {
      if (live_.contains(id)) {
        // The write above this one may have found nothing to remove yet: remove it now.
        cold_meta_.erase(id);
        cold_->Remove(id).IgnoreError();
      }
    }
    // Tombstones only hid frozen versions; those are gone now.
    for (auto it = live_.begin(); it != live_.end();) {
      if (it->second.doc == nullptr) it = live_.erase(it); else ++it;
    }
    LiveShrankLocked();
    frozen_.reset();
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  if (!s.ok()) return s;
  flushes_.fetch_add(1);
  FlushResult r;
  r.docs_flushed = ids.size();
  r.duration_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

void Collection::Impl::MaintainColdTier() {
  index::HnswStats st = cold_->Stats();
  if (st.deleted >= 64 && st.deleted * 10 >= st.slots) cold_->Consolidate();
}

CollectionStats Collection::Impl::Stats() const {
  CollectionStats st;
  std::shared_lock<std::shared_mutex> l(mu_);
  for (const auto& [id, e] : live_) st.hot_documents += e.doc != nullptr;
  if (frozen_ != nullptr) {
    for (const auto& [id, e] : *frozen_) st.hot_documents += e.doc != nullptr && !live_.contains(id);
  }
  st.cold_documents = cold_meta_.size();
  st.documents = st.hot_documents + st.cold_documents;
  st.hot_bytes = hot_bytes_.load();
  st.flushes = flushes_.load();
  st.memory_bytes = st.hot_bytes + cold_->Stats().memory_bytes;
  st.search_cache_hits = search_cache_.hits();
  st.search_cache_misses = search_cache_.misses();
  const cache::CacheStats cs = l1_->Stats();
  st.cache_hits = cs.hits;
  st.cache_misses = cs.misses;
  st.cache_entries = cs.entries;
  st.cache_bytes = cs.used_bytes + cs.model_bytes;
  st.cache_trainings = cs.trainings;
  st.cache_training_failures = cs.training_failures;
  st.cache_mode = cache::CacheModeName(cs.mode);
  return st;
}

std::vector<DocKey> Collection::Impl::FindKeys(
    const std::function<bool(const Metadata&)>& pred) const {
  std::vector<DocKey> out;
  auto add = [&](uint64_t id, const std::string& external, const Metadata& md) {
    if (!pred(md)) return;
    DocKey k = external.empty() ? DocKey::Numeric(id) : DocKey::String(external);
    k.id = id;
    out.push_back(std::move(k));
  };
  std::shared_lock<std::shared_mutex> l(mu_);
  for (const auto& [id, e] : live_) {
    if (e.doc != nullptr) add(id, e.doc->external, e.doc->metadata);
  }
  if (frozen_ != nullptr) {
    for (const auto& [id, e] : *frozen_) {
      if (e.doc != nullptr && !live_.contains(id)) add(id, e.doc->external, e.doc->metadata);
    }
  }
  for (const auto& [id, m] : cold_meta_) {
    if (live_.contains(id) || (frozen_ != nullptr && frozen_->contains(id))) continue;
    add(id, m.external, m.metadata);
  }
  return out;
}

// ---- snapshot ----

namespace {
void PutDoc(std::string* out, uint64_t id, const std::string& external, const Metadata& md,
            const std::vector<float>* embedding) {
  coding::PutFixed64(out, id);
  coding::PutLengthPrefixed(out, external);
  coding::PutVarint64(out, md.size());
  for (const auto& [k, v] : md) {
    coding::PutLengthPrefixed(out, k);
    coding::PutLengthPrefixed(out, v);
  }
  if (embedding != nullptr) {
    out->append(reinterpret_cast<const char*>(embedding->data()), embedding->size() * 4);
  }
}

bool GetDoc(std::string_view* in, size_t dim, bool with_embedding, StoredDoc* d) {
  std::string_view ext;
  uint64_t n;
  if (!coding::GetFixed64(in, &d->id) || !coding::GetLengthPrefixed(in, &ext) ||
      !coding::GetVarint64(in, &n) || n > in->size()) {
    return false;
  }
  d->external.assign(ext.data(), ext.size());
  d->metadata.clear();
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view k, v;
    if (!coding::GetLengthPrefixed(in, &k) || !coding::GetLengthPrefixed(in, &v)) return false;
    d->metadata.emplace_back(std::string(k), std::string(v));
  }
  if (with_embedding) {
    if (in->size() < dim * 4) return false;
    d->embedding.resize(dim);
    std::memcpy(d->embedding.data(), in->data(), dim * 4);
    in->remove_prefix(dim * 4);
  }
  return true;
}
}  // namespace

Status Collection::Impl::SaveTo(storage::SnapshotWriter* w, const std::string& prefix) {
  std::lock_guard<std::mutex> fl(flush_mu_);  // no flush moves documents meanwhile
  auto hnsw_path = w->PathFor(prefix + ".hnsw");
  if (!hnsw_path.ok()) return hnsw_path.status();
  std::string out;
  {
    std::shared_lock<std::shared_mutex> l(mu_);
    coding::PutFixed64(&out, next_string_id_);
    coding::PutFixed64(&out, live_.size());
    for (const auto& [id, e] : live_) {
      if (e.doc == nullptr) {
        PutDoc(&out, id, {}, {}, nullptr);
        out.push_back(0);
      } else {
        PutDoc(&out, id, e.doc->external, e.doc->metadata, nullptr);
        out.push_back(1);
        out.append(reinterpret_cast<const char*>(e.doc->embedding.data()),
                   e.doc->embedding.size() * 4);
      }
    }
    coding::PutFixed64(&out, cold_meta_.size());
    for (const auto& [id, m] : cold_meta_) PutDoc(&out, id, m.external, m.metadata, nullptr);
  }
  KYRODB_RETURN_IF_ERROR(cold_->Save(*hnsw_path, w->fs()));
  auto f = w->NewFile(prefix + ".docs");
  if (!f.ok()) return f.status();
  KYRODB_RETURN_IF_ERROR((*f)->Append(out.data(), out.size()));
  return (*f)->Close();
}

Result<std::shared_ptr<Collection::Impl>> Collection::Impl::LoadFrom(
    const storage::SnapshotReader& r, const std::string& prefix, std::string tenant,
    std::string name, const CollectionOptions& options, uint32_t max_vectors,
    DatabaseWriter* db, const CollectionRuntime& runtime) {
  auto cold = index::HnswIndex::Load(r.PathOf(prefix + ".hnsw"), r.fs(), max_vectors);
  if (!cold.ok()) return cold.status();
  const std::string path = r.PathOf(prefix + ".docs");
  auto file = io::ReadFileToString(r.fs(), path);
  if (!file.ok()) return file.status();
  const std::string& data = *file;
  auto impl = std::make_shared<Impl>(std::move(tenant), std::move(name), options,
                                     std::move(cold).value(), db, runtime);
  auto bad = [&] { return Status::Corruption(path + ": malformed collection documents"); };
  std::string_view in(data);
  uint64_t n;
  if (!coding::GetFixed64(&in, &impl->next_string_id_) || !coding::GetFixed64(&in, &n)) return bad();
  const int64_t now = NowMs();
  for (uint64_t i = 0; i < n; ++i) {
    auto d = std::make_shared<StoredDoc>();
    if (!GetDoc(&in, options.dimension, false, d.get()) || in.empty()) return bad();
    const bool has_doc = in[0] != 0;
    in.remove_prefix(1);
    if (!has_doc) continue;  // tombstones hid frozen versions; nothing frozen survives a restart
    if (in.size() < options.dimension * 4u) return bad();
    d->embedding.resize(options.dimension);
    std::memcpy(d->embedding.data(), in.data(), options.dimension * 4u);
    in.remove_prefix(options.dimension * 4u);
    if (!d->external.empty()) impl->ext_to_id_[d->external] = d->id;
    impl->hot_bytes_.fetch_add(d->Bytes());
    const uint64_t id = d->id;
    impl->PutLiveLocked(id, HotEntry{std::move(d), now});
  }
  if (!coding::GetFixed64(&in, &n)) return bad();
  for (uint64_t i = 0; i < n; ++i) {
    StoredDoc d;
    if (!GetDoc(&in, options.dimension, false, &d)) return bad();
    // A document removed from the index after its metadata was copied is not in the cold tier.
    if (!impl->cold_->Contains(d.id)) continue;
    if (!d.external.empty()) impl->ext_to_id_[d.external] = d.id;
    impl->cold_meta_[d.id] = ColdMeta{std::move(d.external), std::move(d.metadata)};
  }
  if (!in.empty()) return bad();
  uint64_t live = 0;
  for (const auto& [id, e] : impl->live_) live += e.doc != nullptr;
  for (const auto& [id, m] : impl->cold_meta_) live += !impl->live_.contains(id);
  impl->live_docs_.store(live);
  return impl;
}

}  // namespace kyrodb
