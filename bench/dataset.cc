#include "dataset.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <numbers>
#include <random>
#include <thread>
#include <utility>

#include "distance/distance.h"
#include "io/file_system.h"

namespace kyrodb::bench {
namespace {

// ---- TEXMEX files -------------------------------------------------------------------------

constexpr int32_t kMaxFileDim = 1 << 20;
constexpr size_t kRowsPerRead = 4096;

// Reads a .fvecs/.ivecs file of 4-byte elements into `out` (rows x dim); `check(row, values)`
// validates each row's values and returns an error message or "".
template <typename T, typename Check>
Status ReadVecs(const std::string& path, size_t* rows, size_t* dim, std::vector<T>* out,
                Check check) {
  static_assert(sizeof(T) == 4);
  io::FileSystem* fs = io::FileSystem::Default();
  auto size = fs->FileSize(path);
  if (!size.ok()) return size.status();
  if (*size < 4) {
    return Status::InvalidArgument(path + ": empty or shorter than one row header");
  }
  auto file = fs->NewSequentialFile(path);
  if (!file.ok()) return file.status();
  int32_t d = 0;
  KYRODB_RETURN_IF_ERROR(io::ReadExactly(file->get(), &d, sizeof(d), path.c_str()));
  if (d <= 0 || d > kMaxFileDim) {
    return Status::InvalidArgument(path + ": first row declares dimension " + std::to_string(d) +
                                   "; not a .fvecs/.ivecs file?");
  }
  const size_t row_bytes = 4 + 4 * static_cast<size_t>(d);
  if (*size % row_bytes != 0) {
    return Status::Corruption(path + ": size " + std::to_string(*size) +
                              " is not a multiple of the row size " + std::to_string(row_bytes) +
                              " (dimension " + std::to_string(d) + "): truncated or ragged file");
  }
  *rows = *size / row_bytes;
  *dim = static_cast<size_t>(d);
  out->resize(*rows * *dim);

  // Rows are read in blocks; the first row's header was consumed above.
  std::vector<char> buf(kRowsPerRead * row_bytes);
  std::memcpy(buf.data(), &d, 4);
  for (size_t r0 = 0; r0 < *rows; r0 += kRowsPerRead) {
    const size_t nr = std::min(kRowsPerRead, *rows - r0);
    const size_t skip = r0 == 0 ? 4 : 0;
    KYRODB_RETURN_IF_ERROR(
        io::ReadExactly(file->get(), buf.data() + skip, nr * row_bytes - skip, path.c_str()));
    for (size_t i = 0; i < nr; ++i) {
      const char* row = buf.data() + i * row_bytes;
      int32_t rd = 0;
      std::memcpy(&rd, row, 4);
      if (rd != d) {
        return Status::Corruption(path + ": row " + std::to_string(r0 + i) +
                                  " declares dimension " + std::to_string(rd) + ", expected " +
                                  std::to_string(d));
      }
      T* dst = out->data() + (r0 + i) * *dim;
      std::memcpy(dst, row + 4, 4 * *dim);
      std::string err = check(dst, *dim);
      if (!err.empty()) {
        return Status::InvalidArgument(path + ": row " + std::to_string(r0 + i) + ": " + err);
      }
    }
  }
  return Status::Ok();
}

template <typename T>
Status WriteVecs(const std::string& path, size_t rows, size_t dim, const T* data) {
  static_assert(sizeof(T) == 4);
  if (dim == 0 || dim > static_cast<size_t>(kMaxFileDim)) {
    return Status::InvalidArgument(path + ": bad dimension " + std::to_string(dim));
  }
  auto file = io::FileSystem::Default()->NewWritableFile(path);
  if (!file.ok()) return file.status();
  const int32_t d = static_cast<int32_t>(dim);
  for (size_t i = 0; i < rows; ++i) {
    KYRODB_RETURN_IF_ERROR((*file)->Append(&d, sizeof(d)));
    KYRODB_RETURN_IF_ERROR((*file)->Append(data + i * dim, 4 * dim));
  }
  return (*file)->Close();
}

// ---- Random streams ---------------------------------------------------------------------

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Independent stream `stream`, block `block` of the generator seeded with `seed`.
std::mt19937_64 StreamRng(uint64_t seed, uint64_t stream, uint64_t block) {
  return std::mt19937_64(SplitMix64(SplitMix64(SplitMix64(seed) ^ stream) ^ block));
}

// Uniform in [0, 1) with 53 random bits.
double Uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// Standard normal by Box-Muller, in float (one 64-bit draw gives both 24-bit uniforms); the
// tails end at 5.8 sigma, plenty for test data. Our own code, so no implementation-defined
// std::normal_distribution.
class NormalSource {
 public:
  explicit NormalSource(std::mt19937_64* rng) : rng_(rng) {}
  float Next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const uint64_t bits = (*rng_)();
    const float u1 = static_cast<float>((bits >> 40) + 1) * 0x1.0p-24f;  // (0, 1]: log finite
    const float u2 = static_cast<float>(bits & 0xFFFFFF) * 0x1.0p-24f;
    const float r = std::sqrt(-2.0f * std::log(u1));
    const float t = 2.0f * std::numbers::pi_v<float> * u2;
    spare_ = r * std::sin(t);
    has_spare_ = true;
    return r * std::cos(t);
  }

