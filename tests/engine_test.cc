// The tiered engine: hot tier, flush into HNSW, merged search, durability across restarts.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "engine/search_cache.h"
#include "index/flat_index.h"
#include "kyrodb/database.h"
#include "test_support.h"

namespace kyrodb {
namespace {

using kyrodb::testing::TempDir;

DatabaseOptions Options(const std::string& dir) {
  DatabaseOptions o;
  o.data_dir = dir;
  o.fsync_policy = FsyncPolicy::kNever;  // durability itself is tested in storage tests
  o.start_background = false;            // tests drive background work explicitly
  o.max_vectors_per_collection = 1 << 16;
  return o;
}

std::unique_ptr<Database> MustOpen(const DatabaseOptions& o) {
  auto db = Database::Open(o);
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  return db.ok() ? std::move(db).value() : nullptr;
}

std::vector<float> Vec(uint64_t seed, size_t dim) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> v(dim);
  for (auto& x : v) x = g(rng);
  return v;
}

CollectionOptions L2(uint32_t dim) {
  CollectionOptions o;
  o.dimension = dim;
  o.metric = Metric::kL2;
  return o;
}

TEST(EngineTest, ReadYourWriteFromTheHotTierWithStringAndNumericIds) {
  TempDir d;
  auto db = MustOpen(Options(d.path()));
  auto c = db->CreateCollection("t", "docs", L2(8));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_OK((*c)->Upsert({DocKey::String("doc_123"), Vec(1, 8), {{"lang", "en"}}}));
  ASSERT_OK((*c)->Upsert({DocKey::Numeric(123), Vec(2, 8), {{"lang", "fr"}}}));
  ASSERT_OK((*c)->Upsert({DocKey::String("123"), Vec(3, 8), {}}));
  auto a = (*c)->Get(DocKey::String("doc_123"), true);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->served_from, Tier::kHotTier);
  EXPECT_EQ(a->key.external, "doc_123");
  EXPECT_EQ(a->embedding, Vec(1, 8));
  EXPECT_EQ(a->metadata, (Metadata{{"lang", "en"}}));
  // "123" the string and 123 the number are different documents.
  auto b = (*c)->Get(DocKey::Numeric(123), true);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->embedding, Vec(2, 8));
  auto s = (*c)->Get(DocKey::String("123"), true);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->embedding, Vec(3, 8));
  EXPECT_EQ((*c)->Stats().documents, 3u);
  EXPECT_EQ((*c)->Get(DocKey::String("nope"), false).status().code(), StatusCode::kNotFound);
}

TEST(EngineTest, UpsertBatchReportsEachDocumentAndSurvivesRestart) {
  TempDir d;
  std::vector<Document> docs;
  for (uint64_t i = 1; i <= 2500; ++i) docs.push_back({DocKey::Numeric(i), Vec(i, 8), {{"i", std::to_string(i)}}});
  docs.push_back({DocKey::String("s-1"), Vec(9001, 8), {}});
  docs[10].embedding.pop_back();  // wrong dimension
  docs[2000].key = DocKey::Numeric(0);  // bad id
  {
    auto db = MustOpen(Options(d.path()));
    auto c = db->CreateCollection("t", "docs", L2(8));
    ASSERT_TRUE(c.ok());
    std::vector<Status> results;
    Status first = (*c)->UpsertBatch(docs, &results);
    EXPECT_EQ(first.code(), StatusCode::kInvalidArgument);
    ASSERT_EQ(results.size(), docs.size());
    for (size_t i = 0; i < docs.size(); ++i) {
      EXPECT_EQ(results[i].ok(), i != 10 && i != 2000) << i << " " << results[i].ToString();
    }
    EXPECT_EQ((*c)->Stats().documents, docs.size() - 2);
    EXPECT_EQ((*c)->document_count(), docs.size() - 2);
    // Replacing, deleting and deleting again keep the O(1) count equal to the walked one.
    ASSERT_OK((*c)->Upsert({DocKey::Numeric(1), Vec(77, 8), {}}));
    ASSERT_OK((*c)->Delete(DocKey::Numeric(2)));
    EXPECT_FALSE((*c)->Delete(DocKey::Numeric(2)).ok());
    ASSERT_TRUE((*c)->Flush().ok());
    ASSERT_OK((*c)->Upsert({DocKey::Numeric(3), Vec(78, 8), {}}));  // hot shadows cold
    ASSERT_OK((*c)->Delete(DocKey::Numeric(4)));                    // cold
    ASSERT_OK((*c)->Upsert({DocKey::Numeric(2), Vec(79, 8), {}}));  // back again
    EXPECT_EQ((*c)->document_count(), (*c)->Stats().documents);
    EXPECT_EQ((*c)->document_count(), docs.size() - 3);
    ASSERT_OK(db->Snapshot());
    ASSERT_OK(db->Close());
  }
  auto db = MustOpen(Options(d.path()));
  auto c = db->GetCollection("t", "docs");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->Stats().documents, docs.size() - 3);
  EXPECT_EQ((*c)->document_count(), docs.size() - 3);
  auto g = (*c)->Get(DocKey::Numeric(2500), true);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->embedding, Vec(2500, 8));
  EXPECT_TRUE((*c)->Get(DocKey::String("s-1"), false).ok());
  EXPECT_FALSE((*c)->Get(DocKey::Numeric(11), false).ok());
}

