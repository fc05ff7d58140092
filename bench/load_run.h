// LoadRun: the timeline and bookkeeping shared by the HTTP and gRPC load generators (internal
// to load_client's implementations). Order: construct, connect the clients, Start() (fixes the
// timeline), launch the clients, Drive() (warm-up, window, stop), wait for the clients, Merge().
// Clients call Next*/Record from their own threads.
// Thread-safety: Next*, Record and stopped() may be called concurrently by different clients;
// each ClientTally is used by one client at a time; Merge runs after every client has stopped.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "load_client.h"

namespace kyrodb::bench {

using LoadClock = std::chrono::steady_clock;

enum class RequestKind { kSearch, kInsert, kQuery };
enum class Outcome { kOk, kNotFound, kError };

struct ClientTally {
  std::vector<double> latency_us;
  uint64_t searches = 0, inserts = 0, queries = 0, not_found = 0, errors = 0, errors_total = 0;
};

class LoadRun {
 public:
  explicit LoadRun(const LoadSpec& spec);

  const LoadSpec& spec() const { return spec_; }
  bool stopped() const { return stop_.load(std::memory_order_relaxed); }

  // What a client sends next, and its inputs.
  RequestKind NextKind(std::mt19937_64& rng) const;
  size_t NextVectorRow() { return next_row_.fetch_add(1, std::memory_order_relaxed) % rows_; }
  uint64_t NextInsertId() { return next_insert_id_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t RandomId(std::mt19937_64& rng) const { return 1 + rng() % spec_.id_space; }

  // Records one finished request that started at t0. `error` describes a failure.
  void Record(ClientTally& tally, RequestKind kind, LoadClock::time_point t0, Outcome outcome,
              std::string_view error = {});

  // Called first on each client thread: applies the spec's scheduling policy to it.
  void EnterClientThread();

  // Fixes the warm-up and window from now on.
  void Start();

  // Blocks through the warm-up and the window (running the spec's hooks), then tells clients
  // to stop. Returns the window's length and client CPU in `result`.
  void Drive(LoadResult* result);

  // Sums the tallies into `result` (after all clients stopped).
  void Merge(std::vector<ClientTally>& tallies, LoadResult* result);

  // After Start(): runs `threads` client threads, thread t calling EnterClientThread() and then
  // body(t) (which returns once its clients have stopped), drives the run, joins them and merges
  // the tallies of `clients` (pointers to objects with tally()).
  template <typename Body, typename Clients>
  LoadResult RunClientThreads(size_t threads, Body body, Clients& clients) {
    std::vector<std::thread> pool;
    for (size_t t = 0; t < threads; ++t) {
      pool.emplace_back([this, t, &body] {
        EnterClientThread();
        body(t);
      });
    }
    LoadResult result;
    Drive(&result);
    for (auto& t : pool) t.join();  // every client has seen the stop after its call in flight
    std::vector<ClientTally> tallies;
    for (auto& c : clients) tallies.push_back(std::move(c->tally()));
    Merge(tallies, &result);
    return result;
  }

 private:
  const LoadSpec& spec_;
  std::atomic<bool> sched_failed_{false};  // a client thread could not switch to SCHED_BATCH
  const size_t rows_;
  LoadClock::time_point window_begin_, window_end_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> next_row_{0};
  std::atomic<uint64_t> next_insert_id_;
  std::mutex error_mu_;
  std::string first_error_;  // guarded by error_mu_
};

}  // namespace kyrodb::bench
