// HNSW index: how it works.
//
// Node storage (one slot per node, all reserved up front as address space):
//   level0_  : per slot, 64-byte aligned block
//              [code: code_bytes][bias: f32][count: u32][links: 2M x u32][pad]
//              The code is the 8-bit quantized vector (absent when quantization is off), so a
//              node's code and its level-0 links share cache lines.
//   vectors_ : per slot, the float vector padded to 16 floats (exact distances, re-ranking)
//   labels_, levels_, flags_, upper_ : per-slot label, top level, state bits, and a heap
//              block of upper-level links [count, M links] x level.
// Links are written under the node's (striped) lock and read without locks through
// std::atomic_ref with acquire/release, which is what orders a new node's data before its id.
#include "index/hnsw_index.h"

#include <absl/container/flat_hash_map.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "base/check.h"
#include "base/crc32c.h"
#include "base/grace_period.h"
#include "base/virtual_array.h"
#include "distance/distance.h"
#include "index/flat_index.h"
#include "index/hnsw_format.h"
#include "index/scalar_quantizer.h"

namespace kyrodb::index {
namespace {

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
constexpr uint64_t kNoEntry = std::numeric_limits<uint64_t>::max();
constexpr uint8_t kFlagDeleted = 1;
constexpr uint8_t kFlagFree = 2;
constexpr size_t kLockStripes = 4096;
constexpr size_t kLabelShards = 64;
constexpr uint32_t kExpanded = 0x80000000u;
constexpr size_t kMaxSlots = 0x7fffffffu;

inline uint32_t LoadAcq(const uint32_t* p) {
  return std::atomic_ref<uint32_t>(*const_cast<uint32_t*>(p)).load(std::memory_order_acquire);
}
inline void StoreRel(uint32_t* p, uint32_t v) {
  std::atomic_ref<uint32_t>(*p).store(v, std::memory_order_release);
}

inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline void Prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }

struct Candidate {
  float dist;
  uint32_t id;
};

// The search frontier and result set in one sorted array of at most `cap` entries (closest
// first). Entries carry an "expanded" bit; `cursor` is the first unexpanded entry.
class Pool {
 public:
  void Reset(size_t cap) {
    cap_ = cap;
    size_ = 0;
    cursor_ = 0;
    if (items_.size() < cap + 1) items_.resize(cap + 1);
  }
  bool Full() const { return size_ == cap_; }
  float Worst() const { return items_[size_ - 1].dist; }
  size_t size() const { return size_; }
  const Candidate& operator[](size_t i) const { return items_[i]; }
  uint32_t IdAt(size_t i) const { return items_[i].id & ~kExpanded; }

  void Insert(float dist, uint32_t id) {
    if (size_ == cap_ && dist >= items_[size_ - 1].dist) return;
    size_t lo = 0, hi = size_;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (items_[mid].dist <= dist) lo = mid + 1; else hi = mid;
    }
    size_t n_move = (size_ == cap_ ? size_ - 1 : size_) - lo;
    std::memmove(&items_[lo + 1], &items_[lo], n_move * sizeof(Candidate));
    items_[lo] = {dist, id};
    if (size_ < cap_) ++size_;
    if (lo < cursor_) cursor_ = lo;
  }
  bool HasNext() const { return cursor_ < size_; }
  uint32_t PopNext() {
    uint32_t id = items_[cursor_].id;
    items_[cursor_].id |= kExpanded;
    ++cursor_;
    while (cursor_ < size_ && (items_[cursor_].id & kExpanded)) ++cursor_;
    return id;
  }
  uint32_t PeekNext() const { return cursor_ < size_ ? items_[cursor_].id : kNone; }

 private:
  std::vector<Candidate> items_;
  size_t cap_ = 0, size_ = 0, cursor_ = 0;
};

// Per-thread epoch-tagged visited set; grows with the index, cleared only on tag wrap-around.
class Visited {
 public:
  void Begin(size_t slots) {
    if (slots > cap_) {
      size_t cap = std::max<size_t>(slots * 2, 1024);
      tags_.reset(new uint16_t[cap]());
      cap_ = cap;
      epoch_ = 0;
    }
    if (++epoch_ == 0) {
      std::memset(tags_.get(), 0, cap_ * sizeof(uint16_t));
      epoch_ = 1;
    }
  }
  // True the first time `id` is seen in this search. Ids beyond the table (nodes born after
  // the search began) count as seen.
  bool Visit(uint32_t id) {
    if (id >= cap_ || tags_[id] == epoch_) return false;
    tags_[id] = epoch_;
    return true;
  }

 private:
  std::unique_ptr<uint16_t[]> tags_;
  size_t cap_ = 0;
  uint16_t epoch_ = 0;
};

struct Scratch {
  Pool pool;
  Visited visited;
  std::vector<float> query;
  std::vector<int8_t, std::allocator<int8_t>> qcode;
  std::vector<uint32_t> ids;
};

Scratch& ThreadScratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace

class HnswIndex::Impl {
 public:
  explicit Impl(const HnswOptions& o) : opt_(o), k_(distance::Active()) {
    dim_ = o.dim;
    vec_stride_ = (dim_ + 15) / 16 * 16;
    code_bytes_ = o.quantize ? ScalarQuantizer::CodeBytes(dim_) : 0;
    bias_off_ = code_bytes_;
    links0_off_ = code_bytes_ + 4;
    max_m0_ = 2 * o.m;
    max_m_ = o.m;
    stride0_ = (links0_off_ + 4 * (1 + max_m0_) + 63) / 64 * 64;
    upper_stride_ = 1 + max_m_;
    ml_ = 1.0 / std::log(std::max<double>(2.0, o.m));
  }

  Status Init() {
    const size_t cap = opt_.max_elements;
    auto r0 = VirtualRegion::Reserve(cap * stride0_);
    auto rv = VirtualRegion::Reserve(cap * vec_stride_ * sizeof(float));
    auto rl = VirtualRegion::Reserve(cap * sizeof(uint64_t));
    auto rlev = VirtualRegion::Reserve(cap);
    auto rf = VirtualRegion::Reserve(cap);
    auto ru = VirtualRegion::Reserve(cap * sizeof(uint32_t*));
    for (auto* r : {&r0, &rv, &rl, &rlev, &rf, &ru}) {
      if (!r->ok()) return r->status();
    }
    level0_ = std::move(r0).value();
    vectors_ = std::move(rv).value();
    labels_ = std::move(rl).value();
    levels_ = std::move(rlev).value();
    flags_ = std::move(rf).value();
    upper_ = std::move(ru).value();
    return Status::Ok();
  }

  ~Impl() {
    const uint32_t n = num_slots_.load();
    for (uint32_t i = 0; i < n; ++i) delete[] UpperPtr(i);
  }

  // ---- slot accessors ----
  char* Block(uint32_t id) const { return level0_.data() + static_cast<size_t>(id) * stride0_; }
  const uint8_t* Code(uint32_t id) const { return reinterpret_cast<const uint8_t*>(Block(id)); }
  float Bias(uint32_t id) const {
    float b;
    std::memcpy(&b, Block(id) + bias_off_, 4);
    return b;
  }
  uint32_t* Links0(uint32_t id) const {
    return reinterpret_cast<uint32_t*>(Block(id) + links0_off_);
  }
  uint32_t*& UpperPtr(uint32_t id) const {
    return reinterpret_cast<uint32_t**>(upper_.data())[id];
  }
  uint32_t* Links(uint32_t id, int level) const {
    return level == 0 ? Links0(id) : UpperPtr(id) + static_cast<size_t>(level - 1) * upper_stride_;
  }
  float* Vec(uint32_t id) const {
    return reinterpret_cast<float*>(vectors_.data()) + static_cast<size_t>(id) * vec_stride_;
  }
  uint64_t& Label(uint32_t id) const { return reinterpret_cast<uint64_t*>(labels_.data())[id]; }
  uint8_t& LevelOf(uint32_t id) const { return reinterpret_cast<uint8_t*>(levels_.data())[id]; }
  std::atomic_ref<uint8_t> Flags(uint32_t id) const {
    return std::atomic_ref<uint8_t>(reinterpret_cast<uint8_t*>(flags_.data())[id]);
  }
  bool IsDeleted(uint32_t id) const { return Flags(id).load(std::memory_order_relaxed) != 0; }
  std::mutex& NodeLock(uint32_t id) const { return node_locks_[id % kLockStripes]; }
  uint32_t MaxLinks(int level) const { return level == 0 ? max_m0_ : max_m_; }