TEST(EngineTest, RejectsBadInputWithClearErrors) {
  TempDir d;
  auto db = MustOpen(Options(d.path()));
  CollectionOptions cos;
  cos.dimension = 4;
  auto c = db->CreateCollection("t", "c", cos);
  ASSERT_TRUE(c.ok());
  auto code = [](const Status& s) { return s.code(); };
  EXPECT_EQ(code((*c)->Upsert({DocKey::Numeric(1), {1, 2, 3}, {}})), StatusCode::kInvalidArgument);
  EXPECT_EQ(code((*c)->Upsert({DocKey::Numeric(1), {1, NAN, 3, 4}, {}})),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code((*c)->Upsert({DocKey::Numeric(1), {0, 0, 0, 0}, {}})),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code((*c)->Upsert({DocKey::Numeric(0), {1, 2, 3, 4}, {}})),
            StatusCode::kInvalidArgument);
  SearchRequest r;
  r.query = {1, 2, 3, 4};
  r.k = 0;
  EXPECT_EQ((*c)->Search(r).status().code(), StatusCode::kInvalidArgument);
  r.k = 1001;
  EXPECT_EQ((*c)->Search(r).status().code(), StatusCode::kInvalidArgument);
  r.k = 10;
  r.ef = 10001;
  EXPECT_EQ((*c)->Search(r).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(db->CreateCollection("t", "c", cos).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(db->CreateCollection("t", "bad/name", cos).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(db->GetCollection("t", "missing").status().code(), StatusCode::kNotFound);
  EXPECT_EQ((*c)->Delete(DocKey::Numeric(5)).code(), StatusCode::kNotFound);
  ASSERT_OK(db->DropCollection("t", "c"));
  EXPECT_EQ((*c)->Upsert({DocKey::Numeric(1), {1, 2, 3, 4}, {}}).code(), StatusCode::kNotFound);
  EXPECT_EQ(db->DropCollection("t", "c").code(), StatusCode::kNotFound);
}

TEST(EngineTest, TenantsSeeOnlyTheirOwnCollections) {
  TempDir d;
  auto db = MustOpen(Options(d.path()));
  auto a = db->CreateCollection("alice", "docs", L2(4));
  auto b = db->CreateCollection("bob", "docs", L2(4));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_OK((*a)->Upsert({DocKey::Numeric(7), {1, 1, 1, 1}, {{"owner", "alice"}}}));
  EXPECT_EQ((*b)->Get(DocKey::Numeric(7), false).status().code(), StatusCode::kNotFound);
  SearchRequest r;
  r.query = {1, 1, 1, 1};
  auto hits = (*b)->Search(r);
  ASSERT_TRUE(hits.ok());
  EXPECT_TRUE(hits->empty());
  EXPECT_EQ(db->ListCollections("alice").size(), 1u);
  EXPECT_EQ(db->ListCollections("carol").size(), 0u);
}

// The model every scenario is checked against: id -> (embedding, metadata).
using Model = std::map<uint64_t, std::pair<std::vector<float>, Metadata>>;

void ExpectMatchesModel(Collection& c, const Model& model, size_t dim, const char* when) {
  SCOPED_TRACE(when);
  EXPECT_EQ(c.Stats().documents, model.size());
  for (const auto& [id, v] : model) {
    auto g = c.Get(DocKey::Numeric(id), true);
    ASSERT_TRUE(g.ok()) << "doc " << id << ": " << g.status().ToString();
    EXPECT_EQ(g->embedding, v.first) << "doc " << id;
    EXPECT_EQ(g->metadata, v.second) << "doc " << id;
  }
  // Search merges hot and cold exactly like brute force over the model (ef large enough that
  // HNSW is exact on this small set).
  index::FlatIndex flat(dim, Metric::kL2);
  for (const auto& [id, v] : model) flat.Add(id, v.first.data());
  for (uint64_t q = 0; q < 20; ++q) {
    SearchRequest r;
    r.query = Vec(9000 + q, dim);
    r.k = 10;
    r.ef = 500;
    auto hits = c.Search(r);
    ASSERT_TRUE(hits.ok()) << hits.status().ToString();
    auto want = flat.Search(r.query.data(), 10);
    ASSERT_EQ(hits->size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ((*hits)[i].key.id, want[i].label) << "query " << q << " rank " << i;
      EXPECT_NEAR((*hits)[i].distance, want[i].distance, 1e-3);
    }
  }
}

TEST(EngineTest, UpdatesAndDeletesStraddlingFlushesMatchBruteForceAndSurviveRestarts) {
  TempDir d;
  const size_t dim = 12;
  Model model;
  {
    auto db = MustOpen(Options(d.path()));
    auto c = db->CreateCollection("t", "c", L2(dim));
    ASSERT_TRUE(c.ok());
    std::mt19937_64 rng(5);
    uint64_t seed = 1;
    for (int round = 0; round < 4; ++round) {
      for (int i = 0; i < 150; ++i) {
        uint64_t id = 1 + rng() % 300;
        int op = static_cast<int>(rng() % 10);
        if (op < 6) {
          Metadata md{{"v", std::to_string(seed)}};
          auto v = Vec(seed++, dim);
          ASSERT_OK((*c)->Upsert({DocKey::Numeric(id), v, md}));
          model[id] = {v, md};
        } else if (op < 8) {
          Status s = (*c)->Delete(DocKey::Numeric(id));
          EXPECT_EQ(s.ok(), model.erase(id) == 1) << s.ToString();
        } else {
          Status s = (*c)->UpdateMetadata(DocKey::Numeric(id), {{"m", std::to_string(round)}},
                                          /*merge=*/true);
          auto it = model.find(id);
          EXPECT_EQ(s.ok(), it != model.end());
          if (it != model.end()) {
            auto& md = it->second.second;
            auto kv = std::find_if(md.begin(), md.end(), [](auto& p) { return p.first == "m"; });
            if (kv != md.end()) kv->second = std::to_string(round);
            else md.emplace_back("m", std::to_string(round));
          }
        }
      }
      ExpectMatchesModel(**c, model, dim, "before flush");
      auto f = (*c)->Flush();
      ASSERT_TRUE(f.ok()) << f.status().ToString();
      ExpectMatchesModel(**c, model, dim, "after flush");
      if (round == 1) ASSERT_OK(db->Snapshot());
    }
    EXPECT_EQ((*c)->Stats().hot_documents, 0u);
    ASSERT_OK(db->Close());
  }
  // Restart: snapshot + WAL replay gives the same answers.
  auto db = MustOpen(Options(d.path()));
  auto c = db->GetCollection("t", "c");
  ASSERT_TRUE(c.ok()) << db->recovery_summary();
  ExpectMatchesModel(**c, model, dim, "after restart");
  // And once more after a snapshot of the recovered state.
  ASSERT_OK(db->Snapshot());
  ASSERT_OK(db->Close());
  db = MustOpen(Options(d.path()));
  c = db->GetCollection("t", "c");
  ASSERT_TRUE(c.ok());
  ExpectMatchesModel(**c, model, dim, "after second restart");
}

TEST(EngineTest, FlushMovesEveryDocumentToTheColdTierExactlyOnce) {
  TempDir d;
  auto db = MustOpen(Options(d.path()));
  auto c = db->CreateCollection("t", "c", L2(8));
  ASSERT_TRUE(c.ok());
  for (uint64_t i = 1; i <= 500; ++i) {
    ASSERT_OK((*c)->Upsert({DocKey::Numeric(i), Vec(i, 8), {}}));
  }
  auto f = (*c)->Flush();
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->docs_flushed, 500u);
  CollectionStats st = (*c)->Stats();
  EXPECT_EQ(st.hot_documents, 0u);
  EXPECT_EQ(st.cold_documents, 500u);
  auto g = (*c)->Get(DocKey::Numeric(42), true);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->served_from, Tier::kColdTier);
  EXPECT_EQ(g->embedding, Vec(42, 8));
  SearchRequest r;
  r.query = Vec(42, 8);
  r.k = 50;
  r.ef = 200;
  auto hits = (*c)->Search(r);
  ASSERT_TRUE(hits.ok());
  std::set<uint64_t> ids;
  for (auto& h : *hits) EXPECT_TRUE(ids.insert(h.key.id).second) << "duplicate " << h.key.id;
  EXPECT_EQ((*hits)[0].key.id, 42u);
  EXPECT_EQ((*c)->Flush()->docs_flushed, 0u);
}

// Writers, readers and repeated flushes at once (also run under TSan). Each writer owns a range
// of ids, so its last write per id is the expected final state.
TEST(EngineTest, ConcurrentWritesReadsAndFlushesLoseNothing) {
  TempDir d;
  const size_t dim = 8;
  auto db = MustOpen(Options(d.path()));
  auto c = db->CreateCollection("t", "c", L2(dim));
  ASSERT_TRUE(c.ok());
  std::atomic<bool> stop{false};
  std::vector<Model> models(2);
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(w);
      for (int i = 0; i < 600; ++i) {
        uint64_t id = 1 + w * 1000 + rng() % 200;
        if (rng() % 4 == 0) {
          Status s = (*c)->Delete(DocKey::Numeric(id));
          EXPECT_EQ(s.ok(), models[w].erase(id) == 1);
        } else {
          auto v = Vec(w * 100000 + i, dim);
          ASSERT_OK((*c)->Upsert({DocKey::Numeric(id), v, {}}));
          models[w][id] = {v, {}};
        }
      }
    });
  }
  std::thread reader([&] {
    SearchRequest r;
    r.query = Vec(1, dim);
    while (!stop) {
      auto hits = (*c)->Search(r);
      ASSERT_TRUE(hits.ok());
      std::set<uint64_t> ids;
      for (auto& h : *hits) EXPECT_TRUE(ids.insert(h.key.id).second) << "duplicate in results";
    }
  });
  std::thread flusher([&] {
    while (!stop) ASSERT_TRUE((*c)->Flush().ok());
  });
  for (auto& t : threads) t.join();
  stop = true;
  reader.join();
  flusher.join();
  Model all;
  for (auto& m : models) all.insert(m.begin(), m.end());
  ExpectMatchesModel(**c, all, dim, "after concurrent run");
  ASSERT_TRUE((*c)->Flush().ok());
  ExpectMatchesModel(**c, all, dim, "after final flush");
}

