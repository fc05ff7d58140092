#include "ann_bench.h"

#include <fmt/format.h>
#include <malloc.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include "ann_engine.h"
#include "ann_metrics.h"
#include "dataset.h"
#include "json_line.h"

namespace kyrodb::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Resident set size from /proc/self/statm (second field, in pages); 0 if unreadable.
size_t ResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int got = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return got == 2 ? resident * static_cast<size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

// Prints each result line to stdout and, with --out, appends it to a file.
class ResultSink {
 public:
  ~ResultSink() {
    if (file_ != nullptr) std::fclose(file_);
  }
  Status Open(const std::string& path) {
    if (path.empty()) return Status::Ok();
    file_ = std::fopen(path.c_str(), "a");
    if (file_ == nullptr) return Status::IoError("cannot open --out file " + path);
    return Status::Ok();
  }
  Status Emit(const JsonLine& line) {
    const std::string s = line.str() + "\n";
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
    if (file_ != nullptr &&
        (std::fwrite(s.data(), 1, s.size(), file_) != s.size() || std::fflush(file_) != 0)) {
      return Status::IoError("cannot write to the --out file");
    }
    return Status::Ok();
  }

 private:
  std::FILE* file_ = nullptr;
};

struct Workload {
  std::string name;  // e.g. clustered-100000x128-l2
  index::Metric metric = index::Metric::kL2;
  FloatMatrix base;
  FloatMatrix queries;
  IdMatrix truth;
};

index::Metric MetricFromFlag(const std::string& flag) {
  if (flag == "cosine") return index::Metric::kCosine;
  if (flag == "ip") return index::Metric::kInnerProduct;
  return index::Metric::kL2;
}

Result<Workload> LoadWorkload(const AnnBenchConfig& c, size_t threads) {
  Workload w;
  w.metric = MetricFromFlag(c.metric);
  const Clock::time_point t0 = Clock::now();
  std::string stem;
  if (!c.base_path.empty()) {
    auto base = ReadFvecs(c.base_path);
    if (!base.ok()) return base.status();
    auto queries = ReadFvecs(c.query_path);
    if (!queries.ok()) return queries.status();
    if (base->dim != queries->dim) {
      return Status::InvalidArgument(
          fmt::format("base dimension {} != query dimension {}", base->dim, queries->dim));
    }
    w.base = std::move(base).value();
    w.queries = std::move(queries).value();
    stem = std::filesystem::path(c.base_path).stem().string();
  } else {
    ClusteredSpec spec{c.n, c.dim, c.num_queries, c.clusters, c.seed};
    auto data = GenerateClustered(spec, threads);
    if (!data.ok()) return data.status();
    w.base = std::move(data->base);
    w.queries = std::move(data->queries);
    stem = "clustered";
  }
  if (w.queries.rows == 0) return Status::InvalidArgument("no queries");
  if (c.k > w.base.rows) {
    return Status::InvalidArgument(
        fmt::format("k = {} exceeds the {} base vectors", c.k, w.base.rows));
  }
  w.name = fmt::format("{}-{}x{}-{}", stem, w.base.rows, w.base.dim, c.metric);
  fmt::print(stderr, "[ann] dataset {}: {} base, {} queries ({:.2f} s)\n", w.name, w.base.rows,
             w.queries.rows, Seconds(Clock::now() - t0));

  // Cosine: every engine (and the ground truth) gets the same normalized data.
  if (w.metric == index::Metric::kCosine) {
    KYRODB_RETURN_IF_ERROR(NormalizeRows(&w.base));
    KYRODB_RETURN_IF_ERROR(NormalizeRows(&w.queries));
  }

  if (!c.groundtruth_path.empty()) {
    auto truth = ReadIvecs(c.groundtruth_path);
    if (!truth.ok()) return truth.status();
    if (truth->rows != w.queries.rows || truth->cols < c.k) {
      return Status::InvalidArgument(
          fmt::format("{}: {} rows x {} ids, need {} rows x at least {} ids", c.groundtruth_path,
                      truth->rows, truth->cols, w.queries.rows, c.k));
    }
    for (uint32_t id : truth->data) {
      if (id >= w.base.rows) {
        return Status::InvalidArgument(
            fmt::format("{}: id {} is not a base row", c.groundtruth_path, id));
      }
    }
    w.truth = std::move(truth).value();
  } else {
    const Clock::time_point g0 = Clock::now();
    auto truth = ExactTopK(w.base, w.queries, c.k, w.metric, threads);
    if (!truth.ok()) return truth.status();
    w.truth = std::move(truth).value();
    fmt::print(stderr, "[ann] exact top-{} ground truth on {} threads: {:.2f} s\n", c.k, threads,
               Seconds(Clock::now() - g0));
  }
  return w;
}