 private:
  std::mt19937_64* rng_;
  bool has_spare_ = false;
  float spare_ = 0;
};

constexpr uint64_t kModelStream = 0;
constexpr uint64_t kBaseStream = 1;
constexpr uint64_t kQueryStream = 2;
constexpr size_t kRowsPerBlock = 1024;  // rows drawn from one seeded block stream
constexpr double kMinSigma = 0.05;
constexpr double kMaxSigma = 0.5;

struct Mixture {
  size_t dim;
  std::vector<float> centers;      // clusters x dim
  std::vector<float> sigmas;       // clusters x dim
  std::vector<double> cumulative;  // cumulative weights, last = 1
};

Mixture MakeMixture(size_t clusters, size_t dim, uint64_t seed) {
  Mixture m{dim, std::vector<float>(clusters * dim), std::vector<float>(clusters * dim), {}};
  std::mt19937_64 rng = StreamRng(seed, kModelStream, 0);
  NormalSource normal(&rng);
  for (float& c : m.centers) c = normal.Next();
  const double log_lo = std::log(kMinSigma), log_hi = std::log(kMaxSigma);
  for (float& s : m.sigmas)
    s = static_cast<float>(std::exp(log_lo + (log_hi - log_lo) * Uniform(rng)));
  std::vector<double> w(clusters);
  double total = 0;
  for (double& x : w) total += (x = std::exp(normal.Next()));  // log-normal weights
  m.cumulative.resize(clusters);
  double acc = 0;
  for (size_t c = 0; c < clusters; ++c) m.cumulative[c] = (acc += w[c]) / total;
  m.cumulative.back() = 1.0;
  return m;
}

// Runs fn(i) for i in [0, count) on up to `threads` threads, each taking the next i.
template <typename Fn>
void ParallelFor(size_t count, size_t threads, Fn fn) {
  threads = std::max<size_t>(1, std::min(threads, count));
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < count;) fn(i);
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
}

FloatMatrix SampleMixture(const Mixture& mix, size_t rows, uint64_t seed, uint64_t stream,
                          size_t threads) {
  FloatMatrix out{rows, mix.dim, std::vector<float>(rows * mix.dim)};
  const size_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  ParallelFor(blocks, threads, [&](size_t b) {
    std::mt19937_64 rng = StreamRng(seed, stream, b);
    NormalSource normal(&rng);
    const size_t end = std::min(rows, (b + 1) * kRowsPerBlock);
    for (size_t i = b * kRowsPerBlock; i < end; ++i) {
      const double u = Uniform(rng);
      const size_t c = static_cast<size_t>(
          std::upper_bound(mix.cumulative.begin(), mix.cumulative.end() - 1, u) -
          mix.cumulative.begin());
      const float* center = mix.centers.data() + c * mix.dim;
      const float* sigma = mix.sigmas.data() + c * mix.dim;
      float* row = out.Row(i);
      for (size_t d = 0; d < mix.dim; ++d) {
        row[d] = center[d] + sigma[d] * normal.Next();
      }
    }
  });
  return out;
}

}  // namespace

Result<FloatMatrix> ReadFvecs(const std::string& path) {
  FloatMatrix m;
  KYRODB_RETURN_IF_ERROR(
      ReadVecs<float>(path, &m.rows, &m.dim, &m.data, [](const float* v, size_t n) -> std::string {
        for (size_t i = 0; i < n; ++i) {
          if (!std::isfinite(v[i])) return "non-finite value";
        }
        return "";
      }));
  return m;
}

