// HTTP/JSON server: the JSON writer and request decoders directly, then every endpoint over real
// loopback sockets (Service and HttpServer in this process, a synchronous Beast client).
#include <utility>  // before Boost (BUILD-NOTES)

// GCC 12 + ASan: a false maybe-uninitialized inside Beast 1.74's basic_parser (see
// http_server.cc).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <fast_float/fast_float.h>
#include <fmt/format.h>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "server/common/insert_batcher.h"
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
  for (const char* other : {"[1, 2]", "42", "\"text\"", "null"}) {
    EXPECT_TRUE(Fails(Decode(other, [&](JsonBody& b) { return http::DecodeInsert(b, 0, &r); }),
                      ErrorCode::kInvalidArgument, "JSON object"))
        << other;
  }
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
                          "", "   ", R"({"query_embedding": [1.e5]})", "not json", "nul",
                          "{\"query_embedding\": [1], \"collection\": \"a\x01b\"}"}) {
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

TEST_F(DecoderTest, EmbeddingsParseExactlyWhateverTheSpacingAndNameTheBadElement) {
  // Random floats in their shortest form come back bit for bit, with any JSON spacing.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> value(-2, 2);
  std::vector<float> want;
  std::string text;
  for (int i = 0; i < 300; ++i) {
    want.push_back(i % 50 == 0 ? std::ldexp(value(rng), -130) : value(rng));  // some subnormals
    text += (i == 0 ? "" : i % 3 == 0 ? " ,\n\t" : ",") + fmt::format("{}", want.back());
  }
  for (const std::string& array : {"[" + text + "]", "[ \r\n" + text + "\t ]"}) {
    http::InsertRequest r;
    ASSERT_FALSE(Decode(R"({"doc_id": 1, "embedding": )" + array + R"( , "metadata": {}})",
                        [&](JsonBody& b) { return http::DecodeInsert(b, 0, &r); }));
    ASSERT_EQ(r.doc.embedding.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(r.doc.embedding[i], want[i]) << i;
  }
  http::InsertRequest edge;
  ASSERT_FALSE(Decode(R"({"doc_id": 1, "embedding": [-0, 1e-50, 3.4028234e38, -1E+2, 0.5e1]})",
                      [&](JsonBody& b) { return http::DecodeInsert(b, 0, &edge); }));
  EXPECT_EQ(edge.doc.embedding, (std::vector<float>{-0.0f, 0.0f, 3.4028234e38f, -100.0f, 5.0f}));
  EXPECT_TRUE(std::signbit(edge.doc.embedding[0]));
  http::SearchHttpRequest empty;
  ASSERT_FALSE(Decode(R"({"query_embedding": [ ]})", [&](JsonBody& b) { return http::DecodeSearch(b, 0, &empty); }));
  EXPECT_TRUE(empty.request.query.empty());

  // Anything but a number is refused, naming the element.
  for (const char* bad : {R"("1")", "[1]", "{}", "true", "null"}) {
    SCOPED_TRACE(bad);
    http::InsertRequest r;
    EXPECT_TRUE(Fails(Decode(std::string(R"({"doc_id": 1, "embedding": [0.5, 1, )") + bad + ", 2]}",
                             [&](JsonBody& b) { return http::DecodeInsert(b, 0, &r); }),
                      ErrorCode::kInvalidArgument, "embedding[2]"));
  }
  for (const char* bad : {"01", "1.", ".5", "+1", "1e", "--1", "0x10"}) {
    SCOPED_TRACE(bad);
    http::InsertRequest r;
    EXPECT_TRUE(Fails(Decode(std::string(R"({"doc_id": 1, "embedding": [0.5, )") + bad + "]}",
                             [&](JsonBody& b) { return http::DecodeInsert(b, 0, &r); }),
                      ErrorCode::kInvalidJson));
  }
}

TEST_F(DecoderTest, ABadElementAnywhereInALongEmbeddingIsRefusedNamingIt) {
  // Long arrays are read 64 bytes at a time; a bad element must be refused wherever it sits in
  // a block (first, inside, last, across two blocks) just as in a short array.
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> value(-1, 1);
  std::vector<std::string> good;
  for (int i = 0; i < 200; ++i) good.push_back(fmt::format("{}", value(rng)));
  const std::pair<const char*, ErrorCode> cases[] = {
      {"01", ErrorCode::kInvalidJson},  {"1.", ErrorCode::kInvalidJson},    {".5", ErrorCode::kInvalidJson},
      {"+1", ErrorCode::kInvalidJson},  {"1e", ErrorCode::kInvalidJson},    {"--1", ErrorCode::kInvalidJson},
      {"0x10", ErrorCode::kInvalidJson}, {"1.2.3", ErrorCode::kInvalidJson}, {"-", ErrorCode::kInvalidJson},
      {"", ErrorCode::kInvalidJson},    {"1 2", ErrorCode::kInvalidJson},   {"0.1-2", ErrorCode::kInvalidJson},
      {"1e39", ErrorCode::kNonFiniteValue}, {"-0.5e99", ErrorCode::kNonFiniteValue},
      {R"("1")", ErrorCode::kInvalidArgument}, {"null", ErrorCode::kInvalidArgument},
      {"[1]", ErrorCode::kInvalidArgument}};
  for (size_t at : {size_t{0}, size_t{5}, size_t{6}, size_t{100}, size_t{191}, size_t{199}}) {
    for (const auto& [bad, code] : cases) {
      SCOPED_TRACE(std::string(bad) + " at " + std::to_string(at));
      std::string text = R"({"doc_id": 1, "embedding": [)";
      for (size_t i = 0; i < good.size(); ++i) {
        text.append(i == 0 ? "" : ",");
        text.append(i == at ? std::string(bad) : good[i]);
      }
      text += "]}";
      http::InsertRequest r;
      const auto error = Decode(text, [&](JsonBody& b) { return http::DecodeInsert(b, 0, &r); });
      if (code == ErrorCode::kInvalidJson) {
        EXPECT_TRUE(Fails(error, code));
      } else {
        EXPECT_TRUE(Fails(error, code, "embedding[" + std::to_string(at) + "]"));
      }
    }
  }
}

TEST_F(DecoderTest, EmbeddingNumbersRoundToTheNearestFloatLikeFastFloat) {
  // The decoder's own fast path (Clinger's, via double) against fast_float's correctly rounded
  // decimal-to-float conversion, over numbers of every shape: shortest float forms, 17-digit
  // doubles, decimals next to the midpoint between two floats, long random digit strings,
  // fractions with leading zeros.
  std::mt19937_64 rng(11);
  for (int body = 0; body < 40; ++body) {
    std::vector<std::string> numbers;
    while (numbers.size() < 1000) {
      std::string t;
      switch (rng() % 6) {
        case 0: {
          const uint32_t bits = static_cast<uint32_t>(rng());
          float f;
          std::memcpy(&f, &bits, sizeof(f));
          if (!std::isfinite(f)) continue;
          t = fmt::format("{}", f);
          break;
        }
        case 1: {
          const double mantissa = static_cast<double>(rng() >> 11);
          const double d = std::ldexp(mantissa, static_cast<int>(rng() % 200) - 150);
          t = fmt::format("{:.17g}", (rng() % 2) ? -d : d);
          break;
        }
        case 2: {
          const double numerator = static_cast<double>(rng() % 2000000);
          const float f = static_cast<float>(numerator / static_cast<double>(1 + rng() % 1000));
          const float next = std::nextafter(f, std::numeric_limits<float>::infinity());
          const double midpoint = (static_cast<double>(f) + static_cast<double>(next)) / 2;
          t = fmt::format("{:.{}g}", midpoint, 6 + static_cast<int>(rng() % 14));
          break;
        }
        case 3: {  // a fraction with leading zeros, then up to 24 digits (8-digit steps, truncation)
          t = (rng() % 2) ? "-0." : "0.";
          t += std::string(rng() % 13, '0');
          const size_t digits = 1 + rng() % 24;
          for (size_t i = 0; i < digits; ++i) t += static_cast<char>('0' + rng() % 10);
          break;
        }
        case 4: {  // fixed point: 1 to 8 integer digits, 0 to 17 decimals (15 digits in all and more)
          const double magnitude = std::pow(10.0, static_cast<double>(rng() % 8));
          const double v = magnitude * static_cast<double>(rng() >> 11) / static_cast<double>(uint64_t{1} << 53);
          const bool negative = rng() % 2;
          t = fmt::format("{:.{}f}", negative ? -v : v, static_cast<int>(rng() % 18));
          break;
        }
        default: {
          t = (rng() % 2) ? "-" : "";
          t += static_cast<char>('1' + rng() % 9);
          const size_t digits = rng() % 25;
          for (size_t i = 0; i < digits; ++i) t += static_cast<char>('0' + rng() % 10);
          if (rng() % 2) t += "." + std::to_string(rng() % 100000);
          if (rng() % 3 == 0) t += fmt::format("e{}", static_cast<int>(rng() % 80) - 40);
        }
      }
      float reference;
      const auto r = fast_float::from_chars(t.data(), t.data() + t.size(), reference);
      if (r.ec != std::errc() || r.ptr != t.data() + t.size() || !std::isfinite(reference)) continue;
      numbers.push_back(t);
    }
    // Bare commas, and Python's json.dumps spacing (", ").
    std::string text = R"({"doc_id": 1, "embedding": [)";
    for (size_t i = 0; i < numbers.size(); ++i) {
      text.append(i == 0 ? "" : body % 2 ? ", " : ",");
      text.append(numbers[i]);
    }
    text += "]}";
    http::InsertRequest r;
    ASSERT_FALSE(Decode(text, [&](JsonBody& b) { return http::DecodeInsert(b, 0, &r); }));
    ASSERT_EQ(r.doc.embedding.size(), numbers.size());
    for (size_t i = 0; i < numbers.size(); ++i) {
      float want;
      fast_float::from_chars(numbers[i].data(), numbers[i].data() + numbers[i].size(), want);
      uint32_t got_bits, want_bits;
      std::memcpy(&got_bits, &r.doc.embedding[i], sizeof(got_bits));
      std::memcpy(&want_bits, &want, sizeof(want_bits));
      ASSERT_EQ(got_bits, want_bits) << numbers[i] << " (element " << i << ")";
    }
  }
}

// TryDecodeSearchFast must decode exactly as DecodeSearch does whenever it says yes, and say
// yes for the plain bodies clients send. Random bodies from valid and invalid pieces (key
// order, whitespace, repeats, escapes, out-of-range values, filters, trailing garbage).
TEST_F(DecoderTest, FastSearchDecoderAgreesWithDecodeSearch) {
  const auto same = [](const http::SearchHttpRequest& a, const http::SearchHttpRequest& b) {
    return a.request.query.size() == b.request.query.size() &&
           std::memcmp(a.request.query.data(), b.request.query.data(), a.request.query.size() * sizeof(float)) == 0 &&
           a.request.k == b.request.k && a.request.ef == b.request.ef &&
           a.request.has_min_score == b.request.has_min_score &&
           std::memcmp(&a.request.min_score, &b.request.min_score, sizeof(float)) == 0 &&
           a.request.include_embeddings == b.request.include_embeddings &&
           a.request.include_metadata == b.request.include_metadata && a.collection == b.collection &&
           a.has_filter == b.has_filter;
  };
  // The canonical shape takes the fast path and gets DecodeSearch's answer.
  const std::string canonical =
      R"({"query_embedding": [0.25, -1e-3, 3], "k": 5, "ef_search": 64, "min_score": 0.1, )"
      R"("include_embeddings": true, "include_metadata": false, "collection": "docs", "filter": null})";
  http::SearchHttpRequest fast, full;
  ASSERT_TRUE(http::TryDecodeSearchFast(canonical, 0, &fast));
  ASSERT_FALSE(Decode(canonical, [&](JsonBody& b) { return http::DecodeSearch(b, 0, &full); }));
  EXPECT_TRUE(same(fast, full));
  EXPECT_EQ(fast.collection, "docs");
  // DecodeSearch decides these.
  for (const char* body : {R"({"query_embedding": [1], "filter": {"exact": {"key": "a", "value": "b"}}})",
                           R"({"query_embedding": [1], "collection": "a\"b"})", R"({"query_embedding": [1], "k": 0})",
                           R"({"query_embedding": [1], "nope": 1})", R"({"query_embedding": [1]} x)",
                           R"({"query_embedding": [1e999]})", R"({"k": 3})", "", "[]"}) {
    http::SearchHttpRequest r;
    EXPECT_FALSE(http::TryDecodeSearchFast(body, 0, &r)) << body;
  }

  const std::vector<std::vector<std::string>> values = {
      /* k */ {"10", "1", "0", "-1", "1.5", "1e1", "4294967295", "4294967296", "\"10\"", "null", "010"},
      /* ef_search */ {"0", "64", "-1", "10001", "4294967296", "6.4"},
      /* min_score */ {"null", "0.5", "-1", "1e-3", "1e400", "\"x\"", "0", "0.30000000000000004", "-0"},
      /* include_embeddings */ {"true", "false", "null", "1", "\"true\"", "tru"},
      /* include_metadata */ {"true", "false", "null"},
      /* collection */ {"\"default\"", "\"a\\\"b\"", "\"caf\\u00e9\"", "\"\xc3\xa9\"", "1", "null", "\"\""},
      /* filter */ {"null", R"({"exact": {"key": "a", "value": "b"}})", "[]"},
      /* unknown */ {"1"}};
  const char* keys[] = {"k", "ef_search", "min_score", "include_embeddings", "include_metadata", "collection",
                        "filter", "nope"};
  std::mt19937_64 rng(5);
  auto space = [&] {
    std::string w;
    if (rng() % 3 == 0) w.append(" \n\t").append(rng() % 2, ' ');
    return w;
  };
  // Kinds 0-4 are valid numbers; 5-7 sometimes not (long arrays take only valid ones, so that
  // the block reader sees whole arrays and many bodies still take the fast path).
  auto number = [&](bool valid) -> std::string {
    switch (rng() % (valid ? 5 : 8)) {
      case 0: return std::to_string(static_cast<int>(rng() % 2000) - 1000);
      case 1: return fmt::format("{}", static_cast<float>(static_cast<double>(rng() % 100000) / 7e4 - 0.7));
      case 2: return fmt::format("{:.17g}", static_cast<double>(rng() % 100000) / 3e5);
      case 3: {
        const uint64_t digits = rng() % 100;
        return fmt::format("{}e{}", digits, static_cast<int>(rng() % 20) - 10);
      }
      case 4: return std::string("-0.000").append(std::to_string(rng() % 100000000));
      case 5: return rng() % 4 == 0 ? "1e999" : "0.5";
      case 6: return rng() % 4 == 0 ? "\"x\"" : "-2.5E+3";
      default: return rng() % 4 == 0 ? "01" : "7";
    }
  };
  size_t fast_count = 0, read_ahead_count = 0, bodies = 4000;
  for (size_t i = 0; i < bodies; ++i) {
    std::vector<std::string> fields;
    // Mostly one embedding, sometimes none or two (the last one counts); some long enough for
    // the 64-byte block reader.
    const size_t embeddings = rng() % 10 == 0 ? 0 : rng() % 6 == 0 ? 2 : 1;
    for (size_t e = 0; e < embeddings; ++e) {
      std::string q;
      q.append("\"query_embedding\"").append(space()).append(":").append(space()).append("[").append(space());
      const size_t longest = rng() % 4 == 0 ? 40 : 8;  // one rng() call per statement: the
      const size_t n = 1 + rng() % longest;            // order must not depend on the compiler
      for (size_t j = 0; j < n; ++j) {
        if (j > 0) q.append(",").append(space());
        q.append(number(longest > 8)).append(space());
      }
      fields.push_back(q.append("]"));
    }
    const size_t extra = rng() % 6;
    for (size_t j = 0; j < extra; ++j) {
      const size_t which = rng() % std::size(keys);
      // Mostly valid values, so that many bodies take the fast path.
      const auto& vs = values[which];
      const std::string v = vs[rng() % 3 == 0 ? rng() % vs.size() : 0];
      std::string f;
      f.append("\"").append(keys[which]).append("\"").append(space()).append(":").append(space()).append(v);
      fields.push_back(f);
    }
    std::shuffle(fields.begin(), fields.end(), rng);
    std::string text = space();
    text.append("{").append(space());
    for (size_t j = 0; j < fields.size(); ++j) {
      if (j > 0) text.append(",").append(space());
      text.append(fields[j]).append(space());
    }
    text.append("}").append(space());
    if (rng() % 20 == 0) text += "x";
    if (rng() % 20 == 0) text.resize(rng() % (text.size() + 1));

    http::SearchHttpRequest f, g;
    size_t read_ahead_at;
    const bool took_fast = http::TryDecodeSearchFast(text, 0, &f, &read_ahead_at);
    const ApiStatus st = Decode(text, [&](JsonBody& b) { return http::DecodeSearch(b, 0, &g); });
    // The handler's path (DecodeSearchBody: DecodeSearch taking the embedding the first pass
    // read) answers exactly as DecodeSearch alone.
    {
      JsonBody json;
      std::string copy = text;
      http::SearchHttpRequest h;
      const ApiStatus via_body = http::DecodeSearchBody(json, &copy, 0, &h);
      ASSERT_EQ(via_body.has_value(), st.has_value()) << text;
      if (st) {
        ASSERT_EQ(via_body->code, st->code) << text;
        ASSERT_EQ(via_body->message, st->message) << text;
      } else {
        ASSERT_TRUE(same(h, g)) << text;
      }
      if (!took_fast && read_ahead_at != std::string::npos && !st) ++read_ahead_count;
    }
    if (!took_fast) continue;
    ++fast_count;
    ASSERT_FALSE(st) << text << ": fast path accepted what DecodeSearch refuses: " << st->message;
    ASSERT_TRUE(same(f, g)) << text;
  }
  EXPECT_GT(fast_count, bodies / 5);
  EXPECT_LT(fast_count, bodies);
  EXPECT_GT(read_ahead_count, 10u);  // bodies DecodeSearch read with the embedding given (42 with this seed)
}

