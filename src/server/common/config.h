// kyrodb_server's configuration: the YAML file's shape, its defaults, and how it is loaded.
//
// Precedence (later wins): built-in defaults < YAML file (--config) < environment variables
// KYRODB_<SECTION>_<KEY> (e.g. KYRODB_HOT_TIER_MAX_SIZE_MB=200) < command-line flags
// (--data-dir, --http-port, --grpc-port, --bind, and --set section.key=value for any key).
// Unknown keys and bad values are refused with the key's name. Every key lives in one table in
// config.cc, which also produces --generate-config (the full default file with comments) and the
// environment variable names. Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kyrodb/database.h"
#include "kyrodb/status.h"
#include "kyrodb/types.h"

namespace kyrodb::server {

struct ServerConfig {
  struct Server {
    std::string bind = "127.0.0.1";
    uint32_t http_port = 51051;  // 0: any free port (reported in --port-file)
    uint32_t grpc_port = 50051;
    uint32_t http_threads = 2;
    uint32_t grpc_threads = 2;   // completion-queue threads of the callback API
    uint64_t max_body_mb = 64;
    uint32_t shutdown_timeout_secs = 10;  // in-flight requests get this long on SIGTERM
    bool request_log = false;
    std::string log_level = "info";
  } server;
  struct Cache {
    std::string strategy = "learned";  // learned | lru
    uint64_t max_size_mb = 64;
    uint32_t training_interval_secs = 600;
    uint32_t search_results = 1024;  // result cache entries per collection; 0: off
  } cache;
  struct HotTier {
    uint32_t flush_interval_secs = 600;
    uint64_t max_size_mb = 100;
  } hot_tier;
  struct Hnsw {  // shape of the `default` collection, created at first start
    uint32_t dimension = 768;
    std::string distance = "cosine";  // cosine | l2 | inner_product
    uint32_t m = 16;
    uint32_t ef_construction = 200;
    uint32_t ef_search = 50;
    uint64_t max_elements = 1ull << 24;  // per collection
  } hnsw;
  struct Persistence {
    std::string data_dir = "./data";
    std::string fsync_policy = "data";  // always | data | never
    uint32_t wal_flush_interval_ms = 100;
    uint32_t group_commit_wait_us = 500;  // fsync_policy always: see InsertBatcher
    uint64_t wal_segment_mb = 64;
    uint32_t snapshot_interval_secs = 86400;
    uint64_t snapshot_every_mutations = 0;
    std::string recovery_mode = "strict";  // strict | best_effort
  } persistence;
  struct Auth {  // issue #6
    bool enabled = false;
    std::string api_keys_file;
  } auth;
  struct Tls {  // issue #6
    bool enabled = false;
    std::string cert_file;
    std::string key_file;
    std::string ca_file;
  } tls;
  struct Limits {
    uint32_t max_connections = 1024;       // per server (HTTP; gRPC: concurrent streams)
    uint32_t max_header_kb = 16;           // HTTP request line + headers
    uint32_t idle_timeout_secs = 60;       // keep-alive connection with no request
    uint32_t read_timeout_secs = 10;       // to receive one whole request once it started
    uint32_t max_concurrent_searches = 0;  // 0: twice the hardware threads
    uint32_t search_queue = 256;           // searches waiting for a slot before "overloaded"
    uint32_t search_queue_timeout_ms = 1000;
    uint32_t max_k = 1000;
    uint32_t max_ef_search = 10000;
  } limits;
  struct RateLimit {  // issue #6
    bool enabled = false;
    double max_qps_per_tenant = 0;
    double max_qps_per_connection = 0;
    double max_qps_global = 0;
    double burst = 0;
  } rate_limit;

  // Engine options derived from the sections above.
  DatabaseOptions ToDatabaseOptions() const;
  CollectionOptions DefaultCollectionOptions() const;
};

// What main() needs besides the config itself.
struct LaunchOptions {
  ServerConfig config;
  bool generate_config = false;  // print the defaults and exit
  std::string port_file;         // if set: {"http":N,"grpc":N} is written here once ready
  bool insecure = false;         // allow a non-loopback bind without auth
};

// Parses argv (flags), reading --config's YAML and the environment in between. Returns
// InvalidArgument naming the key (or flag) for unknown keys and bad values.
Result<LaunchOptions> LoadLaunchOptions(int argc, const char* const* argv);

// Loads from YAML text and an environment (tests); `env` = "NAME=value" strings.
Result<ServerConfig> LoadConfig(const std::string& yaml_text, const std::vector<std::string>& env);

// The default configuration as a commented YAML file.
std::string GenerateConfigYaml();

// Parses a metric name ("cosine", "l2"/"euclidean", "inner_product"/"ip"/"innerproduct").
Result<Metric> ParseMetric(const std::string& name);
const char* MetricName(Metric metric);  // "cosine", "l2", "inner_product"

}  // namespace kyrodb::server
