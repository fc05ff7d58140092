#include "server/common/rate_limiter.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace kyrodb::server {

TokenBucket::TokenBucket(double rate_per_sec, double burst) : rate_(rate_per_sec) {
  if (rate_ <= 0) return;
  interval_ns_ = std::max<int64_t>(1, static_cast<int64_t>(1e9 / rate_));
  const double b = burst > 0 ? burst : std::max(1.0, rate_);
  tolerance_ns_ = static_cast<int64_t>((std::max(1.0, b) - 1.0) * static_cast<double>(interval_ns_));
}

bool TokenBucket::TryAcquire(int64_t now_ns, int64_t* retry_after_ns) {
  if (rate_ <= 0) return true;
  int64_t tat = tat_.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t base = std::max(tat, now_ns);
    if (base - now_ns > tolerance_ns_) {
      if (retry_after_ns != nullptr) *retry_after_ns = base - now_ns - tolerance_ns_;
      return false;
    }
    if (tat_.compare_exchange_weak(tat, base + interval_ns_, std::memory_order_relaxed)) return true;
  }
}

RateLimiter::RateLimiter(const Options& o) : opt_(o), global_(o.global_qps, o.burst) {}

int64_t RateLimiter::NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<TokenBucket> RateLimiter::NewConnectionBucket() const {
  if (!opt_.enabled || opt_.connection_qps <= 0) return nullptr;
  return std::make_unique<TokenBucket>(opt_.connection_qps, opt_.burst);
}

TokenBucket* RateLimiter::TenantBucket(const std::string& tenant, double qps) {
  {
    std::shared_lock<std::shared_mutex> l(mu_);
    auto it = tenants_.find(tenant);
    if (it != tenants_.end() && it->second->rate() == qps) return it->second.get();
  }
  std::unique_lock<std::shared_mutex> l(mu_);
  auto& slot = tenants_[tenant];
  // A reloaded key may carry a new max_qps: the bucket is replaced. Buckets are never freed
  // while the limiter lives (a reader may hold the old pointer), so a replaced one is kept.
  if (slot == nullptr || slot->rate() != qps) {
    if (slot != nullptr) retired_.push_back(std::move(slot));
    slot = std::make_unique<TokenBucket>(qps, opt_.burst);
  }
  return slot.get();
}

bool RateLimiter::Allow(TokenBucket* connection, const std::string& tenant, double tenant_qps,
                        int* retry_after_secs) {
  return Check(connection, &tenant, tenant_qps, retry_after_secs);
}

bool RateLimiter::AllowUnauthenticated(TokenBucket* connection, int* retry_after_secs) {
  return Check(connection, nullptr, 0, retry_after_secs);
}

bool RateLimiter::Check(TokenBucket* connection, const std::string* tenant, double tenant_qps,
                        int* retry_after_secs) {
  if (!opt_.enabled) return true;
  const int64_t now = NowNs();
  int64_t wait = 0;
  bool ok = connection == nullptr || connection->TryAcquire(now, &wait);
  const double qps = tenant_qps > 0 ? tenant_qps : opt_.tenant_qps;
  if (ok && tenant != nullptr && qps > 0) ok = TenantBucket(*tenant, qps)->TryAcquire(now, &wait);
  if (ok) ok = global_.TryAcquire(now, &wait);
  if (!ok && retry_after_secs != nullptr) {
    *retry_after_secs = std::max(1, static_cast<int>(std::ceil(static_cast<double>(wait) / 1e9)));
  }
  return ok;
}

}  // namespace kyrodb::server
