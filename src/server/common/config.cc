#include "server/common/config.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

extern char** environ;

namespace kyrodb::server {

namespace {

// One configuration key: where it lives, what it means, how to set and print it.
struct KeySpec {
  std::string section;
  std::string key;
  std::string comment;
  std::function<Status(ServerConfig&, const std::string&)> set;  // value text -> field
  std::function<std::string(const ServerConfig&)> get;           // field -> YAML text
  std::string Name() const { return section + "." + key; }
  std::string EnvName() const {
    std::string n = "KYRODB_" + section + "_" + key;
    for (char& ch : n) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return n;
  }
};

Status BadValue(const std::string& what, const std::string& value, const std::string& expected) {
  return Status::InvalidArgument(fmt::format("config key {}: bad value '{}' ({})", what, value, expected));
}

// The key table. Field access goes through lambdas so one table serves parse, env and print.
std::vector<KeySpec> BuildTable() {
  std::vector<KeySpec> t;
  auto uint_key = [&t](std::string section, std::string key, std::string comment, auto field,
                       uint64_t lo, uint64_t hi) {
    using Field = std::remove_reference_t<decltype(field(std::declval<ServerConfig&>()))>;
    const std::string name = section + "." + key;
    t.push_back({section, key, comment,
                 [field, lo, hi, name](ServerConfig& c, const std::string& v) -> Status {
                   uint64_t x = 0;
                   auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
                   if (ec != std::errc() || p != v.data() + v.size() || x < lo || x > hi) {
                     return BadValue(name, v, fmt::format("an integer in {}..{}", lo, hi));
                   }
                   field(c) = static_cast<Field>(x);
                   return Status::Ok();
                 },
                 [field](const ServerConfig& c) {
                   return std::to_string(field(c));
                 }});
  };
  auto double_key = [&t](std::string section, std::string key, std::string comment, auto field) {
    const std::string name = section + "." + key;
    t.push_back({section, key, comment,
                 [field, name](ServerConfig& c, const std::string& v) -> Status {
                   char* end = nullptr;
                   errno = 0;
                   const double x = std::strtod(v.c_str(), &end);
                   if (v.empty() || end != v.c_str() + v.size() || errno != 0 || !std::isfinite(x) || x < 0) {
                     return BadValue(name, v, "a number >= 0");
                   }
                   field(c) = x;
                   return Status::Ok();
                 },
                 [field](const ServerConfig& c) { return fmt::format("{}", field(c)); }});
  };
  auto bool_key = [&t](std::string section, std::string key, std::string comment, auto field) {
    const std::string name = section + "." + key;
    t.push_back({section, key, comment,
                 [field, name](ServerConfig& c, const std::string& v) -> Status {
                   if (v == "true" || v == "1" || v == "yes" || v == "on") {
                     field(c) = true;
                   } else if (v == "false" || v == "0" || v == "no" || v == "off") {
                     field(c) = false;
                   } else {
                     return BadValue(name, v, "true or false");
                   }
                   return Status::Ok();
                 },
                 [field](const ServerConfig& c) {
                   return std::string(field(c) ? "true" : "false");
                 }});
  };
  // `choices` empty: any string.
  auto string_key = [&t](std::string section, std::string key, std::string comment, auto field,
                         std::vector<std::string> choices) {
    const std::string name = section + "." + key;
    t.push_back({section, key, comment,
                 [field, name, choices](ServerConfig& c, const std::string& v) -> Status {
                   if (!choices.empty() && std::find(choices.begin(), choices.end(), v) == choices.end()) {
                     std::string list;
                     for (const auto& ch : choices) list += (list.empty() ? "" : ", ") + ch;
                     return BadValue(name, v, "one of " + list);
                   }
                   field(c) = v;
                   return Status::Ok();
                 },
                 [field](const ServerConfig& c) {
                   const std::string& v = field(c);
                   return "\"" + v + "\"";
                 }});
  };
  constexpr uint64_t kU32 = 0xffffffffull;
  // server
  string_key("server", "bind", "Address both servers listen on. Non-loopback addresses expose the API.",
             [](auto& c) -> auto& { return c.server.bind; }, {});
  uint_key("server", "http_port", "HTTP/JSON port (0: any free port).",
           [](auto& c) -> auto& { return c.server.http_port; }, 0, 65535);
  uint_key("server", "grpc_port", "gRPC port (0: any free port).",
           [](auto& c) -> auto& { return c.server.grpc_port; }, 0, 65535);
  uint_key("server", "http_threads", "Threads serving HTTP.",
           [](auto& c) -> auto& { return c.server.http_threads; }, 1, 256);
  uint_key("server", "grpc_threads", "Threads serving gRPC (callback API executor threads).",
           [](auto& c) -> auto& { return c.server.grpc_threads; }, 1, 256);
  uint_key("server", "max_body_mb", "Largest request body (HTTP) or message (gRPC), MiB.",
           [](auto& c) -> auto& { return c.server.max_body_mb; }, 1, 4096);
  uint_key("server", "shutdown_timeout_secs", "On SIGTERM/SIGINT, in-flight requests get this long.",
           [](auto& c) -> auto& { return c.server.shutdown_timeout_secs; }, 0, 3600);
  bool_key("server", "request_log", "Log one line per request (off by default).",
           [](auto& c) -> auto& { return c.server.request_log; });
  string_key("server", "log_level", "trace, debug, info, warn, error.",
             [](auto& c) -> auto& { return c.server.log_level; },
             {"trace", "debug", "info", "warn", "error", "critical", "off"});
  // cache
  string_key("cache", "strategy", "L1 cache by id: learned (hotness model, LRU fallback) or lru.",
             [](auto& c) -> auto& { return c.cache.strategy; }, {"learned", "lru"});
  uint_key("cache", "max_size_mb", "Memory of the L1 cache, per collection, MiB.",
           [](auto& c) -> auto& { return c.cache.max_size_mb; }, 0, 1ull << 20);
  uint_key("cache", "training_interval_secs", "How often the hotness model is retrained.",
           [](auto& c) -> auto& { return c.cache.training_interval_secs; }, 1, kU32 / 1000);
  uint_key("cache", "search_results",
           "Result cache: identical repeated searches answered from memory, this many per collection (0: off).",
           [](auto& c) -> auto& { return c.cache.search_results; }, 0, 1u << 20);
  // hot_tier
  uint_key("hot_tier", "flush_interval_secs", "Flush the hot tier into HNSW when its oldest write is this old.",
           [](auto& c) -> auto& { return c.hot_tier.flush_interval_secs; }, 1, kU32 / 1000);
  uint_key("hot_tier", "max_size_mb", "... or when it holds this many MiB.",
           [](auto& c) -> auto& { return c.hot_tier.max_size_mb; }, 1, 1ull << 20);
  // hnsw
  uint_key("hnsw", "dimension", "Dimension of the `default` collection (created at first start).",
           [](auto& c) -> auto& { return c.hnsw.dimension; }, 1, 4096);
  string_key("hnsw", "distance", "Metric of the `default` collection: cosine, l2 or inner_product.",
             [](auto& c) -> auto& { return c.hnsw.distance; },
             {"cosine", "l2", "euclidean", "inner_product", "innerproduct", "ip"});
  uint_key("hnsw", "m", "Links per node (M).", [](auto& c) -> auto& { return c.hnsw.m; }, 2, 128);
  uint_key("hnsw", "ef_construction", "Candidate list size while building.",
           [](auto& c) -> auto& { return c.hnsw.ef_construction; }, 1, 10000);
  uint_key("hnsw", "ef_search", "Default candidate list size while searching.",
           [](auto& c) -> auto& { return c.hnsw.ef_search; }, 1, 10000);
  uint_key("hnsw", "max_elements", "Capacity of each collection's index (reserved address space, not memory).",
           [](auto& c) -> auto& { return c.hnsw.max_elements; }, 1024, 1ull << 31);
  // persistence
  string_key("persistence", "data_dir", "Where the WAL, snapshots and MANIFEST live.",
             [](auto& c) -> auto& { return c.persistence.data_dir; }, {});
  string_key("persistence", "fsync_policy",
             "always: acknowledged = fsynced (group commit); data: fsync every wal_flush_interval_ms; never.",
             [](auto& c) -> auto& { return c.persistence.fsync_policy; },
             {"always", "data", "never"});
  uint_key("persistence", "wal_flush_interval_ms", "fsync period of the `data` policy.",
           [](auto& c) -> auto& { return c.persistence.wal_flush_interval_ms; }, 1, 3600000);
  uint_key("persistence", "group_commit_wait_us",
           "With fsync_policy always, under concurrent single inserts: how long a group commit may wait for "
           "the writers of the previous one to come back (at most half the last commit's time; 0: never wait).",
           [](auto& c) -> auto& { return c.persistence.group_commit_wait_us; }, 0, 100000);
  uint_key("persistence", "wal_segment_mb", "WAL segment size before rotation, MiB.",
           [](auto& c) -> auto& { return c.persistence.wal_segment_mb; }, 1, 65536);
  uint_key("persistence", "snapshot_interval_secs", "Snapshot period (daily by default).",
           [](auto& c) -> auto& { return c.persistence.snapshot_interval_secs; }, 1, kU32 / 1000);
  uint_key("persistence", "snapshot_every_mutations", "Also snapshot after this many writes (0: off).",
           [](auto& c) -> auto& { return c.persistence.snapshot_every_mutations; }, 0, ~0ull);
  string_key("persistence", "recovery_mode",
             "strict: refuse to start on corruption; best_effort: keep what is intact, report the rest.",
             [](auto& c) -> auto& { return c.persistence.recovery_mode; },
             {"strict", "best_effort"});
  // limits
  uint_key("limits", "max_connections", "Open connections per server; more are refused.",
           [](auto& c) -> auto& { return c.limits.max_connections; }, 1, 1000000);
  uint_key("limits", "max_header_kb", "Largest HTTP request line + headers, KiB (431 beyond).",
           [](auto& c) -> auto& { return c.limits.max_header_kb; }, 1, 1024);
  uint_key("limits", "idle_timeout_secs", "Close a keep-alive connection idle this long.",
           [](auto& c) -> auto& { return c.limits.idle_timeout_secs; }, 1, 86400);
  uint_key("limits", "read_timeout_secs", "A started request must arrive whole within this (slow clients are cut off).",
           [](auto& c) -> auto& { return c.limits.read_timeout_secs; }, 1, 3600);
  uint_key("limits", "max_concurrent_searches", "Searches running at once (0: twice the hardware threads).",
           [](auto& c) -> auto& { return c.limits.max_concurrent_searches; }, 0, 100000);
  uint_key("limits", "search_queue", "Searches allowed to wait for a slot; beyond, 'overloaded' (429).",
           [](auto& c) -> auto& { return c.limits.search_queue; }, 0, 1000000);
  uint_key("limits", "search_queue_timeout_ms", "Longest wait for a search slot before 'overloaded'.",
           [](auto& c) -> auto& { return c.limits.search_queue_timeout_ms; }, 1, 600000);
  uint_key("limits", "max_k", "Largest k a search may ask for (at most 1000).",
           [](auto& c) -> auto& { return c.limits.max_k; }, 1, 1000);
  uint_key("limits", "max_ef_search", "Largest ef_search a search may ask for (at most 10000).",
           [](auto& c) -> auto& { return c.limits.max_ef_search; }, 1, 10000);
  // auth, tls, rate_limit
  bool_key("auth", "enabled", "Require an API key (x-api-key or Authorization: Bearer).",
           [](auto& c) -> auto& { return c.auth.enabled; });
  string_key("auth", "api_keys_file", "YAML list of keys (key, tenant_id, is_admin, ...).",
             [](auto& c) -> auto& { return c.auth.api_keys_file; }, {});
  bool_key("tls", "enabled", "Serve HTTP and gRPC over TLS.", [](auto& c) -> auto& { return c.tls.enabled; });
  string_key("tls", "cert_file", "PEM certificate chain.", [](auto& c) -> auto& { return c.tls.cert_file; }, {});
  string_key("tls", "key_file", "PEM private key.", [](auto& c) -> auto& { return c.tls.key_file; }, {});
  string_key("tls", "ca_file", "PEM CA bundle: if set, clients must present a certificate it signed.",
             [](auto& c) -> auto& { return c.tls.ca_file; }, {});
  bool_key("rate_limit", "enabled", "Token-bucket rate limits.",
           [](auto& c) -> auto& { return c.rate_limit.enabled; });
  double_key("rate_limit", "max_qps_per_tenant", "Per tenant, unless its key sets max_qps (0: unlimited).",
             [](auto& c) -> auto& { return c.rate_limit.max_qps_per_tenant; });
  double_key("rate_limit", "max_qps_per_connection", "Per connection (0: unlimited).",
             [](auto& c) -> auto& { return c.rate_limit.max_qps_per_connection; });
  double_key("rate_limit", "max_qps_global", "Whole server (0: unlimited).",
             [](auto& c) -> auto& { return c.rate_limit.max_qps_global; });
  double_key("rate_limit", "burst", "Bucket capacity, requests (0: one second's worth).",
             [](auto& c) -> auto& { return c.rate_limit.burst; });
  return t;
}

const std::vector<KeySpec>& Table() {
  static const std::vector<KeySpec> table = BuildTable();
  return table;
}

const KeySpec* FindKey(const std::string& section, const std::string& key) {
  for (const KeySpec& k : Table()) {
    if (k.section == section && k.key == key) return &k;
  }
  return nullptr;
}

bool IsSection(const std::string& s) {
  for (const KeySpec& k : Table()) {
    if (k.section == s) return true;
  }
  return false;
}

Status ApplyYaml(const std::string& text, ServerConfig* c) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(fmt::format("config: YAML error: {}", e.what()));
  }
  if (root.IsNull()) return Status::Ok();
  if (!root.IsMap()) return Status::InvalidArgument("config: the top level must be a map of sections");
  for (const auto& sec : root) {
    const std::string section = sec.first.as<std::string>();
    if (!IsSection(section)) return Status::InvalidArgument("config: unknown section '" + section + "'");
    if (sec.second.IsNull()) continue;
    if (!sec.second.IsMap()) {
      return Status::InvalidArgument("config: section '" + section + "' must be a map");
    }
    for (const auto& kv : sec.second) {
      const std::string key = kv.first.as<std::string>();
      const KeySpec* spec = FindKey(section, key);
      if (spec == nullptr) {
        return Status::InvalidArgument("config: unknown key '" + section + "." + key + "'");
      }
      if (!kv.second.IsScalar() && !kv.second.IsNull()) {
        return Status::InvalidArgument("config key " + spec->Name() + ": expected a single value");
      }
      const std::string value = kv.second.IsNull() ? "" : kv.second.Scalar();
      KYRODB_RETURN_IF_ERROR(spec->set(*c, value));
    }
  }
  return Status::Ok();
}