TEST_F(DecoderTest, DecodeSearchTakesTheEmbeddingReadAheadOnlyForItsArray) {
  // Given values that differ from the body's, to see which array they stand for.
  const std::string text = R"({"query_embedding": [1, 2], "filter": {"exact": {"key": "a", "value": "b"}}})";
  const size_t at = text.find('[');
  for (const size_t offset : {at, at + 1, std::string::npos}) {
    SCOPED_TRACE(offset);
    http::EmbeddingReadAhead ahead{offset, {7, 8, 9}};
    http::SearchHttpRequest r;
    ASSERT_FALSE(Decode(text, [&](JsonBody& b) { return http::DecodeSearch(b, 0, &r, &ahead); }));
    EXPECT_EQ(r.request.query, offset == at ? std::vector<float>({7, 8, 9}) : std::vector<float>({1, 2}));
    EXPECT_TRUE(r.has_filter);
  }
  // Through the handler's path: a long embedding before a filter, and repeated keys (the last
  // one counts, whichever the first pass read).
  std::string long_array = "[";
  std::vector<float> want;
  for (int i = 0; i < 300; ++i) {
    want.push_back(static_cast<float>(i) / 7.0f - 20.0f);
    long_array.append(i ? ", " : "").append(fmt::format("{}", want.back()));
  }
  long_array += "]";
  const std::string filter = R"("filter": {"exact": {"key": "a", "value": "b"}})";
  const std::pair<std::string, std::vector<float>> cases[] = {
      {R"({"query_embedding": )" + long_array + ", " + filter + R"(, "k": 3})", want},
      {R"({"query_embedding": [1, 2], )" + filter + R"(, "query_embedding": )" + long_array + "}", want},
      {R"({"query_embedding": )" + long_array + ", " + filter + R"(, "query_embedding": [5]})", {5}},
      {"{" + filter + R"(, "query_embedding": )" + long_array + "}", want}};
  for (const auto& [body, expected] : cases) {
    SCOPED_TRACE(body.substr(0, 60));
    JsonBody json;
    std::string copy = body;
    http::SearchHttpRequest r;
    ASSERT_FALSE(http::DecodeSearchBody(json, &copy, 0, &r));
    EXPECT_EQ(r.request.query, expected);
    EXPECT_TRUE(r.has_filter);
  }
  // A bad element after the read-ahead array is still DecodeSearch's error.
  JsonBody json;
  std::string bad = R"({"query_embedding": )" + long_array + ", " + filter + R"(, "k": 0})";
  http::SearchHttpRequest r;
  EXPECT_TRUE(Fails(http::DecodeSearchBody(json, &bad, 0, &r), ErrorCode::kInvalidK));
}

// A literal that starts like null is not null (found by the fuzz target: On-Demand's type()
// looks at the first byte only).
TEST_F(DecoderTest, SearchRefusesMalformedNullLiterals) {
  for (const char* body : {R"({"query_embedding": [1], "min_score": n/ull})", R"({"query_embedding": [1], "min_score": nul})",
                           R"({"query_embedding": [1], "filter": nxyz})", R"({"filter": nulll, "query_embedding": [1]})"}) {
    http::SearchHttpRequest r;
    EXPECT_TRUE(Fails(Decode(body, [&](JsonBody& b) { return http::DecodeSearch(b, 0, &r); }), ErrorCode::kInvalidJson))
        << body;
    EXPECT_FALSE(http::TryDecodeSearchFast(body, 0, &r)) << body;
  }
  for (const char* body : {R"({"query_embedding": [1], "min_score": null})", R"({"query_embedding": [1], "filter": null})"}) {
    http::SearchHttpRequest r;
    EXPECT_FALSE(Decode(body, [&](JsonBody& b) { return http::DecodeSearch(b, 0, &r); })) << body;
    EXPECT_FALSE(r.request.has_min_score);
    EXPECT_FALSE(r.has_filter);
  }
}

