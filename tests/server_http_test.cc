// HTTP/JSON server: the JSON writer and request decoders directly, then every endpoint over real
// loopback sockets (Service and HttpServer in this process, a synchronous Beast client).
#include <utility>  // before Boost (BUILD-NOTES)

#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "server/common/service.h"
#include "server/http/handlers.h"
#include "server/http/http_server.h"
#include "server/http/json_writer.h"
#include "server/http/request_decoder.h"
#include "test_support.h"

namespace kyrodb::server {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using http::JsonBody;
using http::JsonWriter;

// ---------------------------------------------------------------------------------------------
// JsonWriter

TEST(JsonWriterTest, EscapesQuotesBackslashesAndControlCharacters) {
  std::string out;
  JsonWriter w(&out);
  w.String(std::string_view("a\"b\\c\n\t\x01\x1f/é", 12));
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f/é\"");
  // What we write parses back to the original string.
  simdjson::dom::parser p;
  std::string_view back;
  ASSERT_EQ(p.parse(out).get(back), simdjson::SUCCESS);
  EXPECT_EQ(back, std::string_view("a\"b\\c\n\t\x01\x1f/é", 12));
}

TEST(JsonWriterTest, PlacesCommasBetweenElementsAndFields) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Field("a", uint64_t{1});
  w.Key("b");
  w.BeginArray();
  w.Bool(true);
  w.Null();
  w.BeginObject();
  w.EndObject();
  w.BeginArray();
  w.EndArray();
  w.Int(-3);
  w.EndArray();
  w.Field("c", "x:");
  w.Key("d");
  w.Raw("{\"r\":1}");
  w.EndObject();
  EXPECT_EQ(out, "{\"a\":1,\"b\":[true,null,{},[],-3],\"c\":\"x:\",\"d\":{\"r\":1}}");
}

TEST(JsonWriterTest, FloatsRoundTripExactlyAndNonFiniteIsNull) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1e6f, 1e6f);
  simdjson::dom::parser p;
  for (int i = 0; i < 1000; ++i) {
    const float f = i % 3 == 0 ? dist(rng) * 1e-9f : dist(rng);
    std::string out;
    JsonWriter(&out).Float(f);
    double back = 0;
    ASSERT_EQ(p.parse(out).get(back), simdjson::SUCCESS) << out;
    EXPECT_EQ(static_cast<float>(back), f) << out;
  }
  std::string out;
  JsonWriter w(&out);
  w.BeginArray();
  w.Float(std::numeric_limits<float>::quiet_NaN());
  w.Float(std::numeric_limits<float>::infinity());
  w.Double(-std::numeric_limits<double>::infinity());
  w.Double(0.5);
  w.EndArray();
  EXPECT_EQ(out, "[null,null,null,0.5]");
}

// ---------------------------------------------------------------------------------------------
// Request decoders

class DecoderTest : public ::testing::Test {
 protected:
  // Parses `text` and runs `decode`; returns the error, if any.
  template <typename F>
  ApiStatus Decode(std::string text, F&& decode) {
    body_ = std::move(text);
    if (auto st = json_.Parse(&body_)) return st;
    return decode(json_);
  }
  static ::testing::AssertionResult Fails(const ApiStatus& st, ErrorCode code,
                                          std::string_view mentions = {}) {
    if (!st) return ::testing::AssertionFailure() << "decoded without error";
    if (st->code != code) {
      return ::testing::AssertionFailure()
             << "code " << ErrorCodeName(st->code) << " (" << st->message << "), want "
             << ErrorCodeName(code);
    }
    if (st->message.find(mentions) == std::string::npos) {
      return ::testing::AssertionFailure() << "message '" << st->message << "' lacks '"
                                           << mentions << "'";
    }
    return ::testing::AssertionSuccess();
  }

  JsonBody json_;
  std::string body_;
};

