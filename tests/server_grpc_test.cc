// The gRPC server end to end: Service + GrpcServer in this process, a real channel over loopback
// and the generated kyrodb.v1 stub. Every RPC: happy path, validation errors (status codes),
// unknown namespace, empty database; streams; filters; grpc.health.v1 and reflection.
#include <gmock/gmock.h>
#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kyrodb/v1/kyrodb.grpc.pb.h"
#include "server/common/service.h"
#include "server/grpc/grpc_convert.h"
#include "server/grpc/grpc_server.h"
#include "server/grpc/grpc_service.h"
#include "test_support.h"

namespace kyrodb::server {
namespace {

namespace pb = ::kyrodb::v1;
using ::testing::HasSubstr;

constexpr uint32_t kDim = 8;

std::vector<float> RandomVector(std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(kDim);
  for (float& x : v) x = d(rng);
  return v;
}

float Cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += double(a[i]) * b[i];
    na += double(a[i]) * a[i];
    nb += double(b[i]) * b[i];
  }
  return static_cast<float>(dot / std::sqrt(na * nb));
}

// The collection is cosine: it stores (and returns) unit vectors.
std::vector<float> Normalized(std::vector<float> v) {
  double n = 0;
  for (float x : v) n += double(x) * x;
  for (float& x : v) x = static_cast<float>(x / std::sqrt(n));
  return v;
}

::testing::AssertionResult SameDirection(const google::protobuf::RepeatedField<float>& actual,
                                         const std::vector<float>& inserted) {
  const std::vector<float> want = Normalized(inserted);
  if (static_cast<size_t>(actual.size()) != want.size()) {
    return ::testing::AssertionFailure() << "size " << actual.size() << " != " << want.size();
  }
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::fabs(actual[static_cast<int>(i)] - want[i]) > 1e-5f) {
      return ::testing::AssertionFailure() << "value " << i << ": " << actual[static_cast<int>(i)]
                                           << " != " << want[i];
    }
  }
  return ::testing::AssertionSuccess();
}

pb::InsertRequest MakeInsert(uint64_t id, const std::vector<float>& v,
                             std::map<std::string, std::string> md = {}, std::string ns = "") {
  pb::InsertRequest r;
  r.set_doc_id(id);
  r.mutable_embedding()->Add(v.begin(), v.end());
  for (auto& [k, val] : md) (*r.mutable_metadata())[k] = val;
  r.set_namespace_(ns);
  return r;
}

pb::SearchRequest MakeSearch(const std::vector<float>& q, uint32_t k) {
  pb::SearchRequest r;
  r.mutable_query_embedding()->Add(q.begin(), q.end());
  r.set_k(k);
  return r;
}

#define EXPECT_CODE(status, code, field)                                        \
  do {                                                                          \
    const ::grpc::Status _st = (status);                                        \
    EXPECT_EQ(_st.error_code(), ::grpc::StatusCode::code) << _st.error_message(); \
    EXPECT_THAT(_st.error_message(), HasSubstr(field));                         \
  } while (0)

class GrpcServerTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }
  void TearDown() override {
    stub_.reset();
    if (server_) server_->Stop(std::chrono::milliseconds(1000));
    server_.reset();
    if (service_) service_->Close().IgnoreError();
  }

  virtual void Configure(ServerConfig& c) {}

  void Start() {
    ServerConfig config;
    config.persistence.data_dir = dir_.path();
    config.persistence.fsync_policy = "never";
    config.server.bind = "127.0.0.1";
    config.server.grpc_port = 0;
    config.hnsw.dimension = kDim;
    config.hnsw.distance = "cosine";
    config.hnsw.ef_construction = 100;
    config.hnsw.max_elements = 1 << 16;
    Configure(config);
    auto service = Service::Open(config);
    ASSERT_TRUE(service.ok()) << service.status().ToString();
    service_ = std::move(*service);
    auto server = GrpcServer::Start(*service_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    ASSERT_NE(server_->port(), 0);
    channel_ = ::grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                     ::grpc::InsecureChannelCredentials());
    stub_ = pb::KyroDBService::NewStub(channel_);
  }

  ::grpc::Status Insert(const pb::InsertRequest& req, pb::InsertResponse* resp = nullptr) {
    pb::InsertResponse local;
    ::grpc::ClientContext ctx;
    return stub_->Insert(&ctx, req, resp != nullptr ? resp : &local);
  }
  ::grpc::Status Search(const pb::SearchRequest& req, pb::SearchResponse* resp) {
    ::grpc::ClientContext ctx;
    return stub_->Search(&ctx, req, resp);
  }
  ::grpc::Status Query(uint64_t id, pb::QueryResponse* resp, bool embedding = true,
                       const std::string& ns = "") {
    pb::QueryRequest req;
    req.set_doc_id(id);
    req.set_include_embedding(embedding);
    req.set_namespace_(ns);
    ::grpc::ClientContext ctx;
    return stub_->Query(&ctx, req, resp);
  }

  // Inserts `n` random documents with ids 1..n and metadata {"i": "<id, zero-padded>",
  // "parity": "even"|"odd"}; returns their embeddings by id.
  std::map<uint64_t, std::vector<float>> InsertRandom(int n, uint32_t seed = 7) {
    std::mt19937 rng(seed);
    std::map<uint64_t, std::vector<float>> docs;
    for (int i = 1; i <= n; ++i) {
      std::vector<float> v = RandomVector(rng);
      char padded[16];
      std::snprintf(padded, sizeof(padded), "%04d", i);
      EXPECT_TRUE(Insert(MakeInsert(i, v, {{"i", padded}, {"parity", i % 2 ? "odd" : "even"}})).ok());
      docs[i] = std::move(v);
    }
    return docs;
  }

  static std::vector<uint64_t> Ids(const pb::SearchResponse& r) {
    std::vector<uint64_t> ids;
    for (const auto& h : r.results()) ids.push_back(h.doc_id());
    return ids;
  }

  testing::TempDir dir_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<::grpc::Channel> channel_;
  std::unique_ptr<pb::KyroDBService::Stub> stub_;
};

// --- grpc.health.v1 and reflection (no generated stubs installed: raw protobuf bytes) ---

std::string ToString(const ::grpc::ByteBuffer& buffer) {
  std::vector<::grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string s;
  for (const auto& slice : slices) s.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  return s;
}

