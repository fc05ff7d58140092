// kyrodb_server's configuration: defaults, YAML, environment, refusal of unknown keys and bad
// values with the key's name, and --generate-config round-tripping.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server/common/config.h"

namespace kyrodb::server {
namespace {

TEST(ConfigTest, DefaultsMatchTheDocumentedOnes) {
  auto c = LoadConfig("", {});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->server.bind, "127.0.0.1");
  EXPECT_EQ(c->server.http_port, 51051u);
  EXPECT_EQ(c->server.grpc_port, 50051u);
  EXPECT_EQ(c->hot_tier.flush_interval_secs, 600u);
  EXPECT_EQ(c->hot_tier.max_size_mb, 100u);
  EXPECT_EQ(c->cache.training_interval_secs, 600u);
  EXPECT_EQ(c->persistence.snapshot_interval_secs, 86400u);
  EXPECT_EQ(c->server.max_body_mb, 64u);
  const DatabaseOptions o = c->ToDatabaseOptions();
  EXPECT_EQ(o.hot_tier_flush_interval_ms, 600'000u);
  EXPECT_EQ(o.hot_tier_max_bytes, 100ull << 20);
  EXPECT_EQ(o.fsync_policy, FsyncPolicy::kData);
  EXPECT_EQ(o.search_cache_entries, 1024u);
}

TEST(ConfigTest, YamlSetsEveryKindOfKey) {
  auto c = LoadConfig(R"(
server:
  http_port: 8080
  request_log: true
hot_tier:
  max_size_mb: 7
hnsw:
  dimension: 128
  distance: l2
persistence:
  fsync_policy: always
  data_dir: /tmp/x
rate_limit:
  max_qps_global: 12.5
cache:
  search_results: 0
)",
                      {});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->server.http_port, 8080u);
  EXPECT_TRUE(c->server.request_log);
  EXPECT_EQ(c->hot_tier.max_size_mb, 7u);
  EXPECT_EQ(c->DefaultCollectionOptions().dimension, 128u);
  EXPECT_EQ(c->DefaultCollectionOptions().metric, Metric::kL2);
  EXPECT_EQ(c->ToDatabaseOptions().fsync_policy, FsyncPolicy::kAlways);
  EXPECT_EQ(c->ToDatabaseOptions().data_dir, "/tmp/x");
  EXPECT_DOUBLE_EQ(c->rate_limit.max_qps_global, 12.5);
  EXPECT_EQ(c->ToDatabaseOptions().search_cache_entries, 0u);
}

TEST(ConfigTest, EnvironmentOverridesTheFile) {
  auto c = LoadConfig("hot_tier:\n  max_size_mb: 7\n",
                      {"KYRODB_HOT_TIER_MAX_SIZE_MB=9", "KYRODB_SERVER_GRPC_PORT=6000", "PATH=/bin"});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->hot_tier.max_size_mb, 9u);
  EXPECT_EQ(c->server.grpc_port, 6000u);
}

TEST(ConfigTest, UnknownKeysAreRefusedByName) {
  auto a = LoadConfig("server:\n  htp_port: 1\n", {});
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("server.htp_port"), std::string::npos) << a.status().message();
  auto b = LoadConfig("servr:\n  http_port: 1\n", {});
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("servr"), std::string::npos);
  auto e = LoadConfig("", {"KYRODB_HOT_TIER_MAX_SIZ=3"});
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("KYRODB_HOT_TIER_MAX_SIZ"), std::string::npos);
}

TEST(ConfigTest, BadValuesAreRefusedByName) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"server:\n  http_port: 70000\n", "server.http_port"},
      {"server:\n  http_port: -1\n", "server.http_port"},
      {"server:\n  request_log: maybe\n", "server.request_log"},
      {"persistence:\n  fsync_policy: sometimes\n", "persistence.fsync_policy"},
      {"hnsw:\n  distance: hamming\n", "hnsw.distance"},
      {"hnsw:\n  dimension: 0\n", "hnsw.dimension"},
      {"cache:\n  strategy: lfu\n", "cache.strategy"},
      {"rate_limit:\n  burst: lots\n", "rate_limit.burst"},
      {"hnsw:\n  m: [1, 2]\n", "hnsw.m"},
  };
  for (const auto& [yaml, key] : cases) {
    auto c = LoadConfig(yaml, {});
    ASSERT_FALSE(c.ok()) << yaml;
    EXPECT_NE(c.status().message().find(key), std::string::npos) << c.status().message();
  }
  auto env = LoadConfig("", {"KYRODB_SERVER_HTTP_PORT=http"});
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.status().message().find("server.http_port"), std::string::npos);
  auto same = LoadConfig("server:\n  http_port: 5000\n  grpc_port: 5000\n", {});
  EXPECT_FALSE(same.ok());
  auto yaml = LoadConfig("server: [1, 2\n", {});
  EXPECT_FALSE(yaml.ok());
}

TEST(ConfigTest, GeneratedConfigLoadsBackToTheDefaults) {
  const std::string text = GenerateConfigYaml();
  for (const char* section : {"server:", "cache:", "hot_tier:", "hnsw:", "persistence:", "auth:", "tls:", "rate_limit:"}) {
    EXPECT_NE(text.find(section), std::string::npos) << section;
  }
  auto c = LoadConfig(text, {});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const ServerConfig d;
  EXPECT_EQ(c->server.bind, d.server.bind);
  EXPECT_EQ(c->server.http_port, d.server.http_port);
  EXPECT_EQ(c->persistence.data_dir, d.persistence.data_dir);
  EXPECT_EQ(c->hnsw.distance, d.hnsw.distance);
  EXPECT_EQ(c->hnsw.max_elements, d.hnsw.max_elements);
  EXPECT_EQ(c->auth.api_keys_file, d.auth.api_keys_file);
}

TEST(ConfigTest, FlagsOverrideEverything) {
  const char* argv[] = {"kyrodb_server", "--data-dir", "/tmp/d", "--http-port", "0", "--grpc-port", "0",
                        "--set", "hnsw.dimension=64", "--set", "persistence.fsync_policy=never"};
  auto lo = LoadLaunchOptions(static_cast<int>(std::size(argv)), argv);
  ASSERT_TRUE(lo.ok()) << lo.status().ToString();
  EXPECT_EQ(lo->config.persistence.data_dir, "/tmp/d");
  EXPECT_EQ(lo->config.server.http_port, 0u);
  EXPECT_EQ(lo->config.hnsw.dimension, 64u);
  EXPECT_EQ(lo->config.persistence.fsync_policy, "never");
  const char* bad[] = {"kyrodb_server", "--set", "hnsw.dimensions=64"};
  auto b = LoadLaunchOptions(3, bad);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("hnsw.dimensions"), std::string::npos);
}

TEST(ConfigTest, MetricNamesRoundTrip) {
  for (Metric m : {Metric::kCosine, Metric::kL2, Metric::kInnerProduct}) {
    auto p = ParseMetric(MetricName(m));
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(*p, m);
  }
  EXPECT_FALSE(ParseMetric("manhattan").ok());
}

}  // namespace
}  // namespace kyrodb::server
