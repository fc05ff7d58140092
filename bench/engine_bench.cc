#include "engine_bench.h"

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include "ann_metrics.h"
#include "dataset.h"
#include "index/metric.h"
#include "json_line.h"
#include "kyrodb/database.h"

namespace kyrodb::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void Emit(const JsonLine& j) { std::printf("%s\n", j.str().c_str()); std::fflush(stdout); }

// p50/p99 in ns of `fn` called once per element of ids, each call timed on its own: every
// sample includes one clock read (20-30 ns on a VM's kvm-clock).
template <typename Fn>
JsonLine Latency(const char* what, const std::vector<uint64_t>& ids, Fn&& fn) {
  std::vector<double> ns;
  ns.reserve(ids.size());
  for (uint64_t id : ids) {
    auto t0 = Clock::now();
    fn(id);
    ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
  }
  JsonLine j;
  j.Add("bench", "engine_get").Add("tier", what).Add("calls", static_cast<uint64_t>(ids.size()))
      .Add("timing", "per_call").Add("p50_ns", Percentile(ns, 50)).Add("p99_ns", Percentile(ns, 99));
  return j;
}

// The same calls timed in consecutive batches of kBatch (one clock pair per batch, so the clock
// costs 1/kBatch of a read per call): p50/p99 over batches of the batch's time / kBatch.
constexpr size_t kBatch = 16;
template <typename Fn>
JsonLine BatchLatency(const char* what, const std::vector<uint64_t>& ids, Fn&& fn) {
  std::vector<double> ns;
  ns.reserve(ids.size() / kBatch);
  for (size_t i = 0; i + kBatch <= ids.size(); i += kBatch) {
    auto t0 = Clock::now();
    for (size_t j = i; j < i + kBatch; ++j) fn(ids[j]);
    ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kBatch);
  }
  JsonLine j;
  j.Add("bench", "engine_get").Add("tier", what)
      .Add("calls", static_cast<uint64_t>(ns.size() * kBatch))
      .Add("timing", "per_call_in_batches_of_16").Add("p50_ns", Percentile(ns, 50))
      .Add("p99_ns", Percentile(ns, 99));
  return j;
}

}  // namespace

CLI::App* AddEngineCommand(CLI::App* app, EngineBenchConfig* c) {
  CLI::App* cmd = app->add_subcommand("engine", "In-process engine: inserts, flush, search QPS, get-by-id per tier");
  cmd->add_option("--dir", c->dir, "Parent of the scratch directory (default /tmp)");
  cmd->add_option("--n", c->n, "Documents");
  cmd->add_option("--dim", c->dim, "Dimension");
  cmd->add_option("--metric", c->metric, "l2, ip or cosine");
  cmd->add_option("--queries", c->queries, "Search queries");
  cmd->add_option("--k", c->k, "Neighbours per query");
  cmd->add_option("--ef", c->ef, "Search ef");
  cmd->add_option("--lookups", c->lookups, "Get-by-id calls per tier");
  cmd->add_option("--threads", c->threads, "Threads for the multi-threaded search line");
  cmd->add_option("--seed", c->seed, "Generator seed");
  return cmd;
}