Status ApplyEnv(const std::vector<std::string>& env, ServerConfig* c) {
  for (const std::string& entry : env) {
    if (entry.rfind("KYRODB_", 0) != 0) continue;
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = entry.substr(0, eq);
    const std::string value = entry.substr(eq + 1);
    const KeySpec* match = nullptr;
    for (const KeySpec& k : Table()) {
      if (k.EnvName() == name) match = &k;
    }
    if (match != nullptr) {
      KYRODB_RETURN_IF_ERROR(match->set(*c, value));
      continue;
    }
    // KYRODB_<SECTION>_<unknown>: a typo of one of ours.
    for (const KeySpec& k : Table()) {
      std::string prefix = "KYRODB_" + k.section + "_";
      for (char& ch : prefix) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      if (name.rfind(prefix, 0) == 0) {
        return Status::InvalidArgument("environment: " + name + " names no config key of section '" +
                                       k.section + "'");
      }
    }
  }
  return Status::Ok();
}

Status Validate(const ServerConfig& c) {
  if (c.server.http_port != 0 && c.server.http_port == c.server.grpc_port) {
    return Status::InvalidArgument("config: server.http_port and server.grpc_port are the same port");
  }
  if (c.persistence.data_dir.empty()) return Status::InvalidArgument("config key persistence.data_dir: empty");
  if (c.auth.enabled && c.auth.api_keys_file.empty()) {
    return Status::InvalidArgument(
        "config: auth.enabled is true but auth.api_keys_file is not set (no key could ever be accepted)");
  }
  if (c.tls.enabled && (c.tls.cert_file.empty() || c.tls.key_file.empty())) {
    return Status::InvalidArgument("config: tls.enabled needs tls.cert_file and tls.key_file");
  }
  return Status::Ok();
}