  float ExactDist(const float* a, const float* b) const {
    return opt_.metric == Metric::kL2 ? k_.l2sq(a, b, dim_) : 1.0f - k_.dot(a, b, dim_);
  }

  // ---- distance oracles used by the graph walk ----
  struct FloatOracle {
    const Impl* ix;
    const float* q;
    float operator()(uint32_t id) const { return ix->ExactDist(q, ix->Vec(id)); }
    void Prefetch(uint32_t id) const {
      const char* p = reinterpret_cast<const char*>(ix->Vec(id));
      size_t bytes = std::min<size_t>(ix->dim_ * 4, 1024);
      for (size_t off = 0; off < bytes; off += 64) kyrodb::index::Prefetch(p + off);
    }
  };
  struct CodeOracle {
    const Impl* ix;
    const int8_t* q8;
    float qconst, factor;
    distance::CodeKernel dot;
    float operator()(uint32_t id) const {
      return qconst + ix->Bias(id) -
             factor * static_cast<float>(dot(ix->Code(id), q8, ix->code_bytes_));
    }
    void Prefetch(uint32_t id) const {
      const char* p = ix->Block(id);
      size_t bytes = std::min<size_t>(ix->code_bytes_ + 4, 1024);
      for (size_t off = 0; off < bytes; off += 64) kyrodb::index::Prefetch(p + off);
    }
  };

  template <typename Oracle>
  uint32_t Greedy(const Oracle& dist, uint32_t cur, float* cur_d, int from_level,
                  int to_level) const {
    for (int level = from_level; level > to_level; --level) {
      bool changed = true;
      while (changed) {
        changed = false;
        const uint32_t* links = Links(cur, level);
        uint32_t cnt = LoadAcq(links);
        for (uint32_t j = 1; j <= cnt; ++j) {
          uint32_t n = LoadAcq(links + j);
          float d = dist(n);
          if (d < *cur_d) {
            *cur_d = d;
            cur = n;
            changed = true;
          }
        }
      }
    }
    return cur;
  }

  // Beam search on one level from `ep`; leaves the ef closest nodes in `pool`.
  template <typename Oracle>
  void SearchLevel(const Oracle& dist, uint32_t ep, float ep_d, int level, size_t ef,
                   Scratch& s) const {
    s.pool.Reset(ef);
    s.visited.Begin(num_slots_.load(std::memory_order_acquire));
    s.visited.Visit(ep);
    s.pool.Insert(ep_d, ep);
    if (s.ids.size() < max_m0_) s.ids.resize(max_m0_);
    uint32_t* ids = s.ids.data();
    constexpr size_t kAhead = 3;
    while (s.pool.HasNext()) {
      uint32_t c = s.pool.PopNext();
      uint32_t next = s.pool.PeekNext();
      if (next != kNone) Prefetch(Links(next & ~kExpanded, level));
      const uint32_t* links = Links(c, level);
      uint32_t cnt = std::min(LoadAcq(links), MaxLinks(level));
      size_t m = 0;
      for (uint32_t j = 1; j <= cnt; ++j) {
        uint32_t n = LoadAcq(links + j);
        if (s.visited.Visit(n)) ids[m++] = n;
      }
      for (size_t j = 0; j < std::min(m, kAhead); ++j) dist.Prefetch(ids[j]);
      for (size_t j = 0; j < m; ++j) {
        if (j + kAhead < m) dist.Prefetch(ids[j + kAhead]);
        float d = dist(ids[j]);
        s.pool.Insert(d, ids[j]);
      }
    }
  }

  struct Entry {
    uint32_t node;
    int level;
  };
  Entry LoadEntry() const {
    uint64_t e = entry_.load(std::memory_order_acquire);
    if (e == kNoEntry) return {kNone, -1};
    return {static_cast<uint32_t>(e), static_cast<int>(e >> 32)};
  }
  void StoreEntry(uint32_t node, int level) {
    entry_.store(node == kNone ? kNoEntry : (static_cast<uint64_t>(level) << 32) | node,
                 std::memory_order_release);
  }

  // Prepares a normalized copy of the query in scratch; false if it cannot be searched.
  const float* PrepareQuery(const float* query, Scratch& s) const {
    if (opt_.metric != Metric::kCosine) return query;
    s.query.assign(query, query + dim_);
    if (!NormalizeInPlace(s.query.data(), dim_)) return nullptr;
    return s.query.data();
  }

  // Runs `fn(oracle)` with the oracle searches should use right now.
  template <typename Fn>
  void WithOracle(const float* q, Scratch& s, Fn&& fn) const {
    if (quantized_.load(std::memory_order_acquire)) {
      if (s.qcode.size() < code_bytes_) s.qcode.resize(code_bytes_);
      auto qc = sq_.EncodeQuery(q, s.qcode.data());
      fn(CodeOracle{this, s.qcode.data(), qc.query_const, qc.factor, k_.dot_u8s8});
    } else {
      fn(FloatOracle{this, q});
    }
  }

  Status Search(const float* query, size_t k, size_t ef, std::vector<SearchHit>* out) const {
    out->clear();
    if (k == 0) return Status::Ok();
    auto guard = gp_.Enter();
    Entry e = LoadEntry();
    if (e.node == kNone) return Status::Ok();
    Scratch& s = ThreadScratch();
    const float* q = PrepareQuery(query, s);
    if (q == nullptr) return Status::InvalidArgument("cosine query vector has zero norm");
    if (ef == 0) ef = opt_.ef_search;
    ef = std::max(ef, k);
    // Removed nodes still take places in the candidate pool until Consolidate(): widen it in
    // proportion, so that removals do not crowd live results out.
    const size_t deleted = deleted_.load(std::memory_order_relaxed);
    if (deleted > 0) {
      const size_t live = live_.load(std::memory_order_relaxed);
      ef += k + std::min(3 * ef, ef * deleted / (live + 1));
    }
    const bool exact_walk = !quantized_.load(std::memory_order_acquire);
    WithOracle(q, s, [&](const auto& dist) {
      float d = dist(e.node);
      uint32_t ep = Greedy(dist, e.node, &d, e.level, 0);
      SearchLevel(dist, ep, d, 0, ef, s);
    });
    // Re-rank live candidates with exact distances (already exact on the float walk).
    out->reserve(s.pool.size());
    for (size_t i = 0; i < s.pool.size(); ++i) {
      uint32_t id = s.pool.IdAt(i);
      if (IsDeleted(id)) continue;
      float d = exact_walk ? s.pool[i].dist : ExactDist(q, Vec(id));
      out->push_back({Label(id), d});
    }
    auto less = [](const SearchHit& a, const SearchHit& b) {
      return a.distance < b.distance || (a.distance == b.distance && a.label < b.label);
    };
    std::sort(out->begin(), out->end(), less);
    // An upsert in flight can briefly leave two live nodes with one label: keep the closest.
    size_t w = 0;
    for (size_t i = 0; i < out->size() && w < k; ++i) {
      bool dup = false;
      for (size_t j = 0; j < w; ++j) dup |= (*out)[j].label == (*out)[i].label;
      if (!dup) (*out)[w++] = (*out)[i];
    }
    out->resize(w);
    return Status::Ok();
  }

  // ---- construction ----
  int RandomLevel() {
    uint64_t r = SplitMix64(opt_.seed ^ SplitMix64(level_counter_.fetch_add(1)));
    double u = (static_cast<double>(r >> 11) + 0.5) * 0x1.0p-53;
    int level = static_cast<int>(-std::log(u) * ml_);
    return std::min(level, 30);
  }

  // hnswlib's heuristic: keep a candidate only if it is closer to the base than to every
  // neighbour kept so far. `cands` is sorted by distance to the base.
  void SelectNeighbors(std::vector<Candidate>& cands, size_t max_n) const {
    if (cands.size() <= max_n) return;
    std::vector<Candidate> kept;
    kept.reserve(max_n);
    for (const Candidate& c : cands) {
      if (kept.size() >= max_n) break;
      bool good = true;
      const float* cv = Vec(c.id);
      for (const Candidate& r : kept) {
        if (ExactDist(cv, Vec(r.id)) < c.dist) {
          good = false;
          break;
        }
      }
      if (good) kept.push_back(c);
    }
    cands.swap(kept);
  }