TEST_F(DecoderTest, InsertReadsNumericAndStringIdsEmbeddingMetadataAndCollection) {
  http::InsertRequest r;
  ASSERT_FALSE(Decode(R"({"doc_id": 123, "embedding": [1, -2.5, 3e-2],
                          "metadata": {"lang": "en", "q\"k": "v\u00e9"}, "collection": "c1"})",
                      [&](JsonBody& b) { return http::DecodeInsert(b, 0, &r); }));
  EXPECT_FALSE(r.doc.key.is_string());
  EXPECT_EQ(r.doc.key.id, 123u);
  EXPECT_EQ(r.doc.embedding, (std::vector<float>{1.0f, -2.5f, 3e-2f}));
  ASSERT_EQ(r.doc.metadata.size(), 2u);
  EXPECT_EQ(r.doc.metadata[1].first, "q\"k");
  EXPECT_EQ(r.doc.metadata[1].second, "v\xc3\xa9");
  EXPECT_EQ(r.collection, "c1");

  http::InsertRequest s;
  ASSERT_FALSE(Decode(R"({"embedding": [0.5], "doc_id": "123"})",
                      [&](JsonBody& b) { return http::DecodeInsert(b, 8, &s); }));
  EXPECT_TRUE(s.doc.key.is_string());
  EXPECT_EQ(s.doc.key.external, "123");
  EXPECT_EQ(s.collection, "");
}

TEST_F(DecoderTest, RefusesUnknownFieldsNamingThem) {
  http::InsertRequest r;
  EXPECT_TRUE(Fails(Decode(R"({"doc_id": 1, "embedding": [1], "embeding": [1]})",
                           [&](JsonBody& b) { return http::DecodeInsert(b, 0, &r); }),
                    ErrorCode::kUnknownField, "'embeding'"));
  http::SearchHttpRequest s;
  EXPECT_TRUE(Fails(Decode(R"({"query_embedding": [1], "top_k": 3})",
                           [&](JsonBody& b) { return http::DecodeSearch(b, 0, &s); }),
                    ErrorCode::kUnknownField, "'top_k'"));
}

TEST_F(DecoderTest, WrongTypesAreInvalidArgumentNamingTheField) {
  http::SearchHttpRequest s;
  EXPECT_TRUE(Fails(Decode(R"({"query_embedding": [1], "k": "ten"})",
                           [&](JsonBody& b) { return http::DecodeSearch(b, 0, &s); }),
                    ErrorCode::kInvalidArgument, "'k'"));
  EXPECT_TRUE(Fails(Decode(R"({"query_embedding": [1], "k": 2.5})",
                           [&](JsonBody& b) { return http::DecodeSearch(b, 0, &s); }),
                    ErrorCode::kInvalidArgument, "'k'"));
  EXPECT_TRUE(Fails(Decode(R"({"query_embedding": [1, "x"]})",
                           [&](JsonBody& b) { return http::DecodeSearch(b, 0, &s); }),
                    ErrorCode::kInvalidArgument, "query_embedding[1]"));
  EXPECT_TRUE(Fails(Decode(R"({"query_embedding": {"a": 1}})",
                           [&](JsonBody& b) { return http::DecodeSearch(b, 0, &s); }),
                    ErrorCode::kInvalidArgument, "'query_embedding'"));
  EXPECT_TRUE(Fails(Decode(R"({"query_embedding": [1], "include_embeddings": 1})",
                           [&](JsonBody& b) { return http::DecodeSearch(b, 0, &s); }),
                    ErrorCode::kInvalidArgument, "'include_embeddings'"));
  http::InsertRequest r;
  EXPECT_TRUE(Fails(Decode(R"({"doc_id": 1, "embedding": [1], "metadata": {"a": 1}})",
                           [&](JsonBody& b) { return http::DecodeInsert(b, 0, &r); }),
                    ErrorCode::kInvalidArgument, "metadata.a"));
  EXPECT_TRUE(Fails(Decode(R"([1, 2])", [&](JsonBody& b) { return http::DecodeInsert(b, 0, &r); }),
                    ErrorCode::kInvalidArgument, "JSON object"));
}

TEST_F(DecoderTest, DocIdMustBeAPositiveIntegerOrAString) {
  for (const char* bad : {"-1", "1.5", "1e3", "99999999999999999999", "true", "null", "[1]"}) {
    http::DeleteRequest d;
    EXPECT_TRUE(Fails(Decode(std::string(R"({"doc_id": )") + bad + "}",
                             [&](JsonBody& b) { return http::DecodeDelete(b, &d); }),
                      ErrorCode::kInvalidDocId, "doc_id"))
        << bad;
  }
  http::DeleteRequest d;
  EXPECT_TRUE(Fails(Decode(R"({"doc_id": ""})", [&](JsonBody& b) { return http::DecodeDelete(b, &d); }),
                    ErrorCode::kInvalidDocId));
  EXPECT_TRUE(Fails(Decode(R"({})", [&](JsonBody& b) { return http::DecodeDelete(b, &d); }),
                    ErrorCode::kMissingField, "'doc_id'"));
}