bool IsLoopback(const std::string& bind) {
  return bind == "localhost" || bind == "::1" || bind == "[::1]" || bind.rfind("127.", 0) == 0;
}

std::vector<std::string> ProcessEnv() {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);
  return env;
}

}  // namespace

Result<Metric> ParseMetric(const std::string& name) {
  if (name == "cosine") return Metric::kCosine;
  if (name == "l2" || name == "euclidean") return Metric::kL2;
  if (name == "inner_product" || name == "ip" || name == "innerproduct") return Metric::kInnerProduct;
  return Status::InvalidArgument("unknown metric '" + name + "' (cosine, l2, inner_product)");
}

const char* MetricName(Metric m) {
  switch (m) {
    case Metric::kCosine: return "cosine";
    case Metric::kL2: return "l2";
    case Metric::kInnerProduct: return "inner_product";
  }
  return "cosine";
}

DatabaseOptions ServerConfig::ToDatabaseOptions() const {
  DatabaseOptions o;
  o.data_dir = persistence.data_dir;
  o.fsync_policy = persistence.fsync_policy == "always" ? FsyncPolicy::kAlways
                   : persistence.fsync_policy == "never" ? FsyncPolicy::kNever
                                                         : FsyncPolicy::kData;
  o.wal_flush_interval_ms = persistence.wal_flush_interval_ms;
  o.wal_segment_bytes = persistence.wal_segment_mb << 20;
  o.recovery_mode = persistence.recovery_mode == "best_effort" ? RecoveryMode::kBestEffort
                                                              : RecoveryMode::kStrict;
  o.hot_tier_flush_interval_ms = hot_tier.flush_interval_secs * 1000u;
  o.hot_tier_max_bytes = hot_tier.max_size_mb << 20;
  o.snapshot_interval_ms = persistence.snapshot_interval_secs * 1000u;
  o.snapshot_every_mutations = persistence.snapshot_every_mutations;
  o.max_vectors_per_collection = static_cast<uint32_t>(std::min<uint64_t>(hnsw.max_elements, 1ull << 31));
  o.cache_learned = cache.strategy == "learned";
  o.cache_max_bytes = cache.max_size_mb << 20;
  o.cache_training_interval_ms = cache.training_interval_secs * 1000u;
  o.search_cache_entries = cache.search_results;
  return o;
}