  void WriteLinks(uint32_t* links, const std::vector<Candidate>& nbrs) {
    for (size_t j = 0; j < nbrs.size(); ++j) StoreRel(links + 1 + j, nbrs[j].id);
    StoreRel(links, static_cast<uint32_t>(nbrs.size()));
  }

  // Adds `node` to `nbr`'s links at `level`, pruning them with the heuristic when full.
  void Connect(uint32_t nbr, uint32_t node, int level, float d) {
    std::lock_guard<std::mutex> lock(NodeLock(nbr));
    uint32_t* links = Links(nbr, level);
    uint32_t cnt = LoadAcq(links);
    const uint32_t maxc = MaxLinks(level);
    for (uint32_t j = 1; j <= cnt; ++j) {
      if (LoadAcq(links + j) == node) return;
    }
    if (cnt < maxc) {
      StoreRel(links + 1 + cnt, node);
      StoreRel(links, cnt + 1);
      return;
    }
    std::vector<Candidate> cands;
    cands.reserve(cnt + 1);
    const float* base = Vec(nbr);
    cands.push_back({d, node});
    for (uint32_t j = 1; j <= cnt; ++j) {
      uint32_t n = LoadAcq(links + j);
      cands.push_back({ExactDist(base, Vec(n)), n});
    }
    std::sort(cands.begin(), cands.end(),
              [](const Candidate& a, const Candidate& b) { return a.dist < b.dist; });
    SelectNeighbors(cands, maxc);
    WriteLinks(links, cands);
  }

  Result<uint32_t> AllocSlot() {
    {
      std::lock_guard<std::mutex> lock(free_mu_);
      if (!free_slots_.empty()) {
        uint32_t id = free_slots_.back();
        free_slots_.pop_back();
        return id;
      }
    }
    uint32_t s = num_slots_.load();
    do {
      if (s >= opt_.max_elements) {
        return Status::ResourceExhausted("hnsw index is full: max_elements=" +
                                         std::to_string(opt_.max_elements));
      }
    } while (!num_slots_.compare_exchange_weak(s, s + 1));
    return s;
  }

  void FillSlot(uint32_t id, uint64_t label, const float* v, int level) {
    std::memcpy(Vec(id), v, dim_ * sizeof(float));
    Label(id) = label;
    LevelOf(id) = static_cast<uint8_t>(level);
    StoreRel(Links0(id), 0);
    uint32_t* upper = nullptr;
    if (level > 0) {
      upper = new uint32_t[static_cast<size_t>(level) * upper_stride_]();
      upper_bytes_.fetch_add(static_cast<size_t>(level) * upper_stride_ * 4);
    }
    delete[] UpperPtr(id);
    UpperPtr(id) = upper;
    if (quantized_.load(std::memory_order_relaxed)) EncodeSlot(id);
    Flags(id).store(0, std::memory_order_release);
  }

  void EncodeSlot(uint32_t id) {
    char* b = Block(id);
    float bias = sq_.Encode(Vec(id), reinterpret_cast<uint8_t*>(b));
    std::memcpy(b + bias_off_, &bias, 4);
  }

  // Links slot `id` (already filled) into the graph. Caller holds structure_mu_ shared.
  void Link(uint32_t id, int level) {
    Entry e = LoadEntry();
    if (e.node == kNone) {
      std::lock_guard<std::mutex> lock(entry_mu_);
      e = LoadEntry();
      if (e.node == kNone) {
        StoreEntry(id, level);
        return;
      }
    }
    Scratch& s = ThreadScratch();
    const float* v = Vec(id);
    std::vector<Candidate> cands;
    WithOracle(v, s, [&](const auto& dist) {
      float d = dist(e.node);
      uint32_t cur = Greedy(dist, e.node, &d, e.level, level);
      for (int lc = std::min(level, e.level); lc >= 0; --lc) {
        SearchLevel(dist, cur, d, lc, opt_.ef_construction, s);
        cands.clear();
        for (size_t i = 0; i < s.pool.size(); ++i) {
          uint32_t n = s.pool.IdAt(i);
          if (n == id || IsDeleted(n)) continue;
          cands.push_back({ExactDist(v, Vec(n)), n});
        }
        if (cands.empty()) continue;
        std::sort(cands.begin(), cands.end(),
                  [](const Candidate& a, const Candidate& b) { return a.dist < b.dist; });
        cur = cands[0].id;
        d = dist(cur);
        SelectNeighbors(cands, max_m_);
        {
          std::lock_guard<std::mutex> lock(NodeLock(id));
          uint32_t* own = Links(id, lc);
          // Inserters that found this node already linked to it (Connect) while we searched:
          // keep their links as candidates instead of overwriting them.
          const uint32_t existing = LoadAcq(own);
          if (existing > 0) {
            for (uint32_t j = 1; j <= existing; ++j) {
              uint32_t e = LoadAcq(own + j);
              if (std::none_of(cands.begin(), cands.end(),
                               [&](const Candidate& c) { return c.id == e; })) {
                cands.push_back({ExactDist(v, Vec(e)), e});
              }
            }
            std::sort(cands.begin(), cands.end(),
                      [](const Candidate& a, const Candidate& b) { return a.dist < b.dist; });
            SelectNeighbors(cands, MaxLinks(lc));
          }
          WriteLinks(own, cands);
        }
        for (const Candidate& c : cands) Connect(c.id, id, lc, c.dist);
      }
    });
    if (level > e.level) {
      std::lock_guard<std::mutex> lock(entry_mu_);
      if (level > LoadEntry().level) StoreEntry(id, level);
    }
  }

  Status CheckVector(const float* v, std::vector<float>* normalized) const {
    for (size_t i = 0; i < dim_; ++i) {
      if (!std::isfinite(v[i])) {
        return Status::InvalidArgument("vector has a non-finite value at index " +
                                       std::to_string(i));
      }
    }
    if (opt_.metric == Metric::kCosine) {
      normalized->assign(v, v + dim_);
      if (!NormalizeInPlace(normalized->data(), dim_)) {
        return Status::InvalidArgument("cosine metric cannot index a zero vector");
      }
    }
    return Status::Ok();
  }


  Status AddLocked(uint64_t label, const float* vector) {
    std::vector<float> norm;
    KYRODB_RETURN_IF_ERROR(CheckVector(vector, &norm));
    const float* v = norm.empty() ? vector : norm.data();
    auto slot = AllocSlot();
    if (!slot.ok()) return slot.status();
    const int level = RandomLevel();
    FillSlot(*slot, label, v, level);
    Link(*slot, level);
    uint32_t old = kNone;
    {
      auto& sh = shards_[ShardOf(label)];
      std::lock_guard<std::mutex> lock(sh.mu);
      auto [it, inserted] = sh.map.try_emplace(label, *slot);
      if (!inserted) {
        old = it->second;
        it->second = *slot;
      }
    }
    if (old != kNone) {
      Flags(old).fetch_or(kFlagDeleted);
      deleted_.fetch_add(1);
    } else {
      live_.fetch_add(1);
    }
    return Status::Ok();
  }

  static size_t ShardOf(uint64_t label) { return SplitMix64(label) % kLabelShards; }

  Status Add(uint64_t label, const float* vector) {
    MaybeTrain();
    Status s;
    {
      std::shared_lock<std::shared_mutex> lock(structure_mu_);
      s = AddLocked(label, vector);
    }
    MaybeConsolidate();
    return s;
  }

  Status AddBatch(std::span<const uint64_t> labels, const float* vectors, size_t threads) {
    if (labels.empty()) return Status::Ok();
    if (opt_.quantize && !quantized_.load()) {
      std::unique_lock<std::shared_mutex> lock(structure_mu_);
      if (!quantized_.load() && num_slots_.load() + labels.size() >= HnswIndex::kQuantizerTrainSize) {
        TrainLocked(vectors, labels.size());
      }
    }
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    threads = std::min(threads, labels.size());
    std::atomic<size_t> next{0};
    std::mutex err_mu;
    Status first_error;
    auto worker = [&] {
      for (;;) {
        size_t i = next.fetch_add(1);
        if (i >= labels.size()) return;
        Status s = Add(labels[i], vectors + i * dim_);
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(err_mu);
          if (first_error.ok()) first_error = s;
        }
      }
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
    worker();
    for (auto& t : pool) t.join();
    RepairOrphansNow();
    return first_error;
  }

