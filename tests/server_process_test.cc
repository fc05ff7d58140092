// kyrodb_server as a process: start-up refuses bad configuration naming the key; SIGTERM under
// load drains and exits 0 without losing an acknowledged write; a restart serves the same data.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "kyrodb/v1/kyrodb.grpc.pb.h"
#include "server_process.h"
#include "test_support.h"

namespace kyrodb {
namespace {

using testing::ServerProcess;
using testing::TempDir;
namespace v1 = ::kyrodb::v1;

constexpr int kDim = 16;

std::unique_ptr<v1::KyroDBService::Stub> Connect(const ServerProcess& s) {
  return v1::KyroDBService::NewStub(grpc::CreateChannel(s.grpc_target(), grpc::InsecureChannelCredentials()));
}

std::vector<float> VectorFor(uint64_t id) {
  std::mt19937 rng(static_cast<uint32_t>(id));
  std::normal_distribution<float> g;
  std::vector<float> v(kDim);
  for (float& x : v) x = g(rng);
  return v;
}

std::vector<std::string> SmallServer() {
  return {"--set", "hnsw.dimension=16", "--set", "hnsw.distance=l2", "--set", "server.shutdown_timeout_secs=5"};
}

TEST(ServerProcessTest, RefusesBadConfigurationNamingTheKey) {
  TempDir dir;
  auto s = ServerProcess::Start(dir.File("data"), {"--set", "hnsw.dimension=0"});
  EXPECT_FALSE(s->ready());
  EXPECT_EQ(s->Wait(), 2);
  EXPECT_NE(s->Output().find("hnsw.dimension"), std::string::npos) << s->Output();

  auto u = ServerProcess::Start(dir.File("data"), {"--set", "server.no_such_key=1"});
  EXPECT_EQ(u->Wait(), 2);
  EXPECT_NE(u->Output().find("server.no_such_key"), std::string::npos) << u->Output();
}

TEST(ServerProcessTest, RefusesAPortInUse) {
  TempDir dir;
  auto a = ServerProcess::Start(dir.File("a"), SmallServer());
  ASSERT_TRUE(a->ready()) << a->Output();
  std::vector<std::string> flags = SmallServer();
  flags.insert(flags.end(), {"--http-port", std::to_string(a->http_port())});
  auto b = ServerProcess::Start(dir.File("b"), flags);
  EXPECT_FALSE(b->ready());
  EXPECT_NE(b->Wait(), 0);
  EXPECT_NE(b->Output().find(std::to_string(a->http_port())), std::string::npos) << b->Output();
}

TEST(ServerProcessTest, SigtermUnderLoadLosesNoAcknowledgedWrite) {
  TempDir dir;
  const std::string data = dir.File("data");
  std::vector<uint64_t> acked;
  {
    auto s = ServerProcess::Start(data, SmallServer());
    ASSERT_TRUE(s->ready()) << s->Output();
    constexpr int kWriters = 8;
    std::mutex mu;
    std::condition_variable cv;
    uint64_t total = 0;
    std::vector<std::vector<uint64_t>> per(kWriters);
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&, w] {
        auto stub = Connect(*s);
        for (uint64_t i = 0;; ++i) {
          const uint64_t id = 1 + static_cast<uint64_t>(w) * 1'000'000 + i;
          v1::InsertRequest req;
          req.set_doc_id(id);
          for (float x : VectorFor(id)) req.add_embedding(x);
          (*req.mutable_metadata())["writer"] = std::to_string(w);
          v1::InsertResponse resp;
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
          const grpc::Status st = stub->Insert(&ctx, req, &resp);
          if (!st.ok() || !resp.success()) break;  // the server is going away
          per[w].push_back(id);
          std::lock_guard<std::mutex> l(mu);
          ++total;
          cv.notify_all();
        }
      });
    }
    {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return total >= 2000; });
    }
    s->Signal(SIGTERM);
    for (auto& t : writers) t.join();
    EXPECT_EQ(s->Wait(), 0) << s->Output();
    EXPECT_NE(s->Output().find("shutting down"), std::string::npos);
    for (auto& p : per) acked.insert(acked.end(), p.begin(), p.end());
  }
  ASSERT_GE(acked.size(), 2000u);

  auto s = ServerProcess::Start(data, SmallServer());
  ASSERT_TRUE(s->ready()) << s->Output();
  auto stub = Connect(*s);
  v1::BulkQueryRequest req;
  for (uint64_t id : acked) req.add_doc_ids(id);
  req.set_include_embeddings(true);
  v1::BulkQueryResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  ASSERT_TRUE(stub->BulkQuery(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.total_found(), acked.size());
  ASSERT_EQ(resp.results_size(), static_cast<int>(acked.size()));
  for (int i = 0; i < resp.results_size(); ++i) {
    const auto& r = resp.results(i);
    ASSERT_TRUE(r.found()) << "acknowledged doc " << acked[i] << " lost";
    const std::vector<float> want = VectorFor(acked[i]);
    ASSERT_EQ(r.embedding_size(), kDim);
    for (int d = 0; d < kDim; ++d) ASSERT_FLOAT_EQ(r.embedding(d), want[d]);
  }
  s->Signal(SIGTERM);
  EXPECT_EQ(s->Wait(), 0);
}

}  // namespace
}  // namespace kyrodb
