// The gRPC server's security and limits (issue #6), end to end: Service + GrpcServer in this
// process, real channels over loopback, ephemeral ports. Tenant isolation through every data RPC,
// the authentication matrix over every RPC, key reload, quotas, per-connection and per-tenant
// rate limits, the bound on calls in progress, and TLS (certificates made with the openssl
// command at test time) with and without client certificates.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "kyrodb/v1/kyrodb.grpc.pb.h"
#include "server/common/service.h"
#include "server/grpc/grpc_server.h"
#include "test_support.h"

namespace kyrodb::server {
namespace {

namespace pb = ::kyrodb::v1;
using ::testing::HasSubstr;
using Stub = pb::KyroDBService::Stub;

constexpr uint32_t kDim = 4;

constexpr const char* kAdminKey = "admin-key-0123456789";
constexpr const char* kKeyA = "tenant-a-key-0123456789";
constexpr const char* kKeyB = "tenant-b-key-0123456789";
constexpr const char* kDisabledKey = "disabled-key-0123456789";
constexpr const char* kQuotaKey = "quota-key-0123456789";
constexpr const char* kSlowKey = "slow-key-0123456789";
constexpr const char* kNewKey = "new-key-0123456789";

std::string KeysYaml(bool with_a, bool with_new) {
  std::string y = "api_keys:\n";
  auto add = [&y](const std::string& key, const std::string& tenant, const std::string& extra) {
    y += "  - key: \"" + key + "\"\n    tenant_id: " + tenant + "\n" + extra;
  };
  add(kAdminKey, "ops", "    is_admin: true\n");
  if (with_a) add(kKeyA, "alpha", "");
  add(kKeyB, "beta", "");
  add(kDisabledKey, "gamma", "    enabled: false\n");
  add(kQuotaKey, "delta", "    max_vectors: 3\n");
  add(kSlowKey, "epsilon", "    max_qps: 1\n");
  if (with_new) add(kNewKey, "zeta", "");
  return y;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
  ASSERT_TRUE(f.good()) << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

enum class Header { kNone, kXApiKey, kBearer };

void SetKey(::grpc::ClientContext* ctx, Header header, const std::string& key) {
  if (header == Header::kXApiKey) ctx->AddMetadata("x-api-key", key);
  if (header == Header::kBearer) ctx->AddMetadata("authorization", "Bearer " + key);
}

std::vector<float> Vec(float a, float b, float c, float d) { return {a, b, c, d}; }

pb::InsertRequest MakeInsert(uint64_t id, const std::vector<float>& v, const std::string& ns = "",
                             std::map<std::string, std::string> md = {}) {
  pb::InsertRequest r;
  r.set_doc_id(id);
  r.mutable_embedding()->Add(v.begin(), v.end());
  r.set_namespace_(ns);
  for (auto& [k, val] : md) (*r.mutable_metadata())[k] = val;
  return r;
}

pb::SearchRequest MakeSearch(const std::vector<float>& q, uint32_t k, const std::string& ns = "") {
  pb::SearchRequest r;
  r.mutable_query_embedding()->Add(q.begin(), q.end());
  r.set_k(k);
  r.set_namespace_(ns);
  return r;
}

// Streams: write every request, then collect the replies and the status.
::grpc::Status BulkInsert(Stub& stub, ::grpc::ClientContext* ctx,
                          const std::vector<pb::InsertRequest>& requests,
                          pb::InsertResponse* resp) {
  auto writer = stub.BulkInsert(ctx, resp);
  for (const auto& r : requests) {
    if (!writer->Write(r)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

::grpc::Status BulkLoad(Stub& stub, ::grpc::ClientContext* ctx,
                        const std::vector<pb::InsertRequest>& requests) {
  pb::BulkLoadResponse resp;
  auto writer = stub.BulkLoadHnsw(ctx, &resp);
  for (const auto& r : requests) {
    if (!writer->Write(r)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

// One request, then its response, then the next; stops at the first missing response.
::grpc::Status BulkSearch(Stub& stub, ::grpc::ClientContext* ctx,
                          const std::vector<pb::SearchRequest>& requests,
                          std::vector<pb::SearchResponse>* out) {
  auto stream = stub.BulkSearch(ctx);
  for (const auto& r : requests) {
    pb::SearchResponse resp;
    if (!stream->Write(r) || !stream->Read(&resp)) break;
    if (out != nullptr) out->push_back(std::move(resp));
  }
  stream->WritesDone();
  pb::SearchResponse extra;
  while (stream->Read(&extra)) {
  }
  return stream->Finish();
}

class GrpcSecurityTest : public ::testing::Test {
 protected:
  void TearDown() override { StopServer(); }

  // Auth on (the keys above), rate limits off, a small `default` collection shape.
  ServerConfig BaseConfig() {
    ServerConfig c;
    c.persistence.data_dir = dir_.File("data");
    c.persistence.fsync_policy = "never";
    c.server.bind = "127.0.0.1";
    c.server.grpc_port = 0;
    c.hnsw.dimension = kDim;
    c.hnsw.distance = "l2";
    c.hnsw.max_elements = 1 << 12;
    keys_file_ = dir_.File("keys.yaml");
    WriteFile(keys_file_, KeysYaml(/*with_a=*/true, /*with_new=*/false));
    c.auth.enabled = true;
    c.auth.api_keys_file = keys_file_;
    return c;
  }

  void StartServer(const ServerConfig& c) {
    auto service = Service::Open(c);
    ASSERT_TRUE(service.ok()) << service.status().ToString();
    service_ = std::move(*service);
    auto server = GrpcServer::Start(*service_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    target_ = "127.0.0.1:" + std::to_string(server_->port());
    stub_ = pb::KyroDBService::NewStub(NewChannel());
  }

  void StopServer() {
    stub_.reset();
    if (server_) server_->Stop(std::chrono::milliseconds(1000));
    server_.reset();
    if (service_) service_->Close().IgnoreError();
    service_.reset();
  }

  // A channel with its own TCP connection (channels otherwise share one per target).
  std::shared_ptr<::grpc::Channel> NewChannel(
      std::shared_ptr<::grpc::ChannelCredentials> creds = ::grpc::InsecureChannelCredentials(),
      ::grpc::ChannelArguments args = {}) {
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return ::grpc::CreateCustomChannel(target_, std::move(creds), args);
  }

  ::grpc::Status Insert(Stub& stub, const std::string& key, const pb::InsertRequest& req) {
    ::grpc::ClientContext ctx;
    SetKey(&ctx, Header::kXApiKey, key);
    pb::InsertResponse resp;
    return stub.Insert(&ctx, req, &resp);
  }
  ::grpc::Status Search(Stub& stub, const std::string& key, const pb::SearchRequest& req,
                        pb::SearchResponse* resp) {
    ::grpc::ClientContext ctx;
    SetKey(&ctx, Header::kXApiKey, key);
    return stub.Search(&ctx, req, resp);
  }
  ::grpc::Status Query(Stub& stub, const std::string& key, uint64_t id, const std::string& ns,
                       pb::QueryResponse* resp) {
    ::grpc::ClientContext ctx;
    SetKey(&ctx, Header::kXApiKey, key);
    pb::QueryRequest req;
    req.set_doc_id(id);
    req.set_include_embedding(true);
    req.set_namespace_(ns);
    return stub.Query(&ctx, req, resp);
  }

  testing::TempDir dir_;
  std::string keys_file_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<GrpcServer> server_;
  std::string target_;
  std::unique_ptr<Stub> stub_;
};

// --- tenant isolation ---

// Tenant A writes to its `default` collection and to a collection named "docs"; tenant B has a
// collection of the same name and uses the same doc ids. B sees and changes none of A's data.
TEST_F(GrpcSecurityTest, TenantSeesNoneOfAnotherTenantsDataThroughAnyRpc) {
  StartServer(BaseConfig());
  const RequestContext a{"alpha", false, 0, 0}, b{"beta", false, 0, 0};
  CollectionOptions shape = service_->config().DefaultCollectionOptions();
  ASSERT_TRUE(service_->CreateCollection(a, "docs", shape).ok());
  ASSERT_TRUE(service_->CreateCollection(b, "docs", shape).ok());

  for (const std::string ns : {"", "docs"}) {
    SCOPED_TRACE("namespace '" + ns + "'");
    for (uint64_t id = 1; id <= 5; ++id) {
      ASSERT_TRUE(
          Insert(*stub_, kKeyA, MakeInsert(id, Vec(float(id), 1, 0, 0), ns, {{"owner", "alpha"}}))
              .ok());
    }
    // B's only document, far from A's.
    ASSERT_TRUE(Insert(*stub_, kKeyB, MakeInsert(100, Vec(-50, -50, -50, -50), ns)).ok());

    // Search and BulkSearch: only B's own document, however close the query is to A's.
    pb::SearchResponse sr;
    ASSERT_TRUE(Search(*stub_, kKeyB, MakeSearch(Vec(1, 1, 0, 0), 10, ns), &sr).ok());
    ASSERT_EQ(sr.results_size(), 1);
    EXPECT_EQ(sr.results(0).doc_id(), 100u);
    {
      pb::SearchRequest filtered = MakeSearch(Vec(1, 1, 0, 0), 10, ns);
      filtered.mutable_filter()->mutable_exact()->set_key("owner");
      filtered.mutable_filter()->mutable_exact()->set_value("alpha");
      pb::SearchResponse fr;
      ASSERT_TRUE(Search(*stub_, kKeyB, filtered, &fr).ok());
      EXPECT_EQ(fr.results_size(), 0);
    }
    {
      ::grpc::ClientContext ctx;
      SetKey(&ctx, Header::kXApiKey, kKeyB);
      std::vector<pb::SearchResponse> out;
      ASSERT_TRUE(
          BulkSearch(*stub_, &ctx,
                     {MakeSearch(Vec(2, 1, 0, 0), 10, ns), MakeSearch(Vec(5, 1, 0, 0), 10, ns)},
                     &out)
              .ok());
      ASSERT_EQ(out.size(), 2u);
      for (const auto& r : out) {
        ASSERT_EQ(r.results_size(), 1);
        EXPECT_EQ(r.results(0).doc_id(), 100u);
      }
    }
    // Query and BulkQuery by A's ids: not found.
    for (uint64_t id = 1; id <= 5; ++id) {
      pb::QueryResponse qr;
      ASSERT_TRUE(Query(*stub_, kKeyB, id, ns, &qr).ok());
      EXPECT_FALSE(qr.found()) << id;
      EXPECT_EQ(qr.embedding_size(), 0);
    }
    {
      ::grpc::ClientContext ctx;
      SetKey(&ctx, Header::kXApiKey, kKeyB);
      pb::BulkQueryRequest req;
      for (uint64_t id = 1; id <= 5; ++id) req.add_doc_ids(id);
      req.set_include_embeddings(true);
      req.set_namespace_(ns);
      pb::BulkQueryResponse resp;
      ASSERT_TRUE(stub_->BulkQuery(&ctx, req, &resp).ok());
      EXPECT_EQ(resp.total_found(), 0u);
      for (const auto& r : resp.results()) EXPECT_FALSE(r.found());
    }
    // Delete, UpdateMetadata, BatchDelete (ids and filter): nothing existed for B.
    {
      ::grpc::ClientContext ctx;
      SetKey(&ctx, Header::kXApiKey, kKeyB);
      pb::DeleteRequest req;
      req.set_doc_id(1);
      req.set_namespace_(ns);
      pb::DeleteResponse resp;
      ASSERT_TRUE(stub_->Delete(&ctx, req, &resp).ok());
      EXPECT_FALSE(resp.existed());
    }
    {
      ::grpc::ClientContext ctx;
      SetKey(&ctx, Header::kXApiKey, kKeyB);
      pb::UpdateMetadataRequest req;
      req.set_doc_id(2);
      req.set_namespace_(ns);
      (*req.mutable_metadata())["owner"] = "beta";
      pb::UpdateMetadataResponse resp;
      ASSERT_TRUE(stub_->UpdateMetadata(&ctx, req, &resp).ok());
      EXPECT_FALSE(resp.existed());
    }
    {
      ::grpc::ClientContext ctx;
      SetKey(&ctx, Header::kXApiKey, kKeyB);
      pb::BatchDeleteRequest req;
      for (uint64_t id = 1; id <= 5; ++id) req.mutable_ids()->add_doc_ids(id);
      req.set_namespace_(ns);
      pb::BatchDeleteResponse resp;
      ASSERT_TRUE(stub_->BatchDelete(&ctx, req, &resp).ok());
      EXPECT_EQ(resp.deleted_count(), 0u);
    }
    {
      ::grpc::ClientContext ctx;
      SetKey(&ctx, Header::kXApiKey, kKeyB);
      pb::BatchDeleteRequest req;
      req.mutable_filter()->mutable_exact()->set_key("owner");
      req.mutable_filter()->mutable_exact()->set_value("alpha");
      req.set_namespace_(ns);
      pb::BatchDeleteResponse resp;
      ASSERT_TRUE(stub_->BatchDelete(&ctx, req, &resp).ok());
      EXPECT_EQ(resp.deleted_count(), 0u);
    }
    // B writes its own document 1: A's document 1 does not change.
    ASSERT_TRUE(
        Insert(*stub_, kKeyB, MakeInsert(1, Vec(9, 9, 9, 9), ns, {{"owner", "beta"}})).ok());

    // A still has all five, unchanged.
    for (uint64_t id = 1; id <= 5; ++id) {
      pb::QueryResponse qr;
      ASSERT_TRUE(Query(*stub_, kKeyA, id, ns, &qr).ok());
      ASSERT_TRUE(qr.found()) << id;
      EXPECT_EQ(qr.metadata().at("owner"), "alpha");
      ASSERT_EQ(qr.embedding_size(), 4);
      EXPECT_FLOAT_EQ(qr.embedding(0), float(id));
    }
    pb::SearchResponse ar;
    ASSERT_TRUE(Search(*stub_, kKeyA, MakeSearch(Vec(1, 1, 0, 0), 10, ns), &ar).ok());
    EXPECT_EQ(ar.results_size(), 5);
    for (const auto& h : ar.results()) EXPECT_LE(h.doc_id(), 5u);
  }
  // The engine agrees: the tenants' collections hold their own documents only.
  auto usage_a = service_->Usage(a, false);
  ASSERT_TRUE(usage_a.ok());
  EXPECT_EQ((*usage_a)[0].documents, 10u);
  auto usage_b = service_->Usage(b, false);
  ASSERT_TRUE(usage_b.ok());
  EXPECT_EQ((*usage_b)[0].documents, 4u);  // 100 and 1, in both collections
}

// A namespace that exists for one tenant only is NOT_FOUND for the other (not an empty result).
TEST_F(GrpcSecurityTest, AnotherTenantsNamedCollectionIsNotFound) {
  StartServer(BaseConfig());
  ASSERT_TRUE(service_
                  ->CreateCollection(RequestContext{"alpha", false, 0, 0}, "private",
                                     service_->config().DefaultCollectionOptions())
                  .ok());
  ASSERT_TRUE(Insert(*stub_, kKeyA, MakeInsert(1, Vec(1, 0, 0, 0), "private")).ok());
  EXPECT_EQ(Insert(*stub_, kKeyB, MakeInsert(1, Vec(1, 0, 0, 0), "private")).error_code(),
            ::grpc::StatusCode::NOT_FOUND);
  pb::QueryResponse qr;
  EXPECT_EQ(Query(*stub_, kKeyB, 1, "private", &qr).error_code(), ::grpc::StatusCode::NOT_FOUND);
  pb::SearchResponse sr;
  EXPECT_EQ(Search(*stub_, kKeyB, MakeSearch(Vec(1, 0, 0, 0), 1, "private"), &sr).error_code(),
            ::grpc::StatusCode::NOT_FOUND);
}

// --- the authentication matrix ---

struct Rpc {
  const char* name;
  bool admin_only;
  std::function<::grpc::Status(Stub&, ::grpc::ClientContext*)> call;
};

std::vector<Rpc> EveryRpcButHealth() {
  static uint64_t next_id = 1000;
  std::vector<Rpc> rpcs;
  rpcs.push_back({"Insert", false, [](Stub& s, ::grpc::ClientContext* c) {
                    pb::InsertResponse r;
                    return s.Insert(c, MakeInsert(++next_id, Vec(1, 2, 3, 4)), &r);
                  }});
  rpcs.push_back({"BulkInsert", false, [](Stub& s, ::grpc::ClientContext* c) {
                    pb::InsertResponse r;
                    return BulkInsert(s, c, {MakeInsert(++next_id, Vec(1, 2, 3, 4))}, &r);
                  }});
  rpcs.push_back({"BulkLoadHnsw", true, [](Stub& s, ::grpc::ClientContext* c) {
                    return BulkLoad(s, c, {MakeInsert(++next_id, Vec(1, 2, 3, 4))});
                  }});
  rpcs.push_back({"Delete", false, [](Stub& s, ::grpc::ClientContext* c) {
                    pb::DeleteRequest q;
                    q.set_doc_id(1);
                    pb::DeleteResponse r;
                    return s.Delete(c, q, &r);
                  }});
  rpcs.push_back({"UpdateMetadata", false, [](Stub& s, ::grpc::ClientContext* c) {
                    pb::UpdateMetadataRequest q;
                    q.set_doc_id(1);
                    pb::UpdateMetadataResponse r;
                    return s.UpdateMetadata(c, q, &r);
                  }});
  rpcs.push_back({"Query", false, [](Stub& s, ::grpc::ClientContext* c) {
                    pb::QueryRequest q;
                    q.set_doc_id(1);
                    pb::QueryResponse r;
                    return s.Query(c, q, &r);
                  }});
  rpcs.push_back({"Search", false, [](Stub& s, ::grpc::ClientContext* c) {
                    pb::SearchResponse r;
                    return s.Search(c, MakeSearch(Vec(1, 2, 3, 4), 3), &r);
                  }});
  rpcs.push_back({"BulkSearch", false, [](Stub& s, ::grpc::ClientContext* c) {
                    return BulkSearch(s, c, {MakeSearch(Vec(1, 2, 3, 4), 3)}, nullptr);
                  }});
  rpcs.push_back({"BulkQuery", false, [](Stub& s, ::grpc::ClientContext* c) {
                    pb::BulkQueryRequest q;
                    q.add_doc_ids(1);
                    pb::BulkQueryResponse r;
                    return s.BulkQuery(c, q, &r);
                  }});
  rpcs.push_back({"BatchDelete", false, [](Stub& s, ::grpc::ClientContext* c) {
                    pb::BatchDeleteRequest q;
                    q.mutable_ids()->add_doc_ids(1);
                    pb::BatchDeleteResponse r;
                    return s.BatchDelete(c, q, &r);
                  }});
  rpcs.push_back({"Metrics", false, [](Stub& s, ::grpc::ClientContext* c) {
                    pb::MetricsResponse r;
                    return s.Metrics(c, pb::MetricsRequest(), &r);
                  }});
  rpcs.push_back({"FlushHotTier", true, [](Stub& s, ::grpc::ClientContext* c) {
                    pb::FlushResponse r;
                    return s.FlushHotTier(c, pb::FlushRequest(), &r);
                  }});
  rpcs.push_back({"CreateSnapshot", true, [](Stub& s, ::grpc::ClientContext* c) {
                    pb::SnapshotResponse r;
                    return s.CreateSnapshot(c, pb::SnapshotRequest(), &r);
                  }});
  rpcs.push_back({"GetConfig", false, [](Stub& s, ::grpc::ClientContext* c) {
                    pb::ConfigResponse r;
                    return s.GetConfig(c, pb::ConfigRequest(), &r);
                  }});
  return rpcs;
}

TEST_F(GrpcSecurityTest, EveryRpcButHealthNeedsAValidEnabledKeyAndAdminOpsAnAdminKey) {
  StartServer(BaseConfig());
  const std::vector<Rpc> rpcs = EveryRpcButHealth();
  ASSERT_EQ(rpcs.size(), 14u);  // the 15 RPCs of the service but Health
  struct Case {
    const char* what;
    Header header;
    std::string key;
    bool admin;
    bool valid;
  };
  const std::vector<Case> cases = {
      {"no key", Header::kNone, "", false, false},
      {"wrong key (x-api-key)", Header::kXApiKey, "wrong-key-0123456789", false, false},
      {"wrong key (bearer)", Header::kBearer, "wrong-key-0123456789", false, false},
      {"prefix of a valid key", Header::kXApiKey, std::string(kKeyA).substr(0, 20), false, false},
      {"disabled key", Header::kXApiKey, kDisabledKey, false, false},
      {"disabled key (bearer)", Header::kBearer, kDisabledKey, false, false},
      {"tenant key (x-api-key)", Header::kXApiKey, kKeyA, false, true},
      {"tenant key (bearer)", Header::kBearer, kKeyA, false, true},
      {"admin key (x-api-key)", Header::kXApiKey, kAdminKey, true, true},
      {"admin key (bearer)", Header::kBearer, kAdminKey, true, true},
  };
  for (const Rpc& rpc : rpcs) {
    for (const Case& c : cases) {
      SCOPED_TRACE(std::string(rpc.name) + ", " + c.what);
      ::grpc::ClientContext ctx;
      SetKey(&ctx, c.header, c.key);
      const ::grpc::Status st = rpc.call(*stub_, &ctx);
      if (!c.valid) {
        EXPECT_EQ(st.error_code(), ::grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
        EXPECT_THAT(st.error_message(),
                    ::testing::AnyOf(HasSubstr("API key"), HasSubstr("disabled")));
      } else if (rpc.admin_only && !c.admin) {
        EXPECT_EQ(st.error_code(), ::grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
        EXPECT_THAT(st.error_message(), HasSubstr("admin"));
      } else {
        EXPECT_TRUE(st.ok()) << st.error_code() << ": " << st.error_message();
      }
    }
  }
  // Liveness needs no key.
  ::grpc::ClientContext ctx;
  pb::HealthResponse health;
  EXPECT_TRUE(stub_->Health(&ctx, pb::HealthRequest(), &health).ok());
}

TEST_F(GrpcSecurityTest, ReloadedKeysTakeEffectWithoutRestart) {
  StartServer(BaseConfig());
  pb::QueryResponse qr;
  EXPECT_TRUE(Query(*stub_, kKeyA, 1, "", &qr).ok());
  EXPECT_EQ(Query(*stub_, kNewKey, 1, "", &qr).error_code(), ::grpc::StatusCode::UNAUTHENTICATED);

  WriteFile(keys_file_, KeysYaml(/*with_a=*/false, /*with_new=*/true));
  ASSERT_OK(service_->ReloadKeys());
  EXPECT_TRUE(Query(*stub_, kNewKey, 1, "", &qr).ok());
  EXPECT_EQ(Query(*stub_, kKeyA, 1, "", &qr).error_code(), ::grpc::StatusCode::UNAUTHENTICATED);

  // A broken file keeps the keys in force.
  WriteFile(keys_file_, "api_keys: [\n");
  EXPECT_FALSE(service_->ReloadKeys().ok());
  EXPECT_TRUE(Query(*stub_, kNewKey, 1, "", &qr).ok());
  EXPECT_EQ(Query(*stub_, kKeyA, 1, "", &qr).error_code(), ::grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(GrpcSecurityTest, InsertsPastTheTenantsVectorQuotaAreResourceExhausted) {
  StartServer(BaseConfig());
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(Insert(*stub_, kQuotaKey, MakeInsert(id, Vec(1, 0, 0, float(id)))).ok()) << id;
  }
  const ::grpc::Status fourth = Insert(*stub_, kQuotaKey, MakeInsert(4, Vec(1, 0, 0, 4)));
  EXPECT_EQ(fourth.error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(fourth.error_message(), HasSubstr("quota of 3"));
  {
    ::grpc::ClientContext ctx;
    SetKey(&ctx, Header::kXApiKey, kQuotaKey);
    pb::InsertResponse resp;
    EXPECT_EQ(BulkInsert(*stub_, &ctx, {MakeInsert(5, Vec(1, 0, 0, 5))}, &resp).error_code(),
              ::grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  pb::QueryResponse qr;
  ASSERT_TRUE(Query(*stub_, kQuotaKey, 4, "", &qr).ok());
  EXPECT_FALSE(qr.found());
  // Deleting makes room again.
  ::grpc::ClientContext ctx;
  SetKey(&ctx, Header::kXApiKey, kQuotaKey);
  pb::DeleteRequest del;
  del.set_doc_id(1);
  pb::DeleteResponse dr;
  ASSERT_TRUE(stub_->Delete(&ctx, del, &dr).ok());
  EXPECT_TRUE(Insert(*stub_, kQuotaKey, MakeInsert(4, Vec(1, 0, 0, 4))).ok());
}

// --- rate limits and the bound on calls in progress ---

// Sends `n` Query calls back to back on `stub`; returns how many were served. Every refusal
// must be RESOURCE_EXHAUSTED naming the rate limit.
int ServedOf(Stub& stub, int n, const std::string& key) {
  int served = 0;
  for (int i = 0; i < n; ++i) {
    ::grpc::ClientContext ctx;
    if (!key.empty()) SetKey(&ctx, Header::kXApiKey, key);
    pb::QueryRequest req;
    req.set_doc_id(1);
    pb::QueryResponse resp;
    const ::grpc::Status st = stub.Query(&ctx, req, &resp);
    if (st.ok()) {
      ++served;
    } else {
      EXPECT_EQ(st.error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
      EXPECT_THAT(st.error_message(), HasSubstr("rate limit"));
    }
  }
  return served;
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A connection sending twice its burst at once gets the burst served (plus what refilled while
// it sent) and the rest refused; another connection has its own bucket. Auth is off: rate
// limits apply anyway.
TEST_F(GrpcSecurityTest, EachConnectionHasItsOwnBucket) {
  ServerConfig c = BaseConfig();
  c.auth.enabled = false;
  c.rate_limit.enabled = true;
  c.rate_limit.max_qps_per_connection = 1;
  c.rate_limit.burst = 20;
  StartServer(c);
  const auto t0 = std::chrono::steady_clock::now();
  const int served = ServedOf(*stub_, 40, "");
  const int refilled = static_cast<int>(std::ceil(SecondsSince(t0) * 1.0));
  EXPECT_GE(served, 20);
  EXPECT_LE(served, 20 + refilled);

  auto other = pb::KyroDBService::NewStub(NewChannel());
  const auto t1 = std::chrono::steady_clock::now();
  const int other_served = ServedOf(*other, 40, "");
  EXPECT_GE(other_served, 20);
  EXPECT_LE(other_served, 20 + static_cast<int>(std::ceil(SecondsSince(t1))));
}

// Calls with a wrong key are charged to the connection too: a client guessing keys gets its
// burst of UNAUTHENTICATED answers (plus what refilled meanwhile), then RESOURCE_EXHAUSTED.
TEST_F(GrpcSecurityTest, CallsWithAWrongKeyAreRateLimitedToo) {
  ServerConfig c = BaseConfig();
  c.rate_limit.enabled = true;
  c.rate_limit.max_qps_per_connection = 1;
  c.rate_limit.burst = 5;
  StartServer(c);
  const auto t0 = std::chrono::steady_clock::now();
  int unauthenticated = 0, exhausted = 0;
  for (int i = 0; i < 20; ++i) {
    ::grpc::ClientContext ctx;
    SetKey(&ctx, Header::kXApiKey, "not-a-key-0123456789");
    pb::QueryRequest req;
    req.set_doc_id(1);
    pb::QueryResponse resp;
    const ::grpc::Status st = stub_->Query(&ctx, req, &resp);
    if (st.error_code() == ::grpc::StatusCode::UNAUTHENTICATED) {
      ++unauthenticated;
    } else {
      EXPECT_EQ(st.error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
      EXPECT_THAT(st.error_message(), HasSubstr("rate limit"));
      ++exhausted;
    }
  }
  EXPECT_GE(unauthenticated, 5);
  EXPECT_LE(unauthenticated, 5 + static_cast<int>(std::ceil(SecondsSince(t0))));
  EXPECT_EQ(unauthenticated + exhausted, 20);
}

// The tenant's max_qps (from its key) holds across connections: two connections together at
// twice the tenant's burst get about half served.
TEST_F(GrpcSecurityTest, TenantRateLimitHoldsAcrossConnections) {
  ServerConfig c = BaseConfig();
  c.rate_limit.enabled = true;
  c.rate_limit.burst = 10;  // kSlowKey: max_qps 1
  StartServer(c);
  auto other = pb::KyroDBService::NewStub(NewChannel());
  const auto t0 = std::chrono::steady_clock::now();
  const int served = ServedOf(*stub_, 10, kSlowKey) + ServedOf(*other, 10, kSlowKey);
  EXPECT_GE(served, 10);
  EXPECT_LE(served, 10 + static_cast<int>(std::ceil(SecondsSince(t0))));
  // Another tenant is not held back (no default per-tenant limit here).
  EXPECT_EQ(ServedOf(*stub_, 20, kKeyA), 20);
}

// Every search of a BulkSearch stream is charged: past the connection's burst the stream ends
// with RESOURCE_EXHAUSTED.
TEST_F(GrpcSecurityTest, BulkSearchChargesEverySearch) {
  ServerConfig c = BaseConfig();
  c.auth.enabled = false;
  c.rate_limit.enabled = true;
  c.rate_limit.max_qps_per_connection = 1;
  c.rate_limit.burst = 10;
  StartServer(c);
  ::grpc::ClientContext ctx;
  std::vector<pb::SearchResponse> out;
  const auto t0 = std::chrono::steady_clock::now();
  const ::grpc::Status st = BulkSearch(
      *stub_, &ctx, std::vector<pb::SearchRequest>(30, MakeSearch(Vec(1, 0, 0, 0), 1)), &out);
  EXPECT_EQ(st.error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_GE(out.size(), 10u);
  EXPECT_LE(out.size(), 10u + static_cast<size_t>(std::ceil(SecondsSince(t0))));
}

// limits.max_connections bounds the calls in progress over all connections: with two streams
// open a third call is refused, and served once a stream ended.
TEST_F(GrpcSecurityTest, CallsInProgressAreBoundedByMaxConnections) {
  ServerConfig c = BaseConfig();
  c.auth.enabled = false;
  c.limits.max_connections = 2;
  StartServer(c);
  // Two open BulkSearch streams, each on its own connection; one search answered in each, so
  // the server holds both.
  struct Open {
    std::shared_ptr<::grpc::Channel> channel;
    std::unique_ptr<Stub> stub;
    ::grpc::ClientContext ctx;
    std::unique_ptr<::grpc::ClientReaderWriter<pb::SearchRequest, pb::SearchResponse>> stream;
  };
  std::vector<std::unique_ptr<Open>> open;
  for (int i = 0; i < 2; ++i) {
    auto o = std::make_unique<Open>();
    o->channel = NewChannel();
    o->stub = pb::KyroDBService::NewStub(o->channel);
    o->stream = o->stub->BulkSearch(&o->ctx);
    pb::SearchResponse resp;
    ASSERT_TRUE(o->stream->Write(MakeSearch(Vec(1, 0, 0, 0), 1)));
    ASSERT_TRUE(o->stream->Read(&resp));
    open.push_back(std::move(o));
  }
  auto third = pb::KyroDBService::NewStub(NewChannel());
  pb::QueryResponse qr;
  {
    ::grpc::ClientContext ctx;
    pb::QueryRequest req;
    req.set_doc_id(1);
    const ::grpc::Status st = third->Query(&ctx, req, &qr);
    EXPECT_EQ(st.error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(st.error_message(), HasSubstr("limits.max_connections"));
  }
  // Health is not bounded.
  {
    ::grpc::ClientContext ctx;
    pb::HealthResponse h;
    EXPECT_TRUE(third->Health(&ctx, pb::HealthRequest(), &h).ok());
  }
  // One stream ends: its slot is free before the client sees the end.
  open[0]->stream->WritesDone();
  ASSERT_TRUE(open[0]->stream->Finish().ok());
  {
    ::grpc::ClientContext ctx;
    pb::QueryRequest req;
    req.set_doc_id(1);
    EXPECT_TRUE(third->Query(&ctx, req, &qr).ok());
  }
  open[1]->stream->WritesDone();
  EXPECT_TRUE(open[1]->stream->Finish().ok());
}

// --- TLS ---

// Throwaway certificates, made once: a self-signed server certificate (localhost, 127.0.0.1),
// a CA, a client certificate it signed, and a self-signed client certificate it did not.
class Certificates {
 public:
  static const Certificates& Get() {
    static const Certificates certs;  // its directory goes at exit
    return certs;
  }
  bool ok() const { return ok_; }
  std::string File(const std::string& name) const { return dir_.File(name); }
  std::string Pem(const std::string& name) const { return ReadFile(File(name)); }

 private:
  Certificates() {
    const std::string d = dir_.path();
    const std::string quiet = " >/dev/null 2>&1";
    const std::vector<std::string> commands = {
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + d + "/server.key -out " + d +
            "/server.pem -days 1 -subj /CN=localhost -addext "
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + d + "/ca.key -out " + d +
            "/ca.pem -days 1 -subj /CN=kyrodb-test-ca",
        "openssl req -newkey rsa:2048 -nodes -keyout " + d + "/client.key -out " + d +
            "/client.csr -subj /CN=client",
        "openssl x509 -req -in " + d + "/client.csr -CA " + d + "/ca.pem -CAkey " + d +
            "/ca.key -CAcreateserial -out " + d + "/client.pem -days 1",
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + d + "/stranger.key -out " + d +
            "/stranger.pem -days 1 -subj /CN=stranger",
    };
    ok_ = true;
    for (const std::string& cmd : commands) {
      if (std::system((cmd + quiet).c_str()) != 0) {
        ok_ = false;
        break;
      }
    }
  }
  testing::TempDir dir_;
  bool ok_ = false;
};

class GrpcTlsTest : public GrpcSecurityTest {
 protected:
  void SetUp() override {
    if (!Certificates::Get().ok()) GTEST_SKIP() << "the openssl command failed";
  }
  ServerConfig TlsConfig(bool client_certs) {
    const Certificates& certs = Certificates::Get();
    ServerConfig c = BaseConfig();
    c.auth.enabled = false;
    c.tls.enabled = true;
    c.tls.cert_file = certs.File("server.pem");
    c.tls.key_file = certs.File("server.key");
    if (client_certs) c.tls.ca_file = certs.File("ca.pem");
    return c;
  }
  // A TLS channel trusting the server's certificate, optionally with a client certificate.
  std::unique_ptr<Stub> TlsStub(const std::string& client = "") {
    const Certificates& certs = Certificates::Get();
    ::grpc::SslCredentialsOptions options;
    options.pem_root_certs = certs.Pem("server.pem");
    if (!client.empty()) {
      options.pem_private_key = certs.Pem(client + ".key");
      options.pem_cert_chain = certs.Pem(client + ".pem");
    }
    ::grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    return pb::KyroDBService::NewStub(NewChannel(::grpc::SslCredentials(options), args));
  }
  static ::grpc::Status Query(Stub& stub) {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    pb::QueryRequest req;
    req.set_doc_id(1);
    pb::QueryResponse resp;
    return stub.Query(&ctx, req, &resp);
  }
};

TEST_F(GrpcTlsTest, RoundTripOverTlsAndPlaintextIsRefused) {
  StartServer(TlsConfig(/*client_certs=*/false));
  auto tls = TlsStub();
  {
    ::grpc::ClientContext ctx;
    pb::InsertResponse resp;
    ASSERT_TRUE(tls->Insert(&ctx, MakeInsert(7, Vec(1, 2, 3, 4)), &resp).ok());
  }
  {
    ::grpc::ClientContext ctx;
    pb::SearchResponse resp;
    ASSERT_TRUE(tls->Search(&ctx, MakeSearch(Vec(1, 2, 3, 4), 1), &resp).ok());
    ASSERT_EQ(resp.results_size(), 1);
    EXPECT_EQ(resp.results(0).doc_id(), 7u);
  }
  // stub_ is the fixture's plaintext channel.
  EXPECT_EQ(Query(*stub_).error_code(), ::grpc::StatusCode::UNAVAILABLE);
  // A client that does not trust the server's certificate is refused too.
  ::grpc::SslCredentialsOptions untrusting;
  untrusting.pem_root_certs = Certificates::Get().Pem("ca.pem");
  ::grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto wrong_root =
      pb::KyroDBService::NewStub(NewChannel(::grpc::SslCredentials(untrusting), args));
  EXPECT_EQ(Query(*wrong_root).error_code(), ::grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GrpcTlsTest, WithCaFileOnlyClientsWithACertificateItSignedGetIn) {
  StartServer(TlsConfig(/*client_certs=*/true));
  EXPECT_EQ(Query(*TlsStub()).error_code(), ::grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Query(*TlsStub("stranger")).error_code(), ::grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Query(*stub_).error_code(), ::grpc::StatusCode::UNAVAILABLE);
  const ::grpc::Status st = Query(*TlsStub("client"));
  EXPECT_TRUE(st.ok()) << st.error_code() << ": " << st.error_message();
}

TEST_F(GrpcTlsTest, StartFailsNamingAnUnusableFile) {
  const Certificates& certs = Certificates::Get();
  struct Case {
    std::function<void(ServerConfig&)> change;
    std::string message;
  };
  WriteFile(dir_.File("garbage.pem"), "not a certificate\n");
  const std::vector<Case> cases = {
      {[&](ServerConfig& c) { c.tls.cert_file = dir_.File("missing.pem"); },
       "tls.cert_file: cannot read " + dir_.File("missing.pem")},
      {[&](ServerConfig& c) { c.tls.key_file = dir_.File("missing.key"); },
       "tls.key_file: cannot read " + dir_.File("missing.key")},
      {[&](ServerConfig& c) { c.tls.cert_file = dir_.File("garbage.pem"); },
       "tls.cert_file: " + dir_.File("garbage.pem") + " holds no PEM certificate"},
      {[&](ServerConfig& c) { c.tls.key_file = dir_.File("garbage.pem"); },
       "tls.key_file: " + dir_.File("garbage.pem") + " holds no PEM private key"},
      {[&](ServerConfig& c) { c.tls.key_file = certs.File("ca.key"); },
       "is not the private key of the certificate in " + certs.File("server.pem")},
      {[&](ServerConfig& c) { c.tls.ca_file = dir_.File("missing-ca.pem"); },
       "tls.ca_file: cannot read " + dir_.File("missing-ca.pem")},
      {[&](ServerConfig& c) { c.tls.ca_file = dir_.File("garbage.pem"); },
       "tls.ca_file: " + dir_.File("garbage.pem") + " holds no PEM certificate"},
  };
  const ServerConfig base = TlsConfig(false);
  for (const Case& c : cases) {
    // GrpcServer reads the TLS settings from the service's config: one service per case.
    ServerConfig config = base;
    c.change(config);
    config.persistence.data_dir = dir_.File("data-" + std::to_string(&c - cases.data()));
    auto s = Service::Open(config);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    auto server = GrpcServer::Start(**s);
    ASSERT_FALSE(server.ok()) << c.message;
    EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(server.status().message(), HasSubstr(c.message));
    ASSERT_OK((*s)->Close());
  }
}

}  // namespace
}  // namespace kyrodb::server