TEST_F(DecoderTest, LongNumbersReadExactlyOnEveryPath) {
  // simdjson 3.0.1 reads this number as 4.45e-16: min_score on the simdjson path, and the
  // element-wise embedding path (the one that names a bad element), must not take its value.
  const std::string longest = "-0.0000000000685245655226206572380497";
  double want = 0;
  fast_float::from_chars(longest.data(), longest.data() + longest.size(), want);
  ASSERT_LT(std::fabs(want + 6.85245655e-11), 1e-18);
  for (const std::string& extra : {std::string(), std::string(R"(, "filter": {"exact": {"key": "a", "value": "b"}})")}) {
    SCOPED_TRACE(extra.empty() ? "plain body" : "with a filter (DecodeSearch)");
    const std::string body = R"({"query_embedding": [1, 2], "min_score": )" + longest + extra + "}";
    http::SearchHttpRequest full;
    ASSERT_FALSE(Decode(body, [&](JsonBody& b) { return http::DecodeSearch(b, 0, &full); }));
    EXPECT_TRUE(full.request.has_min_score);
    EXPECT_EQ(full.request.min_score, static_cast<float>(want));
    if (extra.empty()) {
      http::SearchHttpRequest fast;
      ASSERT_TRUE(http::TryDecodeSearchFast(body, 0, &fast));
      EXPECT_EQ(fast.request.min_score, full.request.min_score);
    }
  }
  // An array with a bad element goes element by element through simdjson: it names the element
  // after the long number; the array reader reads the long number itself right.
  float want_float = 0;
  fast_float::from_chars(longest.data(), longest.data() + longest.size(), want_float);
  http::InsertRequest r;
  EXPECT_TRUE(Fails(Decode(R"({"doc_id": 1, "embedding": [)" + longest + R"(, "x"]})",
                           [&](JsonBody& b) { return http::DecodeInsert(b, 0, &r); }),
                    ErrorCode::kInvalidArgument, "embedding[1]"));
  ASSERT_FALSE(Decode(R"({"doc_id": 1, "embedding": [)" + longest + "]}",
                      [&](JsonBody& b) { return http::DecodeInsert(b, 0, &r); }));
  EXPECT_EQ(r.doc.embedding, std::vector<float>{want_float});
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

// Found by the fuzz target: On-Demand skips the rest of a document that failed to decode
// without validating it, so malformed JSON there must still fail the whole request.
TEST_F(DecoderTest, BulkInsertRefusesMalformedJsonInABadDocumentsUnreadTail) {
  http::BulkInsertRequest r;
  EXPECT_TRUE(Fails(Decode(R"({"documents": [{"doc_id": 7, "embedding": [1, "x",]3},
                                             {"doc_id": 8, "embedding": [0, 1]}]})",
                           [&](JsonBody& b) { return http::DecodeBulkInsert(b, 0, &r); }),
                    ErrorCode::kInvalidJson));
  // A well-formed but huge number stays the bad document's own error.
  http::BulkInsertRequest big;
  ASSERT_FALSE(Decode(R"({"documents": [{"doc_id": 7, "embedding": [1e400, {"a": [1e999]}]},
                                        {"doc_id": 8, "embedding": [0, 1]}]})",
                      [&](JsonBody& b) { return http::DecodeBulkInsert(b, 0, &big); }));
  ASSERT_EQ(big.errors.size(), 1u);
  EXPECT_EQ(big.errors[0].second.code, ErrorCode::kNonFiniteValue);
  EXPECT_EQ(big.docs.size(), 1u);
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

// ---------------------------------------------------------------------------------------------
// The server over loopback

struct Reply {
  unsigned status = 0;
  std::string body;
  std::string content_type;
  std::string allow;
  std::string connection;
  std::string retry_after;
  std::string www_authenticate;
};

// A synchronous Beast client on one keep-alive connection.
class Client {
 public:
  explicit Client(uint16_t port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }

  Reply Send(bhttp::verb method, const std::string& target, const std::string& body = {},
             const std::string& content_type = "application/json",
             const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    bhttp::request<bhttp::string_body> req{method, target, 11};
    req.set(bhttp::field::host, "127.0.0.1");
    for (const auto& [name, value] : headers) req.set(name, value);
    if (!content_type.empty()) req.set(bhttp::field::content_type, content_type);
    req.body() = body;
    if (!body.empty() || method == bhttp::verb::post || method == bhttp::verb::put) {
      req.prepare_payload();
    }
    bhttp::write(socket_, req);
    return Read();
  }
  Reply Post(const std::string& target, const std::string& body) {
    return Send(bhttp::verb::post, target, body);
  }
  Reply Get(const std::string& target) { return Send(bhttp::verb::get, target, {}, {}); }

  Reply Read() {
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(64 << 20);
    beast::error_code ec;
    bhttp::read(socket_, buffer_, parser, ec);
    Reply r;
    if (ec) {
      ADD_FAILURE() << "reading the reply: " << ec.message();
      return r;
    }
    const auto& m = parser.get();
    r.status = m.result_int();
    r.body = m.body();
    r.content_type = std::string(m[bhttp::field::content_type]);
    r.allow = std::string(m[bhttp::field::allow]);
    r.connection = std::string(m[bhttp::field::connection]);
    r.retry_after = std::string(m[bhttp::field::retry_after]);
    r.www_authenticate = std::string(m[bhttp::field::www_authenticate]);
    return r;
  }

  void ReadHeaderOnly(bhttp::response_parser<bhttp::empty_body>& parser) {
    bhttp::read(socket_, buffer_, parser);
  }

  // The status of GET `target`, or 0 if the connection failed or was closed.
  unsigned TryGet(const std::string& target) {
    bhttp::request<bhttp::empty_body> req{bhttp::verb::get, target, 11};
    req.set(bhttp::field::host, "127.0.0.1");
    beast::error_code ec;
    bhttp::write(socket_, req, ec);
    if (ec) return 0;
    bhttp::response<bhttp::string_body> res;
    bhttp::read(socket_, buffer_, res, ec);
    return ec ? 0 : res.result_int();
  }

  void WriteRaw(std::string_view bytes) { net::write(socket_, net::buffer(bytes.data(), bytes.size())); }