  // Gives every node that lost all its level-0 in-links (pruned away by later inserts) one back.
  size_t RepairOrphansNow() {
    std::unique_lock<std::shared_mutex> lock(structure_mu_);
    const uint32_t n = num_slots_.load();
    std::vector<uint8_t> gone(n, 0);
    for (uint32_t i = 0; i < n; ++i) gone[i] = (Flags(i).load() & kFlagFree) ? 2 : 0;
    return RepairOrphans(gone);
  }

  void MaybeTrain() {
    if (!opt_.quantize || quantized_.load(std::memory_order_acquire)) return;
    if (num_slots_.load() < HnswIndex::kQuantizerTrainSize) return;
    std::unique_lock<std::shared_mutex> lock(structure_mu_);
    if (!quantized_.load()) TrainLocked(nullptr, 0);
  }

  // Trains the quantizer on the stored vectors plus `extra` (n rows), then encodes every slot.
  // Caller holds structure_mu_ exclusively, so no insert runs; searches keep using floats
  // until quantized_ flips.
  void TrainLocked(const float* extra, size_t n_extra) {
    const uint32_t slots = num_slots_.load();
    constexpr size_t kMaxSample = 100000;
    std::vector<float> sample;
    size_t rows = 0;
    auto take = [&](const float* v) {
      sample.insert(sample.end(), v, v + dim_);
      ++rows;
    };
    std::vector<float> norm(dim_);
    size_t total = slots + n_extra;
    size_t step = std::max<size_t>(1, total / kMaxSample);
    for (size_t i = 0; i < total; i += step) {
      if (i < slots) {
        if (!(Flags(static_cast<uint32_t>(i)).load() & kFlagFree)) take(Vec(static_cast<uint32_t>(i)));
      } else {
        const float* v = extra + (i - slots) * dim_;
        if (opt_.metric == Metric::kCosine) {
          norm.assign(v, v + dim_);
          if (!NormalizeInPlace(norm.data(), dim_)) continue;
          v = norm.data();
        }
        bool finite = true;
        for (size_t j = 0; j < dim_; ++j) finite &= std::isfinite(v[j]);
        if (finite) take(v);
      }
    }
    if (rows == 0) return;
    auto mode = opt_.metric == Metric::kL2 ? ScalarQuantizer::Mode::kL2
                                           : ScalarQuantizer::Mode::kInnerProduct;
    sq_ = ScalarQuantizer::Train(mode, sample.data(), rows, dim_, dim_);
    for (uint32_t i = 0; i < slots; ++i) EncodeSlot(i);
    quantized_.store(true, std::memory_order_release);
  }

  Status Remove(uint64_t label) {
    std::shared_lock<std::shared_mutex> lock(structure_mu_);
    uint32_t id;
    {
      auto& sh = shards_[ShardOf(label)];
      std::lock_guard<std::mutex> l(sh.mu);
      auto it = sh.map.find(label);
      if (it == sh.map.end()) return Status::NotFound("label " + std::to_string(label) + " not in index");
      id = it->second;
      sh.map.erase(it);
    }
    Flags(id).fetch_or(kFlagDeleted);
    deleted_.fetch_add(1);
    live_.fetch_sub(1);
    return Status::Ok();
  }

  uint32_t Find(uint64_t label) const {
    auto& sh = shards_[ShardOf(label)];
    std::lock_guard<std::mutex> l(sh.mu);
    auto it = sh.map.find(label);
    return it == sh.map.end() ? kNone : it->second;
  }

  Status GetVector(uint64_t label, float* out) const {
    auto guard = gp_.Enter();
    uint32_t id = Find(label);
    if (id == kNone) return Status::NotFound("label " + std::to_string(label) + " not in index");
    std::memcpy(out, Vec(id), dim_ * sizeof(float));
    return Status::Ok();
  }

  void MaybeConsolidate() {
    size_t del = deleted_.load(std::memory_order_relaxed);
    if (del < 64 || del * 10 < num_slots_.load(std::memory_order_relaxed)) return;
    std::unique_lock<std::mutex> l(consolidate_mu_, std::try_to_lock);
    if (!l.owns_lock()) return;
    ConsolidateLocked();
  }

  size_t Consolidate() {
    std::lock_guard<std::mutex> l(consolidate_mu_);
    return ConsolidateLocked();
  }

  // Relinks around removed nodes (FreshDiskANN-style: a node that pointed at a removed one
  // inherits that node's neighbours as candidates, then prunes), waits out searches that may
  // still hold the removed ids, and recycles their slots.
  size_t ConsolidateLocked() {
    std::unique_lock<std::shared_mutex> lock(structure_mu_);
    const uint32_t n = num_slots_.load();
    std::vector<uint8_t> gone(n, 0);
    std::vector<uint32_t> removed;
    for (uint32_t i = 0; i < n; ++i) {
      uint8_t f = Flags(i).load();
      if ((f & kFlagDeleted) && !(f & kFlagFree)) {
        gone[i] = 1;
        removed.push_back(i);
      } else if (f & kFlagFree) {
        gone[i] = 2;
      }
    }
    if (removed.empty()) return 0;
    Entry e = LoadEntry();
    if (e.node != kNone && gone[e.node]) {
      uint32_t best = kNone;
      int best_level = -1;
      for (uint32_t i = 0; i < n; ++i) {
        if (!gone[i] && !IsDeleted(i) && LevelOf(i) > best_level) {
          best = i;
          best_level = LevelOf(i);
        }
      }
      StoreEntry(best, best_level);
    }
    std::vector<Candidate> cands;
    std::vector<uint32_t> seen;
    for (uint32_t i = 0; i < n; ++i) {
      if (gone[i]) continue;
      for (int lc = 0; lc <= LevelOf(i); ++lc) {
        uint32_t* links = Links(i, lc);
        uint32_t cnt = LoadAcq(links);
        bool touched = false;
        for (uint32_t j = 1; j <= cnt; ++j) touched |= gone[LoadAcq(links + j)] != 0;
        if (!touched) continue;
        seen.clear();
        auto add = [&](uint32_t c) {
          if (c == i || gone[c]) return;
          if (std::find(seen.begin(), seen.end(), c) != seen.end()) return;
          seen.push_back(c);
        };
        for (uint32_t j = 1; j <= cnt; ++j) {
          uint32_t c = LoadAcq(links + j);
          if (!gone[c]) {
            add(c);
          } else if (gone[c] == 1 && LevelOf(c) >= lc) {
            const uint32_t* dl = Links(c, lc);
            uint32_t dc = LoadAcq(dl);
            for (uint32_t t = 1; t <= dc; ++t) add(LoadAcq(dl + t));
          }
        }
        cands.clear();
        const float* base = Vec(i);
        for (uint32_t c : seen) cands.push_back({ExactDist(base, Vec(c)), c});
        std::sort(cands.begin(), cands.end(),
                  [](const Candidate& a, const Candidate& b) { return a.dist < b.dist; });
        SelectNeighbors(cands, MaxLinks(lc));
        std::lock_guard<std::mutex> nl(NodeLock(i));
        WriteLinks(links, cands);
      }
    }
    RepairOrphans(gone);
    gp_.Synchronize();  // no search still walks the removed nodes
    for (uint32_t id : removed) {
      if (UpperPtr(id) != nullptr) {
        upper_bytes_.fetch_sub(static_cast<size_t>(LevelOf(id)) * upper_stride_ * 4);
      }
      delete[] UpperPtr(id);
      UpperPtr(id) = nullptr;
      Flags(id).store(kFlagFree);
    }
    {
      std::lock_guard<std::mutex> l(free_mu_);
      free_slots_.insert(free_slots_.end(), removed.begin(), removed.end());
    }
    deleted_.fetch_sub(removed.size());
    return removed.size();
  }

