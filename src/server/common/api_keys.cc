#include "server/common/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <unordered_map>

namespace kyrodb::server {

namespace {

using Digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;

// OpenSSL 3's one-shot SHA256() looks the algorithm up on every call, under a lock all threads
// share (1.1 µs per key check with two threads instead of 0.36 µs). The algorithm is fetched
// once and each thread keeps its own digest context.
const EVP_MD* Sha256Algorithm() {
  static const EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);  // process lifetime
  return md;
}

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

Digest Sha256(std::string_view s) {
  thread_local std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  Digest d{};
  unsigned int len = 0;
  const EVP_MD* md = Sha256Algorithm();
  if (md == nullptr || ctx == nullptr || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), s.data(), s.size()) != 1 || EVP_DigestFinal_ex(ctx.get(), d.data(), &len) != 1 ||
      len != d.size()) {
    // Never expected; fall back to the one-shot call rather than compare garbage.
    SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  }
  return d;
}

struct DigestHash {
  size_t operator()(const Digest& d) const {
    size_t h;
    std::memcpy(&h, d.data(), sizeof(h));  // a uniform hash already
    return h;
  }
};

// Generations of key sets: never reused, so a thread's cache entry can never match another
// store or an older key set of this one.
std::atomic<uint64_t> g_next_generation{1};

// The last keys this thread authenticated: (generation, digest) -> principal.
struct CachedKey {
  uint64_t generation = 0;  // 0: empty
  Digest digest{};
  Principal principal;
};
constexpr size_t kThreadCacheSize = 4;
struct ThreadCache {
  std::array<CachedKey, kThreadCacheSize> entries;
  size_t next = 0;  // round-robin replacement
};
thread_local ThreadCache t_cache;

bool ValidTenant(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  }
  return true;
}

}  // namespace

struct ApiKeyStore::KeySet {
  struct Item {
    Digest digest;
    ApiKeyEntry entry;
  };
  std::unordered_map<Digest, Item, DigestHash> by_digest;
};

ApiKeyStore::ApiKeyStore() = default;
ApiKeyStore::~ApiKeyStore() = default;

static Result<std::shared_ptr<const ApiKeyStore::KeySet>> ParseKeys(const std::string& text) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(std::string("api keys file: YAML error: ") + e.what());
  }
  if (!root.IsMap() || !root["api_keys"] || !root["api_keys"].IsSequence()) {
    return Status::InvalidArgument("api keys file: expected a top-level 'api_keys:' list");
  }
  auto set = std::make_shared<ApiKeyStore::KeySet>();
  size_t i = 0;
  for (const YAML::Node& n : root["api_keys"]) {
    const std::string where = "api keys file: entry " + std::to_string(i++);
    if (!n.IsMap()) return Status::InvalidArgument(where + ": expected a map");
    ApiKeyEntry e;
    std::string key;
    try {
      for (const auto& kv : n) {
        const std::string k = kv.first.as<std::string>();
        if (k == "key") key = kv.second.as<std::string>();
        else if (k == "tenant_id") e.tenant_id = kv.second.as<std::string>();
        else if (k == "tenant_name") e.tenant_name = kv.second.as<std::string>();
        else if (k == "is_admin") e.is_admin = kv.second.as<bool>();
        else if (k == "enabled") e.enabled = kv.second.as<bool>();
        else if (k == "max_qps") e.max_qps = kv.second.as<double>();
        else if (k == "max_vectors") e.max_vectors = kv.second.as<uint64_t>();
        else return Status::InvalidArgument(where + ": unknown field '" + k + "'");
      }
    } catch (const YAML::Exception& ex) {
      return Status::InvalidArgument(where + ": bad value: " + ex.what());
    }
    if (key.size() < 16) return Status::InvalidArgument(where + ": key must be at least 16 characters");
    if (!ValidTenant(e.tenant_id)) {
      return Status::InvalidArgument(where + ": tenant_id must be 1..128 of [A-Za-z0-9_.-]");
    }
    if (e.max_qps < 0) return Status::InvalidArgument(where + ": max_qps must be >= 0");
    const Digest d = Sha256(key);
    if (!set->by_digest.emplace(d, ApiKeyStore::KeySet::Item{d, std::move(e)}).second) {
      return Status::InvalidArgument(where + ": duplicate key");
    }
  }
  return std::shared_ptr<const ApiKeyStore::KeySet>(std::move(set));
}