  // Everything the server sends until it closes the connection (or an error).
  std::string ReadUntilClosed() {
    std::string out(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    char buf[4096];
    beast::error_code ec;
    for (;;) {
      const size_t n = socket_.read_some(net::buffer(buf), ec);
      if (ec) break;
      out.append(buf, n);
    }
    return out;
  }

  // True when the server closed the connection (EOF or reset with nothing more to read).
  bool PeerClosed() {
    if (buffer_.size() > 0) return false;
    char c;
    beast::error_code ec;
    socket_.read_some(net::buffer(&c, 1), ec);
    return ec == net::error::eof || ec == net::error::connection_reset;
  }

 private:
  net::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

simdjson::dom::element ParseJson(simdjson::dom::parser& p, const std::string& text) {
  simdjson::dom::element e;
  EXPECT_EQ(p.parse(text).get(e), simdjson::SUCCESS) << text;
  return e;
}

std::string ErrorCodeOf(const Reply& r) {
  simdjson::dom::parser p;
  std::string_view code;
  if (p.parse(r.body)["error_code"].get(code) != simdjson::SUCCESS) return "<none: " + r.body + ">";
  return std::string(code);
}

std::string Vec(const std::vector<float>& v) {
  std::string s = "[";
  JsonWriter w(&s);
  for (float f : v) w.Float(f);
  s += "]";
  return s;
}

class HttpServerTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kDim = 4;

  void SetUp() override { StartServer(); }
  void TearDown() override { StopServer(); }

  ServerConfig Config() {
    ServerConfig c;
    c.persistence.data_dir = dir_.path();
    c.persistence.fsync_policy = "never";
    c.server.http_port = 0;
    c.server.http_threads = 2;
    c.server.max_body_mb = 1;
    c.hnsw.dimension = kDim;
    Tune(c);
    return c;
  }
  // Per-suite changes to the configuration.
  virtual void Tune(ServerConfig&) {}

  void StartServer() {
    auto s = Service::Open(Config());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    service_ = std::move(s).value();
    auto h = HttpServer::Start(*service_);
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    http_ = std::move(h).value();
    ASSERT_NE(http_->port(), 0);
  }
  void StopServer() {
    if (http_) http_->Stop(std::chrono::seconds(5));
    http_.reset();
    if (service_) service_->Close().IgnoreError();
    service_.reset();
  }

  Client Connect() { return Client(http_->port()); }

  testing::TempDir dir_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<HttpServer> http_;
};

TEST_F(HttpServerTest, HealthReadyMetricsAndSlo) {
  Client c = Connect();
  simdjson::dom::parser p;
  Reply h = c.Get("/health");
  EXPECT_EQ(h.status, 200u);
  EXPECT_EQ(h.content_type, "application/json");
  EXPECT_EQ(std::string_view(ParseJson(p, h.body)["status"]), "healthy");

  Reply r = c.Get("/ready");
  EXPECT_EQ(r.status, 200u);
  EXPECT_TRUE(bool(ParseJson(p, r.body)["ready"]));

  ASSERT_EQ(c.Post("/v1/insert", R"({"doc_id": 1, "embedding": [1, 0, 0, 0]})").status, 200u);
  Reply m = c.Get("/metrics");
  EXPECT_EQ(m.status, 200u);
  EXPECT_EQ(m.content_type, "text/plain; version=0.0.4");
  EXPECT_NE(m.body.find("kyrodb_requests_total{transport=\"http\",endpoint=\"insert\"} 1"),
            std::string::npos)
      << m.body.substr(0, 2000);
  // The access checks of the insert and of this request were timed (probes are not checked).
  EXPECT_NE(m.body.find("kyrodb_access_checks_total{transport=\"http\"} 2\n"), std::string::npos)
      << m.body.substr(0, 2000);
  EXPECT_NE(m.body.find("kyrodb_access_check_seconds_total{transport=\"http\"} "), std::string::npos);

  Reply slo = c.Get("/slo");
  EXPECT_EQ(slo.status, 200u);
  simdjson::dom::element e = ParseJson(p, slo.body);
  EXPECT_EQ(e.type(), simdjson::dom::element_type::OBJECT);
}

TEST_F(HttpServerTest, ReadyIs503UntilRecoveryFinishes) {
  StopServer();
  auto created = Service::Create(Config());
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  std::unique_ptr<Service> service = std::move(created).value();
  auto h = HttpServer::Start(*service);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  Client c((*h)->port());
  Reply r = c.Get("/ready");
  EXPECT_EQ(r.status, 503u);
  EXPECT_EQ(ErrorCodeOf(r), "NOT_READY");
  EXPECT_EQ(c.Get("/health").status, 200u);  // liveness holds during recovery
  Reply q = c.Post("/v1/search", R"({"query_embedding": [1, 0, 0, 0]})");
  EXPECT_EQ(q.status, 503u);
  EXPECT_EQ(ErrorCodeOf(q), "NOT_READY");
  ASSERT_OK(service->Recover());
  EXPECT_EQ(c.Get("/ready").status, 200u);
  (*h)->Stop(std::chrono::seconds(5));
  ASSERT_OK(service->Close());
}

TEST_F(HttpServerTest, EmptyDatabaseAnswersEmptyResultsAndNotFound) {
  Client c = Connect();
  simdjson::dom::parser p;
  Reply s = c.Post("/v1/search", R"({"query_embedding": [1, 2, 3, 4], "k": 5})");
  ASSERT_EQ(s.status, 200u) << s.body;
  simdjson::dom::element e = ParseJson(p, s.body);
  EXPECT_EQ(simdjson::dom::array(e["results"]).size(), 0u);
  EXPECT_GE(double(e["search_latency_ms"]), 0.0);
  Reply q = c.Post("/v1/query", R"({"doc_id": 1})");
  EXPECT_EQ(q.status, 404u);
  EXPECT_EQ(ErrorCodeOf(q), "DOCUMENT_NOT_FOUND");
  Reply g = c.Get("/v1/documents/doc_1");
  EXPECT_EQ(g.status, 404u);
  EXPECT_EQ(ErrorCodeOf(g), "DOCUMENT_NOT_FOUND");
  Reply f = c.Post("/v1/flush", "");
  EXPECT_EQ(f.status, 200u) << f.body;
  EXPECT_EQ(uint64_t(ParseJson(p, f.body)["docs_flushed"]), 0u);
}

TEST_F(HttpServerTest, StringAndNumericIdsRoundTripAndNeverCollide) {
  Client c = Connect();
  simdjson::dom::parser p;
  Reply a = c.Post("/v1/insert",
                   R"({"doc_id": 123, "embedding": [1, 0, 0, 0], "metadata": {"kind": "number"}})");
  ASSERT_EQ(a.status, 200u) << a.body;
  EXPECT_EQ(a.body, R"({"status":"ok","doc_id":123})");
  Reply b = c.Post("/v1/insert",
                   R"({"doc_id": "123", "embedding": [0, 1, 0, 0], "metadata": {"kind": "string"}})");
  ASSERT_EQ(b.status, 200u) << b.body;
  EXPECT_EQ(b.body, R"({"status":"ok","doc_id":"123"})");
  Reply d = c.Post("/v1/insert", R"({"doc_id": "doc a/é", "embedding": [0, 0, 1, 0]})");
  ASSERT_EQ(d.status, 200u) << d.body;

  Reply qa = c.Post("/v1/query", R"({"doc_id": 123, "include_embedding": true})");
  ASSERT_EQ(qa.status, 200u) << qa.body;
  simdjson::dom::element ea = ParseJson(p, qa.body);
  EXPECT_TRUE(bool(ea["found"]));
  EXPECT_EQ(uint64_t(ea["doc_id"]), 123u);
  EXPECT_EQ(std::string_view(ea["metadata"]["kind"]), "number");
  EXPECT_EQ(double(ea["embedding"].at(0)), 1.0);
  EXPECT_EQ(simdjson::dom::array(ea["embedding"]).size(), kDim);
  const std::string_view tier = ea["served_from"];
  EXPECT_TRUE(tier == "cache" || tier == "hot_tier" || tier == "cold_tier") << tier;

  Reply qb = c.Post("/v1/query", R"({"doc_id": "123"})");
  ASSERT_EQ(qb.status, 200u) << qb.body;
  simdjson::dom::element eb = ParseJson(p, qb.body);
  EXPECT_EQ(std::string_view(eb["doc_id"]), "123");
  EXPECT_EQ(std::string_view(eb["metadata"]["kind"]), "string");
  EXPECT_EQ(eb["embedding"].error(), simdjson::NO_SUCH_FIELD);  // not asked for

  // GET: a numeric path segment is a numeric id, anything else a (percent-decoded) string id.
  Reply ga = c.Get("/v1/documents/123?include_embedding=true");
  ASSERT_EQ(ga.status, 200u) << ga.body;
  EXPECT_EQ(std::string_view(ParseJson(p, ga.body)["metadata"]["kind"]), "number");
  Reply gd = c.Get("/v1/documents/doc%20a%2F%C3%A9?collection=default");
  ASSERT_EQ(gd.status, 200u) << gd.body;
  EXPECT_EQ(std::string_view(ParseJson(p, gd.body)["doc_id"]), "doc a/é");
  Reply gu = c.Get("/v1/documents/123?colection=default");
  EXPECT_EQ(gu.status, 400u);
  EXPECT_EQ(ErrorCodeOf(gu), "UNKNOWN_FIELD");

  // Search returns both, each in its own form.
  Reply s = c.Post("/v1/search", R"({"query_embedding": [1, 1, 0, 0], "k": 10})");
  ASSERT_EQ(s.status, 200u) << s.body;
  simdjson::dom::element es = ParseJson(p, s.body);
  int numeric = 0, strings = 0;
  for (simdjson::dom::element hit : es["results"]) {
    if (hit["doc_id"].is_string()) {
      ++strings;
    } else {
      EXPECT_EQ(uint64_t(hit["doc_id"]), 123u);
      ++numeric;
    }
  }
  EXPECT_EQ(numeric, 1);
  EXPECT_EQ(strings, 2);
}

TEST_F(HttpServerTest, SearchEqualsBruteForceTopK) {
  Client c = Connect();
  std::mt19937 rng(42);
  std::normal_distribution<float> dist;
  std::vector<std::vector<float>> vecs;
  constexpr int kDocs = 60;
  for (int i = 0; i < kDocs; ++i) {
    std::vector<float> v(kDim);
    for (float& x : v) x = dist(rng);
    const std::string body = "{\"doc_id\": " + std::to_string(i + 1) + ", \"embedding\": " +
                             Vec(v) + ", \"metadata\": {\"parity\": \"" +
                             (i % 2 == 0 ? "odd" : "even") + "\"}}";
    ASSERT_EQ(c.Post("/v1/insert", body).status, 200u);
    vecs.push_back(v);
  }
  auto cosine = [](const std::vector<float>& a, const std::vector<float>& b) {
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      dot += double(a[i]) * b[i];
      na += double(a[i]) * a[i];
      nb += double(b[i]) * b[i];
    }
    return dot / std::sqrt(na * nb);
  };
  auto check = [&](const char* phase, bool filtered) {
    simdjson::dom::parser p;
    for (int q = 0; q < 10; ++q) {
      SCOPED_TRACE(std::string(phase) + " query " + std::to_string(q));
      std::vector<float> query(kDim);
      for (float& x : query) x = dist(rng);
      constexpr size_t k = 7;
      std::vector<std::pair<double, uint64_t>> expect;
      for (int i = 0; i < kDocs; ++i) {
        if (filtered && i % 2 != 1) continue;  // parity == even
        expect.emplace_back(cosine(query, vecs[i]), i + 1);
      }
      std::sort(expect.begin(), expect.end(), std::greater<>());
      expect.resize(k);
      std::string body = "{\"query_embedding\": " + Vec(query) + ", \"k\": " + std::to_string(k) +
                         ", \"ef_search\": 200";
      if (filtered) body += R"(, "filter": {"exact": {"key": "parity", "value": "even"}})";
      body += "}";
      Reply r = c.Post("/v1/search", body);
      ASSERT_EQ(r.status, 200u) << r.body;
      simdjson::dom::element e = ParseJson(p, r.body);
      simdjson::dom::array results = e["results"];
      ASSERT_EQ(results.size(), k);
      size_t i = 0;
      for (simdjson::dom::element hit : results) {
        EXPECT_EQ(uint64_t(hit["doc_id"]), expect[i].second) << "rank " << i;
        EXPECT_NEAR(double(hit["score"]), expect[i].first, 1e-4);
        if (filtered) {
          EXPECT_EQ(std::string_view(hit["metadata"]["parity"]), "even");
        }
        ++i;
      }
      EXPECT_FALSE(std::string_view(e["search_path"]).empty());
    }
  };
  check("hot tier", false);
  check("hot tier, filtered", true);
  simdjson::dom::parser p;
  Reply f = c.Post("/v1/flush", R"({"collection": "default"})");
  ASSERT_EQ(f.status, 200u) << f.body;
  EXPECT_EQ(uint64_t(ParseJson(p, f.body)["docs_flushed"]), uint64_t{kDocs});
  check("cold tier", false);
  check("cold tier, filtered", true);

  // min_score drops worse hits; include_embeddings returns them.
  Reply r = c.Post("/v1/search", "{\"query_embedding\": " + Vec(vecs[0]) +
                                     ", \"k\": 3, \"min_score\": 0.9999, \"include_embeddings\": true}");
  ASSERT_EQ(r.status, 200u) << r.body;
  simdjson::dom::array results = ParseJson(p, r.body)["results"];
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(uint64_t(results.at(0)["doc_id"]), 1u);
  // Cosine collections store unit vectors: the embedding comes back normalized.
  std::vector<float> back;
  for (simdjson::dom::element x : results.at(0)["embedding"]) back.push_back(float(double(x)));
  ASSERT_EQ(back.size(), kDim);
  EXPECT_NEAR(cosine(back, vecs[0]), 1.0, 1e-6);
}

TEST_F(HttpServerTest, ValidationErrorsHaveTheirStatusAndCode) {
  struct Case {
    const char* path;
    const char* body;
    unsigned status;
    const char* code;
    const char* mentions;
  };
  const Case cases[] = {
      {"/v1/insert", R"({"doc_id": 1, "embedding": [1, 2, 3, 4])", 400, "INVALID_JSON", ""},
      {"/v1/insert", "not json", 400, "INVALID_JSON", ""},
      {"/v1/insert", R"({"doc_id": 1, "embedding": [1, 2, 3]})", 400, "DIMENSION_MISMATCH", "embedding"},
      {"/v1/insert", R"({"doc_id": 1, "embedding": [1, 2, 3, 1e39]})", 400, "NON_FINITE_VALUE", "embedding[3]"},
      {"/v1/insert", R"({"doc_id": 1, "embedding": [1, 2, 3, NaN]})", 400, "NON_FINITE_VALUE", "embedding[3]"},
      {"/v1/insert", R"({"doc_id": 0, "embedding": [1, 2, 3, 4]})", 400, "INVALID_DOC_ID", "doc_id"},
      {"/v1/insert", R"({"doc_id": -4, "embedding": [1, 2, 3, 4]})", 400, "INVALID_DOC_ID", "doc_id"},
      {"/v1/insert", R"({"doc_id": 9223372036854775808, "embedding": [1, 2, 3, 4]})", 400, "INVALID_DOC_ID", "doc_id"},
      {"/v1/insert", R"({"doc_id": 1, "embedding": [1, 2, 3, 4], "tags": []})", 400, "UNKNOWN_FIELD", "'tags'"},
      {"/v1/insert", R"({"doc_id": 1})", 400, "MISSING_FIELD", "'embedding'"},
      {"/v1/insert", R"({"doc_id": 1, "embedding": "1,2,3,4"})", 400, "INVALID_ARGUMENT", "'embedding'"},
      {"/v1/insert", R"({"doc_id": 1, "embedding": [1, 2, 3, 4], "collection": "nope"})", 404, "COLLECTION_NOT_FOUND", "nope"},
      {"/v1/search", R"({"query_embedding": [1, 2, 3, 4], "k": 0})", 400, "INVALID_K", "k"},
      {"/v1/search", R"({"query_embedding": [1, 2, 3, 4], "k": 1001})", 400, "INVALID_K", "k"},
      {"/v1/search", R"({"query_embedding": [1, 2, 3, 4], "ef_search": 10001})", 400, "INVALID_EF_SEARCH", "ef_search"},
      {"/v1/search", R"({"query_embedding": [1, 2, 3, 4], "k": "ten"})", 400, "INVALID_ARGUMENT", "'k'"},
      {"/v1/search", R"({"query_embedding": [1, 2]})", 400, "DIMENSION_MISMATCH", "query_embedding"},
      {"/v1/search", R"({"query_embedding": [1, 2, 3, 4], "collection": "nope"})", 404, "COLLECTION_NOT_FOUND", "nope"},
      {"/v1/search", R"({"query_embedding": [1, 2, 3, 4], "filter": {"regex": {}}})", 400, "UNKNOWN_FIELD", "'regex'"},
      {"/v1/query", R"({"doc_id": 5, "collection": "nope"})", 404, "COLLECTION_NOT_FOUND", "nope"},
      {"/v1/query", R"({"doc_id": 5, "include_embedding": "yes"})", 400, "INVALID_ARGUMENT", "include_embedding"},
      {"/v1/delete", R"({"doc_id": 5, "collection": "nope"})", 404, "COLLECTION_NOT_FOUND", "nope"},
      {"/v1/update_metadata", R"({"doc_id": 5, "metadata": {"a": "b"}, "merge": 1})", 400, "INVALID_ARGUMENT", "merge"},
      {"/v1/bulk_insert", R"({"documents": {}})", 400, "INVALID_ARGUMENT", "documents"},
      {"/v1/bulk_insert", R"({"documents": [{"doc_id": 1, "embedding": [1, 2, 3, 4]}], "collection": "nope"})", 404, "COLLECTION_NOT_FOUND", "nope"},
      {"/v1/flush", R"({"collection": "nope"})", 404, "COLLECTION_NOT_FOUND", "nope"},
      {"/v1/snapshot", R"({"force": true})", 400, "UNKNOWN_FIELD", "'force'"},
  };
  Client c = Connect();
  for (const Case& t : cases) {
    SCOPED_TRACE(std::string(t.path) + " " + t.body);
    Reply r = c.Post(t.path, t.body);
    EXPECT_EQ(r.status, t.status) << r.body;
    EXPECT_EQ(ErrorCodeOf(r), t.code) << r.body;
    EXPECT_NE(r.body.find(t.mentions), std::string::npos) << r.body;
    EXPECT_EQ(r.content_type, "application/json");
  }
  // The connection survived every error (keep-alive), and nothing was inserted.
  EXPECT_EQ(c.Post("/v1/query", R"({"doc_id": 1})").status, 404u);
}