  // After relinking, a live node whose level-0 in-links all came from removed nodes would be
  // unreachable. Give each such node an in-link from its nearest neighbour: appended if that
  // neighbour has room, else replacing the neighbour's farthest link whose target keeps
  // another in-link. Caller holds structure_mu_ exclusively.
  size_t RepairOrphans(const std::vector<uint8_t>& gone) {
    size_t repaired = 0;
    const uint32_t n = static_cast<uint32_t>(gone.size());
    std::vector<uint16_t> in_degree(n, 0);
    auto count_in_degrees = [&] {
      std::fill(in_degree.begin(), in_degree.end(), 0);
      for (uint32_t i = 0; i < n; ++i) {
        if (gone[i]) continue;
        const uint32_t* links = Links0(i);
        const uint32_t cnt = LoadAcq(links);
        for (uint32_t j = 1; j <= cnt; ++j) {
          uint32_t t = LoadAcq(links + j);
          if (t < n && in_degree[t] < UINT16_MAX) ++in_degree[t];
        }
      }
    };
    count_in_degrees();
    const Entry e = LoadEntry();
    // Gives x one in-link from the first candidate that has room or a link to spare (a target
    // with another in-link); false if none could.
    auto give_in_link = [&](uint32_t x, const std::vector<Candidate>& cands) {
      for (const Candidate& c : cands) {
        std::lock_guard<std::mutex> nl(NodeLock(c.id));
        uint32_t* links = Links0(c.id);
        const uint32_t cnt = LoadAcq(links);
        if (cnt < max_m0_) {
          StoreRel(links + 1 + cnt, x);
          StoreRel(links, cnt + 1);
          in_degree[x] = 1;
          return true;
        }
        const float* base = Vec(c.id);
        uint32_t worst = 0;
        float worst_d = -1;
        for (uint32_t j = 1; j <= cnt; ++j) {
          uint32_t t = LoadAcq(links + j);
          if (t < n && in_degree[t] > 1) {
            float d = ExactDist(base, Vec(t));
            if (d > worst_d) {
              worst_d = d;
              worst = j;
            }
          }
        }
        if (worst != 0) {
          --in_degree[LoadAcq(links + worst)];
          StoreRel(links + worst, x);
          in_degree[x] = 1;
          return true;
        }
      }
      return false;
    };
    auto by_distance = [](const Candidate& a, const Candidate& b) { return a.dist < b.dist; };
    std::vector<Candidate> cands;
    for (uint32_t x = 0; x < n; ++x) {
      if (gone[x] || in_degree[x] > 0 || x == e.node) continue;
      const float* xv = Vec(x);
      // First x's own out-links (its nearest neighbours when it was linked)...
      cands.clear();
      const uint32_t* xl = Links0(x);
      const uint32_t xc = LoadAcq(xl);
      for (uint32_t j = 1; j <= xc; ++j) {
        uint32_t t = LoadAcq(xl + j);
        if (t < n && !gone[t]) cands.push_back({ExactDist(xv, Vec(t)), t});
      }
      std::sort(cands.begin(), cands.end(), by_distance);
      if (give_in_link(x, cands)) {
        ++repaired;
        continue;
      }
      // ...and when none of them can take it (no out-links left, or all full of links they
      // need), the live nodes nearest x that a search from the entry point reaches: without
      // this, x stays unreachable for every search (seen under concurrent upserts, deletes and
      // flushes: engine_test ConcurrentWritesReadsAndFlushesLoseNothing).
      if (e.node == kNone) continue;
      Scratch& s = ThreadScratch();
      cands.clear();
      WithOracle(xv, s, [&](const auto& dist) {
        float d = dist(e.node);
        const uint32_t cur = Greedy(dist, e.node, &d, e.level, 0);
        SearchLevel(dist, cur, d, 0, opt_.ef_construction, s);
        for (size_t i = 0; i < s.pool.size(); ++i) {
          const uint32_t t = s.pool.IdAt(i);
          if (t != x && t < n && !gone[t] && !IsDeleted(t)) cands.push_back({ExactDist(xv, Vec(t)), t});
        }
      });
      std::sort(cands.begin(), cands.end(), by_distance);
      if (give_in_link(x, cands)) ++repaired;
    }
    repaired += RepairIslands(gone, give_in_link);
    // The dead-end pass replaces links too, and a replaced link can cut off the nodes behind it:
    // the other in-link its target kept may come from a node reachable only through it. So the
    // island walk runs again after a dead-end pass that changed anything (with in-degrees
    // counted afresh), a few rounds at most.
    for (int round = 0; round < 3; ++round) {
      const size_t dead_ends = RepairDeadEnds(gone);
      if (dead_ends == 0) break;
      repaired += dead_ends;
      count_in_degrees();
      repaired += RepairIslands(gone, give_in_link);
    }
    return repaired;
  }

  // Calls visit(t) for each level-0 link of u to a node t that is not gone.
  template <typename Visit>
  void ForEachLink0(uint32_t u, const std::vector<uint8_t>& gone, Visit&& visit) const {
    const uint32_t* links = Links0(u);
    const uint32_t cnt = LoadAcq(links);
    for (uint32_t j = 1; j <= cnt; ++j) {
      const uint32_t t = LoadAcq(links + j);
      if (t < gone.size() && !gone[t]) visit(t);
    }
  }

  // Marks in `marked` every node reachable from `start`, where next(u, visit) calls visit(t)
  // for each successor t of u.
  template <typename Next>
  static void MarkReachable(uint32_t start, std::vector<uint8_t>& marked, std::vector<uint32_t>& stack,
                            Next&& next) {
    if (marked[start]) return;
    marked[start] = 1;
    stack.push_back(start);
    while (!stack.empty()) {
      const uint32_t u = stack.back();
      stack.pop_back();
      next(u, [&](uint32_t t) {
        if (!marked[t]) {
          marked[t] = 1;
          stack.push_back(t);
        }
      });
    }
  }

  // The nodes a level-0 search for x from the entry point itself meets (only nodes reachable
  // from it, whatever the upper levels would lead to) that pass `keep`, nearest first.
  template <typename Keep>
  void NearestFromEntry(uint32_t x, uint32_t entry, Keep&& keep, std::vector<Candidate>* out) {
    const float* xv = Vec(x);
    Scratch& s = ThreadScratch();
    out->clear();
    WithOracle(xv, s, [&](const auto& dist) {
      SearchLevel(dist, entry, dist(entry), 0, opt_.ef_construction, s);
      for (size_t i = 0; i < s.pool.size(); ++i) {
        const uint32_t t = s.pool.IdAt(i);
        if (t != x && !IsDeleted(t) && keep(t)) out->push_back({ExactDist(xv, Vec(t)), t});
      }
    });
    std::sort(out->begin(), out->end(),
              [](const Candidate& a, const Candidate& b) { return a.dist < b.dist; });
  }

  // Nodes that all still have in-links can yet be cut off together: an island whose in-links
  // all come from inside it (a cluster whose links from the rest were pruned away while
  // concurrent inserters linked it; seen once in HnswConcurrencyTest's parallel builds, 75 of
  // 340 nodes). Walks level 0 from the entry point; each live node it does not reach gets an
  // in-link from the reachable nodes nearest it (found by a search from the entry point), and
  // what that node reaches joins the walk. A few passes, since a replaced link can cut off a
  // node the walk had reached through it. Caller holds structure_mu_ exclusively.
  template <typename GiveInLink>
  size_t RepairIslands(const std::vector<uint8_t>& gone, GiveInLink& give_in_link) {
    const Entry e = LoadEntry();
    const uint32_t n = static_cast<uint32_t>(gone.size());
    if (e.node == kNone || e.node >= n || gone[e.node]) return 0;
    size_t repaired = 0;
    std::vector<uint8_t> reached(n, 0);
    std::vector<uint32_t> stack;
    auto out_links = [&](uint32_t u, auto&& visit) { ForEachLink0(u, gone, visit); };
    std::vector<Candidate> cands;
    for (int pass = 0; pass < 3; ++pass) {
      std::fill(reached.begin(), reached.end(), 0);
      MarkReachable(e.node, reached, stack, out_links);
      bool all_reached = true;
      for (uint32_t x = 0; x < n; ++x) {
        if (gone[x] || reached[x]) continue;
        all_reached = false;
        NearestFromEntry(x, e.node, [&](uint32_t t) { return t < n && reached[t]; }, &cands);
        if (give_in_link(x, cands)) {
          ++repaired;
          MarkReachable(x, reached, stack, out_links);
        }
      }
      if (all_reached) break;
    }
    return repaired;
  }