::grpc::ByteBuffer FromString(const std::string& s) {
  ::grpc::Slice slice(s);
  return ::grpc::ByteBuffer(&slice, 1);
}

TEST_F(GrpcServerTest, StandardHealthCheckSaysServing) {
  ::grpc::GenericStub generic(channel_);
  for (const std::string service : {"", "kyrodb.v1.KyroDBService"}) {
    ::grpc::ClientContext ctx;
    pb::QueryRequest unused;
    // HealthCheckRequest{service = 1}
    std::string request;
    if (!service.empty()) request = std::string("\x0a", 1) + char(service.size()) + service;
    ::grpc::ByteBuffer req = FromString(request), resp;
    std::promise<::grpc::Status> done;
    generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", ::grpc::StubOptions(), &req, &resp,
                      [&](::grpc::Status s) { done.set_value(std::move(s)); });
    ::grpc::Status st = done.get_future().get();
    ASSERT_TRUE(st.ok()) << service << ": " << st.error_message();
    google::protobuf::UnknownFieldSet fields;
    ASSERT_TRUE(fields.ParseFromString(ToString(resp)));
    ASSERT_EQ(fields.field_count(), 1);
    EXPECT_EQ(fields.field(0).number(), 1);     // status
    EXPECT_EQ(fields.field(0).varint(), 1u);    // SERVING
  }
}

TEST_F(GrpcServerTest, ReflectionListsTheKyroDbService) {
  ::grpc::GenericStub generic(channel_);
  ::grpc::CompletionQueue cq;
  ::grpc::ClientContext ctx;
  auto wait = [&](intptr_t expected) {
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), expected);
    return ok;
  };
  auto call = generic.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(wait(1));
  call->Write(FromString(std::string("\x3a\x00", 2)), reinterpret_cast<void*>(2));  // list_services = ""
  ASSERT_TRUE(wait(2));
  call->WritesDone(reinterpret_cast<void*>(3));
  ASSERT_TRUE(wait(3));
  ::grpc::ByteBuffer resp;
  call->Read(&resp, reinterpret_cast<void*>(4));
  ASSERT_TRUE(wait(4));
  ::grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  wait(5);
  ASSERT_TRUE(status.ok()) << status.error_message();

  // ServerReflectionResponse.list_services_response = 6 { service = 1 { name = 1 } }
  google::protobuf::UnknownFieldSet top;
  ASSERT_TRUE(top.ParseFromString(ToString(resp)));
  std::vector<std::string> names;
  for (int i = 0; i < top.field_count(); ++i) {
    if (top.field(i).number() != 6) continue;
    google::protobuf::UnknownFieldSet list;
    ASSERT_TRUE(list.ParseFromString(top.field(i).length_delimited()));
    for (int j = 0; j < list.field_count(); ++j) {
      google::protobuf::UnknownFieldSet service;
      ASSERT_TRUE(service.ParseFromString(list.field(j).length_delimited()));
      names.push_back(service.field(0).length_delimited());
    }
  }
  EXPECT_THAT(names, ::testing::Contains("kyrodb.v1.KyroDBService"));
  EXPECT_THAT(names, ::testing::Contains("grpc.health.v1.Health"));
}

// --- Insert / Query ---

