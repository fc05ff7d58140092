// The load generators against a real kyrodb_server on loopback ports: the HTTP client, the gRPC
// client over nghttp2 and gRPC's library client must count what the server did. Successes are
// checked against the server's state afterwards (every acknowledged insert is readable), and
// failures (unknown collection, wrong dimension, absent ids) are classified, not counted as
// throughput. Runs are short; nothing here depends on how fast they are. Also kyrodb_bench
// loopback's windows (the server benchmark's ceilings): each protocol's calls are answered and
// counted.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <random>
#include <string>

#include "http_request.h"
#include "load_client.h"
#include "loopback_bench.h"
#include "server_process.h"

namespace kyrodb::bench {
namespace {

constexpr size_t kDim = 8;

struct Client {
  const char* name;
  bool http;
  GrpcClient grpc;
};
const Client kClients[] = {{"http", true, GrpcClient::kH2},
                           {"grpc h2", false, GrpcClient::kH2},
                           {"grpc grpcpp", false, GrpcClient::kGrpcpp}};

FloatMatrix Vectors(size_t rows, size_t dim, uint64_t seed) {
  FloatMatrix m{rows, dim, std::vector<float>(rows * dim)};
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  for (float& x : m.data) x = normal(rng);
  return m;
}

class LoadClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/kyrodb_load_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = new std::string(tmpl);
    auto s = ServerProcess::Start(KYRODB_SERVER_BIN, *dir_,
                                  {"--set", "hnsw.dimension=" + std::to_string(kDim), "--set", "hnsw.distance=l2",
                                   "--set", "persistence.fsync_policy=never"},
                                  std::chrono::seconds(60));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = s->release();
  }
  static void TearDownTestSuite() {
    if (server_ != nullptr) {
      auto rc = server_->Stop(std::chrono::seconds(30));
      EXPECT_TRUE(rc.ok() && *rc == 0);
      delete server_;
      server_ = nullptr;
    }
    if (dir_ != nullptr) {
      std::error_code ec;
      std::filesystem::remove_all(*dir_, ec);
      delete dir_;
      dir_ = nullptr;
    }
  }

  static LoadSpec Spec(const Client& c, LoadOp op, const FloatMatrix& vectors) {
    LoadSpec spec;
    spec.target = c.http ? "http://127.0.0.1:" + std::to_string(server_->http_port())
                         : "127.0.0.1:" + std::to_string(server_->grpc_port());
    spec.grpc_client = c.grpc;
    spec.op = op;
    spec.concurrency = 4;
    spec.client_threads = 2;
    spec.warmup_s = 0;
    spec.duration_s = 0.3;
    spec.k = 5;
    spec.ef = 32;
    spec.vectors = &vectors;
    return spec;
  }

  static LoadResult Run(const Client& c, const LoadSpec& spec) {
    auto r = c.http ? RunHttpLoad(spec) : RunGrpcLoad(spec);
    EXPECT_TRUE(r.ok()) << c.name << ": " << r.status().ToString();
    return r.ok() ? std::move(*r) : LoadResult{};
  }

  static unsigned GetStatus(uint64_t id) {
    auto r = HttpCall({"127.0.0.1", server_->http_port()}, "GET", "/v1/documents/" + std::to_string(id), "",
                      std::chrono::seconds(10));
    return r.ok() ? r->status : 0;
  }

  static std::string* dir_;
  static ServerProcess* server_;
};

std::string* LoadClientTest::dir_ = nullptr;
ServerProcess* LoadClientTest::server_ = nullptr;