CollectionOptions ServerConfig::DefaultCollectionOptions() const {
  CollectionOptions o;
  o.dimension = hnsw.dimension;
  auto metric = ParseMetric(hnsw.distance);
  o.metric = metric.ok() ? *metric : Metric::kCosine;
  o.m = hnsw.m;
  o.ef_construction = hnsw.ef_construction;
  o.ef_search = hnsw.ef_search;
  return o;
}

Result<ServerConfig> LoadConfig(const std::string& yaml_text, const std::vector<std::string>& env) {
  ServerConfig c;
  KYRODB_RETURN_IF_ERROR(ApplyYaml(yaml_text, &c));
  KYRODB_RETURN_IF_ERROR(ApplyEnv(env, &c));
  KYRODB_RETURN_IF_ERROR(Validate(c));
  return c;
}

std::string GenerateConfigYaml() {
  const ServerConfig defaults;
  std::string out =
      "# kyrodb_server configuration (all keys, with their defaults).\n"
      "# Every key can be overridden by an environment variable KYRODB_<SECTION>_<KEY>\n"
      "# (e.g. KYRODB_SERVER_HTTP_PORT=8080) and by --set section.key=value.\n";
  std::string section;
  for (const KeySpec& k : Table()) {
    if (k.section != section) {
      section = k.section;
      out += "\n" + section + ":\n";
    }
    out += "  # " + k.comment + "\n";
    out += "  " + k.key + ": " + k.get(defaults) + "\n";
  }
  return out;
}

