// Request metrics of the servers: a counter, an error counter and a latency histogram per
// (transport, endpoint), rendered in the Prometheus text format together with the engine's
// gauges (Service::PrometheusText). Recording is a few relaxed atomic increments: call it on
// every request from any thread.
#pragma once

#include <array>
#include <chrono>
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

  // The access checks of one request (API key, rate limits; gRPC: also the peer's bucket
  // lookup) took `ns`: kyrodb_access_check_seconds_total / kyrodb_access_checks_total, so that
  // their share of a request's latency is measured in the running server.
  void RecordAccessCheck(Transport t, uint64_t ns) {
    AccessCell& c = access_[static_cast<int>(t)];
    c.count.fetch_add(1, std::memory_order_relaxed);
    c.sum_ns.fetch_add(ns, std::memory_order_relaxed);
  }

  // Appends kyrodb_requests_total, kyrodb_request_errors_total, the access-check counters and
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
  struct alignas(64) AccessCell {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> sum_ns{0};
  };
  std::array<AccessCell, kTransportCount> access_;
};

// Times the access checks of one request from construction to destruction (or Stop()).
class AccessCheckTimer {
 public:
  AccessCheckTimer(RequestMetrics& metrics, Transport transport)
      : metrics_(&metrics), transport_(transport), start_(std::chrono::steady_clock::now()) {}
  AccessCheckTimer(const AccessCheckTimer&) = delete;
  AccessCheckTimer& operator=(const AccessCheckTimer&) = delete;
  ~AccessCheckTimer() { Stop(); }
  void Stop() {
    if (metrics_ == nullptr) return;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_);
    metrics_->RecordAccessCheck(transport_, static_cast<uint64_t>(ns.count()));
    metrics_ = nullptr;
  }

 private:
  RequestMetrics* metrics_;
  Transport transport_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace kyrodb::server