// The result-cache tests: collection t/c (L2, 4 dims) holding ids 1..50, and the search they
// repeat.
std::shared_ptr<Collection> FiftyDocs(Database* db) {
  auto c = db->CreateCollection("t", "c", L2(4));
  EXPECT_TRUE(c.ok());
  if (!c.ok()) return nullptr;
  for (uint64_t i = 1; i <= 50; ++i) EXPECT_TRUE((*c)->Upsert({DocKey::Numeric(i), Vec(i, 4), {}}).ok());
  return *c;
}

SearchRequest NearNines() {
  SearchRequest r;
  r.query = {9, 9, 9, 9};
  r.k = 3;
  return r;
}

TEST(EngineTest, RepeatedSearchIsServedFromTheResultCacheUntilAWrite) {
  TempDir d;
  auto db = MustOpen(Options(d.path()));
  auto c = FiftyDocs(db.get());
  ASSERT_NE(c, nullptr);
  const SearchRequest r = NearNines();
  auto first = c->Search(r);
  ASSERT_TRUE(first.ok());
  // The first miss only marks the request (the doorkeeper); the second miss caches its answer.
  const uint64_t hits_before = c->Stats().search_cache_hits;
  ASSERT_TRUE(c->Search(r).ok());
  EXPECT_EQ(c->Stats().search_cache_hits, hits_before);
  auto second = c->Search(r);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(c->Stats().search_cache_hits, hits_before + 1);
  ASSERT_EQ(second->size(), first->size());
  for (size_t i = 0; i < first->size(); ++i) EXPECT_EQ((*second)[i].key.id, (*first)[i].key.id);
  // A write makes the cached answer stale: the new closest document must show up.
  ASSERT_OK(c->Upsert({DocKey::Numeric(77), {9, 9, 9, 9}, {}}));
  auto third = c->Search(r);
  ASSERT_TRUE(third.ok());
  ASSERT_FALSE(third->empty());
  EXPECT_EQ((*third)[0].key.id, 77u);
  EXPECT_EQ(c->Stats().search_cache_hits, hits_before + 1);
}

