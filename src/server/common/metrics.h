// Request metrics of the servers: a counter, an error counter and a latency histogram per
// (transport, endpoint), rendered in the Prometheus text format together with the engine's
// gauges (Service::PrometheusText). Recording is a few relaxed atomic increments: call it on
// every request from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace kyrodb::server {

enum class Transport { kHttp = 0, kGrpc = 1 };
inline constexpr int kTransportCount = 2;

enum class Endpoint {
  kInsert = 0,
  kBulkInsert,
  kQuery,
  kBulkQuery,
  kSearch,
  kBulkSearch,
  kDelete,
  kBatchDelete,
  kUpdateMetadata,
  kFlush,
  kSnapshot,
  kCollections,
  kHealth,
  kMetrics,
  kConfig,
  kOther,  // unknown routes, 404/405
};
inline constexpr int kEndpointCount = static_cast<int>(Endpoint::kOther) + 1;
const char* EndpointName(Endpoint e);  // "insert", "bulk_insert", ...

class RequestMetrics {
 public:
  // Upper bounds (seconds) of the latency buckets; the last bucket is +Inf.
  static constexpr std::array<double, 14> kBuckets = {0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                                      0.0025,  0.005,  0.01,    0.025,  0.05,
                                                      0.1,     0.25,   1.0,     5.0};

  void Record(Transport t, Endpoint e, double seconds, bool error);

  struct Summary {
    uint64_t requests = 0;
    uint64_t errors = 0;
    double p50_ms = 0, p95_ms = 0, p99_ms = 0;  // from the histogram (bucket upper bounds)
  };
  // Over both transports; every endpoint when `only` is null, else that endpoint.
  Summary Summarize(const Endpoint* only = nullptr) const;
  uint64_t Requests(Transport t, Endpoint e) const;

  // Appends kyrodb_requests_total, kyrodb_request_errors_total and
  // kyrodb_request_duration_seconds (histogram) in Prometheus text format.
  void AppendPrometheus(std::string* out) const;

 private:
  struct alignas(64) Cell {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> errors{0};
    std::atomic<uint64_t> sum_ns{0};
    std::array<std::atomic<uint64_t>, kBuckets.size() + 1> buckets{};
  };
  std::array<std::array<Cell, kEndpointCount>, kTransportCount> cells_;
};

}  // namespace kyrodb::server
