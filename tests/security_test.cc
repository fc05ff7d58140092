// API keys (parsing, authentication, reload) and the token buckets behind rate limits.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>
#include <vector>

#include "server/common/api_keys.h"
#include "server/common/rate_limiter.h"
#include "test_support.h"

namespace kyrodb::server {
namespace {

constexpr const char* kKeys = R"(
api_keys:
  - key: "admin-key-0123456789abcdef"
    tenant_id: ops
    tenant_name: "Operations"
    is_admin: true
  - key: "tenant-a-0123456789abcdef"
    tenant_id: acme
    max_qps: 50
    max_vectors: 1000
  - key: "disabled-0123456789abcdef"
    tenant_id: gone
    enabled: false
)";

TEST(ApiKeyStoreTest, AuthenticatesKnownEnabledKeysOnly) {
  auto store = ApiKeyStore::FromYaml(kKeys);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->size(), 3u);
  auto admin = (*store)->Authenticate("admin-key-0123456789abcdef");
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(admin->tenant, "ops");
  EXPECT_TRUE(admin->is_admin);
  auto a = (*store)->Authenticate("tenant-a-0123456789abcdef");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->tenant, "acme");
  EXPECT_FALSE(a->is_admin);
  EXPECT_DOUBLE_EQ(a->max_qps, 50);
  EXPECT_EQ(a->max_vectors, 1000u);
  for (const char* bad : {"", "tenant-a-0123456789abcdeF", "tenant-a-0123456789abcde", "disabled-0123456789abcdef"}) {
    auto r = (*store)->Authenticate(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kUnauthenticated);
  }
  EXPECT_NE((*store)->Authenticate("disabled-0123456789abcdef").error().message.find("disabled"),
            std::string::npos);
}

TEST(ApiKeyStoreTest, RefusesMalformedFilesNamingTheEntry) {
  const std::vector<std::string> bad = {
      "api_keys: 3\n",
      "keys: []\n",
      "api_keys:\n  - key: short\n    tenant_id: a\n",
      "api_keys:\n  - key: \"0123456789abcdef0\"\n    tenant_id: \"bad tenant\"\n",
      "api_keys:\n  - key: \"0123456789abcdef0\"\n    tenant_id: a\n    admin: true\n",
      "api_keys:\n  - key: \"0123456789abcdef0\"\n    tenant_id: a\n  - key: \"0123456789abcdef0\"\n    tenant_id: b\n",
      "api_keys:\n  - key: \"0123456789abcdef0\"\n    tenant_id: a\n    max_qps: fast\n",
  };
  for (const std::string& y : bad) {
    auto s = ApiKeyStore::FromYaml(y);
    ASSERT_FALSE(s.ok()) << y;
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  }
  auto dup = ApiKeyStore::FromYaml(bad[5]);
  EXPECT_NE(dup.status().message().find("entry 1"), std::string::npos) << dup.status().message();
}

TEST(ApiKeyStoreTest, ReloadSwapsKeysAndKeepsThemOnABadFile) {
  testing::TempDir dir;
  const std::string path = dir.File("keys.yaml");
  std::ofstream(path) << kKeys;
  auto store = ApiKeyStore::FromFile(path);
  ASSERT_TRUE(store.ok());
  std::ofstream(path, std::ios::trunc)
      << "api_keys:\n  - key: \"rotated-0123456789abcdef\"\n    tenant_id: acme\n";
  ASSERT_OK((*store)->Reload(path));
  EXPECT_FALSE((*store)->Authenticate("tenant-a-0123456789abcdef").ok());
  EXPECT_TRUE((*store)->Authenticate("rotated-0123456789abcdef").ok());
  std::ofstream(path, std::ios::trunc) << "api_keys: [oops\n";
  EXPECT_FALSE((*store)->Reload(path).ok());
  EXPECT_TRUE((*store)->Authenticate("rotated-0123456789abcdef").ok());
}