Result<LaunchOptions> LoadLaunchOptions(int argc, const char* const* argv) {
  CLI::App app{"kyrodb_server: the KyroDB vector database server (HTTP/JSON and gRPC)."};
  std::string config_path, data_dir, bind;
  int64_t http_port = -1, grpc_port = -1;
  std::vector<std::string> sets;
  LaunchOptions lo;
  app.add_option("--config", config_path, "YAML configuration file");
  app.add_option("--data-dir", data_dir, "persistence.data_dir");
  app.add_option("--http-port", http_port, "server.http_port (0: any free port)");
  app.add_option("--grpc-port", grpc_port, "server.grpc_port (0: any free port)");
  app.add_option("--bind", bind, "server.bind");
  app.add_option("--set", sets, "section.key=value, for any key (repeatable)");
  app.add_option("--port-file", lo.port_file, "write {\"http\":N,\"grpc\":N} here once serving");
  app.add_flag("--generate-config", lo.generate_config, "print the default configuration and exit");
  app.add_flag("--insecure", lo.insecure, "allow binding a non-loopback address with auth disabled");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return Status::FailedPrecondition(app.help());
  } catch (const CLI::ParseError& e) {
    return Status::InvalidArgument(std::string("flags: ") + e.what());
  }
  std::string yaml;
  if (!config_path.empty()) {
    std::ifstream f(config_path);
    if (!f) return Status::InvalidArgument("--config: cannot read '" + config_path + "'");
    std::stringstream ss;
    ss << f.rdbuf();
    yaml = ss.str();
  }
  ServerConfig c;
  KYRODB_RETURN_IF_ERROR(ApplyYaml(yaml, &c));
  KYRODB_RETURN_IF_ERROR(ApplyEnv(ProcessEnv(), &c));
  auto set = [&c](const std::string& section, const std::string& key, const std::string& v) -> Status {
    const KeySpec* spec = FindKey(section, key);
    if (spec == nullptr) return Status::InvalidArgument("--set: unknown key '" + section + "." + key + "'");
    return spec->set(c, v);
  };
  for (const std::string& s : sets) {
    const size_t dot = s.find('.');
    const size_t eq = s.find('=');
    if (dot == std::string::npos || eq == std::string::npos || dot > eq) {
      return Status::InvalidArgument("--set: expected section.key=value, got '" + s + "'");
    }
    KYRODB_RETURN_IF_ERROR(set(s.substr(0, dot), s.substr(dot + 1, eq - dot - 1), s.substr(eq + 1)));
  }
  if (!data_dir.empty()) KYRODB_RETURN_IF_ERROR(set("persistence", "data_dir", data_dir));
  if (!bind.empty()) KYRODB_RETURN_IF_ERROR(set("server", "bind", bind));
  if (http_port >= 0) KYRODB_RETURN_IF_ERROR(set("server", "http_port", std::to_string(http_port)));
  if (grpc_port >= 0) KYRODB_RETURN_IF_ERROR(set("server", "grpc_port", std::to_string(grpc_port)));
  KYRODB_RETURN_IF_ERROR(Validate(c));
  if (!c.auth.enabled && !lo.insecure && !IsLoopback(c.server.bind)) {
    return Status::InvalidArgument("config: server.bind is " + c.server.bind +
                                   " (not loopback) and auth is disabled: anyone on the network could "
                                   "read and change every document. Enable auth, bind 127.0.0.1, or "
                                   "pass --insecure to accept this explicitly");
  }
  lo.config = std::move(c);
  return lo;
}

}  // namespace kyrodb::server
