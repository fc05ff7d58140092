// kyrodb_bench decode: the HTTP server's request decoding of a search body, as its search
// handler runs it (http::TryDecodeSearchFast, one pass without simdjson, else JsonBody::Parse +
// DecodeSearch) against simdjson On-Demand reading the same body element by element
// (get_double per number, as a decoder written directly on simdjson does), side by side in one
// run, alternating, over the number forms clients send: float32 printed shortest (C++ clients,
// this tool's load generator) and float32 widened to double and printed shortest (Python's
// json.dumps of numpy's tolist(), ~17 significant digits). Both sides produce the same floats
// (checked). Reports µs per body and the ratio.
#pragma once

#include <CLI/CLI.hpp>

namespace kyrodb::bench {

struct DecodeBenchConfig {
  size_t dim = 768;
  size_t bodies = 64;        // distinct bodies, cycled
  size_t iterations = 20000;  // bodies decoded per side and round
  size_t rounds = 5;          // alternating rounds; the medians are reported
  uint64_t seed = 1;
};

CLI::App* AddDecodeCommand(CLI::App* app, DecodeBenchConfig* config);
int RunDecodeBench(const DecodeBenchConfig& config);

}  // namespace kyrodb::bench