TEST_F(HttpServerTest, UnknownRoutesMethodsAndMediaTypes) {
  Client c = Connect();
  Reply nf = c.Get("/v1/nothing");
  EXPECT_EQ(nf.status, 404u);
  EXPECT_EQ(ErrorCodeOf(nf), "NOT_FOUND");
  EXPECT_EQ(c.Get("/").status, 404u);

  Reply m = c.Get("/v1/insert");
  EXPECT_EQ(m.status, 405u);
  EXPECT_EQ(ErrorCodeOf(m), "METHOD_NOT_ALLOWED");
  EXPECT_EQ(m.allow, "POST");
  Reply m2 = c.Send(bhttp::verb::post, "/health", "{}");
  EXPECT_EQ(m2.status, 405u);
  EXPECT_EQ(m2.allow, "GET");
  Reply m3 = c.Send(bhttp::verb::patch, "/v1/collections/default", "{}");
  EXPECT_EQ(m3.status, 405u);
  EXPECT_EQ(m3.allow, "GET, PUT, DELETE");

  // HEAD answers GET's headers without a body; the connection stays usable.
  c.WriteRaw("HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n");
  bhttp::response_parser<bhttp::empty_body> head;
  head.skip(true);
  c.ReadHeaderOnly(head);
  EXPECT_EQ(head.get().result_int(), 200u);
  EXPECT_NE(head.get()[bhttp::field::content_length], "0");
  EXPECT_EQ(c.Get("/ready").status, 200u);

  Reply u = c.Send(bhttp::verb::post, "/v1/insert",
                   R"({"doc_id": 1, "embedding": [1, 2, 3, 4]})", "text/plain");
  EXPECT_EQ(u.status, 415u);
  EXPECT_EQ(ErrorCodeOf(u), "UNSUPPORTED_MEDIA_TYPE");
  // Parameters and case are fine; a missing Content-Type is accepted.
  EXPECT_EQ(c.Send(bhttp::verb::post, "/v1/insert", R"({"doc_id": 1, "embedding": [1, 2, 3, 4]})",
                   "Application/JSON; charset=utf-8")
                .status,
            200u);
  EXPECT_EQ(c.Send(bhttp::verb::post, "/v1/insert", R"({"doc_id": 2, "embedding": [1, 2, 3, 4]})", "")
                .status,
            200u);
  // Unknown routes and errors are counted too.
  EXPECT_EQ(service_->metrics().Requests(Transport::kHttp, Endpoint::kOther), 2u);
  EXPECT_EQ(service_->metrics().Requests(Transport::kHttp, Endpoint::kInsert), 4u);
}

TEST_F(HttpServerTest, KeepAliveAndPipelinedRequestsShareOneConnection) {
  Client c = Connect();
  for (int i = 1; i <= 20; ++i) {
    Reply r = c.Post("/v1/insert", "{\"doc_id\": " + std::to_string(i) +
                                       ", \"embedding\": [1, 2, 3, " + std::to_string(i) + "]}");
    ASSERT_EQ(r.status, 200u) << r.body;
    EXPECT_TRUE(r.connection.empty()) << r.connection;  // HTTP/1.1: open unless it says close
  }
  // Three requests in one write; three replies in order.
  std::string pipelined;
  for (int i : {3, 4, 99}) {
    const std::string body = "{\"doc_id\": " + std::to_string(i) + "}";
    pipelined += "POST /v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  c.WriteRaw(pipelined);
  simdjson::dom::parser p;
  Reply a = c.Read();
  Reply b = c.Read();
  Reply d = c.Read();
  ASSERT_EQ(a.status, 200u);
  EXPECT_EQ(uint64_t(ParseJson(p, a.body)["doc_id"]), 3u);
  ASSERT_EQ(b.status, 200u);
  EXPECT_EQ(uint64_t(ParseJson(p, b.body)["doc_id"]), 4u);
  EXPECT_EQ(d.status, 404u);
  // Connection: close is honoured.
  c.WriteRaw("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  Reply last = c.Read();
  EXPECT_EQ(last.status, 200u);
  EXPECT_EQ(last.connection, "close");
  EXPECT_TRUE(c.PeerClosed());
}

TEST_F(HttpServerTest, OversizedBodyIs413AndTheClientReadsIt) {
  Client c = Connect();
  // max_body_mb = 1: a 2 MiB body is refused from its Content-Length, before it is read.
  const std::string body = "{\"doc_id\": 1, \"embedding\": [" + std::string(2 << 20, ' ') + "1,2,3,4]}";
  Reply r = c.Post("/v1/insert", body);
  EXPECT_EQ(r.status, 413u);
  EXPECT_EQ(ErrorCodeOf(r), "PAYLOAD_TOO_LARGE");
  EXPECT_EQ(r.connection, "close");
  EXPECT_TRUE(c.PeerClosed());
  // Chunked bodies are held to the same limit while they arrive.
  Client d = Connect();
  std::string chunked = "POST /v1/insert HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string chunk(256 << 10, ' ');
  for (int i = 0; i < 6; ++i) chunked += "40000\r\n" + chunk + "\r\n";
  chunked += "0\r\n\r\n";
  d.WriteRaw(chunked);
  Reply rc = d.Read();
  EXPECT_EQ(rc.status, 413u);
  // Just under the limit is fine.
  Client e = Connect();
  const std::string ok = "{\"doc_id\": 1, \"embedding\": [" + std::string(1000 << 10, ' ') + "1,2,3,4]}";
  EXPECT_EQ(e.Post("/v1/insert", ok).status, 200u);
}

TEST_F(HttpServerTest, ExpectContinueGetsAnInterimReplyBeforeTheBody) {
  Client c = Connect();
  const std::string body = R"({"doc_id": 5, "embedding": [1, 2, 3, 4]})";
  c.WriteRaw("POST /v1/insert HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Expect: 100-continue\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n");
  Reply interim = c.Read();
  EXPECT_EQ(interim.status, 100u);
  c.WriteRaw(body);
  Reply r = c.Read();
  EXPECT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.body, R"({"status":"ok","doc_id":5})");
}

TEST_F(HttpServerTest, CollectionsCreateDescribeListUseAndDrop) {
  Client c = Connect();
  simdjson::dom::parser p;
  Reply created = c.Send(bhttp::verb::put, "/v1/collections/images",
                         R"({"dimension": 3, "metric": "l2", "m": 8, "ef_construction": 64, "ef_search": 32})");
  ASSERT_EQ(created.status, 201u) << created.body;
  simdjson::dom::element ce = ParseJson(p, created.body);
  EXPECT_EQ(std::string_view(ce["name"]), "images");
  EXPECT_EQ(uint64_t(ce["dimension"]), 3u);
  EXPECT_EQ(std::string_view(ce["metric"]), "l2");
  EXPECT_EQ(uint64_t(ce["m"]), 8u);

  Reply again = c.Send(bhttp::verb::put, "/v1/collections/images", R"({"dimension": 3})");
  EXPECT_EQ(again.status, 409u);
  EXPECT_EQ(ErrorCodeOf(again), "COLLECTION_EXISTS");
  Reply bad = c.Send(bhttp::verb::put, "/v1/collections/x", R"({"dimension": 3, "metric": "hamming"})");
  EXPECT_EQ(bad.status, 400u);
  EXPECT_EQ(ErrorCodeOf(bad), "INVALID_COLLECTION");
  Reply nodim = c.Send(bhttp::verb::put, "/v1/collections/x", R"({"metric": "l2"})");
  EXPECT_EQ(nodim.status, 400u);
  EXPECT_EQ(ErrorCodeOf(nodim), "MISSING_FIELD");
  Reply unknown = c.Send(bhttp::verb::put, "/v1/collections/x", R"({"dimension": 3, "dims": 3})");
  EXPECT_EQ(unknown.status, 400u);
  EXPECT_EQ(ErrorCodeOf(unknown), "UNKNOWN_FIELD");

  ASSERT_EQ(c.Post("/v1/insert", R"({"doc_id": 1, "embedding": [0, 0, 1], "collection": "images"})").status, 200u);
  ASSERT_EQ(c.Post("/v1/insert", R"({"doc_id": 2, "embedding": [5, 5, 5], "collection": "images"})").status, 200u);
  // The default collection (dimension 4) refuses 3-d vectors: collections are separate.
  EXPECT_EQ(ErrorCodeOf(c.Post("/v1/insert", R"({"doc_id": 1, "embedding": [0, 0, 1]})")),
            "DIMENSION_MISMATCH");
  Reply s = c.Post("/v1/search", R"({"query_embedding": [0, 0, 0.9], "k": 2, "collection": "images"})");
  ASSERT_EQ(s.status, 200u) << s.body;
  simdjson::dom::element se = ParseJson(p, s.body);
  EXPECT_EQ(uint64_t(se["results"].at(0)["doc_id"]), 1u);
  EXPECT_NEAR(double(se["results"].at(0)["score"]), 1.0 / 1.01, 1e-5);  // 1 / (1 + l2^2)

  Reply d = c.Get("/v1/collections/images");
  ASSERT_EQ(d.status, 200u);
  EXPECT_EQ(uint64_t(ParseJson(p, d.body)["documents"]), 2u);
  Reply list = c.Get("/v1/collections");
  ASSERT_EQ(list.status, 200u);
  std::vector<std::string> names;
  for (simdjson::dom::element e : ParseJson(p, list.body)["collections"]) {
    names.emplace_back(std::string_view(e["name"]));
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"default", "images"}));

  EXPECT_EQ(c.Send(bhttp::verb::delete_, "/v1/collections/images", {}, {}).status, 200u);
  Reply gone = c.Get("/v1/collections/images");
  EXPECT_EQ(gone.status, 404u);
  EXPECT_EQ(ErrorCodeOf(gone), "COLLECTION_NOT_FOUND");
  Reply gone2 = c.Send(bhttp::verb::delete_, "/v1/collections/images", {}, {});
  EXPECT_EQ(gone2.status, 404u);
  EXPECT_EQ(ErrorCodeOf(gone2), "COLLECTION_NOT_FOUND");
}

