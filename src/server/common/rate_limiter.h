// Rate limits: token buckets per tenant, per connection and for the whole server.
//
// A bucket is GCRA (the generic cell rate algorithm, equivalent to a token bucket): one atomic
// "theoretical arrival time"; a request is allowed when it is not more than `burst` requests
// ahead of the steady rate, and then moves that time on by one interval. One compare-and-swap
// per request, no lock (kyrodb_bench limits measures it).
// Thread-safety: every method may be called concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kyrodb::server {

class TokenBucket {
 public:
  // rate <= 0: unlimited. burst <= 0: one second's worth (at least 1).
  TokenBucket(double rate_per_sec, double burst);
  // True if the request may go ahead; else *retry_after_ns (if given) says when one would.
  bool TryAcquire(int64_t now_ns, int64_t* retry_after_ns = nullptr);
  double rate() const { return rate_; }

 private:
  double rate_;
  int64_t interval_ns_ = 0;   // 1e9 / rate
  int64_t tolerance_ns_ = 0;  // (burst - 1) * interval
  std::atomic<int64_t> tat_{0};
};

class RateLimiter {
 public:
  struct Options {
    bool enabled = false;
    double tenant_qps = 0;      // default per tenant; a key's max_qps overrides it
    double connection_qps = 0;
    double global_qps = 0;
    double burst = 0;
  };
  explicit RateLimiter(const Options& o);

  bool enabled() const { return opt_.enabled; }
  // A new bucket for one connection (null when connections are unlimited).
  std::unique_ptr<TokenBucket> NewConnectionBucket() const;
  // Checks the connection's bucket (may be null), the tenant's (tenant_qps > 0 overrides the
  // default) and the global one. False when any refuses; *retry_after_secs is then >= 1.
  bool Allow(TokenBucket* connection, const std::string& tenant, double tenant_qps,
             int* retry_after_secs);
  // A request without a valid key: the connection's and the global buckets (no tenant to
  // charge), so that guessing keys is throttled like any other traffic.
  bool AllowUnauthenticated(TokenBucket* connection, int* retry_after_secs);

  static int64_t NowNs();

 private:
  TokenBucket* TenantBucket(const std::string& tenant, double qps);
  // Allow and AllowUnauthenticated: the tenant's bucket is skipped when `tenant` is null.
  bool Check(TokenBucket* connection, const std::string* tenant, double tenant_qps, int* retry_after_secs);

  Options opt_;
  TokenBucket global_;
  std::shared_mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<TokenBucket>> tenants_;  // GUARDED_BY(mu_)
  std::vector<std::unique_ptr<TokenBucket>> retired_;                     // GUARDED_BY(mu_)
};

}  // namespace kyrodb::server