int RunEngineBench(const EngineBenchConfig& c) {
  auto metric = index::ParseMetric(c.metric);
  if (!metric) {
    std::fprintf(stderr, "engine: unknown metric %s\n", c.metric.c_str());
    return 2;
  }
  const size_t threads = c.threads ? c.threads : std::max(1u, std::thread::hardware_concurrency());
  ClusteredSpec spec;
  spec.n = c.n;
  spec.dim = c.dim;
  spec.num_queries = c.queries;
  spec.seed = c.seed;
  auto data = GenerateClustered(spec, threads);
  if (!data.ok()) {
    std::fprintf(stderr, "engine: %s\n", data.status().ToString().c_str());
    return 1;
  }
  const std::string dir = (std::filesystem::path(c.dir.empty() ? "/tmp" : c.dir) /
                           ("kyrodb_engine_bench_" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(dir);
  int rc = 0;
  {
    DatabaseOptions o;
    o.data_dir = dir;
    o.fsync_policy = FsyncPolicy::kNever;
    o.start_background = false;
    o.max_vectors_per_collection = static_cast<uint32_t>(c.n + c.lookups + 1024);
    auto db = Database::Open(o);
    if (!db.ok()) {
      std::fprintf(stderr, "engine: %s\n", db.status().ToString().c_str());
      return 1;
    }
    CollectionOptions co;
    co.dimension = static_cast<uint32_t>(c.dim);
    co.metric = *metric;
    auto coll = (*db)->CreateCollection("bench", "docs", co);
    if (!coll.ok()) return 1;
    Collection& col = **coll;

    std::fprintf(stderr, "[engine] inserting %zu documents\n", c.n);
    auto t0 = Clock::now();
    for (size_t i = 0; i < c.n; ++i) {
      Document d{DocKey::Numeric(i + 1),
                 std::vector<float>(data->base.Row(i), data->base.Row(i) + c.dim),
                 {{"i", std::to_string(i)}}};
      if (!col.Upsert(d).ok()) return 1;
    }
    auto t1 = Clock::now();
    auto flushed = col.Flush();
    auto t2 = Clock::now();
    if (!flushed.ok()) return 1;
    Emit(JsonLine().Add("bench", "engine_insert").Add("documents", static_cast<uint64_t>(c.n))
             .Add("fsync_policy", "never").Add("inserts_per_s", c.n / Seconds(t0, t1))
             .Add("flush_s", Seconds(t1, t2)).Add("flush_docs_per_s", c.n / Seconds(t1, t2)));

    // Search QPS, single-threaded and on all threads (the result cache is defeated by
    // distinct queries; a repeated-query line shows what it buys).
    SearchRequest req;
    req.k = c.k;
    req.ef = c.ef;
    req.include_metadata = true;
    req.use_result_cache = false;
    std::vector<double> us;
    t0 = Clock::now();
    for (size_t q = 0; q < c.queries; ++q) {
      req.query.assign(data->queries.Row(q), data->queries.Row(q) + c.dim);
      auto s0 = Clock::now();
      auto hits = col.Search(req);
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - s0).count());
      if (!hits.ok()) return 1;
    }
    t1 = Clock::now();
    Emit(JsonLine().Add("bench", "engine_search").Add("threads", 1).Add("k", static_cast<uint64_t>(c.k))
             .Add("ef", static_cast<uint64_t>(c.ef)).Add("qps", c.queries / Seconds(t0, t1))
             .Add("p50_us", Percentile(us, 50)).Add("p99_us", Percentile(us, 99)));
    std::atomic<size_t> next{0};
    t0 = Clock::now();
    std::vector<std::thread> pool;
    for (size_t t = 0; t < threads; ++t) {
      pool.emplace_back([&] {
        SearchRequest r = req;
        for (size_t q; (q = next.fetch_add(1)) < c.queries;) {
          r.query.assign(data->queries.Row(q), data->queries.Row(q) + c.dim);
          if (!col.Search(r).ok()) std::abort();
        }
      });
    }
    for (auto& t : pool) t.join();
    t1 = Clock::now();
    Emit(JsonLine().Add("bench", "engine_search").Add("threads", static_cast<uint64_t>(threads))
             .Add("k", static_cast<uint64_t>(c.k)).Add("ef", static_cast<uint64_t>(c.ef))
             .Add("qps", c.queries / Seconds(t0, t1)));
    req.query.assign(data->queries.Row(0), data->queries.Row(0) + c.dim);
    req.use_result_cache = true;
    t0 = Clock::now();
    for (size_t q = 0; q < c.queries; ++q) {
      if (!col.Search(req).ok()) return 1;
    }
    t1 = Clock::now();
    Emit(JsonLine().Add("bench", "engine_search_repeated").Add("threads", 1)
             .Add("qps", c.queries / Seconds(t0, t1)).Add("note", "same query: result cache (L1b)"));

    // Get-by-id per tier. Each id is looked up once for the cold and hot lines (so the L1 cache
    // cannot serve it), then the same ids again for the L1 line.
    std::mt19937_64 rng(c.seed);
    std::vector<uint64_t> cold_ids(c.n);
    for (size_t i = 0; i < c.n; ++i) cold_ids[i] = i + 1;
    std::shuffle(cold_ids.begin(), cold_ids.end(), rng);
    cold_ids.resize(std::min(c.lookups, c.n));
    size_t served[3] = {0, 0, 0};
    auto get = [&](uint64_t id) {
      auto g = col.Get(DocKey::Numeric(id), false);
      if (!g.ok()) std::abort();
      served[static_cast<int>(g->served_from)]++;
    };
    Emit(Latency("cold_tier", cold_ids, get).Add("served_from_cold", static_cast<uint64_t>(served[2])));
    const size_t hot_n = std::min<size_t>(c.n, 10000);
    std::vector<uint64_t> hot_ids;
    for (size_t i = 0; i < hot_n; ++i) {
      Document d{DocKey::Numeric(c.n + 1 + i),
                 std::vector<float>(data->base.Row(i), data->base.Row(i) + c.dim), {}};
      if (!col.Upsert(d).ok()) return 1;
      hot_ids.push_back(c.n + 1 + i);
    }
    std::shuffle(hot_ids.begin(), hot_ids.end(), rng);
    served[1] = 0;
    Emit(Latency("hot_tier", hot_ids, get).Add("served_from_hot", static_cast<uint64_t>(served[1])));
    std::vector<uint64_t> l1_ids;
    for (size_t i = 0; i < c.lookups; ++i) l1_ids.push_back(hot_ids[rng() % std::min<size_t>(hot_ids.size(), 2000)]);
    served[0] = 0;
    Emit(Latency("cache", l1_ids, get).Add("served_from_cache", static_cast<uint64_t>(served[0])));
    // The same L1 lookups, every one still a full Get returning the document's metadata, timed
    // in batches of 16 (p50 per call without the clock read in it) ...
    served[0] = 0;
    Emit(BatchLatency("cache", l1_ids, get).Add("served_from_cache", static_cast<uint64_t>(served[0])));
    // ... and as one batch: the mean, no clock read per call.
    served[0] = 0;
    t0 = Clock::now();
    for (uint64_t id : l1_ids) get(id);
    t1 = Clock::now();
    Emit(JsonLine().Add("bench", "engine_get_batched").Add("tier", "cache")
             .Add("calls", static_cast<uint64_t>(l1_ids.size())).Add("timing", "mean_of_all_calls")
             .Add("mean_ns", std::chrono::duration<double, std::nano>(t1 - t0).count() / l1_ids.size())
             .Add("served_from_cache", static_cast<uint64_t>(served[0])));
    if (!(*db)->Close().ok()) rc = 1;
  }
  std::filesystem::remove_all(dir);
  return rc;
}

}  // namespace kyrodb::bench