TEST_F(HttpServerTest, DeleteAndUpdateMetadata) {
  Client c = Connect();
  simdjson::dom::parser p;
  ASSERT_EQ(c.Post("/v1/insert", R"({"doc_id": "d", "embedding": [1, 2, 3, 4], "metadata": {"a": "1", "b": "2"}})").status, 200u);
  Reply u = c.Post("/v1/update_metadata", R"({"doc_id": "d", "metadata": {"b": "3", "c": "4"}})");
  ASSERT_EQ(u.status, 200u) << u.body;
  EXPECT_EQ(u.body, R"({"status":"ok","existed":true})");
  simdjson::dom::element m = ParseJson(p, c.Post("/v1/query", R"({"doc_id": "d"})").body)["metadata"];
  EXPECT_EQ(std::string_view(m["a"]), "1");
  EXPECT_EQ(std::string_view(m["b"]), "3");
  EXPECT_EQ(std::string_view(m["c"]), "4");
  ASSERT_EQ(c.Post("/v1/update_metadata", R"({"doc_id": "d", "metadata": {"z": "9"}, "merge": false})").status, 200u);
  simdjson::dom::object replaced = ParseJson(p, c.Post("/v1/query", R"({"doc_id": "d"})").body)["metadata"];
  EXPECT_EQ(replaced.size(), 1u);
  EXPECT_EQ(c.Post("/v1/update_metadata", R"({"doc_id": "other", "metadata": {}})").body,
            R"({"status":"ok","existed":false})");

  EXPECT_EQ(c.Post("/v1/delete", R"({"doc_id": "d"})").body, R"({"status":"ok","existed":true})");
  EXPECT_EQ(c.Post("/v1/delete", R"({"doc_id": "d"})").body, R"({"status":"ok","existed":false})");
  EXPECT_EQ(c.Post("/v1/query", R"({"doc_id": "d"})").status, 404u);
}

TEST_F(HttpServerTest, BulkInsertReportsPerDocumentErrors) {
  Client c = Connect();
  simdjson::dom::parser p;
  Reply r = c.Post("/v1/bulk_insert", R"({"documents": [
      {"doc_id": 1, "embedding": [1, 0, 0, 0]},
      {"doc_id": 2, "embedding": [1, 0, 0]},
      {"doc_id": "three", "embedding": [0, 0, 1, 0], "metadata": {"k": "v"}},
      {"doc_id": 4, "embedding": [0, 1, 0, 0], "extra": 1},
      {"doc_id": 0, "embedding": [0, 1, 0, 0]}]})");
  ASSERT_EQ(r.status, 200u) << r.body;
  simdjson::dom::element e = ParseJson(p, r.body);
  EXPECT_EQ(uint64_t(e["inserted"]), 2u);
  EXPECT_EQ(uint64_t(e["failed"]), 3u);
  simdjson::dom::array errors = e["errors"];
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(uint64_t(errors.at(0)["index"]), 1u);
  EXPECT_EQ(uint64_t(errors.at(0)["doc_id"]), 2u);
  EXPECT_EQ(std::string_view(errors.at(0)["error_code"]), "DIMENSION_MISMATCH");
  EXPECT_EQ(uint64_t(errors.at(1)["index"]), 3u);
  EXPECT_EQ(std::string_view(errors.at(1)["error_code"]), "UNKNOWN_FIELD");
  EXPECT_EQ(uint64_t(errors.at(2)["index"]), 4u);
  EXPECT_EQ(std::string_view(errors.at(2)["error_code"]), "INVALID_DOC_ID");
  EXPECT_EQ(c.Post("/v1/query", R"({"doc_id": "three"})").status, 200u);
  EXPECT_EQ(c.Post("/v1/query", R"({"doc_id": 1})").status, 200u);
  EXPECT_EQ(c.Post("/v1/query", R"({"doc_id": 2})").status, 404u);
}

TEST_F(HttpServerTest, FlushAndSnapshot) {
  Client c = Connect();
  simdjson::dom::parser p;
  ASSERT_EQ(c.Post("/v1/insert", R"({"doc_id": 1, "embedding": [1, 2, 3, 4]})").status, 200u);
  Reply f = c.Post("/v1/flush", "{}");
  ASSERT_EQ(f.status, 200u) << f.body;
  simdjson::dom::element fe = ParseJson(p, f.body);
  EXPECT_EQ(std::string_view(fe["status"]), "ok");
  EXPECT_EQ(uint64_t(fe["docs_flushed"]), 1u);
  EXPECT_GE(double(fe["duration_ms"]), 0.0);
  Reply s = c.Post("/v1/snapshot", "");
  ASSERT_EQ(s.status, 200u) << s.body;
  simdjson::dom::element se = ParseJson(p, s.body);
  EXPECT_EQ(std::string_view(se["status"]), "ok");
  EXPECT_EQ(uint64_t(se["documents"]), 1u);
  // The document is now served from the cold tier (or the cache in front of it).
  Reply q = c.Post("/v1/query", R"({"doc_id": 1})");
  ASSERT_EQ(q.status, 200u);
  EXPECT_NE(std::string_view(ParseJson(p, q.body)["served_from"]), "hot_tier");
}

TEST_F(HttpServerTest, StopClosesIdleConnectionsWithoutWaitingForTheDrainPeriod) {
  Client c = Connect();
  ASSERT_EQ(c.Get("/health").status, 200u);
  const auto t0 = std::chrono::steady_clock::now();
  http_->Stop(std::chrono::seconds(30));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_TRUE(c.PeerClosed());
  // The port no longer accepts.
  net::io_context ioc;
  tcp::socket s(ioc);
  beast::error_code ec;
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), http_->port()), ec);
  EXPECT_TRUE(ec);
}

TEST_F(HttpServerTest, StopUnderLoadLosesNoAcknowledgedWrite) {
  constexpr int kClients = 4;
  std::atomic<int> acked_total{0};
  std::vector<std::vector<uint64_t>> acked(kClients);
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      net::io_context ioc;
      tcp::socket sock(ioc);
      beast::error_code ec;
      sock.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), http_->port()), ec);
      if (ec) return;
      beast::flat_buffer buf;
      for (uint64_t i = 1;; ++i) {
        const uint64_t id = static_cast<uint64_t>(t) * 1000000 + i;
        bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/v1/insert", 11};
        req.set(bhttp::field::host, "x");
        req.body() = "{\"doc_id\": " + std::to_string(id) + ", \"embedding\": [1, 2, 3, 4]}";
        req.prepare_payload();
        bhttp::write(sock, req, ec);
        if (ec) return;
        bhttp::response<bhttp::string_body> res;
        bhttp::read(sock, buf, res, ec);
        if (ec) return;  // closed by the shutdown: this insert was never acknowledged
        if (res.result_int() != 200) return;
        acked[t].push_back(id);
        acked_total.fetch_add(1);
        if (!res.keep_alive()) return;  // the server said this was the last reply
      }
    });
  }
  while (acked_total.load() < 200) std::this_thread::yield();
  http_->Stop(std::chrono::seconds(10));
  for (auto& c : clients) c.join();
  RequestContext ctx;
  for (int t = 0; t < kClients; ++t) {
    for (uint64_t id : acked[t]) {
      ASSERT_TRUE(service_->Query(ctx, "", DocKey::Numeric(id), false).ok()) << id;
    }
  }
  EXPECT_GE(acked_total.load(), 200);
}

TEST_F(HttpServerTest, SecondServerOnATakenPortFailsClearly) {
  ServerConfig cfg = Config();
  cfg.server.http_port = http_->port();
  auto other = Service::Open([&] {
    ServerConfig c2 = cfg;
    c2.persistence.data_dir = dir_.File("other");
    return c2;
  }());
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  // Service::config() is what HttpServer binds; build a service whose port is taken.
  auto h = HttpServer::Start(**other);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find(std::to_string(http_->port())), std::string::npos)
      << h.status().ToString();
  ASSERT_OK((*other)->Close());
}

// ---------------------------------------------------------------------------------------------
// Security and limits (API keys, tenants, rate limits, connection limits)

constexpr const char* kAdminKey = "admin-key-0123456789";
constexpr const char* kAliceKey = "alice-key-0123456789";
constexpr const char* kBobKey = "bob-key-0123456789";
constexpr const char* kDisabledKey = "disabled-key-0123456789";

