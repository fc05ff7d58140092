#include "load_run.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <random>
#include <thread>

namespace kyrodb::bench {

std::optional<LoadOp> ParseLoadOp(const std::string& name) {
  if (name == "insert") return LoadOp::kInsert;
  if (name == "search") return LoadOp::kSearch;
  if (name == "query") return LoadOp::kQuery;
  if (name == "mixed") return LoadOp::kMixed;
  return std::nullopt;
}

const char* LoadOpName(LoadOp op) {
  switch (op) {
    case LoadOp::kInsert:
      return "insert";
    case LoadOp::kSearch:
      return "search";
    case LoadOp::kQuery:
      return "query";
    case LoadOp::kMixed:
      return "mixed";
  }
  return "?";
}

double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

double MachineBusyCpuSeconds() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  stat >> cpu;  // "cpu": the sum over all cores
  unsigned long long v[7] = {};  // user nice system idle iowait irq softirq
  for (auto& x : v) stat >> x;
  const unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6];
  return static_cast<double>(busy) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

LoadRun::LoadRun(const LoadSpec& spec)
    : spec_(spec), rows_(spec.vectors->rows), next_insert_id_(spec.first_insert_id) {}

void LoadRun::EnterClientThread() {
  if (!spec_.batch_scheduling) return;
  sched_param param{};
  if (pthread_setschedparam(pthread_self(), SCHED_BATCH, &param) != 0) sched_failed_.store(true);
}

void LoadRun::Start() {
  const auto now = LoadClock::now();
  window_begin_ = now + std::chrono::duration_cast<LoadClock::duration>(
                            std::chrono::duration<double>(spec_.warmup_s));
  window_end_ = window_begin_ + std::chrono::duration_cast<LoadClock::duration>(
                                    std::chrono::duration<double>(spec_.duration_s));
}

RequestKind LoadRun::NextKind(std::mt19937_64& rng) const {
  switch (spec_.op) {
    case LoadOp::kInsert:
      return RequestKind::kInsert;
    case LoadOp::kSearch:
      return RequestKind::kSearch;
    case LoadOp::kQuery:
      return RequestKind::kQuery;
    case LoadOp::kMixed:
      return rng() % 100 < kMixedSearchPercent ? RequestKind::kSearch : RequestKind::kInsert;
  }
  return RequestKind::kSearch;
}

void LoadRun::Record(ClientTally& tally, RequestKind kind, LoadClock::time_point t0, Outcome outcome,
                     std::string_view error) {
  const auto t1 = LoadClock::now();
  const bool in_window = t1 >= window_begin_ && t1 < window_end_;
  if (outcome == Outcome::kError) {
    ++tally.errors_total;
    if (in_window) ++tally.errors;
    std::lock_guard<std::mutex> l(error_mu_);
    if (first_error_.empty()) first_error_ = error.empty() ? "unknown error" : std::string(error);
    return;
  }
  if (!in_window) return;
  tally.latency_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  switch (kind) {
    case RequestKind::kSearch:
      ++tally.searches;
      break;
    case RequestKind::kInsert:
      ++tally.inserts;
      break;
    case RequestKind::kQuery:
      ++tally.queries;
      break;
  }
  if (outcome == Outcome::kNotFound) ++tally.not_found;
}

void LoadRun::Drive(LoadResult* result) {
  std::this_thread::sleep_until(window_begin_);
  if (spec_.on_window_begin) spec_.on_window_begin();
  const double cpu0 = ProcessCpuSeconds();
  std::this_thread::sleep_until(window_end_);
  result->client_cpu_s = ProcessCpuSeconds() - cpu0;
  if (spec_.on_window_end) spec_.on_window_end();
  // Requests are counted by completion time inside exactly this interval.
  result->seconds = std::chrono::duration<double>(window_end_ - window_begin_).count();
  stop_.store(true);
}

void LoadRun::Merge(std::vector<ClientTally>& tallies, LoadResult* result) {
  size_t samples = 0;
  for (const auto& t : tallies) samples += t.latency_us.size();
  result->latency_us.reserve(samples);
  for (auto& t : tallies) {
    result->latency_us.insert(result->latency_us.end(), t.latency_us.begin(), t.latency_us.end());
    result->searches += t.searches;
    result->inserts += t.inserts;
    result->not_found += t.not_found;
    result->errors += t.errors;
    result->errors_total += t.errors_total;
    result->requests += t.searches + t.inserts + t.queries;
  }
  result->next_insert_id = next_insert_id_.load();
  result->client_sched = spec_.batch_scheduling && !sched_failed_.load() ? "batch" : "normal";
  std::lock_guard<std::mutex> l(error_mu_);
  result->first_error = first_error_;
}

FloatMatrix RandomUnitVectors(size_t rows, size_t dim, uint64_t seed) {
  FloatMatrix m;
  m.rows = rows;
  m.dim = dim;
  m.data.resize(rows * dim);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  for (size_t r = 0; r < rows; ++r) {
    float* row = m.Row(r);
    double norm = 0;
    for (size_t d = 0; d < dim; ++d) {
      row[d] = normal(rng);
      norm += double{row[d]} * row[d];
    }
    const float inv = norm > 0 ? static_cast<float>(1 / std::sqrt(norm)) : 1.0f;
    for (size_t d = 0; d < dim; ++d) row[d] *= inv;
  }
  return m;
}

}  // namespace kyrodb::bench