Result<IdMatrix> ReadIvecs(const std::string& path) {
  IdMatrix m;
  KYRODB_RETURN_IF_ERROR(ReadVecs<uint32_t>(path, &m.rows, &m.cols, &m.data,
                                            [](const uint32_t* v, size_t n) -> std::string {
                                              for (size_t i = 0; i < n; ++i) {
                                                if (v[i] > INT32_MAX) return "negative id";
                                              }
                                              return "";
                                            }));
  return m;
}

Status WriteFvecs(const std::string& path, const FloatMatrix& m) {
  return WriteVecs(path, m.rows, m.dim, m.data.data());
}

Status WriteIvecs(const std::string& path, const IdMatrix& m) {
  return WriteVecs(path, m.rows, m.cols, m.data.data());
}

Result<ClusteredData> GenerateClustered(const ClusteredSpec& spec, size_t threads) {
  if (spec.n == 0 || spec.dim == 0) {
    return Status::InvalidArgument("clustered dataset needs n > 0 and dim > 0");
  }
  const size_t clusters = spec.clusters != 0 ? spec.clusters : std::max<size_t>(100, spec.n / 1000);
  const Mixture mix = MakeMixture(clusters, spec.dim, spec.seed);
  ClusteredData out;
  out.base = SampleMixture(mix, spec.n, spec.seed, kBaseStream, threads);
  out.queries = SampleMixture(mix, spec.num_queries, spec.seed, kQueryStream, threads);
  return out;
}

Status NormalizeRows(FloatMatrix* m) {
  for (size_t i = 0; i < m->rows; ++i) {
    float* row = m->Row(i);
    double sum = 0;
    for (size_t d = 0; d < m->dim; ++d) sum += static_cast<double>(row[d]) * row[d];
    if (sum == 0) {
      return Status::InvalidArgument("row " + std::to_string(i) +
                                     " is a zero vector: cosine is undefined");
    }
    const float inv = static_cast<float>(1.0 / std::sqrt(sum));
    for (size_t d = 0; d < m->dim; ++d) row[d] *= inv;
  }
  return Status::Ok();
}

Result<IdMatrix> ExactTopK(const FloatMatrix& base, const FloatMatrix& queries, size_t k,
                           index::Metric metric, size_t threads) {
  if (base.dim != queries.dim) {
    return Status::InvalidArgument("base dimension " + std::to_string(base.dim) +
                                   " != query dimension " + std::to_string(queries.dim));
  }
  if (k == 0 || k > base.rows) {
    return Status::InvalidArgument("k = " + std::to_string(k) + " must be in [1, " +
                                   std::to_string(base.rows) + "]");
  }
  if (base.rows > static_cast<size_t>(INT32_MAX)) {
    return Status::InvalidArgument("ground truth ids are int32: too many base rows");
  }
  const bool l2 = metric == index::Metric::kL2;
  const size_t dim = base.dim;
  IdMatrix out{queries.rows, k, std::vector<uint32_t>(queries.rows * k)};

  // A block of queries is scanned against each base row in turn, so the base streams from
  // memory once per block instead of once per query.
  constexpr size_t kQueriesPerBlock = 16;
  const size_t blocks = (queries.rows + kQueriesPerBlock - 1) / kQueriesPerBlock;
  using Entry = std::pair<float, uint32_t>;  // (distance, id); max-heap keeps the k best
  ParallelFor(blocks, threads, [&](size_t b) {
    const size_t q0 = b * kQueriesPerBlock;
    const size_t nq = std::min(kQueriesPerBlock, queries.rows - q0);
    std::vector<std::vector<Entry>> heaps(nq);
    for (auto& h : heaps) h.reserve(k + 1);
    for (size_t i = 0; i < base.rows; ++i) {
      const float* row = base.Row(i);
      for (size_t q = 0; q < nq; ++q) {
        const float* query = queries.Row(q0 + q);
        const float dist = l2 ? distance::L2Sq(query, row, dim) : -distance::Dot(query, row, dim);
        std::vector<Entry>& h = heaps[q];
        const Entry e{dist, static_cast<uint32_t>(i)};
        if (h.size() < k) {
          h.push_back(e);
          std::push_heap(h.begin(), h.end());
        } else if (e < h.front()) {
          std::pop_heap(h.begin(), h.end());
          h.back() = e;
          std::push_heap(h.begin(), h.end());
        }
      }
    }
    for (size_t q = 0; q < nq; ++q) {
      std::sort_heap(heaps[q].begin(), heaps[q].end());
      for (size_t j = 0; j < k; ++j) out.data[(q0 + q) * k + j] = heaps[q][j].second;
    }
  });
  return out;
}

}  // namespace kyrodb::bench
