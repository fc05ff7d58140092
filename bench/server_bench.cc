#include "server_bench.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <thread>

#include "ann_metrics.h"
#include "dataset.h"
#include "http_request.h"
#include "json_line.h"
#include "kyrodb/database.h"
#include "kyrodb/v1/kyrodb.grpc.pb.h"
#include "load_bench.h"
#include "load_client.h"
#include "loopback_bench.h"
#include "server_process.h"

namespace kyrodb::bench {
namespace {

namespace fs = std::filesystem;
namespace pb = kyrodb::v1;
using Clock = std::chrono::steady_clock;

// Searches cycle through this many distinct query vectors per configured query: with 64
// clients and the server's 1,024-entry LRU result cache, a query comes back only after
// queries * 10 others, so the cache cannot answer it (the lines report the cache's hits).
constexpr size_t kQueryPoolFactor = 10;
// Insert requests cycle through this many distinct embeddings (new ids every time).
constexpr size_t kInsertPool = 1000;
constexpr double kSearchBar = 0.70;
constexpr double kInsertBar = 10000;
// Issue #6: auth + rate-limit checks add at most this much to search p50.
constexpr double kAuthBarPct = 2.0;
// API keys in the auth server's keys file.
constexpr size_t kAuthKeys = 1000;
// The search ratios compare windows measured one after another: they mean something only if
// other processes took less than this share of the machine in each of them.
constexpr double kQuietShare = 0.10;
constexpr std::chrono::seconds kReadyTimeout{300};
constexpr std::chrono::seconds kStopTimeout{60};
constexpr std::chrono::seconds kFlushTimeout{3600};

void Emit(const JsonLine& j) {
  std::printf("%s\n", j.str().c_str());
  std::fflush(stdout);
}

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

std::string DefaultServerBin() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "kyrodb_server" : (self.parent_path() / "kyrodb_server").string();
}

// Removes the scratch directory on every exit path.
struct ScratchDir {
  std::string path;
  ~ScratchDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

// A counter or gauge from GET /metrics: the value of the series named exactly `series`
// (name plus labels, as printed); nullopt if absent.
std::optional<double> Metric(const HttpEndpoint& http, const std::string& series, const std::string& api_key) {
  auto reply = HttpCall(http, "GET", "/metrics", "", std::chrono::seconds(30), api_key);
  if (!reply.ok() || reply->status != 200) return std::nullopt;
  const std::string& text = reply->body;
  for (size_t pos = 0; pos < text.size();) {
    const size_t eol = std::min(text.find('\n', pos), text.size());
    std::string_view line(text.data() + pos, eol - pos);
    if (line.starts_with(series) && line.size() > series.size() && line[series.size()] == ' ') {
      return std::strtod(std::string(line.substr(series.size() + 1)).c_str(), nullptr);
    }
    pos = eol + 1;
  }
  return std::nullopt;
}

// Deltas of a few server metrics across a run: {JSON key, series} pairs.
class MetricDelta {
 public:
  using Watched = std::vector<std::pair<std::string, std::string>>;
  MetricDelta(const HttpEndpoint& http, Watched watched, std::string api_key)
      : http_(http), watched_(std::move(watched)), api_key_(std::move(api_key)) {
    for (const auto& w : watched_) before_.push_back(Metric(http_, w.second, api_key_));
  }
  // Reads the series again; Delta and AddTo use these readings.
  void Finish() {
    after_.clear();
    for (const auto& w : watched_) after_.push_back(Metric(http_, w.second, api_key_));
  }
  // after - before of series i (nullopt if unreadable or Finish() not called).
  std::optional<double> Delta(size_t i) const {
    if (i >= after_.size() || !before_[i] || !after_[i]) return std::nullopt;
    return *after_[i] - *before_[i];
  }
  // Adds "key": after - before for each series (null if unreadable).
  void AddTo(JsonLine& j) const {
    for (size_t i = 0; i < watched_.size(); ++i) {
      if (const auto d = Delta(i)) {
        j.Add(watched_[i].first, *d);
      } else {
        j.AddNull(watched_[i].first);
      }
    }
  }