TEST_F(DecoderTest, MalformedJsonIsInvalidJson) {
  http::SearchHttpRequest s;
  for (const char* bad : {R"({"query_embedding": [1,)", R"({"query_embedding": [1]} x)",
                          R"({"query_embedding" [1]})", R"({"k": tru, "query_embedding": [1]})",
                          "", "   ", R"({"query_embedding": [1.e5]})"}) {
    SCOPED_TRACE(bad);
    EXPECT_TRUE(Fails(Decode(bad, [&](JsonBody& b) { return http::DecodeSearch(b, 0, &s); }),
                      ErrorCode::kInvalidJson));
  }
  EXPECT_TRUE(Fails(Decode(R"({"query_embedding": [1]}  {})",
                           [&](JsonBody& b) { return http::DecodeSearch(b, 0, &s); }),
                    ErrorCode::kInvalidJson, "byte 26"));
}

TEST_F(DecoderTest, EmbeddingValuesOutsideTheFloatRangeAreNonFinite) {
  for (const char* bad : {"1e39", "-3.5e38", "1e999", "NaN", "Infinity", "-Infinity"}) {
    SCOPED_TRACE(bad);
    http::InsertRequest r;
    EXPECT_TRUE(Fails(Decode(std::string(R"({"doc_id": 1, "embedding": [0, )") + bad + "]}",
                             [&](JsonBody& b) { return http::DecodeInsert(b, 0, &r); }),
                      ErrorCode::kNonFiniteValue, "embedding[1]"));
  }
}

TEST_F(DecoderTest, SearchDefaultsAndRanges) {
  http::SearchHttpRequest s;
  ASSERT_FALSE(Decode(R"({"query_embedding": [1, 2]})",
                      [&](JsonBody& b) { return http::DecodeSearch(b, 0, &s); }));
  EXPECT_EQ(s.request.k, 10u);
  EXPECT_EQ(s.request.ef, 0u);
  EXPECT_FALSE(s.request.has_min_score);
  EXPECT_FALSE(s.request.include_embeddings);
  EXPECT_FALSE(s.has_filter);

  http::SearchHttpRequest t;
  ASSERT_FALSE(Decode(R"({"query_embedding": [1], "k": 1000, "ef_search": 64, "min_score": -0.25,
                          "include_embeddings": true, "filter": null, "collection": "x"})",
                      [&](JsonBody& b) { return http::DecodeSearch(b, 0, &t); }));
  EXPECT_EQ(t.request.k, 1000u);
  EXPECT_EQ(t.request.ef, 64u);
  EXPECT_TRUE(t.request.has_min_score);
  EXPECT_EQ(t.request.min_score, -0.25f);
  EXPECT_TRUE(t.request.include_embeddings);
  EXPECT_EQ(t.collection, "x");

  http::SearchHttpRequest u;
  EXPECT_TRUE(Fails(Decode(R"({"query_embedding": [1], "k": 0})",
                           [&](JsonBody& b) { return http::DecodeSearch(b, 0, &u); }),
                    ErrorCode::kInvalidK));
  EXPECT_TRUE(Fails(Decode(R"({"query_embedding": [1], "k": -5})",
                           [&](JsonBody& b) { return http::DecodeSearch(b, 0, &u); }),
                    ErrorCode::kInvalidK));
  EXPECT_TRUE(Fails(Decode(R"({"query_embedding": [1], "ef_search": -1})",
                           [&](JsonBody& b) { return http::DecodeSearch(b, 0, &u); }),
                    ErrorCode::kInvalidEfSearch));
  EXPECT_TRUE(Fails(Decode(R"({"k": 3})", [&](JsonBody& b) { return http::DecodeSearch(b, 0, &u); }),
                    ErrorCode::kMissingField, "'query_embedding'"));
}

