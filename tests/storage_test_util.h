// A small real StateMachine for storage tests: documents in a std::map, one snapshot file.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "base/coding.h"
#include "storage/storage.h"

namespace kyrodb::testing {

class MapStateMachine : public storage::StateMachine {
 public:
  struct Doc {
    std::vector<float> embedding;
    storage::Metadata metadata;
    bool operator==(const Doc&) const = default;
  };
  using Key = std::tuple<std::string, std::string, uint64_t>;
  using Docs = std::map<Key, Doc>;

  Status Apply(const storage::WalRecord& r) override {
    std::lock_guard<std::mutex> l(mu_);
    ApplyTo(r, &docs_);
    return Status::Ok();
  }

  // The same semantics, on any map: tests use it to build the expected state.
  static void ApplyTo(const storage::WalRecord& r, Docs* docs) {
    Key k{r.tenant, r.collection, r.doc_id};
    switch (r.type) {
      case storage::RecordType::kUpsert:
        (*docs)[k] = Doc{r.embedding, r.metadata};
        break;
      case storage::RecordType::kDelete:
        docs->erase(k);
        break;
      case storage::RecordType::kUpdateMetadata: {
        auto it = docs->find(k);
        if (it == docs->end()) break;
        if (!r.merge_metadata) {
          it->second.metadata = r.metadata;
          break;
        }
        for (const auto& [key, value] : r.metadata) {
          bool found = false;
          for (auto& kv : it->second.metadata) {
            if (kv.first == key) {
              kv.second = value;
              found = true;
            }
          }
          if (!found) it->second.metadata.emplace_back(key, value);
        }
        break;
      }
      case storage::RecordType::kCreateCollection:
        break;
      case storage::RecordType::kDropCollection:
        for (auto it = docs->begin(); it != docs->end();) {
          if (std::get<0>(it->first) == r.tenant && std::get<1>(it->first) == r.collection) {
            it = docs->erase(it);
          } else {
            ++it;
          }
        }
        break;
    }
  }

  Status SaveSnapshot(storage::SnapshotWriter* w) override {
    Docs copy;
    {
      std::lock_guard<std::mutex> l(mu_);
      copy = docs_;
    }
    std::string out;
    coding::PutFixed64(&out, copy.size());
    for (const auto& [k, d] : copy) {
      storage::WalRecord r;
      r.type = storage::RecordType::kUpsert;
      std::tie(r.tenant, r.collection, r.doc_id) = k;
      r.embedding = d.embedding;
      r.metadata = d.metadata;
      coding::PutLengthPrefixed(&out, storage::EncodePayload(r));
    }
    auto f = w->NewFile("docs");
    if (!f.ok()) return f.status();
    KYRODB_RETURN_IF_ERROR((*f)->Append(out.data(), out.size()));
    return (*f)->Close();
  }

  Status LoadSnapshot(const storage::SnapshotReader& r) override {
    const std::string path = r.PathOf("docs");
    auto data = io::ReadFileToString(r.fs(), path);
    if (!data.ok()) return data.status();
    std::string_view in(*data);
    uint64_t n;
    if (!coding::GetFixed64(&in, &n)) return Status::Corruption("docs: truncated");
    Docs docs;
    for (uint64_t i = 0; i < n; ++i) {
      std::string_view payload;
      storage::WalRecord rec;
      if (!coding::GetLengthPrefixed(&in, &payload)) return Status::Corruption("docs: truncated");
      KYRODB_RETURN_IF_ERROR(storage::DecodePayload(storage::RecordType::kUpsert, payload, &rec));
      ApplyTo(rec, &docs);
    }
    std::lock_guard<std::mutex> l(mu_);
    docs_ = std::move(docs);
    return Status::Ok();
  }

  void Clear() override {
    std::lock_guard<std::mutex> l(mu_);
    docs_.clear();
  }

  Docs docs() const {
    std::lock_guard<std::mutex> l(mu_);
    return docs_;
  }

 private:
  mutable std::mutex mu_;
  Docs docs_;
};

// Readable gtest failure messages for document maps.
inline void PrintTo(const MapStateMachine::Doc& d, std::ostream* os) {
  *os << "{embedding " << ::testing::PrintToString(d.embedding) << ", metadata "
      << ::testing::PrintToString(d.metadata) << "}";
}

}  // namespace kyrodb::testing