Result<std::unique_ptr<AnnEngine>> MakeEngine(const std::string& name, const AnnEngineParams& p) {
  if (name == "hnswlib") return NewHnswlibEngine(p);
  if (name == "faiss") return NewFaissEngine(p);
  if (name == "kyrodb") return NewKyroDbEngine(p);
  return Status::InvalidArgument("unknown engine '" + name + "'");
}

// One pass of single-threaded searches over all queries. With `found`/`latencies_us`, records
// the labels (k per query) and each query's latency.
Status SearchPass(AnnEngine& engine, const Workload& w, size_t k, size_t ef,
                  std::vector<uint64_t>* found, std::vector<double>* latencies_us) {
  std::vector<uint64_t> hits;
  hits.reserve(k);
  for (size_t q = 0; q < w.queries.rows; ++q) {
    const Clock::time_point s = Clock::now();
    KYRODB_RETURN_IF_ERROR(engine.Search(w.queries.Row(q), k, ef, &hits));
    const Clock::time_point e = Clock::now();
    if (latencies_us != nullptr) (*latencies_us)[q] = Seconds(e - s) * 1e6;
    if (found != nullptr) {
      for (size_t i = 0; i < k; ++i) (*found)[q * k + i] = i < hits.size() ? hits[i] : kNoLabel;
    }
  }
  return Status::Ok();
}

struct EngineResult {
  double build_vectors_per_s = 0;
  std::vector<RecallQps> points;  // sorted by ef
};

Result<EngineResult> RunEngine(const std::string& engine_name, const AnnBenchConfig& c,
                               const Workload& w, size_t threads, ResultSink* sink) {
  const AnnEngineParams params{w.base.dim, w.metric, c.m, c.ef_construction, c.seed};
  auto made = MakeEngine(engine_name, params);
  if (!made.ok()) return made.status();
  AnnEngine& engine = **made;
  const std::string caveat(engine.Caveat());
  auto add_caveat = [&](JsonLine& line) {
    if (!caveat.empty()) line.Add("caveat", caveat);
  };

  fmt::print(stderr, "[{}] building {} vectors on {} threads\n", engine_name, w.base.rows, threads);
  malloc_trim(0);  // return what earlier engines freed, so the RSS delta is this engine's
  const size_t rss_before = ResidentBytes();
  const Clock::time_point b0 = Clock::now();
  KYRODB_RETURN_IF_ERROR(engine.Build(w.base.data.data(), w.base.rows, threads));
  const double build_s = Seconds(Clock::now() - b0);
  const size_t rss_after = ResidentBytes();

  EngineResult result;
  result.build_vectors_per_s = static_cast<double>(w.base.rows) / build_s;
  JsonLine build;
  build.Add("engine", engine_name)
      .Add("dataset", w.name)
      .Add("build_s", build_s)
      .Add("build_vectors_per_s", result.build_vectors_per_s)
      .Add("threads", static_cast<uint64_t>(threads))
      .Add("m", static_cast<uint64_t>(c.m))
      .Add("ef_construction", static_cast<uint64_t>(c.ef_construction))
      .Add("memory_bytes", static_cast<uint64_t>(engine.MemoryBytes()))
      .Add("rss_delta_bytes",
           static_cast<uint64_t>(rss_after > rss_before ? rss_after - rss_before : 0));
  add_caveat(build);
  KYRODB_RETURN_IF_ERROR(sink->Emit(build));

  const size_t nq = w.queries.rows;
  std::vector<uint64_t> found(nq * c.k);
  std::vector<double> latencies_us(nq);
  const std::string recall_key = fmt::format("recall_at_{}", c.k);
  for (size_t ef : c.efs) {
    KYRODB_RETURN_IF_ERROR(SearchPass(engine, w, c.k, ef, nullptr, nullptr));  // warm-up
    const Clock::time_point s0 = Clock::now();
    KYRODB_RETURN_IF_ERROR(SearchPass(engine, w, c.k, ef, &found, &latencies_us));
    const double pass_s = Seconds(Clock::now() - s0);
    const RecallQps point{ef, RecallAtK(found, w.truth, c.k), static_cast<double>(nq) / pass_s};
    result.points.push_back(point);
    JsonLine line;
    line.Add("engine", engine_name)
        .Add("dataset", w.name)
        .Add("ef", static_cast<uint64_t>(ef))
        .Add(recall_key, point.recall)
        .Add("qps", point.qps)
        .Add("p50_us", Percentile(latencies_us, 50))
        .Add("p99_us", Percentile(latencies_us, 99));
    add_caveat(line);
    KYRODB_RETURN_IF_ERROR(sink->Emit(line));
  }
  return result;
}

std::optional<double> Ratio(std::optional<double> a, std::optional<double> b) {
  if (!a || !b || *b <= 0) return std::nullopt;
  return *a / *b;
}