Result<std::unique_ptr<ApiKeyStore>> ApiKeyStore::FromYaml(const std::string& yaml_text) {
  auto keys = ParseKeys(yaml_text);
  if (!keys.ok()) return keys.status();
  std::unique_ptr<ApiKeyStore> store(new ApiKeyStore());
  store->Install(std::move(keys).value());
  return store;
}

static Result<std::string> ReadAll(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Status::InvalidArgument("cannot read api keys file '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Result<std::unique_ptr<ApiKeyStore>> ApiKeyStore::FromFile(const std::string& path) {
  auto text = ReadAll(path);
  if (!text.ok()) return text.status();
  return FromYaml(*text);
}

Status ApiKeyStore::Reload(const std::string& path) {
  auto text = ReadAll(path);
  if (!text.ok()) return text.status();
  auto keys = ParseKeys(*text);
  if (!keys.ok()) return keys.status();
  Install(std::move(keys).value());
  return Status::Ok();
}

void ApiKeyStore::Install(std::shared_ptr<const KeySet> keys) {
  std::unique_lock<std::shared_mutex> l(mu_);
  keys_ = std::move(keys);
  generation_.store(g_next_generation.fetch_add(1, std::memory_order_relaxed), std::memory_order_release);
}

std::shared_ptr<const ApiKeyStore::KeySet> ApiKeyStore::Current() const {
  std::shared_lock<std::shared_mutex> l(mu_);
  return keys_;
}

size_t ApiKeyStore::size() const { return Current()->by_digest.size(); }

ApiResult<Principal> ApiKeyStore::Authenticate(std::string_view key) const {
  if (key.empty()) {
    return ApiError{ErrorCode::kUnauthenticated,
                    "missing API key: send 'x-api-key: KEY' or 'authorization: Bearer KEY'"};
  }
  const Digest d = Sha256(key);
  // Read before the key set: a reload in between leaves entries tagged with the old generation,
  // which the next call no longer matches.
  const uint64_t generation = generation_.load(std::memory_order_acquire);
  for (const CachedKey& c : t_cache.entries) {
    if (c.generation == generation && CRYPTO_memcmp(c.digest.data(), d.data(), d.size()) == 0) {
      return c.principal;
    }
  }
  const std::shared_ptr<const KeySet> keys = Current();
  auto it = keys->by_digest.find(d);
  if (it == keys->by_digest.end() || CRYPTO_memcmp(it->second.digest.data(), d.data(), d.size()) != 0) {
    return ApiError{ErrorCode::kUnauthenticated, "invalid API key"};
  }
  const ApiKeyEntry& e = it->second.entry;
  if (!e.enabled) return ApiError{ErrorCode::kUnauthenticated, "API key is disabled"};
  Principal p{e.tenant_id, e.is_admin, e.max_qps, e.max_vectors};
  CachedKey& slot = t_cache.entries[t_cache.next];
  t_cache.next = (t_cache.next + 1) % kThreadCacheSize;
  slot.generation = generation;
  slot.digest = d;
  slot.principal = p;
  return p;
}

std::string_view ExtractApiKey(std::string_view x_api_key, std::string_view authorization) {
  if (!x_api_key.empty()) return x_api_key;
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() > kBearer.size()) {
    bool match = true;
    for (size_t i = 0; i < kBearer.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
          std::tolower(static_cast<unsigned char>(kBearer[i]))) {
        match = false;
        break;
      }
    }
    if (match) return authorization.substr(kBearer.size());
  }
  return {};
}

}  // namespace kyrodb::server
