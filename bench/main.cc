// kyrodb_bench: KyroDB's benchmark tool. One subcommand per benchmark; this file only wires
// the subcommands to their implementations.
#include <CLI/CLI.hpp>
#include <absl/synchronization/mutex.h>

#include "ann_bench.h"
#include "cache_bench.h"
#include "decode_bench.h"
#include "engine_bench.h"
#include "limits_bench.h"
#include "load_bench.h"
#include "loopback_bench.h"
#include "server_bench.h"
#include "storage_bench.h"

int main(int argc, char** argv) {
  // As kyrodb_server: no Abseil deadlock detection (a lock-graph walk per lock in gRPC clients).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"kyrodb_bench: KyroDB benchmarks (results as JSON lines on stdout)"};
  app.require_subcommand(1);

  kyrodb::bench::AnnBenchConfig ann;
  CLI::App* ann_cmd = kyrodb::bench::AddAnnCommand(&app, &ann);
  kyrodb::bench::StorageBenchConfig storage;
  CLI::App* storage_cmd = kyrodb::bench::AddStorageCommand(&app, &storage);
  kyrodb::bench::CacheBenchConfig cache;
  CLI::App* cache_cmd = kyrodb::bench::AddCacheCommand(&app, &cache);
  kyrodb::bench::EngineBenchConfig engine;
  CLI::App* engine_cmd = kyrodb::bench::AddEngineCommand(&app, &engine);
  kyrodb::bench::LoadBenchConfig load;
  CLI::App* load_cmd = kyrodb::bench::AddLoadCommand(&app, &load);
  kyrodb::bench::ServerBenchConfig server;
  CLI::App* server_cmd = kyrodb::bench::AddServerCommand(&app, &server);
  kyrodb::bench::LoopbackBenchConfig loopback;
  CLI::App* loopback_cmd = kyrodb::bench::AddLoopbackCommand(&app, &loopback);
  kyrodb::bench::DecodeBenchConfig decode;
  CLI::App* decode_cmd = kyrodb::bench::AddDecodeCommand(&app, &decode);
  kyrodb::bench::LimitsBenchConfig limits;
  CLI::App* limits_cmd = kyrodb::bench::AddLimitsCommand(&app, &limits);

  CLI11_PARSE(app, argc, argv);
  if (ann_cmd->parsed()) return kyrodb::bench::RunAnnBench(ann);
  if (storage_cmd->parsed()) return kyrodb::bench::RunStorageBench(storage);
  if (cache_cmd->parsed()) return kyrodb::bench::RunCacheBench(cache);
  if (engine_cmd->parsed()) return kyrodb::bench::RunEngineBench(engine);
  if (load_cmd->parsed()) return kyrodb::bench::RunLoadBench(load);
  if (server_cmd->parsed()) return kyrodb::bench::RunServerBench(server);
  if (loopback_cmd->parsed()) return kyrodb::bench::RunLoopbackBench(loopback);
  if (limits_cmd->parsed()) return kyrodb::bench::RunLimitsBench(limits);
  if (decode_cmd->parsed()) return kyrodb::bench::RunDecodeBench(decode);
  return 1;
}