TEST_F(LoadClientTest, InsertsAreAcknowledgedReadableAndCountedOnce) {
  const FloatMatrix vectors = Vectors(64, kDim, 1);
  uint64_t first = 1'000'000;
  for (const Client& c : kClients) {
    SCOPED_TRACE(c.name);
    LoadSpec spec = Spec(c, LoadOp::kInsert, vectors);
    spec.first_insert_id = first;
    const LoadResult r = Run(c, spec);
    EXPECT_EQ(r.errors_total, 0u) << r.first_error;
    ASSERT_GT(r.requests, 0u);
    EXPECT_EQ(r.inserts, r.requests);
    EXPECT_EQ(r.latency_us.size(), r.requests);
    // Every id below next_insert_id was sent and acknowledged (clients stop after their call
    // in flight), so the server has each of them, and none past it.
    ASSERT_GE(r.next_insert_id, first + r.requests);
    for (uint64_t id : {first, (first + r.next_insert_id) / 2, r.next_insert_id - 1}) {
      EXPECT_EQ(GetStatus(id), 200u) << id;
    }
    EXPECT_EQ(GetStatus(r.next_insert_id), 404u);
    first += 1'000'000;
  }
}

TEST_F(LoadClientTest, SearchesAndQueriesSucceedAndAbsentIdsAreNotFoundNotErrors) {
  const FloatMatrix vectors = Vectors(64, kDim, 2);
  {
    // Something to find.
    LoadSpec spec = Spec(kClients[0], LoadOp::kInsert, vectors);
    spec.first_insert_id = 50'000'000;
    ASSERT_EQ(Run(kClients[0], spec).errors_total, 0u);
  }
  for (const Client& c : kClients) {
    SCOPED_TRACE(c.name);
    const LoadResult s = Run(c, Spec(c, LoadOp::kSearch, vectors));
    EXPECT_EQ(s.errors_total, 0u) << s.first_error;
    EXPECT_GT(s.searches, 0u);
    EXPECT_EQ(s.searches, s.requests);

    LoadSpec q = Spec(c, LoadOp::kQuery, vectors);
    q.id_space = 100;  // ids 1..100 were never inserted
    const LoadResult absent = Run(c, q);
    EXPECT_EQ(absent.errors_total, 0u) << absent.first_error;
    ASSERT_GT(absent.requests, 0u);
    EXPECT_EQ(absent.not_found, absent.requests);
  }
}

TEST_F(LoadClientTest, FailuresAreCountedAsErrorsWithTheServersReason) {
  const FloatMatrix vectors = Vectors(16, kDim, 3);
  const FloatMatrix wrong_dim = Vectors(16, kDim + 1, 3);
  for (const Client& c : kClients) {
    SCOPED_TRACE(c.name);
    LoadSpec unknown = Spec(c, LoadOp::kSearch, vectors);
    unknown.collection = "no_such_collection";
    const LoadResult u = Run(c, unknown);
    EXPECT_EQ(u.requests, 0u);
    EXPECT_GT(u.errors_total, 0u);
    EXPECT_NE(u.first_error.find(c.http ? "404" : "gRPC 5"), std::string::npos) << u.first_error;

    const LoadResult d = Run(c, Spec(c, LoadOp::kSearch, wrong_dim));
    EXPECT_EQ(d.requests, 0u);
    EXPECT_GT(d.errors_total, 0u);
    EXPECT_NE(d.first_error.find(c.http ? "400" : "gRPC 3"), std::string::npos) << d.first_error;
  }
}

TEST(LoopbackTest, EveryProtocolAnswersAndCountsItsCalls) {
  for (const char* protocol : {"tcp", "grpc", "grpc-async"}) {
    LoopbackBenchConfig c;
    c.protocol = protocol;
    c.work_us = 20;
    c.seconds = 0.3;
    c.connections = 4;
    c.dim = kDim;
    auto r = RunLoopback(c);
    ASSERT_TRUE(r.ok()) << protocol << ": " << r.status().ToString();
    EXPECT_GT(r->requests, 0u) << protocol;
    EXPECT_EQ(r->errors, 0u) << protocol;  // the h2 client checks grpc-status and the message
    EXPECT_NEAR(r->requests_per_s, r->requests / r->seconds, 1e-6) << protocol;
    ASSERT_TRUE(r->ceiling_ratio.has_value()) << protocol;
    EXPECT_GT(*r->ceiling_ratio, 0.0) << protocol;
  }
}

}  // namespace
}  // namespace kyrodb::bench