TEST_F(DecoderTest, FiltersDecodeEveryForm) {
  using Kind = MetadataFilter::Kind;
  http::SearchHttpRequest s;
  ASSERT_FALSE(Decode(R"({"query_embedding": [1], "filter": {"and": [
        {"exact": {"key": "lang", "value": "en"}},
        {"range": {"key": "year", "gte": "2000", "lt": "2010"}},
        {"or": [{"in": {"key": "tag", "values": ["a", "b"]}},
                {"not": {"range": {"key": "z", "gt": "m"}}}]}]}})",
                      [&](JsonBody& b) { return http::DecodeSearch(b, 0, &s); }));
  ASSERT_TRUE(s.has_filter);
  const MetadataFilter& f = s.filter;
  ASSERT_EQ(f.kind, Kind::kAnd);
  ASSERT_EQ(f.children.size(), 3u);
  EXPECT_EQ(f.children[0].kind, Kind::kExact);
  EXPECT_EQ(f.children[0].key, "lang");
  EXPECT_EQ(f.children[0].value, "en");
  // Two bounds become an AND of two ranges.
  ASSERT_EQ(f.children[1].kind, Kind::kAnd);
  ASSERT_EQ(f.children[1].children.size(), 2u);
  EXPECT_EQ(f.children[1].children[0].op, MetadataFilter::RangeOp::kGte);
  EXPECT_EQ(f.children[1].children[1].op, MetadataFilter::RangeOp::kLt);
  EXPECT_EQ(f.children[1].children[1].key, "year");
  EXPECT_EQ(f.children[1].children[1].value, "2010");
  const MetadataFilter& o = f.children[2];
  ASSERT_EQ(o.kind, Kind::kOr);
  EXPECT_EQ(o.children[0].kind, Kind::kIn);
  EXPECT_EQ(o.children[0].values, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(o.children[1].kind, Kind::kNot);
  EXPECT_EQ(o.children[1].children[0].kind, Kind::kRange);
  EXPECT_EQ(o.children[1].children[0].op, MetadataFilter::RangeOp::kGt);

  // The decoded filter evaluates as written.
  EXPECT_TRUE(Matches(f, {{"lang", "en"}, {"year", "2005"}, {"tag", "b"}}));
  EXPECT_FALSE(Matches(f, {{"lang", "en"}, {"year", "2010"}, {"tag", "b"}}));
  EXPECT_TRUE(Matches(f, {{"lang", "en"}, {"year", "2001"}, {"tag", "c"}, {"z", "a"}}));
  EXPECT_FALSE(Matches(f, {{"lang", "en"}, {"year", "2001"}, {"tag", "c"}, {"z", "q"}}));
}