TEST(EngineTest, ResultCacheTurnedOffAnswersEveryRepeatFromTheIndex) {
  TempDir d;
  DatabaseOptions o = Options(d.path());
  o.search_cache_entries = 0;
  auto db = MustOpen(o);
  auto c = FiftyDocs(db.get());
  ASSERT_NE(c, nullptr);
  const SearchRequest r = NearNines();
  std::vector<SearchHit> first;
  for (int i = 0; i < 5; ++i) {
    SearchPath path = SearchPath::kCacheHit;
    auto got = c->Search(r, &path);
    ASSERT_TRUE(got.ok());
    EXPECT_NE(path, SearchPath::kCacheHit) << i;
    if (i == 0) first = *got;
    ASSERT_EQ(got->size(), first.size());
    for (size_t j = 0; j < first.size(); ++j) EXPECT_EQ((*got)[j].key.id, first[j].key.id);
  }
  EXPECT_EQ(c->Stats().search_cache_hits, 0u);
}

TEST(SearchCacheTest, AnswersOnlyTheSameRequestAtTheSameGenerationAndStaysBounded) {
  SearchCache cache(2);
  SearchRequest a;
  a.query = {1, 2, 3};
  a.k = 5;
  std::vector<SearchHit> answer_a(1);
  answer_a[0].key = DocKey::Numeric(11);
  const uint64_t ha = SearchCache::HashOf(a);
  EXPECT_FALSE(cache.Lookup(a, ha, 7).has_value());
  cache.Insert(a, ha, 7, answer_a);
  auto got = cache.Lookup(a, ha, 7);
  ASSERT_TRUE(got.has_value());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].key.id, 11u);
  EXPECT_FALSE(cache.Lookup(a, ha, 8).has_value());  // a write happened since

  // Every parameter that changes the answer changes the hash.
  for (auto change : std::vector<std::function<void(SearchRequest&)>>{
           [](SearchRequest& r) { r.query[2] = 4; }, [](SearchRequest& r) { r.k = 6; },
           [](SearchRequest& r) { r.ef = 99; }, [](SearchRequest& r) { r.has_min_score = true; },
           [](SearchRequest& r) { r.include_embeddings = true; }, [](SearchRequest& r) { r.include_metadata = false; },
           [](SearchRequest& r) { r.query.push_back(0); }}) {
    SearchRequest b = a;
    change(b);
    EXPECT_NE(SearchCache::HashOf(b), ha);
  }

  // A different request under the same hash (a collision) never gets the other's answer, and
  // its insert takes the slot over.
  SearchRequest b = a;
  b.query = {3, 2, 1};
  EXPECT_FALSE(cache.Lookup(b, ha, 7).has_value());
  std::vector<SearchHit> answer_b(1);
  answer_b[0].key = DocKey::Numeric(22);
  cache.Insert(b, ha, 7, answer_b);
  got = cache.Lookup(b, ha, 7);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ((*got)[0].key.id, 22u);
  EXPECT_FALSE(cache.Lookup(a, ha, 7).has_value());
  EXPECT_EQ(cache.size(), 1u);

  // Admission, decided by a missing Lookup: a hash is admitted at its second miss; a colliding
  // doorkeeper slot forgets the first; a hit or a lookup without `admit` leaves it alone.
  SearchCache fresh(2);
  auto admitted = [&](SearchCache& sc, uint64_t h) {
    bool admit = true;
    EXPECT_FALSE(sc.Lookup(a, h, 7, &admit).has_value());
    return admit;
  };
  EXPECT_FALSE(fresh.Lookup(a, ha, 7).has_value());  // no admission asked: not remembered
  EXPECT_FALSE(admitted(fresh, ha));
  EXPECT_TRUE(admitted(fresh, ha));
  const uint64_t same_slot = ha + (uint64_t{1} << 40);  // the doorkeeper is far smaller than 2^40
  EXPECT_FALSE(admitted(fresh, same_slot));
  EXPECT_FALSE(admitted(fresh, ha));
  EXPECT_TRUE(admitted(fresh, ha));
  fresh.Insert(a, ha, 7, answer_a);
  bool admit_on_hit = true;
  EXPECT_TRUE(fresh.Lookup(a, ha, 7, &admit_on_hit).has_value());
  EXPECT_FALSE(admit_on_hit);
  SearchCache none(0);
  EXPECT_FALSE(admitted(none, ha));
  EXPECT_FALSE(admitted(none, ha));

  // Bounded: the least recently used entry goes.
  SearchRequest c = a, d = a;
  c.k = 1;
  d.k = 2;
  cache.Insert(c, SearchCache::HashOf(c), 7, answer_a);
  EXPECT_TRUE(cache.Lookup(b, ha, 7).has_value());  // b is now the most recent
  cache.Insert(d, SearchCache::HashOf(d), 7, answer_a);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_FALSE(cache.Lookup(c, SearchCache::HashOf(c), 7).has_value());
  EXPECT_TRUE(cache.Lookup(b, ha, 7).has_value());
  EXPECT_TRUE(cache.Lookup(d, SearchCache::HashOf(d), 7).has_value());
}