 private:
  const HttpEndpoint& http_;
  Watched watched_;
  std::string api_key_;
  std::vector<std::optional<double>> before_;
  std::vector<std::optional<double>> after_;
};

// Loads base rows [0, n) as ids 1..n over gRPC BulkInsert, `streams` streams in parallel.
Status BulkLoad(const std::string& target, const FloatMatrix& base, size_t streams, const std::string& api_key) {
  std::vector<Status> results(streams, Status::Ok());
  std::vector<std::thread> pool;
  for (size_t s = 0; s < streams; ++s) {
    pool.emplace_back([&, s] {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      auto stub = pb::KyroDBService::NewStub(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
      grpc::ClientContext ctx;
      if (!api_key.empty()) ctx.AddMetadata("x-api-key", api_key);
      pb::InsertResponse reply;
      auto writer = stub->BulkInsert(&ctx, &reply);
      pb::InsertRequest req;
      const size_t begin = base.rows * s / streams, end = base.rows * (s + 1) / streams;
      for (size_t i = begin; i < end; ++i) {
        req.set_doc_id(i + 1);
        req.mutable_embedding()->Clear();
        req.mutable_embedding()->Add(base.Row(i), base.Row(i) + base.dim);
        (*req.mutable_metadata())["i"] = std::to_string(i);
        if (!writer->Write(req)) break;  // the server ended the stream: Finish() says why
      }
      writer->WritesDone();
      const grpc::Status st = writer->Finish();
      if (!st.ok()) {
        results[s] = Status::IoError("BulkInsert: " + st.error_message());
      } else if (!reply.success() || reply.total_inserted() != end - begin) {
        results[s] = Status::IoError("BulkInsert: inserted " + std::to_string(reply.total_inserted()) + " of " +
                                     std::to_string(end - begin) + ": " + reply.error());
      }
    });
  }
  for (auto& t : pool) t.join();
  for (auto& r : results) {
    if (!r.ok()) return r;
  }
  return Status::Ok();
}

struct InProcessResult {
  double open_s = 0;
  double seconds = 0;
  uint64_t searches = 0;
  std::vector<double> latency_us;
  double cpu_s = 0;
  double machine_busy_s = 0;
};

// The reference: the engine in this process on a copy of the search server's data directory
// (its snapshot: the same HNSW graph, so both search the same graph; two graphs built by
// separate flushes differ in search cost by several percent), `threads` threads searching for
// warm-up + window through the same query cycle, the result cache bypassed. It stays open
// through the search rounds and runs while the server idles (no load on it), so each round
// measures the reference next to the server's runs.
class InProcessReference {
 public:
  static Result<std::unique_ptr<InProcessReference>> Open(const ServerBenchConfig& c, const ClusteredData& data,
                                                          const std::string& data_dir) {
    DatabaseOptions o;
    o.data_dir = data_dir;
    o.fsync_policy = FsyncPolicy::kNever;
    o.start_background = false;
    o.max_vectors_per_collection = 1u << 24;  // as the server (hnsw.max_elements)
    const auto b0 = Clock::now();
    auto db = Database::Open(o);
    if (!db.ok()) return db.status();
    auto coll = (*db)->GetCollection("default", "default");
    if (!coll.ok()) return coll.status();
    std::unique_ptr<InProcessReference> ref(new InProcessReference(c, data, std::move(*db), std::move(*coll)));
    ref->open_s_ = Seconds(b0, Clock::now());
    SearchRequest probe = ref->req_;
    probe.query.assign(data.queries.Row(0), data.queries.Row(0) + c.dim);
    auto hits = ref->col_->Search(probe);
    if (!hits.ok()) return hits.status();
    if (hits->size() != std::min<size_t>(c.k, c.n)) {
      return Status::Internal("in-process: the snapshot's collection answered " + std::to_string(hits->size()) +
                              " hits, want " + std::to_string(std::min<size_t>(c.k, c.n)));
    }
    return ref;
  }

  double open_s() const { return open_s_; }

  Result<InProcessResult> Run(double warmup_s, double duration_s) {
    InProcessResult r;
    r.open_s = open_s_;
    std::atomic<bool> stop{false};
    const auto begin = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup_s));
    const auto end = begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration_s));
    std::vector<std::vector<double>> latencies(c_.server_threads);
    std::atomic<bool> failed{false};
    std::vector<std::thread> pool;
    for (size_t t = 0; t < c_.server_threads; ++t) {
      pool.emplace_back([&, t] {
        SearchRequest q = req_;
        while (!stop.load(std::memory_order_relaxed)) {
          const size_t row = next_.fetch_add(1, std::memory_order_relaxed) % data_.queries.rows;
          q.query.assign(data_.queries.Row(row), data_.queries.Row(row) + c_.dim);
          const auto t0 = Clock::now();
          if (!col_->Search(q).ok()) failed.store(true);
          const auto t1 = Clock::now();
          if (t1 >= begin && t1 < end) latencies[t].push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        }
      });
    }
    std::this_thread::sleep_until(begin);
    const double cpu0 = ProcessCpuSeconds(), busy0 = MachineBusyCpuSeconds();
    std::this_thread::sleep_until(end);
    r.cpu_s = ProcessCpuSeconds() - cpu0;
    r.machine_busy_s = MachineBusyCpuSeconds() - busy0;
    stop.store(true);
    for (auto& t : pool) t.join();
    if (failed.load()) return Status::Internal("in-process search failed");
    r.seconds = Seconds(begin, end);
    for (auto& l : latencies) r.latency_us.insert(r.latency_us.end(), l.begin(), l.end());
    r.searches = r.latency_us.size();
    return r;
  }

  Status Close() {
    col_.reset();
    return db_->Close();
  }

 private:
  InProcessReference(const ServerBenchConfig& c, const ClusteredData& data, std::unique_ptr<Database> db,
                     std::shared_ptr<Collection> col)
      : c_(c), data_(data), db_(std::move(db)), col_(std::move(col)) {
    req_.k = c.k;
    req_.ef = c.ef;
    req_.use_result_cache = false;
  }

  const ServerBenchConfig& c_;
  const ClusteredData& data_;
  std::unique_ptr<Database> db_;
  std::shared_ptr<Collection> col_;
  SearchRequest req_;
  double open_s_ = 0;
  std::atomic<size_t> next_{0};  // the query cycle continues across rounds
};

// The median of the values that are not NaN (0 if none).
double FiniteMedian(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
  return v.empty() ? 0.0 : Percentile(std::move(v), 50);
}

FloatMatrix FirstRows(const FloatMatrix& m, size_t rows) {
  FloatMatrix out;
  out.rows = std::min(rows, m.rows);
  out.dim = m.dim;
  out.data.assign(m.data.begin(), m.data.begin() + static_cast<std::ptrdiff_t>(out.rows * m.dim));
  return out;
}

// Runs one load against `server` with its CPU sampled over the same window; returns the
// throughput (or nullopt if the run could not start) and emits the line.
struct LoadRunner {
  LoadRunner(const ServerBenchConfig& config, ServerProcess* s, HttpEndpoint h, std::string target)
      : c(config), server(s), http(std::move(h)), grpc_target(std::move(target)) {}

  const ServerBenchConfig& c;
  ServerProcess* server = nullptr;
  HttpEndpoint http;
  std::string grpc_target;
  std::string api_key;      // sent with every request when not empty
  double duration_s = 0;    // measured seconds per run; 0: c.duration_s
  std::optional<GrpcClient> grpc_client;  // unset: c.grpc_client
  bool errors = false;
  double max_other_share = 0;  // over the search windows: other processes' CPU / machine capacity
  // Of the last successful Run:
  double last_p50_us = 0;
  double last_server_cpu_us = 0;  // per request
  double last_access_check_us = 0;  // searches: the server's time in its access checks, per request

