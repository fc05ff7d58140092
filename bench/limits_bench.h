// kyrodb_bench limits: the per-request cost of the security checks (API key lookup, token
// buckets) in process, so their share of a request's latency is known.
#pragma once

#include <CLI/CLI.hpp>

namespace kyrodb::bench {

struct LimitsBenchConfig {
  size_t iterations = 2'000'000;
};

CLI::App* AddLimitsCommand(CLI::App* app, LimitsBenchConfig* config);
int RunLimitsBench(const LimitsBenchConfig& config);

}  // namespace kyrodb::bench