  // The other direction: a search that the upper levels lead into a group of nodes with no
  // level-0 path out of it sees only that group. Every live node that cannot reach the entry
  // point on level 0 gets an out-link to the nearest node that can (appended if it has room,
  // else replacing its farthest link whose target keeps another in-link; left as it is if it
  // has none such). Caller holds structure_mu_ exclusively.
  size_t RepairDeadEnds(const std::vector<uint8_t>& gone) {
    const Entry e = LoadEntry();
    const uint32_t n = static_cast<uint32_t>(gone.size());
    if (e.node == kNone || e.node >= n || gone[e.node]) return 0;
    // Level-0 in-links of every node (the reverse graph): from[start[t] .. start[t + 1]).
    std::vector<uint32_t> start(n + 1, 0), from;
    for (uint32_t i = 0; i < n; ++i) {
      if (!gone[i]) ForEachLink0(i, gone, [&](uint32_t t) { ++start[t + 1]; });
    }
    for (uint32_t i = 0; i < n; ++i) start[i + 1] += start[i];
    from.resize(start[n]);
    std::vector<uint32_t> fill(start.begin(), start.end() - 1);
    for (uint32_t i = 0; i < n; ++i) {
      if (!gone[i]) ForEachLink0(i, gone, [&](uint32_t t) { from[fill[t]++] = i; });
    }
    // Nodes that reach the entry point: a walk over the reverse graph from it. A node given an
    // out-link below joins, with every node that reaches it.
    std::vector<uint8_t> reaches(n, 0);
    std::vector<uint32_t> stack;
    auto in_links = [&](uint32_t u, auto&& visit) {
      for (uint32_t k = start[u]; k < start[u + 1]; ++k) visit(from[k]);
    };
    MarkReachable(e.node, reaches, stack, in_links);
    size_t repaired = 0;
    std::vector<Candidate> cands;
    for (uint32_t x = 0; x < n; ++x) {
      if (gone[x] || reaches[x]) continue;
      NearestFromEntry(x, e.node, [&](uint32_t t) { return t < n && reaches[t]; }, &cands);
      if (cands.empty()) continue;
      const uint32_t best = cands[0].id;
      const float* xv = Vec(x);
      {
        std::lock_guard<std::mutex> nl(NodeLock(x));
        uint32_t* links = Links0(x);
        const uint32_t cnt = LoadAcq(links);
        if (cnt < max_m0_) {
          StoreRel(links + 1 + cnt, best);
          StoreRel(links, cnt + 1);
        } else {
          // The farthest link whose target keeps another in-link (so nothing is cut off).
          uint32_t worst = 0;
          float worst_d = -1;
          for (uint32_t j = 1; j <= cnt; ++j) {
            const uint32_t t = LoadAcq(links + j);
            if (t >= n || start[t + 1] - start[t] < 2) continue;
            const float d = ExactDist(xv, Vec(t));
            if (d > worst_d) {
              worst_d = d;
              worst = j;
            }
          }
          if (worst == 0) continue;
          StoreRel(links + worst, best);
        }
      }
      ++repaired;
      MarkReachable(x, reaches, stack, in_links);
    }
    return repaired;
  }

  HnswStats Stats() const {
    HnswStats st;
    st.live = live_.load();
    st.deleted = deleted_.load();
    st.slots = num_slots_.load();
    {
      std::lock_guard<std::mutex> l(free_mu_);
      st.free_slots = free_slots_.size();
    }
    const size_t upper_links = upper_bytes_.load();
    st.memory_bytes = st.slots * (stride0_ + vec_stride_ * 4 + 8 + 1 + 1 + sizeof(void*)) +
                      upper_links + st.live * (sizeof(uint64_t) + sizeof(uint32_t)) * 2;
    st.bytes_per_vector = st.live == 0 ? 0.0 : static_cast<double>(st.memory_bytes) / st.live;
    st.quantized = quantized_.load();
    st.max_level = LoadEntry().level;
    return st;
  }

  Status Save(const std::string& path, io::FileSystem* fs) const;
  static Result<std::unique_ptr<Impl>> Load(const std::string& path, io::FileSystem* fs,
                                            uint32_t max_elements);

  struct LabelShard {
    mutable std::mutex mu;
    absl::flat_hash_map<uint64_t, uint32_t> map;
  };

  HnswOptions opt_;
  const distance::Kernels& k_;
  size_t dim_ = 0, vec_stride_ = 0, code_bytes_ = 0, bias_off_ = 0, links0_off_ = 0;
  size_t stride0_ = 0, upper_stride_ = 0;
  uint32_t max_m0_ = 0, max_m_ = 0;
  double ml_ = 0;

  VirtualRegion level0_, vectors_, labels_, levels_, flags_, upper_;
  std::atomic<uint32_t> num_slots_{0};
  std::atomic<uint64_t> entry_{kNoEntry};
  std::atomic<uint64_t> level_counter_{0};
  std::atomic<size_t> live_{0}, deleted_{0};
  std::atomic<size_t> upper_bytes_{0};  // heap bytes of upper-level link blocks
  std::atomic<bool> quantized_{false};
  ScalarQuantizer sq_;  // written before quantized_ is set, then immutable

  std::mutex entry_mu_;
  mutable std::array<std::mutex, kLockStripes> node_locks_;
  mutable std::shared_mutex structure_mu_;  // shared: add/remove; exclusive: train, consolidate, save
  mutable std::mutex free_mu_;
  std::vector<uint32_t> free_slots_;  // guarded by free_mu_
  std::mutex consolidate_mu_;
  mutable std::array<LabelShard, kLabelShards> shards_;
  mutable GracePeriod gp_;
};

// ---------------- persistence (format: docs/formats/hnsw.md) ----------------

namespace {

class SectionWriter {
 public:
  explicit SectionWriter(io::WritableFile* f) : f_(f) {}
  Status Begin(uint32_t type, uint64_t bytes) {
    crc_ = 0;
    char h[16];
    uint32_t reserved = 0;
    std::memcpy(h, &type, 4);
    std::memcpy(h + 4, &reserved, 4);
    std::memcpy(h + 8, &bytes, 8);
    return f_->Append(h, sizeof(h));
  }
  Status Put(const void* p, size_t n) {
    crc_ = crc32c::Extend(crc_, p, n);
    return f_->Append(p, n);
  }
  Status End() {
    uint32_t masked = crc32c::Mask(crc_);
    return f_->Append(&masked, 4);
  }

 private:
  io::WritableFile* f_;
  uint32_t crc_ = 0;
};

class SectionReader {
 public:
  explicit SectionReader(io::SequentialFile* f) : f_(f) {}
  Status Begin(uint32_t want_type, uint64_t want_bytes, const char* name) {
    char h[16];
    KYRODB_RETURN_IF_ERROR(io::ReadExactly(f_, h, sizeof(h), name));
    uint32_t type;
    uint64_t bytes;
    std::memcpy(&type, h, 4);
    std::memcpy(&bytes, h + 8, 8);
    if (type != want_type) {
      return Status::Corruption(std::string(name) + ": expected section type " +
                                std::to_string(want_type) + ", found " + std::to_string(type));
    }
    if (bytes != want_bytes) {
      return Status::Corruption(std::string(name) + ": section length " + std::to_string(bytes) +
                                " does not match header (expected " + std::to_string(want_bytes) +
                                ")");
    }
    crc_ = 0;
    name_ = name;
    return Status::Ok();
  }
  Status Get(void* p, size_t n) {
    char* dst = static_cast<char*>(p);
    constexpr size_t kChunk = 8 << 20;
    while (n > 0) {
      size_t c = std::min(n, kChunk);
      KYRODB_RETURN_IF_ERROR(io::ReadExactly(f_, dst, c, name_));
      crc_ = crc32c::Extend(crc_, dst, c);
      dst += c;
      n -= c;
    }
    return Status::Ok();
  }
  Status End() {
    uint32_t masked;
    KYRODB_RETURN_IF_ERROR(io::ReadExactly(f_, &masked, 4, name_));
    if (crc32c::Unmask(masked) != crc_) {
      return Status::Corruption(std::string(name_) + ": checksum mismatch");
    }
    return Status::Ok();
  }