  std::optional<double> Run(bool over_http, LoadOp op, const FloatMatrix& vectors, uint64_t first_insert_id,
                            const std::string& note, uint64_t* next_insert_id = nullptr) {
    const char* protocol = over_http ? "http" : "grpc";
    const double seconds = duration_s > 0 ? duration_s : c.duration_s;
    std::fprintf(stderr, "[server] %s %s%s: %zu clients, %.0f s\n", protocol, LoadOpName(op),
                 api_key.empty() ? "" : " (API key)", c.concurrency, seconds);
    LoadSpec spec;
    spec.target = over_http ? "http://" + http.HostHeader() : grpc_target;
    spec.op = op;
    spec.concurrency = c.concurrency;
    spec.client_threads = c.client_threads;
    spec.batch_scheduling = c.client_sched == "batch";
    spec.grpc_client = grpc_client.value_or(*ParseGrpcClient(c.grpc_client));
    spec.warmup_s = c.warmup_s;
    spec.duration_s = seconds;
    spec.api_key = api_key;
    spec.k = c.k;
    spec.ef = c.ef;
    spec.id_space = c.n;
    spec.first_insert_id = first_insert_id;
    spec.seed = c.seed;
    spec.vectors = &vectors;
    double cpu0 = 0, cpu1 = 0, busy0 = 0, busy1 = 0;
    spec.on_window_begin = [&] {
      cpu0 = server->CpuSeconds();
      busy0 = MachineBusyCpuSeconds();
    };
    spec.on_window_end = [&] {
      cpu1 = server->CpuSeconds();
      busy1 = MachineBusyCpuSeconds();
    };
    // Whole-run deltas (warm-up and drain included) of the server's own counters.
    MetricDelta::Watched watched;
    const std::string transport = over_http ? "{transport=\"http\"}" : "{transport=\"grpc\"}";
    if (op == LoadOp::kSearch) {
      // The first two are read back below: the server's own timing of its access checks.
      watched = {{"server_access_checks", "kyrodb_access_checks_total" + transport},
                 {"server_access_check_s", "kyrodb_access_check_seconds_total" + transport},
                 {"server_result_cache_hits", "kyrodb_search_cache_hits_total"},
                 {"server_result_cache_misses", "kyrodb_search_cache_misses_total"}};
    } else if (op == LoadOp::kQuery) {
      watched = {{"served_from_cache", "kyrodb_lookups_total{tier=\"cache\"}"},
                 {"served_from_hot_tier", "kyrodb_lookups_total{tier=\"hot_tier\"}"},
                 {"served_from_cold_tier", "kyrodb_lookups_total{tier=\"cold_tier\"}"}};
    } else {
      watched = {{"wal_fsyncs", "kyrodb_wal_fsyncs_total"},
                 {"wal_records", "kyrodb_wal_records_total"},
                 {"hot_tier_flushes", "kyrodb_flushes_total"}};
    }
    MetricDelta delta(http, std::move(watched), api_key);
    auto r = over_http ? RunHttpLoad(spec) : RunGrpcLoad(spec);
    if (!r.ok()) {
      std::fprintf(stderr, "server: %s %s: %s\n", protocol, LoadOpName(op), r.status().ToString().c_str());
      errors = true;
      return std::nullopt;
    }
    errors |= r->errors_total > 0;
    delta.Finish();
    last_access_check_us = 0;
    if (op == LoadOp::kSearch) {
      const auto checks = delta.Delta(0), seconds_in_checks = delta.Delta(1);
      if (checks && seconds_in_checks && *checks > 0) last_access_check_us = *seconds_in_checks * 1e6 / *checks;
    }
    const double other_share = (busy1 - busy0 - (cpu1 - cpu0) - r->client_cpu_s) /
                               (r->seconds * std::max(1u, std::thread::hardware_concurrency()));
    if (op == LoadOp::kSearch) max_other_share = std::max(max_other_share, other_share);
    if (next_insert_id) *next_insert_id = r->next_insert_id;
    const double server_cpu = cpu1 - cpu0;
    last_p50_us = Percentile(r->latency_us, 50);
    last_server_cpu_us = r->requests ? server_cpu * 1e6 / r->requests : 0.0;
    JsonLine j = LoadLine(protocol, spec, *r);
    j.Add("server_threads", static_cast<uint64_t>(c.server_threads))
        .Add("server_cpu_s", server_cpu)
        .Add("server_cpu_us_per_request", r->requests ? server_cpu * 1e6 / r->requests : 0.0)
        .Add("cores", static_cast<uint64_t>(std::thread::hardware_concurrency()))
        .Add("machine_busy_cpu_s", busy1 - busy0)
        .Add("other_processes_cpu_s", busy1 - busy0 - server_cpu - r->client_cpu_s);
    delta.AddTo(j);
    j.Add("note", note);
    Emit(j);
    return r->requests / r->seconds;
  }
};

}  // namespace

