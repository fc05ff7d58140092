#include "server/common/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>

namespace kyrodb::server {

const char* EndpointName(Endpoint e) {
  switch (e) {
    case Endpoint::kInsert: return "insert";
    case Endpoint::kBulkInsert: return "bulk_insert";
    case Endpoint::kQuery: return "query";
    case Endpoint::kBulkQuery: return "bulk_query";
    case Endpoint::kSearch: return "search";
    case Endpoint::kBulkSearch: return "bulk_search";
    case Endpoint::kDelete: return "delete";
    case Endpoint::kBatchDelete: return "batch_delete";
    case Endpoint::kUpdateMetadata: return "update_metadata";
    case Endpoint::kFlush: return "flush";
    case Endpoint::kSnapshot: return "snapshot";
    case Endpoint::kCollections: return "collections";
    case Endpoint::kHealth: return "health";
    case Endpoint::kMetrics: return "metrics";
    case Endpoint::kConfig: return "config";
    case Endpoint::kOther: return "other";
  }
  return "other";
}

void RequestMetrics::Record(Transport t, Endpoint e, double seconds, bool error) {
  Cell& c = cells_[static_cast<int>(t)][static_cast<int>(e)];
  c.count.fetch_add(1, std::memory_order_relaxed);
  if (error) c.errors.fetch_add(1, std::memory_order_relaxed);
  c.sum_ns.fetch_add(static_cast<uint64_t>(std::max(0.0, seconds) * 1e9), std::memory_order_relaxed);
  const size_t b = static_cast<size_t>(
      std::lower_bound(kBuckets.begin(), kBuckets.end(), seconds) - kBuckets.begin());
  c.buckets[b].fetch_add(1, std::memory_order_relaxed);
}

uint64_t RequestMetrics::Requests(Transport t, Endpoint e) const {
  return cells_[static_cast<int>(t)][static_cast<int>(e)].count.load(std::memory_order_relaxed);
}

RequestMetrics::Summary RequestMetrics::Summarize(const Endpoint* only) const {
  Summary s;
  std::array<uint64_t, kBuckets.size() + 1> hist{};
  for (int t = 0; t < kTransportCount; ++t) {
    for (int e = 0; e < kEndpointCount; ++e) {
      if (only != nullptr && e != static_cast<int>(*only)) continue;
      const Cell& c = cells_[t][e];
      s.requests += c.count.load(std::memory_order_relaxed);
      s.errors += c.errors.load(std::memory_order_relaxed);
      for (size_t b = 0; b < hist.size(); ++b) hist[b] += c.buckets[b].load(std::memory_order_relaxed);
    }
  }
  uint64_t total = 0;
  for (uint64_t h : hist) total += h;
  auto quantile = [&](double q) {
    if (total == 0) return 0.0;
    const uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total)));
    uint64_t seen = 0;
    for (size_t b = 0; b < hist.size(); ++b) {
      seen += hist[b];
      if (seen >= rank) return (b < kBuckets.size() ? kBuckets[b] : kBuckets.back()) * 1e3;
    }
    return kBuckets.back() * 1e3;
  };
  s.p50_ms = quantile(0.50);
  s.p95_ms = quantile(0.95);
  s.p99_ms = quantile(0.99);
  return s;
}

void RequestMetrics::AppendPrometheus(std::string* out) const {
  auto it = std::back_inserter(*out);
  static constexpr const char* kTransportNames[] = {"http", "grpc"};
  out->append("# HELP kyrodb_requests_total Requests handled, by transport and endpoint.\n"
              "# TYPE kyrodb_requests_total counter\n");
  for (int t = 0; t < kTransportCount; ++t) {
    for (int e = 0; e < kEndpointCount; ++e) {
      fmt::format_to(it, "kyrodb_requests_total{{transport=\"{}\",endpoint=\"{}\"}} {}\n",
                     kTransportNames[t], EndpointName(static_cast<Endpoint>(e)),
                     cells_[t][e].count.load(std::memory_order_relaxed));
    }
  }
  out->append("# HELP kyrodb_request_errors_total Requests answered with an error.\n"
              "# TYPE kyrodb_request_errors_total counter\n");
  for (int t = 0; t < kTransportCount; ++t) {
    for (int e = 0; e < kEndpointCount; ++e) {
      fmt::format_to(it, "kyrodb_request_errors_total{{transport=\"{}\",endpoint=\"{}\"}} {}\n",
                     kTransportNames[t], EndpointName(static_cast<Endpoint>(e)),
                     cells_[t][e].errors.load(std::memory_order_relaxed));
    }
  }
  out->append("# HELP kyrodb_access_checks_total Requests whose API key and rate limits were checked.\n"
              "# TYPE kyrodb_access_checks_total counter\n");
  for (int t = 0; t < kTransportCount; ++t) {
    fmt::format_to(it, "kyrodb_access_checks_total{{transport=\"{}\"}} {}\n", kTransportNames[t],
                   access_[t].count.load(std::memory_order_relaxed));
  }
  out->append("# HELP kyrodb_access_check_seconds_total Time spent in those checks.\n"
              "# TYPE kyrodb_access_check_seconds_total counter\n");
  for (int t = 0; t < kTransportCount; ++t) {
    fmt::format_to(it, "kyrodb_access_check_seconds_total{{transport=\"{}\"}} {}\n", kTransportNames[t],
                   static_cast<double>(access_[t].sum_ns.load(std::memory_order_relaxed)) / 1e9);
  }
  out->append("# HELP kyrodb_request_duration_seconds Request latency in the server.\n"
              "# TYPE kyrodb_request_duration_seconds histogram\n");
  for (int t = 0; t < kTransportCount; ++t) {
    for (int e = 0; e < kEndpointCount; ++e) {
      const Cell& c = cells_[t][e];
      const uint64_t count = c.count.load(std::memory_order_relaxed);
      if (count == 0) continue;  // keep the page short: only endpoints that were called
      const char* tn = kTransportNames[t];
      const char* en = EndpointName(static_cast<Endpoint>(e));
      uint64_t cumulative = 0;
      for (size_t b = 0; b < kBuckets.size(); ++b) {
        cumulative += c.buckets[b].load(std::memory_order_relaxed);
        fmt::format_to(it,
                       "kyrodb_request_duration_seconds_bucket{{transport=\"{}\",endpoint=\"{}\","
                       "le=\"{}\"}} {}\n",
                       tn, en, kBuckets[b], cumulative);
      }
      cumulative += c.buckets[kBuckets.size()].load(std::memory_order_relaxed);
      fmt::format_to(it,
                     "kyrodb_request_duration_seconds_bucket{{transport=\"{}\",endpoint=\"{}\","
                     "le=\"+Inf\"}} {}\n",
                     tn, en, cumulative);
      fmt::format_to(it, "kyrodb_request_duration_seconds_sum{{transport=\"{}\",endpoint=\"{}\"}} {}\n",
                     tn, en, static_cast<double>(c.sum_ns.load(std::memory_order_relaxed)) / 1e9);
      fmt::format_to(it, "kyrodb_request_duration_seconds_count{{transport=\"{}\",endpoint=\"{}\"}} {}\n",
                     tn, en, cumulative);
    }
  }
}

}  // namespace kyrodb::server