 private:
  io::SequentialFile* f_;
  uint32_t crc_ = 0;
  const char* name_ = "";
};

}  // namespace

Status HnswIndex::Impl::Save(const std::string& path, io::FileSystem* fs) const {
  std::unique_lock<std::shared_mutex> lock(structure_mu_);
  const uint32_t n = num_slots_.load();
  const bool trained = quantized_.load();
  Entry e = LoadEntry();

  hnsw_format::Header h{};
  std::memcpy(h.magic, hnsw_format::kMagic, sizeof(h.magic));
  h.version = hnsw_format::kVersion;
  h.header_bytes = sizeof(hnsw_format::Header);
  h.dim = static_cast<uint32_t>(dim_);
  h.metric = static_cast<uint32_t>(opt_.metric);
  h.m = opt_.m;
  h.ef_construction = opt_.ef_construction;
  h.ef_search = opt_.ef_search;
  h.max_elements = opt_.max_elements;
  h.num_slots = n;
  h.entry_node = e.node;
  h.max_level = e.level;
  h.flags = (opt_.quantize ? hnsw_format::kFlagQuantize : 0u) |
            (trained ? hnsw_format::kFlagTrained : 0u);
  h.seed = opt_.seed;
  h.level_counter = level_counter_.load();
  h.code_bytes = static_cast<uint32_t>(code_bytes_);
  h.level0_stride = static_cast<uint32_t>(stride0_);
  h.vector_stride = static_cast<uint32_t>(vec_stride_);
  h.header_crc = crc32c::Mask(crc32c::Value(&h, offsetof(hnsw_format::Header, header_crc)));

  auto writer = io::AtomicFileWriter::Open(fs, path);
  if (!writer.ok()) return writer.status();
  io::WritableFile* f = writer->file();
  KYRODB_RETURN_IF_ERROR(f->Append(&h, sizeof(h)));
  SectionWriter w(f);

  if (trained) {
    KYRODB_RETURN_IF_ERROR(w.Begin(hnsw_format::kSectionQuantizer, 3 * dim_ * 4 + 4));
    uint32_t mode = static_cast<uint32_t>(sq_.mode());
    KYRODB_RETURN_IF_ERROR(w.Put(&mode, 4));
    KYRODB_RETURN_IF_ERROR(w.Put(sq_.lo().data(), dim_ * 4));
    KYRODB_RETURN_IF_ERROR(w.Put(sq_.scale().data(), dim_ * 4));
    KYRODB_RETURN_IF_ERROR(w.Put(sq_.mean().data(), dim_ * 4));
    KYRODB_RETURN_IF_ERROR(w.End());
  }
  KYRODB_RETURN_IF_ERROR(w.Begin(hnsw_format::kSectionNodes, static_cast<uint64_t>(n) * 10));
  KYRODB_RETURN_IF_ERROR(w.Put(labels_.data(), static_cast<size_t>(n) * 8));
  KYRODB_RETURN_IF_ERROR(w.Put(levels_.data(), n));
  std::vector<uint8_t> flags(n);
  for (uint32_t i = 0; i < n; ++i) flags[i] = Flags(i).load();
  KYRODB_RETURN_IF_ERROR(w.Put(flags.data(), n));
  KYRODB_RETURN_IF_ERROR(w.End());

  KYRODB_RETURN_IF_ERROR(w.Begin(hnsw_format::kSectionLevel0, static_cast<uint64_t>(n) * stride0_));
  KYRODB_RETURN_IF_ERROR(w.Put(level0_.data(), static_cast<size_t>(n) * stride0_));
  KYRODB_RETURN_IF_ERROR(w.End());

  const uint64_t vec_bytes = static_cast<uint64_t>(n) * vec_stride_ * 4;
  KYRODB_RETURN_IF_ERROR(w.Begin(hnsw_format::kSectionVectors, vec_bytes));
  KYRODB_RETURN_IF_ERROR(w.Put(vectors_.data(), vec_bytes));
  KYRODB_RETURN_IF_ERROR(w.End());

  uint64_t upper_words = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (!(flags[i] & kFlagFree)) upper_words += static_cast<uint64_t>(LevelOf(i)) * upper_stride_;
  }
  KYRODB_RETURN_IF_ERROR(w.Begin(hnsw_format::kSectionUpper, upper_words * 4));
  for (uint32_t i = 0; i < n; ++i) {
    if (flags[i] & kFlagFree || LevelOf(i) == 0) continue;
    KYRODB_RETURN_IF_ERROR(w.Put(UpperPtr(i), static_cast<size_t>(LevelOf(i)) * upper_stride_ * 4));
  }
  KYRODB_RETURN_IF_ERROR(w.End());

  KYRODB_RETURN_IF_ERROR(w.Begin(hnsw_format::kSectionEnd, 0));
  KYRODB_RETURN_IF_ERROR(w.End());
  return writer->Commit();
}