CLI::App* AddServerCommand(CLI::App* app, ServerBenchConfig* c) {
  CLI::App* cmd = app->add_subcommand(
      "server", "kyrodb_server over HTTP and gRPC against the in-process engine (search, query, insert)");
  cmd->add_option("--n", c->n, "Documents loaded")->check(CLI::PositiveNumber);
  cmd->add_option("--dim", c->dim, "Dimension")->check(CLI::Range(1, 4096));
  cmd->add_option("--queries", c->queries, "Queries (the pool holds 10x as many distinct vectors)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--concurrency", c->concurrency, "Concurrent clients (connections)")->check(CLI::Range(1, 100000));
  cmd->add_option("--duration", c->duration_s, "Measured seconds per run")->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", c->warmup_s, "Warm-up seconds per run")->check(CLI::NonNegativeNumber);
  cmd->add_option("--k", c->k, "Neighbours")->check(CLI::Range(1, 1000));
  cmd->add_option("--ef", c->ef, "ef_search")->check(CLI::Range(1, 10000));
  cmd->add_option("--client-threads", c->client_threads, "Load generator threads (HTTP io_contexts, gRPC completion queues)")->check(CLI::Range(1, 64));
  cmd->add_option("--client-sched", c->client_sched,
                  "Load generator threads' scheduling: batch (no wake-up preemption of the servers' threads) or normal")
      ->check(CLI::IsMember({"batch", "normal"}));
  cmd->add_option("--grpc-client", c->grpc_client,
                  "gRPC load client: h2 (HTTP/2 via nghttp2, lean) or grpcpp (gRPC's C++ library)")
      ->check(CLI::IsMember({"h2", "grpcpp"}));
  cmd->add_option("--grpc-library-search", c->grpc_library_search,
                  "Also run the gRPC search with the other gRPC client, reported beside (true/false)");
  cmd->add_option("--ceilings", c->ceilings,
                  "Each round also runs kyrodb_bench loopback tcp and grpc windows with the round's in-process CPU "
                  "per search as their work: what any server on loopback TCP / on gRPC's library could reach (true/false)");
  cmd->add_option("--search-rounds", c->search_rounds,
                  "Rounds of in-process, HTTP and gRPC search windows in turn (the ratios are their medians)")
      ->check(CLI::Range(1, 100));
  cmd->add_option("--search-duration", c->search_duration_s, "Measured seconds per search window")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--server-threads", c->server_threads,
                  "server.http_threads, server.grpc_threads and in-process search threads")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--insert-hot-tier-mb", c->insert_hot_tier_mb,
                  "Insert server's hot_tier.max_size_mb (large: no flush into HNSW during the run)");
  cmd->add_option("--server-bin", c->server_bin, "kyrodb_server binary (default: next to kyrodb_bench)");
  cmd->add_option("--dir", c->dir, "Parent of the scratch directory (default /tmp)");
  cmd->add_option("--auth-rounds", c->auth_rounds,
                  "Search rounds per protocol on each of two servers, without and with auth + rate limits (0: skip)");
  cmd->add_option("--auth-duration", c->auth_duration_s, "Measured seconds per auth round")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", c->seed, "Generator seed");
  return cmd;
}