class HttpAuthTest : public HttpServerTest {
 protected:
  void Tune(ServerConfig& c) override {
    const std::string keys = dir_.File("keys.yaml");
    FILE* f = std::fopen(keys.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fprintf(f,
                 "api_keys:\n"
                 "  - key: \"%s\"\n    tenant_id: ops\n    is_admin: true\n"
                 "  - key: \"%s\"\n    tenant_id: acme\n"
                 "  - key: \"%s\"\n    tenant_id: globex\n"
                 "  - key: \"%s\"\n    tenant_id: acme\n    enabled: false\n",
                 kAdminKey, kAliceKey, kBobKey, kDisabledKey);
    std::fclose(f);
    c.auth.enabled = true;
    c.auth.api_keys_file = keys;
  }
  static std::vector<std::pair<std::string, std::string>> Key(const char* key) {
    return {{"x-api-key", key}};
  }
  static std::vector<std::pair<std::string, std::string>> Bearer(const char* key) {
    return {{"Authorization", std::string("Bearer ") + key}};
  }
};

TEST_F(HttpAuthTest, EveryRouteButHealthAndReadyNeedsAValidKey) {
  Client c = Connect();
  EXPECT_EQ(c.Get("/health").status, 200u);
  EXPECT_EQ(c.Get("/ready").status, 200u);
  const std::string insert = R"({"doc_id": 1, "embedding": [1, 2, 3, 4]})";
  for (const char* path : {"/v1/insert", "/v1/search", "/v1/query", "/v1/flush", "/v1/snapshot"}) {
    SCOPED_TRACE(path);
    Reply none = c.Post(path, insert);
    EXPECT_EQ(none.status, 401u);
    EXPECT_EQ(ErrorCodeOf(none), "UNAUTHENTICATED");
    EXPECT_EQ(none.www_authenticate, "Bearer");
    EXPECT_EQ(c.Send(bhttp::verb::post, path, insert, "application/json", Key("wrong")).status, 401u);
    EXPECT_EQ(c.Send(bhttp::verb::post, path, insert, "application/json", Key(kDisabledKey)).status,
              401u);
  }
  for (const char* path : {"/metrics", "/slo", "/usage", "/v1/collections", "/v1/documents/1",
                           "/v1/nowhere"}) {
    SCOPED_TRACE(path);
    EXPECT_EQ(c.Get(path).status, 401u);
  }
  // Both header forms work.
  EXPECT_EQ(c.Send(bhttp::verb::post, "/v1/insert", insert, "application/json", Key(kAliceKey)).status,
            200u);
  EXPECT_EQ(c.Send(bhttp::verb::post, "/v1/query", R"({"doc_id": 1})", "application/json",
                   Bearer(kAliceKey))
                .status,
            200u);
}

TEST_F(HttpAuthTest, AdminOperationsRefuseOtherKeys) {
  Client c = Connect();
  simdjson::dom::parser p;
  Reply snap = c.Send(bhttp::verb::post, "/v1/snapshot", "", "", Key(kAliceKey));
  EXPECT_EQ(snap.status, 403u);
  EXPECT_EQ(ErrorCodeOf(snap), "PERMISSION_DENIED");
  EXPECT_EQ(c.Send(bhttp::verb::post, "/v1/snapshot", "", "", Key(kAdminKey)).status, 200u);
  Reply all = c.Send(bhttp::verb::get, "/usage?all=true", "", "", Key(kAliceKey));
  EXPECT_EQ(all.status, 403u);
  EXPECT_EQ(ErrorCodeOf(all), "PERMISSION_DENIED");

  ASSERT_EQ(c.Send(bhttp::verb::post, "/v1/insert", R"({"doc_id": 1, "embedding": [1, 2, 3, 4]})",
                   "application/json", Key(kAliceKey))
                .status,
            200u);
  Reply own = c.Send(bhttp::verb::get, "/usage", "", "", Key(kAliceKey));
  ASSERT_EQ(own.status, 200u) << own.body;
  simdjson::dom::array tenants = ParseJson(p, own.body)["tenants"];
  ASSERT_EQ(tenants.size(), 1u);
  EXPECT_EQ(std::string_view(tenants.at(0)["tenant"]), "acme");
  EXPECT_EQ(uint64_t(tenants.at(0)["documents"]), 1u);
  Reply every = c.Send(bhttp::verb::get, "/usage?all=true", "", "", Key(kAdminKey));
  ASSERT_EQ(every.status, 200u) << every.body;
  bool saw_acme = false;
  for (simdjson::dom::element t : ParseJson(p, every.body)["tenants"]) {
    saw_acme = saw_acme || std::string_view(t["tenant"]) == "acme";
  }
  EXPECT_TRUE(saw_acme) << every.body;
}

TEST_F(HttpAuthTest, TenantsNeverSeeEachOthersDocuments) {
  Client c = Connect();
  simdjson::dom::parser p;
  auto as = [&](const char* key, const char* path, const std::string& body) {
    return c.Send(bhttp::verb::post, path, body, "application/json", Key(key));
  };
  ASSERT_EQ(as(kAliceKey, "/v1/insert",
               R"({"doc_id": 7, "embedding": [1, 0, 0, 0], "metadata": {"owner": "alice"}})")
                .status,
            200u);
  // Same collection name ("default"), same id: Bob's namespace is his own.
  EXPECT_EQ(as(kBobKey, "/v1/query", R"({"doc_id": 7})").status, 404u);
  EXPECT_EQ(c.Send(bhttp::verb::get, "/v1/documents/7", "", "", Key(kBobKey)).status, 404u);
  Reply s = as(kBobKey, "/v1/search", R"({"query_embedding": [1, 0, 0, 0]})");
  ASSERT_EQ(s.status, 200u) << s.body;
  EXPECT_EQ(simdjson::dom::array(ParseJson(p, s.body)["results"]).size(), 0u);
  EXPECT_EQ(as(kBobKey, "/v1/delete", R"({"doc_id": 7})").body, R"({"status":"ok","existed":false})");
  EXPECT_EQ(as(kBobKey, "/v1/update_metadata", R"({"doc_id": 7, "metadata": {"owner": "bob"}})").body,
            R"({"status":"ok","existed":false})");
  Reply a = as(kAliceKey, "/v1/query", R"({"doc_id": 7})");
  ASSERT_EQ(a.status, 200u);
  EXPECT_EQ(std::string_view(ParseJson(p, a.body)["metadata"]["owner"]), "alice");
  // Collections Alice creates are not listed for Bob.
  ASSERT_EQ(c.Send(bhttp::verb::put, "/v1/collections/secret", R"({"dimension": 2})",
                   "application/json", Key(kAliceKey))
                .status,
            201u);
  Reply list = c.Send(bhttp::verb::get, "/v1/collections", "", "", Key(kBobKey));
  ASSERT_EQ(list.status, 200u);
  EXPECT_EQ(list.body.find("secret"), std::string::npos) << list.body;
  EXPECT_EQ(c.Send(bhttp::verb::get, "/v1/collections/secret", "", "", Key(kBobKey)).status, 404u);
}

// Requests with a wrong key are charged to the connection's rate limit too: guessing keys is
// throttled like any other traffic.
class HttpAuthLimitsTest : public HttpAuthTest {
 protected:
  void Tune(ServerConfig& c) override {
    HttpAuthTest::Tune(c);
    c.rate_limit.enabled = true;
    c.rate_limit.max_qps_per_connection = 1;
    c.rate_limit.burst = 1;
  }
};

TEST_F(HttpAuthLimitsTest, RequestsWithAWrongKeyAreRateLimitedToo) {
  Client bad = Connect();
  EXPECT_EQ(bad.Send(bhttp::verb::get, "/v1/collections", "", "", Key("wrong-key-0123456789")).status, 401u);
  int limited = 0;
  for (int i = 0; i < 5; ++i) {
    Reply r = bad.Send(bhttp::verb::get, "/v1/collections", "", "", Key("wrong-key-0123456789"));
    if (r.status == 429u) {
      ++limited;
      EXPECT_EQ(ErrorCodeOf(r), "RESOURCE_EXHAUSTED");
      EXPECT_GE(std::atoi(r.retry_after.c_str()), 1) << r.retry_after;
    } else {
      EXPECT_EQ(r.status, 401u) << r.body;
    }
  }
  EXPECT_GE(limited, 1);
  // A valid key on its own connection is served.
  Client good = Connect();
  EXPECT_EQ(good.Send(bhttp::verb::get, "/v1/collections", "", "", Key(kAliceKey)).status, 200u);
}

class HttpLimitsTest : public HttpServerTest {
 protected:
  void Tune(ServerConfig& c) override {
    c.rate_limit.enabled = true;
    c.rate_limit.max_qps_per_connection = 1;
    c.rate_limit.burst = 1;
    c.limits.max_connections = 3;
    c.limits.max_header_kb = 1;
    c.limits.idle_timeout_secs = 1;
    c.limits.read_timeout_secs = 1;
  }
};

TEST_F(HttpLimitsTest, OverTheConnectionRateLimitIs429WithRetryAfter) {
  Client c = Connect();
  EXPECT_EQ(c.Get("/v1/collections").status, 200u);
  Reply r = c.Get("/v1/collections");
  EXPECT_EQ(r.status, 429u);
  EXPECT_EQ(ErrorCodeOf(r), "RESOURCE_EXHAUSTED");
  EXPECT_GE(std::atoi(r.retry_after.c_str()), 1) << r.retry_after;
  // Another connection has its own bucket; probes are never limited.
  EXPECT_EQ(c.Get("/health").status, 200u);
  Client d = Connect();
  EXPECT_EQ(d.Get("/v1/collections").status, 200u);
}

TEST_F(HttpLimitsTest, OversizedHeaderIsRefused) {
  Client c = Connect();
  c.WriteRaw("GET /health HTTP/1.1\r\nHost: x\r\nX-Filler: " + std::string(2048, 'a') + "\r\n\r\n");
  Reply r = c.Read();
  EXPECT_EQ(r.status, 400u);
  EXPECT_NE(r.body.find("limits.max_header_kb"), std::string::npos) << r.body;
}

TEST_F(HttpLimitsTest, SlowAndIdleClientsAreCutOff) {
  // A request that started but does not finish within read_timeout (1 s) is cut off...
  Client slow = Connect();
  slow.WriteRaw("GET /hea");
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(slow.PeerClosed());
  // ...and so is a connection that sends nothing within idle_timeout (1 s).
  Client idle = Connect();
  EXPECT_TRUE(idle.PeerClosed());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

TEST_F(HttpLimitsTest, ConnectionsOverTheLimitAreClosed) {
  std::vector<std::unique_ptr<Client>> open;
  for (int i = 0; i < 3; ++i) {
    open.push_back(std::make_unique<Client>(http_->port()));
    EXPECT_EQ(open.back()->Get("/health").status, 200u);  // accepted and counted
  }
  Client extra = Connect();
  EXPECT_TRUE(extra.PeerClosed());
  open.pop_back();  // closing one makes room
  // The server notices the close asynchronously; a new connection is accepted once it has.
  bool served = false;
  for (int attempt = 0; attempt < 1000 && !served; ++attempt) {
    Client again = Connect();
    served = again.TryGet("/health") == 200u;
  }
  EXPECT_TRUE(served);
}

// ---------------------------------------------------------------------------------------------
// Asynchronous inserts: group commit with fsync_policy: always, order on one connection

class HttpGroupCommitTest : public HttpServerTest {
 protected:
  void Tune(ServerConfig& c) override { c.persistence.fsync_policy = "always"; }
};

double MetricValue(const std::string& text, const std::string& name) {
  double sum = 0;
  size_t pos = 0;
  while ((pos = text.find(name, pos)) != std::string::npos) {
    const bool line_start = pos == 0 || text[pos - 1] == '\n';
    const size_t eol = text.find('\n', pos);
    const std::string line = text.substr(pos, eol - pos);
    pos = eol == std::string::npos ? text.size() : eol;
    if (!line_start) continue;
    const size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    const std::string head = line.substr(0, sp);
    if (head != name && head.rfind(name + "{", 0) != 0) continue;
    sum += std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return sum;
}

TEST_F(HttpGroupCommitTest, ConcurrentInsertsOverKeepAliveAreAllAcknowledgedAndReadable) {
  constexpr int kClients = 16;
  constexpr int kPerClient = 40;
  std::atomic<int> acknowledged{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      Client c = Connect();
      for (int i = 0; i < kPerClient; ++i) {
        const int id = 1 + t * kPerClient + i;
        Reply r = c.Post("/v1/insert", "{\"doc_id\": " + std::to_string(id) +
                                           ", \"embedding\": [1, 2, 3, " + std::to_string(id) +
                                           "]}");
        if (r.status == 200u && r.body.find("\"doc_id\":" + std::to_string(id)) !=
                                    std::string::npos) {
          acknowledged.fetch_add(1);
        } else {
          ADD_FAILURE() << r.status << " " << r.body;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(acknowledged.load(), kClients * kPerClient);
  Client c = Connect();
  for (int id = 1; id <= kClients * kPerClient; ++id) {
    Reply r = c.Post("/v1/query", "{\"doc_id\": " + std::to_string(id) +
                                      ", \"include_embedding\": true}");
    ASSERT_EQ(r.status, 200u) << id << " " << r.body;
  }
  // The WAL grouped concurrent inserts: fewer fsyncs than records.
  const std::string metrics = c.Get("/metrics").body;
  const double records = MetricValue(metrics, "kyrodb_wal_records_total");
  const double fsyncs = MetricValue(metrics, "kyrodb_wal_fsyncs_total");
  EXPECT_GE(records, kClients * kPerClient);
  EXPECT_LT(fsyncs, records) << metrics;
  std::printf("[          ] %d inserts: %.0f WAL records, %.0f fsyncs\n", kClients * kPerClient,
              records, fsyncs);
}

TEST_F(HttpGroupCommitTest, InsertBatcherCommitsOffTheSubmittersThreadsAndDrainsOnDestruction) {
  // Submit only enqueues: the submitters' threads never run a commit or an acknowledgement
  // (a gRPC callback thread or an io thread must not wait through an fsync). Destroying the
  // batcher commits and acknowledges everything still queued.
  constexpr int kSubmitters = 4, kPerSubmitter = 50;
  std::mutex mu;
  std::set<std::thread::id> submitter_ids;
  std::vector<std::thread::id> done_ids;
  std::vector<int> failed;
  auto batcher = std::make_unique<InsertBatcher>(*service_, 512);
  std::vector<std::thread> submitters;
  for (int t = 0; t < kSubmitters; ++t) {
    submitters.emplace_back([&, t] {
      {
        std::lock_guard<std::mutex> l(mu);
        submitter_ids.insert(std::this_thread::get_id());
      }
      for (int i = 0; i < kPerSubmitter; ++i) {
        const int id = 1 + t * kPerSubmitter + i;
        Document doc{DocKey::Numeric(static_cast<uint64_t>(id)), {1, 2, 3, static_cast<float>(id)}, {}};
        batcher->Submit(RequestContext{}, "", std::move(doc), [&, id](const ApiStatus& e) {
          std::lock_guard<std::mutex> l(mu);
          done_ids.push_back(std::this_thread::get_id());
          if (e) failed.push_back(id);
        });
      }
    });
  }
  for (auto& t : submitters) t.join();
  batcher.reset();  // returns once every submitted insert is acknowledged
  ASSERT_EQ(done_ids.size(), static_cast<size_t>(kSubmitters * kPerSubmitter));
  EXPECT_TRUE(failed.empty()) << failed.size() << " inserts failed, the first: " << failed.front();
  for (const auto& id : done_ids) EXPECT_EQ(submitter_ids.count(id), 0u);
  Client c = Connect();
  for (int id = 1; id <= kSubmitters * kPerSubmitter; ++id) {
    ASSERT_EQ(c.Post("/v1/query", "{\"doc_id\": " + std::to_string(id) + "}").status, 200u) << id;
  }
  // Group commits: fewer fsyncs than documents.
  const std::string metrics = c.Get("/metrics").body;
  EXPECT_LT(MetricValue(metrics, "kyrodb_wal_fsyncs_total"), kSubmitters * kPerSubmitter) << metrics;
}

TEST_F(HttpGroupCommitTest, PipelinedInsertsAndReadsAreAnsweredInOrder) {
  Client c = Connect();
  // insert i, query i, insert i+1, ... in one write: each query sees the insert before it.
  std::string pipelined;
  constexpr int kDocs = 25;
  for (int i = 1; i <= kDocs; ++i) {
    const std::string ins = "{\"doc_id\": " + std::to_string(i) +
                            ", \"embedding\": [1, 1, 1, " + std::to_string(i) + "]}";
    const std::string q = "{\"doc_id\": " + std::to_string(i) + "}";
    for (const auto& [target, body] : {std::pair{"/v1/insert", ins}, std::pair{"/v1/query", q}}) {
      pipelined += std::string("POST ") + target +
                   " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    }
  }
  pipelined += "POST /v1/flush HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
  pipelined += "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  c.WriteRaw(pipelined);
  simdjson::dom::parser p;
  for (int i = 1; i <= kDocs; ++i) {
    Reply ins = c.Read();
    ASSERT_EQ(ins.status, 200u) << ins.body;
    EXPECT_EQ(uint64_t(ParseJson(p, ins.body)["doc_id"]), uint64_t(i));
    Reply q = c.Read();
    ASSERT_EQ(q.status, 200u) << q.body;
    EXPECT_EQ(uint64_t(ParseJson(p, q.body)["doc_id"]), uint64_t(i));
  }
  Reply flush = c.Read();
  EXPECT_EQ(flush.status, 200u) << flush.body;
  EXPECT_NE(flush.body.find("docs_flushed"), std::string::npos) << flush.body;
  Reply health = c.Read();
  EXPECT_EQ(health.status, 200u);
  EXPECT_NE(health.body.find("\"status\""), std::string::npos);
  // An insert refused before the batch (wrong dimension) is answered at once, in order too.
  Reply bad = c.Post("/v1/insert", "{\"doc_id\": 1000, \"embedding\": [1, 2]}");
  EXPECT_EQ(bad.status, 400u) << bad.body;
}

// ---------------------------------------------------------------------------------------------
// HTTPS

// Runs `openssl req` for a throwaway self-signed certificate; false if openssl is missing.
bool MakeSelfSigned(const std::string& key, const std::string& cert, const std::string& cn) {
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout '" + key +
                          "' -out '" + cert + "' -days 1 -subj /CN=" + cn +
                          " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// A synchronous Beast client over TLS that verifies the server against `ca_file`.
class TlsClient {
 public:
  TlsClient(uint16_t port, const std::string& ca_file, const std::string& client_cert = {},
            const std::string& client_key = {})
      : ctx_(Context(ca_file, client_cert, client_key)), stream_(ioc_, ctx_) {
    stream_.set_verify_mode(net::ssl::verify_peer);
    stream_.set_verify_callback(net::ssl::host_name_verification("localhost"));
    SSL_set_tlsext_host_name(stream_.native_handle(), "localhost");
    stream_.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }
  // The stream copies the certificate from the context when it is created.
  static net::ssl::context Context(const std::string& ca_file, const std::string& client_cert,
                                   const std::string& client_key) {
    net::ssl::context ctx(net::ssl::context::tls_client);
    ctx.load_verify_file(ca_file);
    if (!client_cert.empty()) {
      ctx.use_certificate_chain_file(client_cert);
      ctx.use_private_key_file(client_key, net::ssl::context::pem);
    }
    return ctx;
  }

  beast::error_code Handshake() {
    beast::error_code ec;
    stream_.handshake(net::ssl::stream_base::client, ec);
    if (!ec) {
      // TLS 1.3: a refused client certificate shows up on the first read, not the handshake.
      // A GET /health tells whether the server kept the connection.
      bhttp::request<bhttp::empty_body> req{bhttp::verb::get, "/health", 11};
      req.set(bhttp::field::host, "localhost");
      bhttp::write(stream_, req, ec);
      if (ec) return ec;
      bhttp::response<bhttp::string_body> res;
      bhttp::read(stream_, buffer_, res, ec);
    }
    return ec;
  }
  Reply Post(const std::string& target, const std::string& body) {
    bhttp::request<bhttp::string_body> req{bhttp::verb::post, target, 11};
    req.set(bhttp::field::host, "localhost");
    req.set(bhttp::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    bhttp::write(stream_, req);
    bhttp::response<bhttp::string_body> res;
    bhttp::read(stream_, buffer_, res);
    Reply r;
    r.status = res.result_int();
    r.body = res.body();
    return r;
  }

 private:
  net::io_context ioc_;
  net::ssl::context ctx_;
  net::ssl::stream<tcp::socket> stream_;
  beast::flat_buffer buffer_;
};

class HttpsTest : public HttpServerTest {
 protected:
  void SetUp() override {
    if (!MakeSelfSigned(dir_.File("k.pem"), dir_.File("c.pem"), "localhost")) {
      GTEST_SKIP() << "the openssl command is not available";
    }
    StartServer();
  }
  void Tune(ServerConfig& c) override {
    c.tls.enabled = true;
    c.tls.cert_file = dir_.File("c.pem");
    c.tls.key_file = dir_.File("k.pem");
    TuneTls(c);
  }
  virtual void TuneTls(ServerConfig&) {}
};

TEST_F(HttpsTest, InsertAndSearchOverTlsVerifyingTheServerCertificate) {
  TlsClient c(http_->port(), dir_.File("c.pem"));
  ASSERT_FALSE(c.Handshake()) << "handshake";
  Reply ins = c.Post("/v1/insert", "{\"doc_id\": 7, \"embedding\": [1, 0, 0, 0]}");
  ASSERT_EQ(ins.status, 200u) << ins.body;
  Reply found = c.Post("/v1/search", "{\"query_embedding\": [1, 0, 0, 0], \"k\": 1}");
  ASSERT_EQ(found.status, 200u) << found.body;
  EXPECT_NE(found.body.find("\"doc_id\":7"), std::string::npos) << found.body;
}

TEST_F(HttpsTest, ACertificateFromAnotherAuthorityIsRefusedByTheClient) {
  ASSERT_TRUE(MakeSelfSigned(dir_.File("other_k.pem"), dir_.File("other_c.pem"), "localhost"));
  TlsClient c(http_->port(), dir_.File("other_c.pem"));
  EXPECT_TRUE(c.Handshake());
}

TEST_F(HttpsTest, PlaintextHttpOnTheTlsPortGetsNoHttpAnswer) {
  Client c = Connect();
  c.WriteRaw("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  // The server answers with a TLS alert at most, then closes: never an HTTP reply.
  const std::string got = c.ReadUntilClosed();
  EXPECT_EQ(got.find("HTTP/"), std::string::npos) << got;
  // The server still serves TLS clients.
  TlsClient tls(http_->port(), dir_.File("c.pem"));
  EXPECT_FALSE(tls.Handshake());
}

class HttpsClientCertTest : public HttpsTest {
 protected:
  void TuneTls(ServerConfig& c) override {
    // The client's self-signed certificate is its own CA.
    ASSERT_TRUE(MakeSelfSigned(dir_.File("ck.pem"), dir_.File("cc.pem"), "client"));
    c.tls.ca_file = dir_.File("cc.pem");
  }
};

TEST_F(HttpsClientCertTest, OnlyClientsWithACertificateSignedByTheCaAreServed) {
  {
    TlsClient c(http_->port(), dir_.File("c.pem"), dir_.File("cc.pem"), dir_.File("ck.pem"));
    const beast::error_code ec = c.Handshake();
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(c.Post("/v1/insert", "{\"doc_id\": 1, \"embedding\": [1, 0, 0, 0]}").status,
              200u);
  }
  {
    TlsClient c(http_->port(), dir_.File("c.pem"));  // no client certificate
    EXPECT_TRUE(c.Handshake());
  }
  {
    // A certificate from another authority (the server's own key pair).
    TlsClient c(http_->port(), dir_.File("c.pem"), dir_.File("c.pem"), dir_.File("k.pem"));
    EXPECT_TRUE(c.Handshake());
  }
}

TEST(HttpServerConfigTest, StartFailsNamingAnUnreadableOrInvalidTlsFile) {
  testing::TempDir dir;
  const bool have_openssl = MakeSelfSigned(dir.File("k.pem"), dir.File("c.pem"), "localhost");
  {
    std::ofstream(dir.File("garbage.pem")) << "not a certificate\n";
  }
  struct Case {
    std::string cert, key, ca, mentions;
  };
  std::vector<Case> cases = {
      {dir.File("missing.pem"), dir.File("k.pem"), "", "missing.pem"},
      {dir.File("garbage.pem"), dir.File("k.pem"), "", "garbage.pem"},
  };
  if (have_openssl) {
    cases.push_back({dir.File("c.pem"), dir.File("garbage.pem"), "", "garbage.pem"});
    cases.push_back({dir.File("c.pem"), dir.File("k.pem"), dir.File("nope.pem"), "nope.pem"});
  }
  for (const Case& k : cases) {
    ServerConfig c;
    c.persistence.data_dir = dir.File("data");
    c.server.http_port = 0;
    c.hnsw.dimension = 4;
    c.tls.enabled = true;
    c.tls.cert_file = k.cert;
    c.tls.key_file = k.key;
    c.tls.ca_file = k.ca;
    auto service = Service::Open(c);
    ASSERT_TRUE(service.ok()) << service.status().ToString();
    auto h = HttpServer::Start(**service);
    ASSERT_FALSE(h.ok()) << k.mentions;
    EXPECT_NE(h.status().ToString().find(k.mentions), std::string::npos)
        << h.status().ToString();
    ASSERT_OK((*service)->Close());
  }
}

}  // namespace
}  // namespace kyrodb::server