Result<std::unique_ptr<HnswIndex::Impl>> HnswIndex::Impl::Load(const std::string& path,
                                                               io::FileSystem* fs,
                                                               uint32_t max_elements) {
  auto file = fs->NewSequentialFile(path);
  if (!file.ok()) return file.status();
  io::SequentialFile* f = file->get();
  auto corrupt = [&](const std::string& what) {
    return Status::Corruption("hnsw index " + path + ": " + what);
  };

  hnsw_format::Header h;
  {
    Status s = io::ReadExactly(f, &h, sizeof(h), "hnsw header");
    if (!s.ok()) return corrupt(s.message());
  }
  if (std::memcmp(h.magic, hnsw_format::kMagic, sizeof(h.magic)) != 0) {
    return corrupt("not a KyroDB HNSW file (bad magic)");
  }
  if (crc32c::Unmask(h.header_crc) !=
      crc32c::Value(&h, offsetof(hnsw_format::Header, header_crc))) {
    return corrupt("header checksum mismatch");
  }
  if (h.version != hnsw_format::kVersion) {
    return Status::NotSupported("hnsw index " + path + ": format version " +
                                std::to_string(h.version) + " is not supported (this build reads " +
                                std::to_string(hnsw_format::kVersion) + ")");
  }
  if (h.header_bytes != sizeof(h) || h.dim == 0 || h.dim > 65536 || h.metric > 2 || h.m < 2 ||
      h.m > 256 || h.num_slots > kMaxSlots || h.max_level > 30 || h.max_level < -1) {
    return corrupt("header fields out of range");
  }
  HnswOptions o;
  o.dim = h.dim;
  o.metric = static_cast<Metric>(h.metric);
  o.m = h.m;
  o.ef_construction = h.ef_construction;
  o.ef_search = h.ef_search;
  o.quantize = (h.flags & hnsw_format::kFlagQuantize) != 0;
  o.seed = h.seed;
  o.max_elements = std::max<uint32_t>(max_elements ? max_elements : h.max_elements, h.num_slots);
  auto impl = std::make_unique<Impl>(o);
  if (impl->code_bytes_ != h.code_bytes || impl->stride0_ != h.level0_stride ||
      impl->vec_stride_ != h.vector_stride) {
    return corrupt("layout fields do not match dim/m");
  }
  KYRODB_RETURN_IF_ERROR(impl->Init());
  const uint32_t n = h.num_slots;
  const bool trained = (h.flags & hnsw_format::kFlagTrained) != 0;
  if (trained && !o.quantize) return corrupt("trained quantizer without quantization");
  SectionReader r(f);
  auto check = [&](Status s) { return s.ok() ? s : corrupt(s.message()); };

  if (trained) {
    KYRODB_RETURN_IF_ERROR(check(r.Begin(hnsw_format::kSectionQuantizer, 3 * o.dim * 4 + 4, "quantizer")));
    uint32_t mode;
    std::vector<float> lo(o.dim), scale(o.dim), mean(o.dim);
    KYRODB_RETURN_IF_ERROR(check(r.Get(&mode, 4)));
    KYRODB_RETURN_IF_ERROR(check(r.Get(lo.data(), o.dim * 4)));
    KYRODB_RETURN_IF_ERROR(check(r.Get(scale.data(), o.dim * 4)));
    KYRODB_RETURN_IF_ERROR(check(r.Get(mean.data(), o.dim * 4)));
    KYRODB_RETURN_IF_ERROR(check(r.End()));
    if (mode > 1) return corrupt("unknown quantizer mode");
    impl->sq_ = ScalarQuantizer(static_cast<ScalarQuantizer::Mode>(mode), std::move(lo),
                                std::move(scale), std::move(mean));
  }
  KYRODB_RETURN_IF_ERROR(check(r.Begin(hnsw_format::kSectionNodes, static_cast<uint64_t>(n) * 10, "nodes")));
  KYRODB_RETURN_IF_ERROR(check(r.Get(impl->labels_.data(), static_cast<size_t>(n) * 8)));
  KYRODB_RETURN_IF_ERROR(check(r.Get(impl->levels_.data(), n)));
  KYRODB_RETURN_IF_ERROR(check(r.Get(impl->flags_.data(), n)));
  KYRODB_RETURN_IF_ERROR(check(r.End()));

  KYRODB_RETURN_IF_ERROR(check(r.Begin(hnsw_format::kSectionLevel0, static_cast<uint64_t>(n) * impl->stride0_, "level-0 links")));
  KYRODB_RETURN_IF_ERROR(check(r.Get(impl->level0_.data(), static_cast<size_t>(n) * impl->stride0_)));
  KYRODB_RETURN_IF_ERROR(check(r.End()));

  const uint64_t vec_bytes = static_cast<uint64_t>(n) * impl->vec_stride_ * 4;
  KYRODB_RETURN_IF_ERROR(check(r.Begin(hnsw_format::kSectionVectors, vec_bytes, "vectors")));
  KYRODB_RETURN_IF_ERROR(check(r.Get(impl->vectors_.data(), vec_bytes)));
  KYRODB_RETURN_IF_ERROR(check(r.End()));

  // Validate node table before trusting levels to size the upper-link section.
  uint64_t upper_words = 0;
  size_t live = 0, deleted = 0;
  for (uint32_t i = 0; i < n; ++i) {
    uint8_t fl = impl->Flags(i).load();
    uint8_t lv = impl->LevelOf(i);
    if (fl > (kFlagDeleted | kFlagFree) || lv > 30 || static_cast<int>(lv) > h.max_level) {
      return corrupt("node " + std::to_string(i) + " has invalid level or flags");
    }
    if (fl & kFlagFree) continue;
    upper_words += static_cast<uint64_t>(lv) * impl->upper_stride_;
    if (fl & kFlagDeleted) ++deleted; else ++live;
  }
  KYRODB_RETURN_IF_ERROR(check(r.Begin(hnsw_format::kSectionUpper, upper_words * 4, "upper links")));
  for (uint32_t i = 0; i < n; ++i) {
    uint8_t lv = impl->LevelOf(i);
    if ((impl->Flags(i).load() & kFlagFree) || lv == 0) continue;
    uint32_t* up = new uint32_t[static_cast<size_t>(lv) * impl->upper_stride_];
    impl->UpperPtr(i) = up;
    impl->upper_bytes_.fetch_add(static_cast<size_t>(lv) * impl->upper_stride_ * 4);
    impl->num_slots_.store(i + 1);  // so that ~Impl frees what was allocated on failure
    KYRODB_RETURN_IF_ERROR(check(r.Get(up, static_cast<size_t>(lv) * impl->upper_stride_ * 4)));
  }
  KYRODB_RETURN_IF_ERROR(check(r.End()));
  KYRODB_RETURN_IF_ERROR(check(r.Begin(hnsw_format::kSectionEnd, 0, "end marker")));
  KYRODB_RETURN_IF_ERROR(check(r.End()));
  char extra;
  auto more = f->Read(&extra, 1);
  if (!more.ok()) return more.status();
  if (*more != 0) return corrupt("trailing bytes after end marker");

  // Structural validation: every link names an existing, non-free node.
  impl->num_slots_.store(n);
  for (uint32_t i = 0; i < n; ++i) {
    if (impl->Flags(i).load() & kFlagFree) continue;
    for (int lc = 0; lc <= impl->LevelOf(i); ++lc) {
      const uint32_t* links = impl->Links(i, lc);
      uint32_t cnt = links[0];
      if (cnt > impl->MaxLinks(lc)) return corrupt("node " + std::to_string(i) + " has too many links");
      for (uint32_t j = 1; j <= cnt; ++j) {
        uint32_t t = links[j];
        if (t >= n || (impl->Flags(t).load() & kFlagFree) || impl->LevelOf(t) < lc) {
          return corrupt("node " + std::to_string(i) + " links to invalid node " + std::to_string(t));
        }
      }
    }
  }
  if (h.entry_node != kNone) {
    if (h.entry_node >= n || (impl->Flags(h.entry_node).load() & kFlagFree) ||
        impl->LevelOf(h.entry_node) != h.max_level) {
      return corrupt("invalid entry point");
    }
    impl->StoreEntry(h.entry_node, h.max_level);
  } else if (live + deleted > 0) {
    return corrupt("nodes present but no entry point");
  }
  for (uint32_t i = 0; i < n; ++i) {
    uint8_t fl = impl->Flags(i).load();
    if (fl & kFlagFree) {
      impl->free_slots_.push_back(i);
    } else if (!(fl & kFlagDeleted)) {
      auto& sh = impl->shards_[ShardOf(impl->Label(i))];
      if (!sh.map.try_emplace(impl->Label(i), i).second) {
        return corrupt("label " + std::to_string(impl->Label(i)) + " appears twice");
      }
    }
  }
  impl->live_.store(live);
  impl->deleted_.store(deleted);
  impl->level_counter_.store(h.level_counter);
  impl->quantized_.store(trained);
  return impl;
}

// ---------------- public wrapper ----------------

HnswIndex::HnswIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HnswIndex::~HnswIndex() = default;

Result<std::unique_ptr<HnswIndex>> HnswIndex::Create(const HnswOptions& o) {
  if (o.dim == 0 || o.dim > 65536) return Status::InvalidArgument("dim must be in 1..65536");
  if (o.m < 2 || o.m > 256) return Status::InvalidArgument("m must be in 2..256");
  if (o.ef_construction < 1) return Status::InvalidArgument("ef_construction must be >= 1");
  if (o.ef_search < 1) return Status::InvalidArgument("ef_search must be >= 1");
  if (o.max_elements == 0 || o.max_elements > kMaxSlots) {
    return Status::InvalidArgument("max_elements must be in 1..2^31-1");
  }
  auto impl = std::make_unique<Impl>(o);
  KYRODB_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<HnswIndex>(new HnswIndex(std::move(impl)));
}

Status HnswIndex::Add(uint64_t label, const float* vector) { return impl_->Add(label, vector); }
Status HnswIndex::AddBatch(std::span<const uint64_t> labels, const float* vectors,
                           size_t num_threads) {
  return impl_->AddBatch(labels, vectors, num_threads);
}
Status HnswIndex::Remove(uint64_t label) { return impl_->Remove(label); }
Status HnswIndex::Search(const float* query, size_t k, size_t ef,
                         std::vector<SearchHit>* out) const {
  return impl_->Search(query, k, ef, out);
}
bool HnswIndex::Contains(uint64_t label) const { return impl_->Find(label) != kNone; }
Status HnswIndex::GetVector(uint64_t label, float* out) const {
  return impl_->GetVector(label, out);
}
size_t HnswIndex::Consolidate() { return impl_->Consolidate(); }
HnswStats HnswIndex::Stats() const { return impl_->Stats(); }
size_t HnswIndex::Size() const { return impl_->live_.load(); }
const HnswOptions& HnswIndex::options() const { return impl_->opt_; }
Status HnswIndex::Save(const std::string& path, io::FileSystem* fs) const {
  return impl_->Save(path, fs);
}
Result<std::unique_ptr<HnswIndex>> HnswIndex::Load(const std::string& path, io::FileSystem* fs,
                                                   uint32_t max_elements) {
  auto impl = Impl::Load(path, fs, max_elements);
  if (!impl.ok()) return impl.status();
  return std::unique_ptr<HnswIndex>(new HnswIndex(std::move(impl).value()));
}

}  // namespace kyrodb::index