TEST_F(GrpcServerTest, InsertThenQueryReturnsTheDocument) {
  std::vector<float> v = {1, 2, 3, 4, 5, 6, 7, 8};
  pb::InsertResponse ir;
  ASSERT_TRUE(Insert(MakeInsert(42, v, {{"lang", "en"}}), &ir).ok());
  EXPECT_TRUE(ir.success());
  EXPECT_EQ(ir.tier(), pb::InsertResponse::HOT_TIER);
  EXPECT_GT(ir.inserted_at(), 1'600'000'000u);

  pb::QueryResponse q;
  ASSERT_TRUE(Query(42, &q).ok());
  EXPECT_TRUE(q.found());
  EXPECT_EQ(q.doc_id(), 42u);
  EXPECT_TRUE(SameDirection(q.embedding(), v));
  EXPECT_EQ(q.metadata().at("lang"), "en");
  EXPECT_NE(q.served_from(), pb::QueryResponse::UNKNOWN);

  pb::QueryResponse no_embedding;
  ASSERT_TRUE(Query(42, &no_embedding, false).ok());
  EXPECT_TRUE(no_embedding.found());
  EXPECT_EQ(no_embedding.embedding_size(), 0);
}

TEST_F(GrpcServerTest, InsertRejectsInvalidDocumentsWithInvalidArgument) {
  std::vector<float> good(kDim, 0.5f);
  EXPECT_CODE(Insert(MakeInsert(0, good)), INVALID_ARGUMENT, "doc_id");
  EXPECT_CODE(Insert(MakeInsert(1, {})), INVALID_ARGUMENT, "embedding");
  EXPECT_CODE(Insert(MakeInsert(1, std::vector<float>(kDim + 1, 0.5f))), INVALID_ARGUMENT,
              "embedding");
  std::vector<float> nan = good;
  nan[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_CODE(Insert(MakeInsert(1, nan)), INVALID_ARGUMENT, "embedding");
  std::vector<float> inf = good;
  inf[0] = std::numeric_limits<float>::infinity();
  EXPECT_CODE(Insert(MakeInsert(1, inf)), INVALID_ARGUMENT, "embedding");
  EXPECT_CODE(Insert(MakeInsert(1, std::vector<float>(kMaxDimension + 1, 0.5f))),
              INVALID_ARGUMENT, "embedding");

  pb::QueryResponse q;  // nothing landed
  ASSERT_TRUE(Query(1, &q).ok());
  EXPECT_FALSE(q.found());
  // Each refusal was recorded as an error.
  const Endpoint insert = Endpoint::kInsert;
  EXPECT_EQ(service_->metrics().Summarize(&insert).errors, 6u);
  EXPECT_EQ(service_->metrics().Requests(Transport::kGrpc, Endpoint::kInsert), 6u);
}

TEST_F(GrpcServerTest, UnknownNamespaceIsNotFoundForEveryDataRpc) {
  std::vector<float> v(kDim, 0.5f);
  EXPECT_CODE(Insert(MakeInsert(1, v, {}, "nope")), NOT_FOUND, "nope");
  pb::QueryResponse q;
  EXPECT_CODE(Query(1, &q, true, "nope"), NOT_FOUND, "nope");
  pb::SearchRequest s = MakeSearch(v, 5);
  s.set_namespace_("nope");
  pb::SearchResponse sr;
  EXPECT_CODE(Search(s, &sr), NOT_FOUND, "nope");
  {
    ::grpc::ClientContext ctx;
    pb::DeleteRequest req;
    req.set_doc_id(1);
    req.set_namespace_("nope");
    pb::DeleteResponse resp;
    EXPECT_CODE(stub_->Delete(&ctx, req, &resp), NOT_FOUND, "nope");
  }
  {
    ::grpc::ClientContext ctx;
    pb::UpdateMetadataRequest req;
    req.set_doc_id(1);
    req.set_namespace_("nope");
    pb::UpdateMetadataResponse resp;
    EXPECT_CODE(stub_->UpdateMetadata(&ctx, req, &resp), NOT_FOUND, "nope");
  }
  {
    ::grpc::ClientContext ctx;
    pb::BulkQueryRequest req;
    req.add_doc_ids(1);
    req.set_namespace_("nope");
    pb::BulkQueryResponse resp;
    EXPECT_CODE(stub_->BulkQuery(&ctx, req, &resp), NOT_FOUND, "nope");
  }
  {
    ::grpc::ClientContext ctx;
    pb::BatchDeleteRequest req;
    req.mutable_ids()->add_doc_ids(1);
    req.set_namespace_("nope");
    pb::BatchDeleteResponse resp;
    EXPECT_CODE(stub_->BatchDelete(&ctx, req, &resp), NOT_FOUND, "nope");
  }
  {
    ::grpc::ClientContext ctx;
    pb::InsertResponse resp;
    auto writer = stub_->BulkInsert(&ctx, &resp);
    writer->Write(MakeInsert(1, v, {}, "nope"));
    writer->WritesDone();
    EXPECT_CODE(writer->Finish(), NOT_FOUND, "nope");
  }
  {
    ::grpc::ClientContext ctx;
    auto stream = stub_->BulkSearch(&ctx);
    stream->Write(s);  // may race with the server ending the call
    stream->WritesDone();
    pb::SearchResponse r;
    EXPECT_FALSE(stream->Read(&r));
    EXPECT_CODE(stream->Finish(), NOT_FOUND, "nope");
  }
}

TEST_F(GrpcServerTest, QueryOfAbsentDocumentIsFoundFalse) {
  pb::QueryResponse q;
  ASSERT_TRUE(Query(7, &q).ok());
  EXPECT_FALSE(q.found());
  EXPECT_EQ(q.doc_id(), 7u);
  EXPECT_CODE(Query(0, &q), INVALID_ARGUMENT, "doc_id");
}

// --- Search ---

TEST_F(GrpcServerTest, SearchOnEmptyDatabaseReturnsNothing) {
  pb::SearchResponse r;
  ASSERT_TRUE(Search(MakeSearch(std::vector<float>(kDim, 0.5f), 10), &r).ok());
  EXPECT_EQ(r.results_size(), 0);
  EXPECT_EQ(r.total_found(), 0u);
}

TEST_F(GrpcServerTest, SearchRejectsInvalidRequestsWithInvalidArgument) {
  InsertRandom(5);
  std::vector<float> q(kDim, 0.5f);
  pb::SearchResponse r;
  EXPECT_CODE(Search(MakeSearch(q, 0), &r), INVALID_ARGUMENT, "k");
  EXPECT_CODE(Search(MakeSearch(q, kMaxK + 1), &r), INVALID_ARGUMENT, "k");
  pb::SearchRequest ef = MakeSearch(q, 10);
  ef.set_ef_search(kMaxEfSearch + 1);
  EXPECT_CODE(Search(ef, &r), INVALID_ARGUMENT, "ef_search");
  EXPECT_CODE(Search(MakeSearch({}, 10), &r), INVALID_ARGUMENT, "query_embedding");
  EXPECT_CODE(Search(MakeSearch(std::vector<float>(kDim - 1, 0.5f), 10), &r), INVALID_ARGUMENT,
              "query_embedding");
  std::vector<float> nan = q;
  nan[1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_CODE(Search(MakeSearch(nan, 10), &r), INVALID_ARGUMENT, "query_embedding");
  EXPECT_CODE(Search(MakeSearch(std::vector<float>(kMaxDimension + 1, 0.5f), 10), &r),
              INVALID_ARGUMENT, "query_embedding");

  // Limits themselves are accepted.
  ASSERT_TRUE(Search(MakeSearch(q, kMaxK), &r).ok());
  EXPECT_EQ(r.results_size(), 5);
  ef.set_ef_search(kMaxEfSearch);
  EXPECT_TRUE(Search(ef, &r).ok());
}

TEST_F(GrpcServerTest, SearchEqualsBruteForceInHotAndColdTier) {
  auto docs = InsertRandom(300);
  std::mt19937 rng(99);
  auto check = [&](pb::SearchResponse::SearchPath expected_path) {
    for (int t = 0; t < 20; ++t) {
      std::vector<float> q = RandomVector(rng);
      std::vector<std::pair<float, uint64_t>> truth;
      for (const auto& [id, v] : docs) truth.emplace_back(Cosine(q, v), id);
      std::sort(truth.rbegin(), truth.rend());
      pb::SearchRequest req = MakeSearch(q, 10);
      req.set_ef_search(400);
      pb::SearchResponse r;
      ASSERT_TRUE(Search(req, &r).ok());
      ASSERT_EQ(r.results_size(), 10);
      EXPECT_EQ(r.total_found(), 10u);
      EXPECT_EQ(r.search_path(), expected_path);
      for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(r.results(i).doc_id(), truth[i].second) << "rank " << i;
        EXPECT_NEAR(r.results(i).score(), truth[i].first, 1e-4);
        EXPECT_EQ(r.results(i).embedding_size(), 0);
        EXPECT_EQ(r.results(i).metadata().count("parity"), 1u);
      }
    }
  };
  check(pb::SearchResponse::HOT_TIER_ONLY);

  ::grpc::ClientContext ctx;
  pb::FlushResponse flushed;
  ASSERT_TRUE(stub_->FlushHotTier(&ctx, pb::FlushRequest(), &flushed).ok());
  EXPECT_TRUE(flushed.success());
  EXPECT_EQ(flushed.documents_flushed(), 300u);
  check(pb::SearchResponse::COLD_TIER_ONLY);
}

TEST_F(GrpcServerTest, SearchHonoursIncludeEmbeddingsAndMinScore) {
  auto docs = InsertRandom(50);
  pb::SearchRequest req = MakeSearch(docs[17], 5);
  req.set_include_embeddings(true);
  pb::SearchResponse r;
  ASSERT_TRUE(Search(req, &r).ok());
  ASSERT_GT(r.results_size(), 0);
  EXPECT_EQ(r.results(0).doc_id(), 17u);
  EXPECT_TRUE(SameDirection(r.results(0).embedding(), docs[17]));
  for (int i = 1; i < r.results_size(); ++i) EXPECT_LE(r.results(i).score(), r.results(i - 1).score());

  req.set_min_score(0.999f);  // only the document itself
  ASSERT_TRUE(Search(req, &r).ok());
  ASSERT_EQ(r.results_size(), 1);
  EXPECT_EQ(r.results(0).doc_id(), 17u);
}

// --- Filters ---

class GrpcFilterTest : public GrpcServerTest {
 protected:
  void SetUp() override {
    GrpcServerTest::SetUp();
    InsertRandom(40);
  }
  // Ids (sorted) that a k=1000 search with `filter` returns.
  std::vector<uint64_t> Matching(const pb::MetadataFilter& filter) {
    pb::SearchRequest req = MakeSearch(std::vector<float>(kDim, 0.5f), 1000);
    *req.mutable_filter() = filter;
    pb::SearchResponse r;
    ::grpc::Status st = Search(req, &r);
    EXPECT_TRUE(st.ok()) << st.error_message();
    std::vector<uint64_t> ids = Ids(r);
    std::sort(ids.begin(), ids.end());
    return ids;
  }
  static pb::MetadataFilter Exact(const std::string& k, const std::string& v) {
    pb::MetadataFilter f;
    f.mutable_exact()->set_key(k);
    f.mutable_exact()->set_value(v);
    return f;
  }
  static pb::MetadataFilter Range(const std::string& lo, const std::string& hi) {
    pb::MetadataFilter gte, lt, f;
    gte.mutable_range()->set_key("i");
    gte.mutable_range()->set_gte(lo);
    lt.mutable_range()->set_key("i");
    lt.mutable_range()->set_lt(hi);
    *f.mutable_and_filter()->add_filters() = gte;
    *f.mutable_and_filter()->add_filters() = lt;
    return f;
  }
};

TEST_F(GrpcFilterTest, ExactInRangeAndOrNot) {
  EXPECT_EQ(Matching(Exact("i", "0007")), std::vector<uint64_t>({7}));
  EXPECT_TRUE(Matching(Exact("i", "7")).empty());
  EXPECT_TRUE(Matching(Exact("missing", "x")).empty());

  pb::MetadataFilter in;
  in.mutable_in_match()->set_key("i");
  for (const char* v : {"0003", "0005", "0039", "9999"}) in.mutable_in_match()->add_values(v);
  EXPECT_EQ(Matching(in), std::vector<uint64_t>({3, 5, 39}));

  EXPECT_EQ(Matching(Range("0010", "0014")), std::vector<uint64_t>({10, 11, 12, 13}));
  pb::MetadataFilter gt, lte;
  gt.mutable_range()->set_key("i");
  gt.mutable_range()->set_gt("0038");
  EXPECT_EQ(Matching(gt), std::vector<uint64_t>({39, 40}));
  lte.mutable_range()->set_key("i");
  lte.mutable_range()->set_lte("0002");
  EXPECT_EQ(Matching(lte), std::vector<uint64_t>({1, 2}));

  pb::MetadataFilter even_in_range;  // and: range AND parity
  *even_in_range.mutable_and_filter()->add_filters() = Range("0010", "0014");
  *even_in_range.mutable_and_filter()->add_filters() = Exact("parity", "even");
  EXPECT_EQ(Matching(even_in_range), std::vector<uint64_t>({10, 12}));

  pb::MetadataFilter either;
  *either.mutable_or_filter()->add_filters() = Exact("i", "0001");
  *either.mutable_or_filter()->add_filters() = Exact("i", "0040");
  EXPECT_EQ(Matching(either), std::vector<uint64_t>({1, 40}));

  pb::MetadataFilter odd;
  *odd.mutable_not_filter()->mutable_filter() = Exact("parity", "even");
  std::vector<uint64_t> odd_ids = Matching(odd);
  ASSERT_EQ(odd_ids.size(), 20u);
  for (uint64_t id : odd_ids) EXPECT_EQ(id % 2, 1u);

  // The deprecated map: exact matches ANDed with `filter`.
  pb::SearchRequest legacy = MakeSearch(std::vector<float>(kDim, 0.5f), 1000);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  (*legacy.mutable_metadata_filters())["parity"] = "odd";
#pragma GCC diagnostic pop
  *legacy.mutable_filter() = Range("0010", "0014");
  pb::SearchResponse r;
  ASSERT_TRUE(Search(legacy, &r).ok());
  std::vector<uint64_t> ids = Ids(r);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, std::vector<uint64_t>({11, 13}));
}

TEST_F(GrpcFilterTest, MalformedFiltersAreInvalidArgument) {
  auto status_of = [&](const pb::MetadataFilter& f) {
    pb::SearchRequest req = MakeSearch(std::vector<float>(kDim, 0.5f), 10);
    *req.mutable_filter() = f;
    pb::SearchResponse r;
    return Search(req, &r);
  };
  pb::MetadataFilter no_bound;
  no_bound.mutable_range()->set_key("i");
  EXPECT_CODE(status_of(no_bound), INVALID_ARGUMENT, "filter.range");
  EXPECT_CODE(status_of(Exact("", "x")), INVALID_ARGUMENT, "filter.exact.key");
  pb::MetadataFilter empty_child;
  empty_child.mutable_and_filter()->add_filters();
  EXPECT_CODE(status_of(empty_child), INVALID_ARGUMENT, "filter.and_filter.filters[0]");
  pb::MetadataFilter not_without_child;
  not_without_child.mutable_not_filter();
  EXPECT_CODE(status_of(not_without_child), INVALID_ARGUMENT, "filter.not_filter.filter");
}

// --- Delete / UpdateMetadata / BulkQuery / BatchDelete ---

TEST_F(GrpcServerTest, DeleteReportsWhetherTheDocumentExisted) {
  InsertRandom(3);
  auto del = [&](uint64_t id, pb::DeleteResponse* resp) {
    ::grpc::ClientContext ctx;
    pb::DeleteRequest req;
    req.set_doc_id(id);
    return stub_->Delete(&ctx, req, resp);
  };
  pb::DeleteResponse r;
  ASSERT_TRUE(del(2, &r).ok());
  EXPECT_TRUE(r.success());
  EXPECT_TRUE(r.existed());
  ASSERT_TRUE(del(2, &r).ok());
  EXPECT_FALSE(r.existed());
  pb::QueryResponse q;
  ASSERT_TRUE(Query(2, &q).ok());
  EXPECT_FALSE(q.found());
  ASSERT_TRUE(Query(3, &q).ok());
  EXPECT_TRUE(q.found());
  EXPECT_CODE(del(0, &r), INVALID_ARGUMENT, "doc_id");
}

TEST_F(GrpcServerTest, UpdateMetadataMergesOrReplaces) {
  ASSERT_TRUE(Insert(MakeInsert(5, std::vector<float>(kDim, 0.5f), {{"a", "1"}, {"b", "2"}})).ok());
  auto update = [&](uint64_t id, std::map<std::string, std::string> md, bool merge,
                    pb::UpdateMetadataResponse* resp) {
    ::grpc::ClientContext ctx;
    pb::UpdateMetadataRequest req;
    req.set_doc_id(id);
    for (auto& [k, v] : md) (*req.mutable_metadata())[k] = v;
    req.set_merge(merge);
    return stub_->UpdateMetadata(&ctx, req, resp);
  };
  pb::UpdateMetadataResponse r;
  ASSERT_TRUE(update(5, {{"b", "20"}, {"c", "3"}}, true, &r).ok());
  EXPECT_TRUE(r.success());
  EXPECT_TRUE(r.existed());
  pb::QueryResponse q;
  ASSERT_TRUE(Query(5, &q).ok());
  EXPECT_EQ(q.metadata().size(), 3u);
  EXPECT_EQ(q.metadata().at("a"), "1");
  EXPECT_EQ(q.metadata().at("b"), "20");

  ASSERT_TRUE(update(5, {{"z", "9"}}, false, &r).ok());
  ASSERT_TRUE(Query(5, &q).ok());
  EXPECT_EQ(q.metadata().size(), 1u);
  EXPECT_EQ(q.metadata().at("z"), "9");

  ASSERT_TRUE(update(6, {{"z", "9"}}, true, &r).ok());
  EXPECT_FALSE(r.success());
  EXPECT_FALSE(r.existed());
  EXPECT_CODE(update(0, {{"z", "9"}}, true, &r), INVALID_ARGUMENT, "doc_id");
}

TEST_F(GrpcServerTest, BulkQueryReturnsFoundAndMissingInOrder) {
  auto docs = InsertRandom(5);
  ::grpc::ClientContext ctx;
  pb::BulkQueryRequest req;
  for (uint64_t id : {3, 99, 1}) req.add_doc_ids(id);
  req.set_include_embeddings(true);
  pb::BulkQueryResponse r;
  ASSERT_TRUE(stub_->BulkQuery(&ctx, req, &r).ok());
  ASSERT_EQ(r.results_size(), 3);
  EXPECT_EQ(r.total_requested(), 3u);
  EXPECT_EQ(r.total_found(), 2u);
  EXPECT_TRUE(r.results(0).found());
  EXPECT_EQ(r.results(0).doc_id(), 3u);
  EXPECT_TRUE(SameDirection(r.results(0).embedding(), docs[3]));
  EXPECT_FALSE(r.results(1).found());
  EXPECT_EQ(r.results(1).doc_id(), 99u);
  EXPECT_EQ(r.results(2).doc_id(), 1u);

  ::grpc::ClientContext ctx2;
  pb::BulkQueryRequest bad;
  bad.add_doc_ids(1);
  bad.add_doc_ids(0);
  EXPECT_CODE(stub_->BulkQuery(&ctx2, bad, &r), INVALID_ARGUMENT, "doc_ids[1]");

  ::grpc::ClientContext ctx3;
  ASSERT_TRUE(stub_->BulkQuery(&ctx3, pb::BulkQueryRequest(), &r).ok());
  EXPECT_EQ(r.results_size(), 0);
}

TEST_F(GrpcServerTest, BatchDeleteByIdsAndByFilter) {
  InsertRandom(10);
  auto batch_delete = [&](const pb::BatchDeleteRequest& req, pb::BatchDeleteResponse* resp) {
    ::grpc::ClientContext ctx;
    return stub_->BatchDelete(&ctx, req, resp);
  };
  pb::BatchDeleteRequest by_ids;
  for (uint64_t id : {1, 2, 77}) by_ids.mutable_ids()->add_doc_ids(id);
  pb::BatchDeleteResponse r;
  ASSERT_TRUE(batch_delete(by_ids, &r).ok());
  EXPECT_TRUE(r.success());
  EXPECT_EQ(r.deleted_count(), 2u);

  pb::BatchDeleteRequest by_filter;
  by_filter.mutable_filter()->mutable_exact()->set_key("parity");
  by_filter.mutable_filter()->mutable_exact()->set_value("odd");
  ASSERT_TRUE(batch_delete(by_filter, &r).ok());
  EXPECT_EQ(r.deleted_count(), 4u);  // 3, 5, 7, 9 (1 is gone)
  pb::QueryResponse q;
  for (uint64_t id = 1; id <= 10; ++id) {
    ASSERT_TRUE(Query(id, &q).ok());
    EXPECT_EQ(q.found(), id > 2 && id % 2 == 0) << id;
  }

  EXPECT_CODE(batch_delete(pb::BatchDeleteRequest(), &r), INVALID_ARGUMENT, "delete_criteria");
  pb::BatchDeleteRequest empty_filter;
  empty_filter.mutable_filter();
  EXPECT_CODE(batch_delete(empty_filter, &r), INVALID_ARGUMENT, "filter");
  pb::BatchDeleteRequest zero;
  zero.mutable_ids()->add_doc_ids(0);
  EXPECT_CODE(batch_delete(zero, &r), INVALID_ARGUMENT, "doc_id");
}

// --- Streams ---

TEST_F(GrpcServerTest, BulkInsertCountsRefusedDocumentsThenBulkQueryFindsTheRest) {
  std::mt19937 rng(3);
  std::map<uint64_t, std::vector<float>> docs;
  ::grpc::ClientContext ctx;
  pb::InsertResponse resp;
  {
    auto writer = stub_->BulkInsert(&ctx, &resp);
    for (uint64_t id = 1; id <= 1000; ++id) {
      std::vector<float> v = RandomVector(rng);
      if (id == 500) v.push_back(1.0f);  // wrong dimension
      if (id == 900) v[0] = std::numeric_limits<float>::quiet_NaN();
      ASSERT_TRUE(writer->Write(MakeInsert(id == 700 ? 0 : id, v)));
      if (id != 500 && id != 700 && id != 900) docs[id] = v;
    }
    writer->WritesDone();
    ::grpc::Status st = writer->Finish();
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  EXPECT_EQ(resp.total_inserted(), 997u);
  EXPECT_EQ(resp.total_failed(), 3u);
  EXPECT_FALSE(resp.success());
  EXPECT_THAT(resp.error(), HasSubstr("documents[499]"));

  ::grpc::ClientContext qctx;
  pb::BulkQueryRequest req;
  for (uint64_t id = 1; id <= 1000; ++id) req.add_doc_ids(id);
  req.set_include_embeddings(true);
  pb::BulkQueryResponse r;
  ASSERT_TRUE(stub_->BulkQuery(&qctx, req, &r).ok());
  EXPECT_EQ(r.total_found(), 997u);
  for (const auto& q : r.results()) {
    auto it = docs.find(q.doc_id());
    ASSERT_EQ(q.found(), it != docs.end()) << q.doc_id();
    if (q.found()) {
      EXPECT_TRUE(SameDirection(q.embedding(), it->second));
    }
  }
}

TEST_F(GrpcServerTest, BulkInsertOfNothingSucceeds) {
  ::grpc::ClientContext ctx;
  pb::InsertResponse resp;
  auto writer = stub_->BulkInsert(&ctx, &resp);
  writer->WritesDone();
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_TRUE(resp.success());
  EXPECT_EQ(resp.total_inserted(), 0u);
}

TEST_F(GrpcServerTest, BulkLoadHnswLandsDocumentsInTheColdTier) {
  std::mt19937 rng(5);
  ::grpc::ClientContext ctx;
  pb::BulkLoadResponse resp;
  std::vector<float> first;
  {
    auto writer = stub_->BulkLoadHnsw(&ctx, &resp);
    for (uint64_t id = 1; id <= 600; ++id) {
      std::vector<float> v = RandomVector(rng);
      if (id == 1) first = v;
      ASSERT_TRUE(writer->Write(MakeInsert(id, v)));
    }
    writer->WritesDone();
    ASSERT_TRUE(writer->Finish().ok());
  }
  EXPECT_TRUE(resp.success());
  EXPECT_EQ(resp.total_loaded(), 600u);
  EXPECT_EQ(resp.total_failed(), 0u);
  EXPECT_GT(resp.load_duration_ms(), 0.0f);
  EXPECT_GT(resp.avg_insert_rate(), 0.0f);
  EXPECT_GT(resp.peak_memory_bytes(), 0u);

  pb::SearchResponse r;
  ASSERT_TRUE(Search(MakeSearch(first, 3), &r).ok());
  ASSERT_GT(r.results_size(), 0);
  EXPECT_EQ(r.results(0).doc_id(), 1u);
  EXPECT_EQ(r.search_path(), pb::SearchResponse::COLD_TIER_ONLY);
}

TEST_F(GrpcServerTest, BulkSearchAnswersEveryRequestInOrder) {
  auto docs = InsertRandom(100);
  constexpr int kRequests = 500;
  ::grpc::ClientContext ctx;
  auto stream = stub_->BulkSearch(&ctx);
  std::thread writer([&] {
    for (int i = 0; i < kRequests; ++i) {
      const uint64_t id = 1 + static_cast<uint64_t>(i) % 100;
      // Every 50th request is invalid (k = 0): it gets an error response in its place.
      ASSERT_TRUE(stream->Write(MakeSearch(docs[id], i % 50 == 49 ? 0 : 3)));
    }
    stream->WritesDone();
  });
  int n = 0;
  pb::SearchResponse r;
  while (stream->Read(&r)) {
    if (n % 50 == 49) {
      EXPECT_THAT(r.error(), HasSubstr("k")) << n;
      EXPECT_EQ(r.results_size(), 0);
    } else {
      EXPECT_TRUE(r.error().empty()) << r.error();
      ASSERT_GT(r.results_size(), 0) << n;
      EXPECT_EQ(r.results(0).doc_id(), 1 + static_cast<uint64_t>(n) % 100) << "response " << n;
    }
    ++n;
  }
  writer.join();
  EXPECT_EQ(n, kRequests);
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(service_->metrics().Requests(Transport::kGrpc, Endpoint::kBulkSearch),
            static_cast<uint64_t>(kRequests));
}

// --- Operations ---

TEST_F(GrpcServerTest, HealthRpcReportsHealthyAndFiltersComponents) {
  ::grpc::ClientContext ctx;
  pb::HealthResponse r;
  ASSERT_TRUE(stub_->Health(&ctx, pb::HealthRequest(), &r).ok());
  EXPECT_EQ(r.status(), pb::HealthResponse::HEALTHY);
  EXPECT_FALSE(r.version().empty());
  EXPECT_FALSE(r.components().empty());

  ::grpc::ClientContext ctx2;
  pb::HealthRequest wal;
  wal.set_component("wal");
  ASSERT_TRUE(stub_->Health(&ctx2, wal, &r).ok());
  EXPECT_LE(r.components().size(), 1u);

  ::grpc::ClientContext ctx3;
  pb::HealthRequest bad;
  bad.set_component("gpu");
  EXPECT_CODE(stub_->Health(&ctx3, bad, &r), INVALID_ARGUMENT, "component");
}

TEST_F(GrpcServerTest, MetricsCountRequestsAndTiers) {
  InsertRandom(20);
  pb::SearchResponse sr;
  ASSERT_TRUE(Search(MakeSearch(std::vector<float>(kDim, 0.5f), 5), &sr).ok());
  pb::QueryResponse q;
  ASSERT_TRUE(Query(1, &q).ok());

  ::grpc::ClientContext ctx;
  pb::MetricsResponse m;
  ASSERT_TRUE(stub_->Metrics(&ctx, pb::MetricsRequest(), &m).ok());
  EXPECT_EQ(m.total_inserts(), 20u);
  EXPECT_EQ(m.total_queries(), 2u);
  EXPECT_EQ(m.hot_tier_size(), 20u);
  EXPECT_EQ(m.cold_tier_size(), 0u);
  EXPECT_GT(m.p99_latency_ms(), 0.0);
  EXPECT_GE(m.p99_latency_ms(), m.p50_latency_ms());
  EXPECT_GT(m.collected_at(), 1'600'000'000u);
  EXPECT_GT(m.memory_usage_bytes(), 0u);
}

TEST_F(GrpcServerTest, FlushAndSnapshotOnEmptyAndLoadedDatabase) {
  {
    ::grpc::ClientContext ctx;
    pb::FlushResponse r;
    ASSERT_TRUE(stub_->FlushHotTier(&ctx, pb::FlushRequest(), &r).ok());
    EXPECT_TRUE(r.success());
    EXPECT_EQ(r.documents_flushed(), 0u);
  }
  InsertRandom(25);
  {
    ::grpc::ClientContext ctx;
    pb::SnapshotResponse r;
    ASSERT_TRUE(stub_->CreateSnapshot(&ctx, pb::SnapshotRequest(), &r).ok());
    EXPECT_TRUE(r.success());
    EXPECT_EQ(r.documents_snapshotted(), 25u);
    EXPECT_GT(r.snapshot_size_bytes(), 0u);
    EXPECT_FALSE(r.snapshot_path().empty());
  }
  {
    ::grpc::ClientContext ctx;
    pb::FlushResponse r;
    ASSERT_TRUE(stub_->FlushHotTier(&ctx, pb::FlushRequest(), &r).ok());
    EXPECT_EQ(r.documents_flushed(), 25u);
  }
}

TEST_F(GrpcServerTest, GetConfigReflectsTheServerConfig) {
  ::grpc::ClientContext ctx;
  pb::ConfigResponse r;
  ASSERT_TRUE(stub_->GetConfig(&ctx, pb::ConfigRequest(), &r).ok());
  EXPECT_EQ(r.embedding_dimension(), kDim);
  EXPECT_EQ(r.data_dir(), dir_.path());
  EXPECT_EQ(r.fsync_policy(), "never");
  EXPECT_EQ(r.hnsw_distance(), "cosine");
  EXPECT_EQ(r.hnsw_ef_construction(), 100u);
  EXPECT_EQ(r.hnsw_max_elements(), 1u << 16);
  EXPECT_FALSE(r.version().empty());
}

// --- Transport ---

TEST_F(GrpcServerTest, ConcurrentInsertsAreAllAcknowledgedAndDurable) {
  constexpr int kThreads = 16, kPerThread = 50;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const uint64_t id = 1 + static_cast<uint64_t>(t * kPerThread + i);
        std::vector<float> v(kDim, 0.1f);
        v[id % kDim] = static_cast<float>(id);
        if (!Insert(MakeInsert(id, v)).ok()) failures.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  ::grpc::ClientContext ctx;
  pb::BulkQueryRequest req;
  for (uint64_t id = 1; id <= kThreads * kPerThread; ++id) req.add_doc_ids(id);
  pb::BulkQueryResponse r;
  ASSERT_TRUE(stub_->BulkQuery(&ctx, req, &r).ok());
  EXPECT_EQ(r.total_found(), static_cast<uint32_t>(kThreads * kPerThread));
  EXPECT_EQ(service_->metrics().Requests(Transport::kGrpc, Endpoint::kInsert),
            static_cast<uint64_t>(kThreads * kPerThread));
}

TEST_F(GrpcServerTest, SecondServerOnTheSamePortFails) {
  ServerConfig config = service_->config();
  config.server.grpc_port = server_->port();
  testing::TempDir other_dir;
  config.persistence.data_dir = other_dir.path();
  auto other = Service::Open(config);
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  auto second = GrpcServer::Start(**other);
  EXPECT_FALSE(second.ok());
  (*other)->Close().IgnoreError();
}

TEST_F(GrpcServerTest, StoppedServerRefusesCalls) {
  server_->Stop(std::chrono::milliseconds(100));
  ::grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  pb::HealthResponse r;
  EXPECT_EQ(stub_->Health(&ctx, pb::HealthRequest(), &r).error_code(),
            ::grpc::StatusCode::UNAVAILABLE);
}

class GrpcSmallMessageTest : public GrpcServerTest {
 protected:
  void Configure(ServerConfig& c) override { c.server.max_body_mb = 1; }
};

TEST_F(GrpcSmallMessageTest, MessagesOverMaxBodyAreResourceExhausted) {
  pb::InsertRequest big = MakeInsert(1, std::vector<float>(300'000, 0.5f));  // 1.2 MB
  EXPECT_EQ(Insert(big).error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(Insert(MakeInsert(1, std::vector<float>(kDim, 0.5f))).ok());
}

// Before recovery: data calls are UNAVAILABLE and grpc.health.v1 says NOT_SERVING; Watch then
// reports SERVING once Service::Recover() is done.
TEST(GrpcServerRecoveryTest, HealthTurnsServingWhenRecoveryCompletes) {
  testing::TempDir dir;
  ServerConfig config;
  config.persistence.data_dir = dir.path();
  config.server.grpc_port = 0;
  config.hnsw.dimension = kDim;
  auto created = Service::Create(config);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  std::unique_ptr<Service> service = std::move(*created);
  auto server = GrpcServer::Start(*service);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto channel = ::grpc::CreateChannel("127.0.0.1:" + std::to_string((*server)->port()),
                                       ::grpc::InsecureChannelCredentials());
  auto stub = pb::KyroDBService::NewStub(channel);
  {
    ::grpc::ClientContext ctx;
    pb::InsertResponse resp;
    EXPECT_EQ(stub->Insert(&ctx, MakeInsert(1, std::vector<float>(kDim, 0.5f)), &resp).error_code(),
              ::grpc::StatusCode::UNAVAILABLE);
  }
  ::grpc::GenericStub generic(channel);
  ::grpc::CompletionQueue cq;
  ::grpc::ClientContext ctx;
  auto next = [&](intptr_t expected) {
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), expected);
    return ok;
  };
  auto status_of = [](const ::grpc::ByteBuffer& b) {
    google::protobuf::UnknownFieldSet fields;
    EXPECT_TRUE(fields.ParseFromString(ToString(b)));
    return fields.field_count() == 1 ? fields.field(0).varint() : 0;  // 1 SERVING, 2 NOT_SERVING
  };
  auto watch = generic.PrepareCall(&ctx, "/grpc.health.v1.Health/Watch", &cq);
  watch->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(next(1));
  watch->Write(FromString(""), reinterpret_cast<void*>(2));
  ASSERT_TRUE(next(2));
  ::grpc::ByteBuffer resp;
  watch->Read(&resp, reinterpret_cast<void*>(3));
  ASSERT_TRUE(next(3));
  EXPECT_EQ(status_of(resp), 2u);

  ASSERT_OK(service->Recover());
  watch->Read(&resp, reinterpret_cast<void*>(4));
  ASSERT_TRUE(next(4));
  EXPECT_EQ(status_of(resp), 1u);
  ctx.TryCancel();
  ::grpc::Status st;
  watch->Finish(&st, reinterpret_cast<void*>(5));
  next(5);

  ::grpc::ClientContext ictx;
  pb::InsertResponse iresp;
  EXPECT_TRUE(stub->Insert(&ictx, MakeInsert(1, std::vector<float>(kDim, 0.5f)), &iresp).ok());
  (*server)->Stop(std::chrono::milliseconds(500));
  ASSERT_OK(service->Close());
}

// --- Authentication and rate limits (Service::Authenticate / Admit on every RPC but Health) ---

class GrpcAuthTest : public GrpcServerTest {
 protected:
  static constexpr const char* kKey = "0123456789abcdef-admin";
  void Configure(ServerConfig& c) override {
    const std::string keys = dir_.File("keys.yaml");
    std::FILE* f = std::fopen(keys.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fprintf(f, "api_keys:\n  - key: \"%s\"\n    tenant_id: default\n    is_admin: true\n", kKey);
    std::fclose(f);
    c.auth.enabled = true;
    c.auth.api_keys_file = keys;
    c.rate_limit.enabled = true;
    c.rate_limit.max_qps_per_tenant = 0.01;  // one call, then refused for minutes
    c.rate_limit.burst = 2;
  }
  ::grpc::Status QueryWith(const std::string& header, const std::string& value) {
    ::grpc::ClientContext ctx;
    if (!header.empty()) ctx.AddMetadata(header, value);
    pb::QueryRequest req;
    req.set_doc_id(1);
    pb::QueryResponse resp;
    return stub_->Query(&ctx, req, &resp);
  }
};

TEST_F(GrpcAuthTest, KeysAreRequiredAndRateLimitsApply) {
  EXPECT_EQ(QueryWith("", "").error_code(), ::grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(QueryWith("x-api-key", "0123456789abcdef-wrong").error_code(),
            ::grpc::StatusCode::UNAUTHENTICATED);
  {
    ::grpc::ClientContext ctx;  // the liveness RPC needs no key
    pb::HealthResponse r;
    EXPECT_TRUE(stub_->Health(&ctx, pb::HealthRequest(), &r).ok());
  }
  EXPECT_TRUE(QueryWith("x-api-key", kKey).ok());
  EXPECT_TRUE(QueryWith("authorization", std::string("Bearer ") + kKey).ok());
  EXPECT_EQ(QueryWith("x-api-key", kKey).error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED);
}

// A unary search's messages as the server allocates them (SetMessageAllocatorFor_Search): the
// request of a 768-float query, parsed from its wire bytes as gRPC does, and an answer of 10 hits
// with metadata, filled by the server's own converter, all on one arena, inside the holder's
// inline block: a call costs one allocation (the holder), not one per field.
TEST(ArenaMessageAllocatorTest, ASearchsMessagesFitTheHoldersInlineBlock) {
  ArenaMessageAllocator<pb::SearchRequest, pb::SearchResponse> allocator;
  ::grpc::MessageHolder<pb::SearchRequest, pb::SearchResponse>* holder = allocator.AllocateMessages();
  pb::SearchRequest* req = holder->request();
  pb::SearchResponse* resp = holder->response();
  google::protobuf::Arena* arena = req->GetArena();
  ASSERT_NE(arena, nullptr);
  EXPECT_EQ(resp->GetArena(), arena);
  const uint64_t inline_block = arena->SpaceAllocated();

  pb::SearchRequest wire;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (int i = 0; i < 768; ++i) wire.add_query_embedding(normal(rng));
  wire.set_k(10);
  wire.set_namespace_("default");
  ASSERT_TRUE(req->ParseFromString(wire.SerializeAsString()));
  ASSERT_EQ(req->query_embedding_size(), 768);

  SearchReply reply;
  for (uint64_t i = 0; i < 10; ++i) {
    SearchHit hit;
    hit.key = DocKey::Numeric(100000 + i);
    hit.score = 0.9f;
    hit.metadata = {{"i", std::to_string(100000 + i)}, {"source", "a-document-source-longer-than-sso"}};
    reply.hits.push_back(std::move(hit));
  }
  grpc_convert::FillSearchResponse(std::move(reply), resp);
  ASSERT_EQ(resp->results_size(), 10);
  EXPECT_EQ(resp->results(9).metadata().at("source"), "a-document-source-longer-than-sso");
  EXPECT_GT(resp->ByteSizeLong(), 300u);
  // No block beyond the inline one was needed.
  EXPECT_EQ(arena->SpaceAllocated(), inline_block);
  holder->Release();
}

}  // namespace
}  // namespace kyrodb::server
