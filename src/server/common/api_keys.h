// API keys: who is calling. Loaded from auth.api_keys_file, a YAML file
//
//   api_keys:
//     - key: "kyro_4f9c..."          # the secret the client sends
//       tenant_id: acme               # [A-Za-z0-9_.-]{1,128}; owns its collections
//       tenant_name: "Acme Corp"      # optional, for humans
//       is_admin: false               # snapshot, flush, drop across tenants, usage of all
//       enabled: true
//       max_qps: 500                  # optional: this tenant's rate limit (0: the default)
//       max_vectors: 1000000          # optional: quota over the tenant's collections (0: none)
//
// Clients send the key as `x-api-key: KEY` or `authorization: Bearer KEY` (HTTP headers and gRPC
// metadata alike). Keys are looked up by their SHA-256 digest and the digest is compared in
// constant time, so neither the lookup nor the comparison depends on how much of a guess is right.
// Reload() swaps in a new key set atomically (SIGHUP); a bad file keeps the old set.
// Each thread remembers the last few keys it authenticated (by digest, tagged with the key set's
// generation, so a reload invalidates them): a repeat caller costs a SHA-256 and no shared state.
// Thread-safety: Authenticate may run concurrently with Reload.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "kyrodb/status.h"
#include "server/common/api_error.h"

namespace kyrodb::server {

struct ApiKeyEntry {
  std::string tenant_id;
  std::string tenant_name;
  bool is_admin = false;
  bool enabled = true;
  double max_qps = 0;
  uint64_t max_vectors = 0;
};

// The caller a key stands for.
struct Principal {
  std::string tenant;
  bool is_admin = false;
  double max_qps = 0;
  uint64_t max_vectors = 0;
};

class ApiKeyStore {
 public:
  // Parses the YAML text; InvalidArgument naming the entry for a malformed or duplicate key.
  static Result<std::unique_ptr<ApiKeyStore>> FromYaml(const std::string& yaml_text);
  static Result<std::unique_ptr<ApiKeyStore>> FromFile(const std::string& path);
  ~ApiKeyStore();

  // UNAUTHENTICATED for a missing, unknown or disabled key.
  ApiResult<Principal> Authenticate(std::string_view key) const;
  // Re-reads `path`; on error the current keys stay.
  Status Reload(const std::string& path);
  size_t size() const;

  struct KeySet;

 private:
  ApiKeyStore();
  void Install(std::shared_ptr<const KeySet> keys);
  std::shared_ptr<const KeySet> Current() const;

  // A reader-writer lock, not std::atomic<std::shared_ptr>: libstdc++'s is a spin lock, and a
  // thread preempted while holding it (2 cores, busy io threads) makes the others spin.
  mutable std::shared_mutex mu_;
  std::shared_ptr<const KeySet> keys_;  // GUARDED_BY(mu_)
  // Unique across all stores and reloads of this process; the thread caches compare it.
  std::atomic<uint64_t> generation_{0};
};

// The key a request carries: `x-api-key`, else `authorization: Bearer <key>`; empty if none.
std::string_view ExtractApiKey(std::string_view x_api_key, std::string_view authorization);

}  // namespace kyrodb::server
