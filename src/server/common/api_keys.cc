#include "server/common/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>

namespace kyrodb::server {

namespace {

using Digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;

Digest Sha256(std::string_view s) {
  Digest d;
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

struct DigestHash {
  size_t operator()(const Digest& d) const {
    size_t h;
    std::memcpy(&h, d.data(), sizeof(h));  // a uniform hash already
    return h;
  }
};

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
  store->keys_.store(std::move(keys).value());
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
  keys_.store(std::move(keys).value());
  return Status::Ok();
}

size_t ApiKeyStore::size() const { return keys_.load()->by_digest.size(); }

ApiResult<Principal> ApiKeyStore::Authenticate(std::string_view key) const {
  if (key.empty()) {
    return ApiError{ErrorCode::kUnauthenticated,
                    "missing API key: send 'x-api-key: KEY' or 'authorization: Bearer KEY'"};
  }
  const Digest d = Sha256(key);
  const std::shared_ptr<const KeySet> keys = keys_.load();
  auto it = keys->by_digest.find(d);
  if (it == keys->by_digest.end() || CRYPTO_memcmp(it->second.digest.data(), d.data(), d.size()) != 0) {
    return ApiError{ErrorCode::kUnauthenticated, "invalid API key"};
  }
  const ApiKeyEntry& e = it->second.entry;
  if (!e.enabled) return ApiError{ErrorCode::kUnauthenticated, "API key is disabled"};
  return Principal{e.tenant_id, e.is_admin, e.max_qps, e.max_vectors};
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