TEST(EngineTest, SecondLookupIsServedFromTheCacheAndWritesNeverLeaveItStale) {
  TempDir d;
  auto db = MustOpen(Options(d.path()));
  auto c = db->CreateCollection("t", "c", L2(4));
  ASSERT_TRUE(c.ok());
  ASSERT_OK((*c)->Upsert({DocKey::String("a"), {1, 2, 3, 4}, {{"v", "1"}}}));
  ASSERT_TRUE((*c)->Flush().ok());
  auto first = (*c)->Get(DocKey::String("a"), true);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->served_from, Tier::kColdTier);
  auto second = (*c)->Get(DocKey::String("a"), true);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->served_from, Tier::kCache);
  EXPECT_EQ(second->embedding, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(second->key.external, "a");
  // Update: the cached copy must not be served.
  ASSERT_OK((*c)->Upsert({DocKey::String("a"), {5, 6, 7, 8}, {{"v", "2"}}}));
  auto third = (*c)->Get(DocKey::String("a"), true);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->embedding, (std::vector<float>{5, 6, 7, 8}));
  EXPECT_EQ(third->metadata, (Metadata{{"v", "2"}}));
  ASSERT_TRUE((*c)->Get(DocKey::String("a"), false).ok());  // cached again
  ASSERT_OK((*c)->UpdateMetadata(DocKey::String("a"), {{"w", "x"}}, /*merge=*/true));
  EXPECT_EQ((*c)->Get(DocKey::String("a"), false)->metadata, (Metadata{{"v", "2"}, {"w", "x"}}));
  ASSERT_OK((*c)->Delete(DocKey::String("a")));
  EXPECT_EQ((*c)->Get(DocKey::String("a"), false).status().code(), StatusCode::kNotFound);
}

TEST(EngineTest, BackgroundTaskFlushesByAgeAndSnapshotsByCount) {
  TempDir d;
  DatabaseOptions o = Options(d.path());
  o.hot_tier_flush_interval_ms = 0;  // any hot document is old enough
  o.snapshot_every_mutations = 10;
  auto db = MustOpen(o);
  auto c = db->CreateCollection("t", "c", L2(4));
  ASSERT_TRUE(c.ok());
  for (uint64_t i = 1; i <= 20; ++i) ASSERT_OK((*c)->Upsert({DocKey::Numeric(i), Vec(i, 4), {}}));
  EXPECT_EQ((*c)->Stats().hot_documents, 20u);
  db->RunBackgroundOnce();
  EXPECT_EQ((*c)->Stats().hot_documents, 0u);
  EXPECT_EQ((*c)->Stats().cold_documents, 20u);
  bool has_snapshot = false;
  for (const auto& e : std::filesystem::directory_iterator(d.path())) {
    has_snapshot |= e.path().filename().string().rfind("snapshot-", 0) == 0;
  }
  EXPECT_TRUE(has_snapshot);
}

}  // namespace
}  // namespace kyrodb