TEST_F(DecoderTest, BadFiltersNameTheProblem) {
  struct Case {
    const char* filter;
    ErrorCode code;
    const char* mentions;
  };
  const Case cases[] = {
      {R"({"like": {"key": "a"}})", ErrorCode::kUnknownField, "'like'"},
      {R"({"exact": {"key": "a", "value": "b", "x": 1}})", ErrorCode::kUnknownField, "'x'"},
      {R"({"exact": {"key": "a"}})", ErrorCode::kMissingField, "'value'"},
      {R"({"exact": {"value": "a"}})", ErrorCode::kMissingField, "'key'"},
      {R"({"exact": {"key": "a", "value": 3}})", ErrorCode::kInvalidArgument, "filter.exact.value"},
      {R"({"in": {"key": "a", "values": "b"}})", ErrorCode::kInvalidArgument, "filter.in.values"},
      {R"({"and": {}})", ErrorCode::kInvalidArgument, "filter.and"},
      {R"({})", ErrorCode::kInvalidArgument, "one operator"},
      {R"({"not": {"exact": {"key": "a", "value": "b"}}, "and": []})", ErrorCode::kInvalidArgument,
       "exactly one"},
      {R"([1])", ErrorCode::kInvalidArgument, "'filter'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.filter);
    http::SearchHttpRequest s;
    EXPECT_TRUE(Fails(Decode(std::string(R"({"query_embedding": [1], "filter": )") + c.filter + "}",
                             [&](JsonBody& b) { return http::DecodeSearch(b, 0, &s); }),
                      c.code, c.mentions));
  }
  // Nesting is bounded.
  std::string deep;
  for (int i = 0; i < http::kMaxFilterDepth + 1; ++i) deep += R"({"not":)";
  deep += R"({"exact":{"key":"a","value":"b"}})";
  deep += std::string(http::kMaxFilterDepth + 1, '}');
  http::SearchHttpRequest s;
  EXPECT_TRUE(Fails(Decode(R"({"query_embedding": [1], "filter": )" + deep + "}",
                           [&](JsonBody& b) { return http::DecodeSearch(b, 0, &s); }),
                    ErrorCode::kInvalidArgument, "deeper"));
}

TEST_F(DecoderTest, BulkInsertKeepsGoodDocumentsAndReportsBadOnesByIndex) {
  http::BulkInsertRequest r;
  ASSERT_FALSE(Decode(R"({"documents": [
        {"doc_id": 1, "embedding": [1, 2]},
        {"doc_id": "s", "embedding": [1, "x"], "metadata": {"a": "b"}},
        {"embedding": [1, 2]},
        7,
        {"doc_id": "two", "embedding": [3, 4], "metadata": {"k": "v"}}], "collection": "c"})",
                      [&](JsonBody& b) { return http::DecodeBulkInsert(b, 0, &r); }));
  EXPECT_EQ(r.total, 5u);
  EXPECT_EQ(r.collection, "c");
  ASSERT_EQ(r.docs.size(), 2u);
  EXPECT_EQ(r.index, (std::vector<size_t>{0, 4}));
  EXPECT_EQ(r.docs[1].key.external, "two");
  EXPECT_EQ(r.docs[1].embedding, (std::vector<float>{3, 4}));
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(r.errors[0].first, 1u);
  EXPECT_EQ(r.errors[0].second.code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error_keys[0].external, "s");
  EXPECT_EQ(r.errors[1].first, 2u);
  EXPECT_EQ(r.errors[1].second.code, ErrorCode::kMissingField);
  EXPECT_EQ(r.errors[2].first, 3u);

  http::BulkInsertRequest bad;
  EXPECT_TRUE(Fails(Decode(R"({"documents": [{"doc_id": 1, "embedding": [1, 2}]})",
                           [&](JsonBody& b) { return http::DecodeBulkInsert(b, 0, &bad); }),
                    ErrorCode::kInvalidJson));
}

TEST_F(DecoderTest, CreateCollectionOptions) {
  CollectionOptions o;
  ASSERT_FALSE(Decode(R"({"dimension": 8, "metric": "l2", "m": 8, "ef_construction": 64,
                          "ef_search": 32})",
                      [&](JsonBody& b) { return http::DecodeCreateCollection(b, &o); }));
  EXPECT_EQ(o.dimension, 8u);
  EXPECT_EQ(o.metric, Metric::kL2);
  EXPECT_EQ(o.m, 8u);
  EXPECT_EQ(o.ef_construction, 64u);
  EXPECT_EQ(o.ef_search, 32u);
  CollectionOptions p;
  EXPECT_TRUE(Fails(Decode(R"({"dimension": 8, "metric": "hamming"})",
                           [&](JsonBody& b) { return http::DecodeCreateCollection(b, &p); }),
                    ErrorCode::kInvalidCollection, "hamming"));
  EXPECT_TRUE(Fails(Decode(R"({"metric": "l2"})",
                           [&](JsonBody& b) { return http::DecodeCreateCollection(b, &p); }),
                    ErrorCode::kMissingField, "'dimension'"));
}

TEST(UrlTest, PercentDecodingAndQueryParameters) {
  std::string out;
  ASSERT_TRUE(http::PercentDecode("doc%20a%2Fb+c", &out));
  EXPECT_EQ(out, "doc a/b+c");
  EXPECT_FALSE(http::PercentDecode("bad%2", &out));
  EXPECT_FALSE(http::PercentDecode("bad%zz", &out));
  std::vector<std::pair<std::string, std::string>> params;
  auto st = http::ForEachQueryParam("a=1&&b=x%3Dy&c", [&](std::string_view n, std::string_view v) {
    params.emplace_back(std::string(n), std::string(v));
    return ApiStatus{};
  });
  EXPECT_FALSE(st);
  EXPECT_EQ(params, (std::vector<std::pair<std::string, std::string>>{
                        {"a", "1"}, {"b", "x=y"}, {"c", ""}}));
  EXPECT_TRUE(http::ForEachQueryParam("a=%g", [](std::string_view, std::string_view) {
    return ApiStatus{};
  }).has_value());
}

}  // namespace
}  // namespace kyrodb::server