Status Run(AnnBenchConfig c) {
  std::sort(c.efs.begin(), c.efs.end());  // QPS-at-recall interpolates along increasing ef
  c.efs.erase(std::unique(c.efs.begin(), c.efs.end()), c.efs.end());
  const size_t threads =
      c.threads != 0 ? c.threads : std::max<size_t>(1, std::thread::hardware_concurrency());
  ResultSink sink;
  KYRODB_RETURN_IF_ERROR(sink.Open(c.out_path));
  auto workload = LoadWorkload(c, threads);
  if (!workload.ok()) return workload.status();
  const Workload& w = *workload;

  std::map<std::string, EngineResult> results;
  for (const std::string& name : c.engines) {
    auto r = RunEngine(name, c, w, threads, &sink);
    if (!r.ok()) return Status(r.status().code(), name + ": " + r.status().message());
    results[name] = std::move(r).value();
  }

  auto qps_at = [&](const std::string& engine, double target) -> std::optional<double> {
    auto it = results.find(engine);
    if (it == results.end()) return std::nullopt;
    return QpsAtRecall(it->second.points, target);
  };
  auto build_rate = [&](const std::string& engine) -> std::optional<double> {
    auto it = results.find(engine);
    if (it == results.end()) return std::nullopt;
    return it->second.build_vectors_per_s;
  };
  JsonLine summary;
  summary.Add("summary", true)
      .Add("dataset", w.name)
      .Add("qps_ratio_vs_hnswlib_at_recall_0.95",
           Ratio(qps_at("kyrodb", 0.95), qps_at("hnswlib", 0.95)))
      .Add("qps_ratio_vs_hnswlib_at_recall_0.99",
           Ratio(qps_at("kyrodb", 0.99), qps_at("hnswlib", 0.99)))
      .Add("qps_ratio_vs_faiss_at_recall_0.95",
           Ratio(qps_at("kyrodb", 0.95), qps_at("faiss", 0.95)))
      .Add("qps_ratio_vs_faiss_at_recall_0.99",
           Ratio(qps_at("kyrodb", 0.99), qps_at("faiss", 0.99)))
      .Add("build_ratio_vs_hnswlib", Ratio(build_rate("kyrodb"), build_rate("hnswlib")));
  for (const std::string& name : c.engines) {
    summary.Add(name + "_qps_at_recall_0.95", qps_at(name, 0.95))
        .Add(name + "_qps_at_recall_0.99", qps_at(name, 0.99));
  }
  return sink.Emit(summary);
}

}  // namespace

CLI::App* AddAnnCommand(CLI::App* app, AnnBenchConfig* c) {
  CLI::App* cmd = app->add_subcommand(
      "ann", "Recall/QPS/build benchmark of KyroDB's HNSW index vs hnswlib and FAISS");
  auto* dataset = cmd->add_option("--dataset", c->dataset, "Generated dataset")
                      ->check(CLI::IsMember({"clustered"}))
                      ->capture_default_str();
  cmd->add_option("--n", c->n, "Base vectors (clustered)")
      ->check(CLI::Range(1, 1 << 30))
      ->capture_default_str();
  cmd->add_option("--dim", c->dim, "Dimension (clustered)")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  cmd->add_option("--queries", c->num_queries, "Queries (clustered)")
      ->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  cmd->add_option("--clusters", c->clusters, "Mixture components (clustered); 0: max(100, n/1000)")
      ->capture_default_str();
  cmd->add_option("--seed", c->seed, "Generator and level seed")->capture_default_str();
  auto* base = cmd->add_option("--base", c->base_path, "Base vectors, .fvecs")->excludes(dataset);
  auto* query = cmd->add_option("--query", c->query_path, "Query vectors, .fvecs");
  auto* gt = cmd->add_option("--groundtruth", c->groundtruth_path,
                             "True neighbours, .ivecs (default: computed exactly)");
  base->needs(query);
  query->needs(base);
  gt->needs(base);
  cmd->add_option("--metric", c->metric, "l2, cosine or ip")
      ->check(CLI::IsMember({"l2", "cosine", "ip"}))
      ->capture_default_str();
  cmd->add_option("--engines", c->engines, "Comma-separated: kyrodb,hnswlib,faiss")
      ->delimiter(',')
      ->check(CLI::IsMember({"kyrodb", "hnswlib", "faiss"}))
      ->capture_default_str();
  cmd->add_option("--m", c->m, "HNSW links per node (2*m on level 0)")
      ->check(CLI::Range(2, 256))
      ->capture_default_str();
  cmd->add_option("--ef-construction", c->ef_construction, "HNSW build candidate list size")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--threads", c->threads, "Build threads (0: all cores)")->capture_default_str();
  cmd->add_option("--k", c->k, "Neighbours per query")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  cmd->add_option("--efs", c->efs, "Comma-separated search ef values")
      ->delimiter(',')
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--out", c->out_path, "Also append the JSON lines to this file");
  return cmd;
}

int RunAnnBench(const AnnBenchConfig& config) {
  const Status st = Run(config);
  if (!st.ok()) {
    fmt::print(stderr, "kyrodb_bench ann: {}\n", st.ToString());
    return 1;
  }
  return 0;
}

}  // namespace kyrodb::bench
