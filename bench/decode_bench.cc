#include "decode_bench.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ann_metrics.h"
#include "json_line.h"
#include "server/http/request_decoder.h"

namespace kyrodb::bench {
namespace {

using Clock = std::chrono::steady_clock;
namespace sj = simdjson::ondemand;

// The body forms timed: the numbers' printing, and whether a filter follows the embedding.
struct Form {
  bool widen;   // each float printed as the double it widens to
  bool filter;  // a metadata filter after the embedding (the one-pass decoder leaves it to DecodeSearch)
  const char* name;
};
constexpr Form kForms[] = {
    {false, false, "float32 shortest (~9 digits)"},
    {true, false, "float32 widened to double, shortest (~17 digits)"},
    {false, true, "float32 shortest, a filter after the embedding"},
};

// A search body as a client sends it.
std::string Body(const std::vector<float>& v, const Form& form) {
  const bool widen = form.widen;
  std::string body = "{\"query_embedding\":[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) body += ',';
    if (widen) {
      fmt::format_to(std::back_inserter(body), "{}", static_cast<double>(v[i]));
    } else {
      fmt::format_to(std::back_inserter(body), "{}", v[i]);
    }
  }
  body += "],\"k\":10,\"ef_search\":64";
  if (form.filter) body += ",\"filter\":{\"exact\":{\"key\":\"tenant\",\"value\":\"acme\"}}";
  body += "}";
  return body;
}

// The contender: simdjson On-Demand, the embedding read element by element with get_double.
bool DecodeElementwise(sj::parser& parser, const simdjson::padded_string& body, std::vector<float>* out,
                       uint64_t* k) {
  out->clear();
  sj::document doc;
  if (parser.iterate(body).get(doc)) return false;
  sj::object obj;
  if (doc.get_object().get(obj)) return false;
  for (auto field : obj) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return false;
    if (key == "query_embedding") {
      sj::array arr;
      if (field.value().get_array().get(arr)) return false;
      for (auto el : arr) {
        double d;
        if (el.get_double().get(d)) return false;
        out->push_back(static_cast<float>(d));
      }
    } else if (key == "k") {
      if (field.value().get_uint64().get(*k)) return false;
    }  // anything else: On-Demand skips it
  }
  return true;
}

}  // namespace

CLI::App* AddDecodeCommand(CLI::App* app, DecodeBenchConfig* c) {
  CLI::App* cmd = app->add_subcommand(
      "decode", "HTTP search-body decoding: KyroDB's decoder against simdjson element by element");
  cmd->add_option("--dim", c->dim, "Embedding dimension")->check(CLI::Range(1, 65536));
  cmd->add_option("--bodies", c->bodies, "Distinct bodies, cycled")->check(CLI::Range(1, 100000));
  cmd->add_option("--iterations", c->iterations, "Bodies decoded per side and round")->check(CLI::PositiveNumber);
  cmd->add_option("--rounds", c->rounds, "Alternating rounds (medians reported)")->check(CLI::Range(1, 1000));
  cmd->add_option("--seed", c->seed, "Generator seed");
  return cmd;
}

int RunDecodeBench(const DecodeBenchConfig& c) {
  std::mt19937_64 rng(c.seed);
  std::normal_distribution<float> normal;
  for (const Form& form : kForms) {
    std::vector<std::string> bodies;
    std::vector<simdjson::padded_string> padded;
    for (size_t b = 0; b < c.bodies; ++b) {
      std::vector<float> v(c.dim);
      double norm = 0;
      for (float& x : v) {
        x = normal(rng);
        norm += static_cast<double>(x) * x;
      }
      for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));  // unit length, as embeddings
      bodies.push_back(Body(v, form));
      padded.emplace_back(bodies.back());
    }
    // Same floats from both sides, for every body.
    server::http::JsonBody jb;
    sj::parser parser;
    std::vector<float> theirs;
    size_t bytes = 0;
    for (size_t b = 0; b < bodies.size(); ++b) {
      bytes += bodies[b].size();
      std::string copy = bodies[b];
      server::http::SearchHttpRequest ours, full;
      uint64_t k = 0;
      // The handler's decoding, and DecodeSearch alone, must give the same floats as simdjson.
      std::string copy2 = bodies[b];
      if (server::http::DecodeSearchBody(jb, &copy2, c.dim, &ours) || jb.Parse(&copy) ||
          server::http::DecodeSearch(jb, c.dim, &full) || full.request.query != ours.request.query ||
          !DecodeElementwise(parser, padded[b], &theirs, &k) || ours.request.query.size() != theirs.size() ||
          std::memcmp(ours.request.query.data(), theirs.data(), theirs.size() * sizeof(float)) != 0 ||
          ours.request.k != k) {
        std::fprintf(stderr, "decode: the two decoders disagree on body %zu\n", b);
        return 1;
      }
    }
    std::vector<double> ours_us, theirs_us;
    uint64_t slow_path = 0;  // distinct bodies the one-pass decoder leaves to DecodeSearch
    for (const std::string& body : bodies) {
      server::http::SearchHttpRequest r;
      slow_path += server::http::TryDecodeSearchFast(body, c.dim, &r) ? 0 : 1;
    }
    std::vector<std::string> scratch(bodies.size());
    for (size_t round = 0; round < c.rounds; ++round) {
      // Ours decodes the body in place (the server's buffer); the copy back is timed on both
      // sides alike (the contender copies into its padded string's place too).
      auto t0 = Clock::now();
      for (size_t i = 0; i < c.iterations; ++i) {
        const size_t b = i % bodies.size();
        scratch[b].assign(bodies[b]);
        server::http::SearchHttpRequest ours;
        if (server::http::DecodeSearchBody(jb, &scratch[b], c.dim, &ours)) return 1;
        asm volatile("" : : "r"(ours.request.query.data()) : "memory");
      }
      auto t1 = Clock::now();
      ours_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / c.iterations);
      for (size_t i = 0; i < c.iterations; ++i) {
        const size_t b = i % bodies.size();
        scratch[b].assign(bodies[b]);
        uint64_t k = 0;
        if (!DecodeElementwise(parser, padded[b], &theirs, &k)) return 1;
        asm volatile("" : : "r"(theirs.data()), "r"(scratch[b].data()) : "memory");
      }
      auto t2 = Clock::now();
      theirs_us.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count() / c.iterations);
    }
    const double ours = Percentile(ours_us, 50), theirs_med = Percentile(theirs_us, 50);
    std::printf("%s\n", JsonLine()
                            .Add("bench", "decode")
                            .Add("numbers", form.name)
                            .Add("dim", static_cast<uint64_t>(c.dim))
                            .Add("body_bytes", static_cast<double>(bytes) / bodies.size())
                            .Add("rounds", static_cast<uint64_t>(c.rounds))
                            .Add("kyrodb_us_per_body", ours)
                            .Add("simdjson_elementwise_us_per_body", theirs_med)
                            .Add("speedup", ours > 0 ? theirs_med / ours : 0.0)
                            .Add("kyrodb_bodies_not_on_the_fast_path", slow_path)
                            .Add("distinct_bodies", static_cast<uint64_t>(bodies.size()))
                            .Add("note", "kyrodb: what the server's search handler runs, http::DecodeSearchBody "
                                         "(one pass without simdjson, else JsonBody::Parse + DecodeSearch taking the embedding the "
                                         "first pass read); simdjson: On-Demand, get_double per element, other keys skipped; both "
                                         "get the same floats (checked); medians of alternating rounds")
                            .str()
                            .c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace kyrodb::bench