// Each thread remembers the keys it authenticated: a reload, or another store, must not be
// answered from that memory.
TEST(ApiKeyStoreTest, RememberedKeysDoNotOutliveAReloadOrCrossStores) {
  testing::TempDir dir;
  const std::string path = dir.File("keys.yaml");
  std::ofstream(path) << "api_keys:\n  - key: \"first-0123456789abcdef\"\n    tenant_id: acme\n"
                         "  - key: \"second-0123456789abcdef\"\n    tenant_id: globex\n";
  auto store = ApiKeyStore::FromFile(path);
  ASSERT_TRUE(store.ok());
  for (int i = 0; i < 3; ++i) {  // authenticated, then answered from the thread's memory
    auto p = (*store)->Authenticate("first-0123456789abcdef");
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->tenant, "acme");
    ASSERT_TRUE((*store)->Authenticate("second-0123456789abcdef").ok());
  }
  std::ofstream(path, std::ios::trunc)
      << "api_keys:\n  - key: \"second-0123456789abcdef\"\n    tenant_id: initech\n    is_admin: true\n"
         "  - key: \"first-0123456789abcdef\"\n    tenant_id: acme\n    enabled: false\n";
  ASSERT_OK((*store)->Reload(path));
  auto first = (*store)->Authenticate("first-0123456789abcdef");
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.error().code, ErrorCode::kUnauthenticated);
  auto second = (*store)->Authenticate("second-0123456789abcdef");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->tenant, "initech");
  EXPECT_TRUE(second->is_admin);
  // Another store with the same key for another tenant answers for itself.
  auto other = ApiKeyStore::FromYaml("api_keys:\n  - key: \"second-0123456789abcdef\"\n    tenant_id: hooli\n");
  ASSERT_TRUE(other.ok());
  auto p = (*other)->Authenticate("second-0123456789abcdef");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->tenant, "hooli");
  EXPECT_FALSE(p->is_admin);
}

TEST(ApiKeyStoreTest, ReloadRacesWithAuthentication) {
  auto store = ApiKeyStore::FromYaml(kKeys);
  ASSERT_TRUE(store.ok());
  testing::TempDir dir;
  const std::string path = dir.File("keys.yaml");
  std::ofstream(path) << kKeys;
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load()) ASSERT_TRUE((*store)->Authenticate("admin-key-0123456789abcdef").ok());
  });
  for (int i = 0; i < 200; ++i) ASSERT_OK((*store)->Reload(path));
  stop.store(true);
  reader.join();
}

TEST(ApiKeyTest, ExtractsTheKeyFromEitherHeader) {
  EXPECT_EQ(ExtractApiKey("k1", "Bearer k2"), "k1");
  EXPECT_EQ(ExtractApiKey("", "Bearer k2"), "k2");
  EXPECT_EQ(ExtractApiKey("", "bearer k2"), "k2");
  EXPECT_EQ(ExtractApiKey("", "Basic abc"), "");
  EXPECT_EQ(ExtractApiKey("", "Bearer "), "");
  EXPECT_EQ(ExtractApiKey("", ""), "");
}

TEST(TokenBucketTest, AllowsTheBurstThenTheRate) {
  TokenBucket b(10, 5);  // 10/s, bursts of 5
  const int64_t t0 = 1'000'000'000;
  int allowed = 0;
  for (int i = 0; i < 20; ++i) allowed += b.TryAcquire(t0);
  EXPECT_EQ(allowed, 5);
  int64_t retry = 0;
  EXPECT_FALSE(b.TryAcquire(t0, &retry));
  EXPECT_GT(retry, 0);
  EXPECT_LE(retry, 100'000'000);
  EXPECT_TRUE(b.TryAcquire(t0 + retry));
  EXPECT_FALSE(b.TryAcquire(t0 + retry));
}

TEST(TokenBucketTest, AtTwiceTheRateAboutHalfIsRefused) {
  TokenBucket b(100, 10);
  int allowed = 0, total = 0;
  // 200 requests/s of synthetic time for 10 s.
  for (int64_t t = 0; t < 10'000'000'000; t += 5'000'000) {
    ++total;
    allowed += b.TryAcquire(t);
  }
  EXPECT_NEAR(static_cast<double>(allowed) / total, 0.5, 0.02);
}

TEST(TokenBucketTest, ConcurrentCallersNeverExceedTheBudget) {
  TokenBucket b(1000, 100);
  const int64_t t0 = 5'000'000'000;
  std::atomic<int> allowed{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&] {
      for (int j = 0; j < 1000; ++j) allowed += b.TryAcquire(t0);
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(allowed.load(), 100);  // the burst, and not one more at the same instant
}

TEST(RateLimiterTest, TenantsHaveSeparateBucketsAndKeysOverrideTheDefault) {
  RateLimiter::Options o;
  o.enabled = true;
  o.tenant_qps = 1;
  o.burst = 0;  // one second's worth: 1 for the default, 1e6 for the key's override
  RateLimiter rl(o);
  int retry = 0;
  int a = 0, b = 0, c = 0;
  for (int i = 0; i < 10; ++i) {
    a += rl.Allow(nullptr, "a", 0, &retry);
    b += rl.Allow(nullptr, "b", 0, &retry);
    c += rl.Allow(nullptr, "c", 1e6, &retry);
  }
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 1);
  EXPECT_EQ(c, 10);
  EXPECT_GE(retry, 1);
  RateLimiter off(RateLimiter::Options{});
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(off.Allow(nullptr, "a", 0, nullptr));
  EXPECT_EQ(off.NewConnectionBucket(), nullptr);
}

}  // namespace
}  // namespace kyrodb::server