int RunServerBench(const ServerBenchConfig& c) {
  const std::string binary = c.server_bin.empty() ? DefaultServerBin() : c.server_bin;
  if (::access(binary.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "server: %s is not an executable (--server-bin)\n", binary.c_str());
    return 2;
  }
  ScratchDir scratch;
  {
    std::string tmpl = (fs::path(c.dir.empty() ? "/tmp" : c.dir) / "kyrodb_server_bench_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::fprintf(stderr, "server: cannot create a scratch directory from %s\n", tmpl.c_str());
      return 1;
    }
    scratch.path = tmpl;
  }

  std::fprintf(stderr, "[server] generating %zu x %zu clustered vectors and %zu queries\n", c.n, c.dim,
               c.queries * kQueryPoolFactor);
  ClusteredSpec gen;
  gen.n = c.n;
  gen.dim = c.dim;
  gen.num_queries = c.queries * kQueryPoolFactor;
  gen.seed = c.seed;
  auto data = GenerateClustered(gen, std::max(1u, std::thread::hardware_concurrency()));
  if (!data.ok()) {
    std::fprintf(stderr, "server: %s\n", data.status().ToString().c_str());
    return 1;
  }
  const FloatMatrix insert_vectors = FirstRows(data->base, kInsertPool);

  const std::string threads = std::to_string(c.server_threads);
  const std::vector<std::string> common = {
      "--set", "server.http_threads=" + threads, "--set", "server.grpc_threads=" + threads,
      "--set", "hnsw.dimension=" + std::to_string(c.dim), "--set", "hnsw.distance=cosine",
      // The result cache off: the servers do the reference's work (use_result_cache=false) for
      // every search. With it on, its admission caches the ~9% of the cycling queries whose
      // doorkeeper slot no other query shares, and those are then answered from memory.
      "--set", "cache.search_results=0"};
  auto start = [&](const std::string& name, std::vector<std::string> extra) -> std::unique_ptr<ServerProcess> {
    const std::string dir = scratch.path + "/" + name;
    fs::create_directories(dir);
    extra.insert(extra.begin(), common.begin(), common.end());
    auto s = ServerProcess::Start(binary, dir, extra, kReadyTimeout);
    if (!s.ok()) {
      std::fprintf(stderr, "server: %s\n", s.status().ToString().c_str());
      return nullptr;
    }
    std::fprintf(stderr, "[server] %s: pid %d, http %u, grpc %u\n", name.c_str(), (*s)->pid(), (*s)->http_port(),
                 (*s)->grpc_port());
    return std::move(*s);
  };
  std::vector<int> exit_codes;
  auto stop = [&](std::unique_ptr<ServerProcess>& s, const char* name) {
    const double cpu = s->CpuSeconds();
    auto rc = s->Stop(kStopTimeout);
    JsonLine j;
    j.Add("bench", "server_stop").Add("server", name).Add("signal", "SIGTERM").Add("server_cpu_s_total", cpu);
    if (rc.ok()) {
      j.Add("exit_code", *rc);
      exit_codes.push_back(*rc);
    } else {
      j.AddNull("exit_code").Add("error", rc.status().ToString());
      exit_codes.push_back(-1);
    }
    Emit(j);
    s.reset();
  };

  // ---- search server: load, flush, then the reference and the runs ----
  // Its hot tier holds the whole load, so the one explicit flush builds the graph as the
  // in-process reference's flush does.
  const uint64_t load_mb = std::max<uint64_t>(100, 2 * c.n * c.dim * sizeof(float) / (1 << 20) + 64);
  auto search_server = start("search", {"--set", "hot_tier.max_size_mb=" + std::to_string(load_mb)});
  if (!search_server) return 1;
  LoadRunner runner{c, search_server.get(), {"127.0.0.1", search_server->http_port()},
                    "127.0.0.1:" + std::to_string(search_server->grpc_port())};

  std::fprintf(stderr, "[server] loading %zu vectors over gRPC BulkInsert\n", c.n);
  double cpu0 = search_server->CpuSeconds();
  auto t0 = Clock::now();
  if (Status s = BulkLoad(runner.grpc_target, data->base, 2, ""); !s.ok()) {
    std::fprintf(stderr, "server: %s\n", s.ToString().c_str());
    return 1;
  }
  const double load_s = Seconds(t0, Clock::now());
  const double load_cpu = search_server->CpuSeconds() - cpu0;
  std::fprintf(stderr, "[server] POST /v1/flush\n");
  t0 = Clock::now();
  auto flushed = HttpCall(runner.http, "POST", "/v1/flush", "{}", kFlushTimeout);
  const double flush_s = Seconds(t0, Clock::now());
  if (!flushed.ok() || flushed->status != 200) {
    std::fprintf(stderr, "server: flush failed: %s\n",
                 flushed.ok() ? flushed->body.c_str() : flushed.status().ToString().c_str());
    return 1;
  }
  Emit(JsonLine()
           .Add("bench", "server_load")
           .Add("documents", static_cast<uint64_t>(c.n))
           .Add("dim", static_cast<uint64_t>(c.dim))
           .Add("via", "gRPC BulkInsert, 2 streams")
           .Add("seconds", load_s)
           .Add("docs_per_s", c.n / load_s)
           .Add("server_cpu_s", load_cpu)
           .Add("flush_s", flush_s)
           .Add("flush_reply", flushed->body));

  // A snapshot, then the server stops and its data directory is copied: the reference (and the
  // auth comparison's second server) open the copies, the search server restarts from the
  // original, and all of them load the same HNSW graph.
  auto snapshotted = HttpCall(runner.http, "POST", "/v1/snapshot", "{}", kFlushTimeout);
  if (!snapshotted.ok() || snapshotted->status != 200) {
    std::fprintf(stderr, "server: snapshot failed: %s\n",
                 snapshotted.ok() ? snapshotted->body.c_str() : snapshotted.status().ToString().c_str());
    return 1;
  }
  stop(search_server, "search (loaded)");
  {
    std::error_code ec;
    fs::remove(scratch.path + "/search/ports.json", ec);
    for (const char* copy : {"inprocess", "search_auth"}) {
      if (std::string_view(copy) == "search_auth" && c.auth_rounds == 0) continue;
      fs::create_directories(scratch.path + "/" + copy, ec);
      if (!ec) fs::copy(scratch.path + "/search/data", scratch.path + "/" + copy + "/data", fs::copy_options::recursive, ec);
      if (ec) {
        std::fprintf(stderr, "server: copying the snapshot: %s\n", ec.message().c_str());
        return 1;
      }
    }
  }
  std::fprintf(stderr, "[server] in-process reference: the server's snapshot, opened in this process\n");
  auto reference = InProcessReference::Open(c, *data, scratch.path + "/inprocess/data");
  if (!reference.ok()) {
    std::fprintf(stderr, "server: in-process: %s\n", reference.status().ToString().c_str());
    return 1;
  }
  search_server = start("search", {"--set", "hot_tier.max_size_mb=" + std::to_string(load_mb)});
  if (!search_server) return 1;
  runner.server = search_server.get();
  runner.http = {"127.0.0.1", search_server->http_port()};
  runner.grpc_target = "127.0.0.1:" + std::to_string(search_server->grpc_port());

  // ---- search rounds: in-process, HTTP, gRPC (and gRPC with the other client), in turn ----
  // This machine's speed drifts by 10-20% over minutes; a ratio of two windows taken minutes
  // apart measures the drift as much as the server. Each round puts the four windows next to
  // each other and gives its own ratios; the figures are the medians over the rounds.
  const std::string search_note = "queries cycle in order through " + std::to_string(data->queries.rows) +
                                  " distinct vectors (server result cache off: cache.search_results=0)";
  // The other gRPC client (the library's, by default) shows what a client's own cost takes from
  // a server sharing its cores. Reported; the bar is judged on --grpc-client.
  const GrpcClient main_client = *ParseGrpcClient(c.grpc_client);
  const GrpcClient other_client = main_client == GrpcClient::kH2 ? GrpcClient::kGrpcpp : GrpcClient::kH2;
  struct Side {
    std::vector<double> qps, ratio, cpu_us;  // per round (NaN: the run failed)
  } inproc, http_s, grpc_s, grpc_other_s, tcp_ceiling, grpc_ceiling;
  runner.duration_s = c.search_duration_s;
  for (size_t round = 0; round < c.search_rounds; ++round) {
    std::fprintf(stderr, "[server] search round %zu of %zu\n", round + 1, c.search_rounds);
    auto in = (*reference)->Run(c.warmup_s, c.search_duration_s);
    if (!in.ok()) {
      std::fprintf(stderr, "server: in-process: %s\n", in.status().ToString().c_str());
      return 1;
    }
    const double in_qps = in->searches / in->seconds;
    const double in_cpu_us = in->searches ? in->cpu_s * 1e6 / in->searches : 0.0;
    runner.max_other_share = std::max(runner.max_other_share,
                                      (in->machine_busy_s - in->cpu_s) /
                                          (in->seconds * std::max(1u, std::thread::hardware_concurrency())));
    inproc.qps.push_back(in_qps);
    inproc.cpu_us.push_back(in_cpu_us);
    Emit(JsonLine()
             .Add("bench", "server_inprocess_search")
             .Add("round", static_cast<uint64_t>(round + 1))
             .Add("threads", static_cast<uint64_t>(c.server_threads))
             .Add("k", static_cast<uint64_t>(c.k))
             .Add("ef", static_cast<uint64_t>(c.ef))
             .Add("distinct_vectors", static_cast<uint64_t>(data->queries.rows))
             .Add("seconds", in->seconds)
             .Add("qps", in_qps)
             .Add("p50_us", Percentile(in->latency_us, 50))
             .Add("p99_us", Percentile(in->latency_us, 99))
             .Add("cpu_s", in->cpu_s)
             .Add("cpu_us_per_search", in_cpu_us)
             .Add("machine_busy_cpu_s", in->machine_busy_s)
             .Add("other_processes_cpu_s", in->machine_busy_s - in->cpu_s)
             .Add("open_s", in->open_s)
             .Add("note", "kyrodb::Database in this process on a copy of the search server's snapshot (the same "
                          "HNSW graph the server loaded), use_result_cache=false, the server idle"));
    auto run_side = [&](Side& side, bool over_http, std::optional<GrpcClient> client) {
      runner.grpc_client = client;
      const auto q = runner.Run(over_http, LoadOp::kSearch, data->queries, 0,
                                search_note + "; round " + std::to_string(round + 1));
      runner.grpc_client.reset();
      side.qps.push_back(q ? *q : NAN);
      side.ratio.push_back(q && in_qps > 0 ? *q / in_qps : NAN);
      side.cpu_us.push_back(q ? runner.last_server_cpu_us : NAN);
    };
    run_side(http_s, true, std::nullopt);
    run_side(grpc_s, false, main_client);
    if (c.grpc_library_search) run_side(grpc_other_s, false, other_client);
    // The ceilings: no KyroDB code, the round's in-process CPU per search as busy work per request
    // (docs/benchmarks.md, "kyrodb_bench loopback").
    if (c.ceilings) {
      for (const char* protocol : {"tcp", "grpc"}) {
        LoopbackBenchConfig lc;
        lc.protocol = protocol;
        lc.work_us = in_cpu_us;
        lc.connections = c.concurrency;
        lc.dim = c.dim;
        lc.server_threads = c.server_threads;
        lc.seconds = c.search_duration_s;
        lc.client_sched = c.client_sched;
        std::fprintf(stderr, "[server] %s ceiling: %.0f us of work per request, %g s\n", protocol, lc.work_us,
                     lc.seconds);
        auto r = RunLoopback(lc);
        Side& side = std::string_view(protocol) == "tcp" ? tcp_ceiling : grpc_ceiling;
        if (!r.ok() || r->errors > 0) {
          std::fprintf(stderr, "server: %s ceiling: %s\n", protocol,
                       r.ok() ? "calls failed" : r.status().ToString().c_str());
          runner.errors = true;
          side.ratio.push_back(NAN);
          continue;
        }
        side.ratio.push_back(r->ceiling_ratio.value_or(NAN));
        Emit(JsonLine()
                 .Add("bench", "server_ceiling")
                 .Add("round", static_cast<uint64_t>(round + 1))
                 .Add("protocol", protocol)
                 .Add("work_us", lc.work_us)
                 .Add("requests_per_s", r->requests_per_s)
                 .Add("cpu_us_per_request", r->cpu_us_per_request)
                 .Add("overhead_us_per_request", r->cpu_us_per_request - lc.work_us)
                 .Add("other_processes_cpu_s", r->other_processes_cpu_s)
                 .Add("ceiling_ratio", r->ceiling_ratio)
                 .Add("note", std::string_view(protocol) == "tcp"
                                  ? "kyrodb_bench loopback: minimal epoll server and client, no HTTP"
                                  : "kyrodb_bench loopback --protocol grpc: gRPC's C++ library (callback API) "
                                    "serving Search as busy work, the h2 client"));
      }
    }
  }
  runner.duration_s = 0;
  if (Status st = (*reference)->Close(); !st.ok()) {
    std::fprintf(stderr, "server: in-process: %s\n", st.ToString().c_str());
    return 1;
  }
  reference->reset();
  {
    std::error_code ec;
    fs::remove_all(scratch.path + "/inprocess", ec);
  }
  auto median = [](const std::vector<double>& v) -> std::optional<double> {
    if (v.empty() || std::any_of(v.begin(), v.end(), [](double x) { return std::isnan(x); })) return std::nullopt;
    return Percentile(v, 50);
  };
  auto per_round = [](const std::vector<double>& v) {
    std::string out;
    for (double x : v) out += fmt::format("{}{:.3f}", out.empty() ? "" : " ", x);
    return out;
  };
  const std::string query_note = "get-by-id of uniform random ids in [1, " + std::to_string(c.n) + "], no embedding";
  const auto http_query = runner.Run(true, LoadOp::kQuery, insert_vectors, 0, query_note);
  const auto grpc_query = runner.Run(false, LoadOp::kQuery, insert_vectors, 0, query_note);

  // ---- auth + rate limits: the same data served by two servers, without and with them ----
  // A snapshot, copied: both servers load the same HNSW graph and do the same search work (two
  // separately built graphs differ in cost by more than the 2% measured here). They are loaded
  // at the same time, so that the host's drift (run-to-run swings of ±10% and more on this shared
  // machine) falls on both.
  struct Overhead {
    std::optional<double> p50_pct;       // median p50 with auth over without, minus 1, in %
    std::optional<double> measured_pct;  // the server's time in the checks / p50, in %
  } http_auth, grpc_auth;
  if (c.auth_rounds == 0) {
    stop(search_server, "search");
  } else {
    const std::string keys_file = scratch.path + "/api_keys.yaml";
    const std::string search_key = "kyrodb-bench-search-1a2b3c4d5e6f7a8b9c0d1e2f";
    {
      // kAuthKeys keys in the store, as a server with many tenants has; the searches use one,
      // of the tenant that owns the data (auth disabled, everything is tenant `default`'s).
      std::string yaml = "api_keys:\n";
      yaml += "  - key: \"" + search_key + "\"\n    tenant_id: default\n";
      for (size_t i = 1; i < kAuthKeys; ++i) {
        yaml += fmt::format("  - key: \"kyrodb-bench-other-{:08x}{:08x}\"\n    tenant_id: t{}\n",
                            static_cast<uint32_t>(i * 2654435761u), i, i);
      }
      std::FILE* f = std::fopen(keys_file.c_str(), "w");
      if (f == nullptr || std::fwrite(yaml.data(), 1, yaml.size(), f) != yaml.size() || std::fclose(f) != 0) {
        std::fprintf(stderr, "server: cannot write %s\n", keys_file.c_str());
        return 1;
      }
    }
    // The search server restarts next to a second one started from the snapshot's copy (made
    // above); searches and queries wrote nothing since.
    stop(search_server, "search");
    {
      std::error_code ec;
      fs::remove(scratch.path + "/search/ports.json", ec);
    }
    const std::vector<std::string> plain_args = {"--set", "hot_tier.max_size_mb=" + std::to_string(load_mb)};
    std::vector<std::string> auth_args = plain_args;
    for (const char* a : {"auth.enabled=true", "rate_limit.enabled=true", "rate_limit.max_qps_per_tenant=1000000",
                          "rate_limit.max_qps_per_connection=1000000", "rate_limit.max_qps_global=10000000"}) {
      auth_args.insert(auth_args.end(), {"--set", a});
    }
    auth_args.insert(auth_args.end(), {"--set", "auth.api_keys_file=" + keys_file});
    auto plain_server = start("search", plain_args);
    auto auth_server = start("search_auth", auth_args);
    if (!plain_server || !auth_server) return 1;
    LoadRunner sides[2] = {{c, plain_server.get(), {"127.0.0.1", plain_server->http_port()},
                            "127.0.0.1:" + std::to_string(plain_server->grpc_port())},
                           {c, auth_server.get(), {"127.0.0.1", auth_server->http_port()},
                            "127.0.0.1:" + std::to_string(auth_server->grpc_port())}};
    sides[1].api_key = search_key;
    for (LoadRunner& r : sides) r.duration_s = c.auth_duration_s;
    const std::string note_plain = "auth side by side: auth disabled, rate limits off; " + search_note;
    const std::string note_auth = "auth side by side: auth enabled (" + std::to_string(kAuthKeys) +
                                  " keys, x-api-key), rate limits on per connection, tenant and global "
                                  "(set high enough never to refuse); " + search_note;
    std::vector<double> p50[2][2], qps[2][2], cpu[2][2], checks[2][2];  // [protocol][side: no auth, auth]
    for (size_t round = 0; round < c.auth_rounds; ++round) {
      for (int protocol = 0; protocol < 2; ++protocol) {
        // Both sides at once, each with its own load generator: whatever else the machine does
        // meanwhile falls on both alike.
        std::optional<double> got[2];
        std::thread other([&] { got[1] = sides[1].Run(protocol == 0, LoadOp::kSearch, data->queries, 0, note_auth); });
        got[0] = sides[0].Run(protocol == 0, LoadOp::kSearch, data->queries, 0, note_plain);
        other.join();
        for (int side = 0; side < 2; ++side) {
          qps[protocol][side].push_back(got[side] ? *got[side] : NAN);  // a failed run counts in errors
          p50[protocol][side].push_back(got[side] ? sides[side].last_p50_us : NAN);
          cpu[protocol][side].push_back(got[side] ? sides[side].last_server_cpu_us : NAN);
          checks[protocol][side].push_back(got[side] ? sides[side].last_access_check_us : NAN);
        }
      }
    }
    runner.errors |= sides[0].errors || sides[1].errors;
    stop(plain_server, "search (restarted, no auth)");
    stop(auth_server, "search_auth");
    for (int protocol = 0; protocol < 2; ++protocol) {
      JsonLine j;
      j.Add("bench", "server_auth_overhead")
          .Add("protocol", protocol == 0 ? "http" : "grpc")
          .Add("rounds", static_cast<uint64_t>(c.auth_rounds))
          .Add("seconds_per_run", c.auth_duration_s);
      // Per round, the two sides ran at the same time: their ratio is what the machine's drift
      // (other tenants of the host) disturbs least; the median ratio is the figure.
      std::vector<double> p50_ratio, cpu_ratio;
      for (size_t i = 0; i < std::min(p50[protocol][0].size(), p50[protocol][1].size()); ++i) {
        if (std::isnan(p50[protocol][0][i]) || std::isnan(p50[protocol][1][i])) continue;
        p50_ratio.push_back(p50[protocol][1][i] / p50[protocol][0][i]);
        cpu_ratio.push_back(cpu[protocol][1][i] / cpu[protocol][0][i]);
      }
      // The server's own timing: µs per request in the access checks (auth side minus the
      // no-auth side's, which runs only the rate limiter's disabled fast path) over the p50.
      const double check_us = FiniteMedian(checks[protocol][1]), check_us_plain = FiniteMedian(checks[protocol][0]);
      const double p50_auth = FiniteMedian(p50[protocol][1]);
      const std::optional<double> measured_pct =
          p50_auth > 0 ? std::optional<double>((check_us - check_us_plain) / p50_auth * 100) : std::nullopt;
      j.Add("server_access_check_us_auth", check_us)
          .Add("server_access_check_us_no_auth", check_us_plain)
          .Add("access_checks_share_of_p50_pct", measured_pct);
      std::optional<double> pct;
      if (!p50_ratio.empty()) {
        pct = (Percentile(p50_ratio, 50) - 1) * 100;
        std::string per_round;
        for (double r : p50_ratio) per_round += fmt::format("{}{:+.2f}", per_round.empty() ? "" : " ", (r - 1) * 100);
        j.Add("p50_overhead_pct", *pct)
            .Add("p50_overhead_pct_per_round", per_round)
            .Add("server_cpu_per_search_overhead_pct", (Percentile(cpu_ratio, 50) - 1) * 100)
            .Add("p50_us_no_auth", FiniteMedian(p50[protocol][0]))
            .Add("p50_us_auth", FiniteMedian(p50[protocol][1]))
            .Add("qps_no_auth", FiniteMedian(qps[protocol][0]))
            .Add("qps_auth", FiniteMedian(qps[protocol][1]))
            .Add("server_cpu_us_per_search_no_auth", FiniteMedian(cpu[protocol][0]))
            .Add("server_cpu_us_per_search_auth", FiniteMedian(cpu[protocol][1]));
      } else {
        j.AddNull("p50_overhead_pct");
      }
      j.Add("bar_pct", kAuthBarPct)
          .Add("meets_bar", measured_pct.has_value() && *measured_pct <= kAuthBarPct)
          .Add("note", "meets_bar from access_checks_share_of_p50_pct: the server's own timing of its access "
                       "checks (kyrodb_access_check_seconds_total, median per request, auth side minus no-auth "
                       "side) over the auth side's median search p50. p50_overhead_pct: median over the rounds of "
                       "(auth / no auth) p50 of two servers loaded at the same time (each with its own 64 "
                       "connections and client thread) from one snapshot copied; on a noisy machine it swings "
                       "more than the checks cost");
      Emit(j);
      (protocol == 0 ? http_auth : grpc_auth).p50_pct = pct;
      (protocol == 0 ? http_auth : grpc_auth).measured_pct = measured_pct;
    }
  }

  // ---- insert server: fsync_policy=always, new ids only ----
  auto insert_server = start("insert", {"--set", "persistence.fsync_policy=always", "--set",
                                        "hot_tier.max_size_mb=" + std::to_string(c.insert_hot_tier_mb)});
  if (!insert_server) return 1;
  runner.server = insert_server.get();
  runner.http = {"127.0.0.1", insert_server->http_port()};
  runner.grpc_target = "127.0.0.1:" + std::to_string(insert_server->grpc_port());
  const std::string insert_note = "fsync_policy=always, empty server, every insert a new id, embeddings cycle through " +
                                  std::to_string(insert_vectors.rows) + " vectors; hot_tier.max_size_mb=" +
                                  std::to_string(c.insert_hot_tier_mb);
  uint64_t next_id = 1;
  const auto http_insert = runner.Run(true, LoadOp::kInsert, insert_vectors, next_id, insert_note, &next_id);
  const auto grpc_insert = runner.Run(false, LoadOp::kInsert, insert_vectors, next_id, insert_note, &next_id);
  stop(insert_server, "insert");

  const auto http_ratio = median(http_s.ratio), grpc_ratio = median(grpc_s.ratio);
  const double inproc_cpu_us = median(inproc.cpu_us).value_or(0);
  auto efficiency = [&](const Side& side) -> std::optional<double> {
    const auto cpu = median(side.cpu_us);
    if (!cpu || *cpu <= 0) return std::nullopt;
    return inproc_cpu_us / *cpu;
  };
  const bool clean_exits = std::all_of(exit_codes.begin(), exit_codes.end(), [](int rc) { return rc == 0; });
  Emit(JsonLine()
           .Add("bench", "server_summary")
           .Add("documents", static_cast<uint64_t>(c.n))
           .Add("dim", static_cast<uint64_t>(c.dim))
           .Add("concurrency", static_cast<uint64_t>(c.concurrency))
           .Add("server_threads", static_cast<uint64_t>(c.server_threads))
           .Add("search_rounds", static_cast<uint64_t>(c.search_rounds))
           .Add("search_seconds_per_run", c.search_duration_s)
           // Medians over the rounds; each round's ratio is of windows taken side by side.
           .Add("inprocess_search_qps", median(inproc.qps))
           .Add("http_search_qps", median(http_s.qps))
           .Add("grpc_search_qps", median(grpc_s.qps))
           .Add("grpc_client", GrpcClientName(main_client))
           .Add("http_search_qps_over_inprocess", http_ratio)
           .Add("grpc_search_qps_over_inprocess", grpc_ratio)
           .Add("http_search_qps_over_inprocess_per_round", per_round(http_s.ratio))
           .Add("grpc_search_qps_over_inprocess_per_round", per_round(grpc_s.ratio))
           .Add("search_bar", kSearchBar)
           .Add("http_search_meets_bar", http_ratio.value_or(0) >= kSearchBar)
           .Add("grpc_search_meets_bar", grpc_ratio.value_or(0) >= kSearchBar)
           // What a server doing no work but the engine's could reach, per round beside the others.
           .Add("tcp_ceiling_ratio", median(tcp_ceiling.ratio))
           .Add("grpc_library_ceiling_ratio", median(grpc_ceiling.ratio))
           .Add("tcp_ceiling_ratio_per_round", per_round(tcp_ceiling.ratio))
           .Add("grpc_library_ceiling_ratio_per_round", per_round(grpc_ceiling.ratio))
           .Add("grpc_library_ceiling_meets_bar", median(grpc_ceiling.ratio).value_or(0) >= kSearchBar)
           .Add("grpc_other_client", GrpcClientName(other_client))
           .Add("grpc_other_client_search_qps_over_inprocess", median(grpc_other_s.ratio))
           .Add("grpc_other_client_search_qps_over_inprocess_per_round", per_round(grpc_other_s.ratio))
           .Add("grpc_other_client_server_cpu_us_per_search", median(grpc_other_s.cpu_us))
           // Without the client's share of the cores: what the server keeps of the engine's
           // per-core search throughput (in-process CPU per search / server CPU per search).
           .Add("inprocess_cpu_us_per_search", inproc_cpu_us)
           .Add("http_server_cpu_us_per_search", median(http_s.cpu_us))
           .Add("grpc_server_cpu_us_per_search", median(grpc_s.cpu_us))
           .Add("http_server_cpu_efficiency", efficiency(http_s))
           .Add("grpc_server_cpu_efficiency", efficiency(grpc_s))
           .Add("http_query_qps", http_query)
           .Add("grpc_query_qps", grpc_query)
           .Add("http_insert_per_s", http_insert)
           .Add("grpc_insert_per_s", grpc_insert)
           .Add("insert_bar_per_s", kInsertBar)
           .Add("http_insert_meets_bar", http_insert.value_or(0) >= kInsertBar)
           .Add("grpc_insert_meets_bar", grpc_insert.value_or(0) >= kInsertBar)
           .Add("http_auth_p50_overhead_pct", http_auth.p50_pct)
           .Add("grpc_auth_p50_overhead_pct", grpc_auth.p50_pct)
           .Add("http_access_checks_share_of_p50_pct", http_auth.measured_pct)
           .Add("grpc_access_checks_share_of_p50_pct", grpc_auth.measured_pct)
           .Add("auth_bar_pct", kAuthBarPct)
           .Add("max_other_processes_cpu_share", runner.max_other_share)
           .Add("search_ratios_trustworthy", runner.max_other_share < kQuietShare)
           .Add("request_errors", runner.errors)
           .Add("servers_exited_0", clean_exits)
           .Add("note", "client and servers share this machine's cores; see each line's client_cpu_s, server_cpu_s "
                "and other_processes_cpu_s; max_other_processes_cpu_share is over the search windows (in-process included)"));
  return runner.errors || !clean_exits ? 1 : 0;
}

}  // namespace kyrodb::bench
