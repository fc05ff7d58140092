#include "load_bench.h"

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <random>
#include <string_view>

#include "ann_metrics.h"

namespace kyrodb::bench {

CLI::App* AddLoadCommand(CLI::App* app, LoadBenchConfig* c) {
  CLI::App* cmd = app->add_subcommand("load", "Load a running kyrodb_server over HTTP or gRPC (closed loop)");
  auto* http = cmd->add_option("--http", c->http, "HTTP server, http://host:port");
  auto* grpc = cmd->add_option("--grpc", c->grpc, "gRPC server, host:port");
  http->excludes(grpc);
  grpc->excludes(http);
  cmd->add_option("--op", c->op, "insert, search, query or mixed (90% search / 10% insert)")
      ->check(CLI::IsMember({"insert", "search", "query", "mixed"}));
  cmd->add_option("--concurrency", c->concurrency, "Concurrent clients (connections), one request in flight each")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--client-threads", c->client_threads, "Threads driving the clients (HTTP io_contexts, gRPC completion queues)")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--client-sched", c->client_sched,
                  "Client threads' scheduling: batch (no wake-up preemption of the server's threads) or normal")
      ->check(CLI::IsMember({"batch", "normal"}));
  cmd->add_option("--grpc-client", c->grpc_client,
                  "gRPC load client: h2 (HTTP/2 via nghttp2, lean) or grpcpp (gRPC's C++ library)")
      ->check(CLI::IsMember({"h2", "grpcpp"}));
  cmd->add_option("--duration", c->duration_s, "Measured seconds")->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", c->warmup_s, "Seconds of load before the measurement")->check(CLI::NonNegativeNumber);
  cmd->add_option("--dim", c->dim, "Vector dimension")->check(CLI::Range(1, 4096));
  cmd->add_option("--collection", c->collection, "Collection (default: the server's default collection)");
  cmd->add_option("--k", c->k, "Search: neighbours")->check(CLI::Range(1, 1000));
  cmd->add_option("--ef", c->ef, "Search: ef_search")->check(CLI::Range(0, 10000));
  cmd->add_option("--id-space", c->id_space, "Query: ids drawn uniformly from [1, N]")->check(CLI::PositiveNumber);
  cmd->add_option("--first-insert-id", c->first_insert_id, "Insert: first new id (default: id-space + 1)");
  cmd->add_flag("--include-embedding", c->include_embedding, "Query: return the stored vector too");
  cmd->add_option("--pool", c->pool, "Distinct pre-generated request vectors")->check(CLI::Range(1, 1000000));
  cmd->add_option("--api-key", c->api_key, "Send this key as x-api-key (servers with auth enabled)");
  cmd->add_option("--seed", c->seed, "Seed of the vectors and of the clients' random streams");
  return cmd;
}

JsonLine LoadLine(const char* protocol, const LoadSpec& spec, const LoadResult& r) {
  const double seconds = r.seconds > 0 ? r.seconds : 1;
  JsonLine j;
  j.Add("bench", "load").Add("protocol", protocol).Add("op", LoadOpName(spec.op));
  if (spec.op == LoadOp::kMixed) {
    j.Add("mix", fmt::format("{}% search / {}% insert", kMixedSearchPercent, 100 - kMixedSearchPercent));
  }
  j.Add("concurrency", static_cast<uint64_t>(spec.concurrency));
  j.Add("client_threads", static_cast<uint64_t>(spec.client_threads)).Add("client_sched", r.client_sched);
  if (std::string_view(protocol) == "grpc") j.Add("grpc_client", GrpcClientName(spec.grpc_client));
  j.Add("dim", static_cast<uint64_t>(spec.vectors->dim));
  if (spec.op == LoadOp::kSearch || spec.op == LoadOp::kMixed) {
    j.Add("k", static_cast<uint64_t>(spec.k)).Add("ef", static_cast<uint64_t>(spec.ef))
        .Add("distinct_vectors", static_cast<uint64_t>(spec.vectors->rows));
  }
  j.Add("seconds", r.seconds).Add("requests", r.requests).Add("throughput_per_s", r.requests / seconds);
  if (spec.op == LoadOp::kMixed) {
    j.Add("searches_per_s", r.searches / seconds).Add("inserts_per_s", r.inserts / seconds);
  }
  if (spec.op == LoadOp::kQuery) j.Add("not_found", r.not_found);
  j.Add("p50_us", Percentile(r.latency_us, 50)).Add("p95_us", Percentile(r.latency_us, 95))
      .Add("p99_us", Percentile(r.latency_us, 99)).Add("p999_us", Percentile(r.latency_us, 99.9))
      .Add("errors", r.errors).Add("errors_total", r.errors_total);
  if (r.first_error.empty()) {
    j.AddNull("first_error");
  } else {
    j.Add("first_error", r.first_error);
  }
  j.Add("client_cpu_s", r.client_cpu_s)
      .Add("client_cpu_us_per_request", r.requests ? r.client_cpu_s * 1e6 / r.requests : 0.0);
  return j;
}

int RunLoadBench(const LoadBenchConfig& c) {
  if (c.http.empty() == c.grpc.empty()) {
    std::fprintf(stderr, "load: give exactly one of --http URL or --grpc HOST:PORT\n");
    return 2;
  }
  const FloatMatrix vectors = RandomUnitVectors(c.pool, c.dim, c.seed);
  LoadSpec spec;
  spec.target = c.http.empty() ? c.grpc : c.http;
  spec.op = *ParseLoadOp(c.op);
  spec.concurrency = c.concurrency;
  spec.client_threads = c.client_threads;
  spec.batch_scheduling = c.client_sched == "batch";
  spec.grpc_client = *ParseGrpcClient(c.grpc_client);
  spec.warmup_s = c.warmup_s;
  spec.duration_s = c.duration_s;
  spec.collection = c.collection;
  spec.api_key = c.api_key;
  spec.k = c.k;
  spec.ef = c.ef;
  spec.id_space = c.id_space;
  spec.first_insert_id = c.first_insert_id ? c.first_insert_id : c.id_space + 1;
  spec.include_embedding = c.include_embedding;
  spec.seed = c.seed;
  spec.vectors = &vectors;
  const char* protocol = c.http.empty() ? "grpc" : "http";
  std::fprintf(stderr, "[load] %s %s: %zu clients, %g s warm-up + %g s\n", protocol, c.op.c_str(),
               c.concurrency, c.warmup_s, c.duration_s);
  auto result = c.http.empty() ? RunGrpcLoad(spec) : RunHttpLoad(spec);
  if (!result.ok()) {
    std::fprintf(stderr, "load: %s\n", result.status().ToString().c_str());
    return 1;
  }
  std::printf("%s\n", LoadLine(protocol, spec, *result).str().c_str());
  std::fflush(stdout);
  return result->errors_total == 0 ? 0 : 1;
}

}  // namespace kyrodb::bench
