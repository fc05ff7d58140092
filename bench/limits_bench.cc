#include "limits_bench.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "json_line.h"
#include "server/common/api_keys.h"
#include "server/common/rate_limiter.h"

namespace kyrodb::bench {

namespace {

using Clock = std::chrono::steady_clock;
volatile long g_sink = 0;

// Mean ns per call of `fn` over n calls on each of `threads` threads (wall time / calls per thread).
template <typename Fn>
double NsPerCall(size_t n, int threads, Fn fn) {
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  std::vector<double> ns(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      while (!go.load(std::memory_order_acquire)) {
      }
      const auto t0 = Clock::now();
      long acc = 0;
      for (size_t i = 0; i < n; ++i) acc += fn(i);
      g_sink = g_sink + acc;  // keeps the calls
      ns[static_cast<size_t>(t)] = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / n;
    });
  }
  go.store(true, std::memory_order_release);
  for (auto& t : ts) t.join();
  double worst = 0;
  for (double x : ns) worst = std::max(worst, x);
  return worst;
}

void Emit(const char* what, int threads, double ns, const char* note) {
  std::puts(JsonLine().Add("bench", "limits").Add("what", what).Add("threads", threads)
                .Add("ns_per_call", ns).Add("note", note).str().c_str());
}

}  // namespace

CLI::App* AddLimitsCommand(CLI::App* app, LimitsBenchConfig* config) {
  CLI::App* cmd = app->add_subcommand("limits", "cost of API key checks and rate-limit buckets per request");
  cmd->add_option("--iterations", config->iterations, "calls per measurement");
  return cmd;
}

int RunLimitsBench(const LimitsBenchConfig& config) {
  using server::ApiKeyStore;
  using server::RateLimiter;
  using server::TokenBucket;
  const size_t n = config.iterations;

  // A bucket that always admits (rate far above the call rate): the cost of the CAS path.
  TokenBucket open(1e12, 1e12);
  Emit("token_bucket_admit", 1, NsPerCall(n, 1, [&](size_t) { return open.TryAcquire(RateLimiter::NowNs()) ? 1 : 0; }),
       "one GCRA bucket, clock read included");
  Emit("token_bucket_admit", 2, NsPerCall(n, 2, [&](size_t) { return open.TryAcquire(RateLimiter::NowNs()) ? 1 : 0; }),
       "two threads on one bucket (contended cache line)");
  TokenBucket closed(1, 1);
  closed.TryAcquire(RateLimiter::NowNs());
  Emit("token_bucket_refuse", 1, NsPerCall(n, 1, [&](size_t) { return closed.TryAcquire(RateLimiter::NowNs()) ? 1 : 0; }),
       "over the limit: no write");

  RateLimiter::Options o;
  o.enabled = true;
  o.tenant_qps = 1e12;
  o.connection_qps = 1e12;
  o.global_qps = 1e12;
  o.burst = 1e12;
  RateLimiter limiter(o);
  auto conn = limiter.NewConnectionBucket();
  const std::string tenant = "tenant_42";
  Emit("rate_limiter_allow", 1, NsPerCall(n, 1, [&](size_t) { return limiter.Allow(conn.get(), tenant, 0, nullptr) ? 1 : 0; }),
       "connection + tenant (map lookup under a shared lock) + global buckets");
  Emit("rate_limiter_allow", 2, NsPerCall(n, 2, [&](size_t) { return limiter.Allow(conn.get(), tenant, 0, nullptr) ? 1 : 0; }),
       "two threads, same tenant and global buckets");

  std::string yaml = "api_keys:\n";
  for (int i = 0; i < 1000; ++i) {
    yaml += "  - key: \"bench-key-" + std::to_string(100000 + i) + "-0123456789\"\n    tenant_id: t" +
            std::to_string(i) + "\n";
  }
  auto keys = ApiKeyStore::FromYaml(yaml);
  if (!keys.ok()) {
    std::fprintf(stderr, "%s\n", keys.status().ToString().c_str());
    return 1;
  }
  const std::string key = "bench-key-100500-0123456789";
  Emit("api_key_authenticate", 1,
       NsPerCall(n / 4, 1, [&](size_t) { return (*keys)->Authenticate(key).ok() ? 1 : 0; }),
       "SHA-256 of the key, hash lookup among 1000 keys, constant-time compare, principal copy");
  Emit("api_key_authenticate", 2,
       NsPerCall(n / 4, 2, [&](size_t) { return (*keys)->Authenticate(key).ok() ? 1 : 0; }),
       "two threads");
  return g_sink == -1 ? 1 : 0;
}

}  // namespace kyrodb::bench
