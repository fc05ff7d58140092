// InsertBatcher: coalesces concurrent single-document inserts (gRPC Insert, HTTP /v1/insert) into Service::BulkInsert calls,
// so that one WAL group commit (one fsync with fsync_policy: always) acknowledges many of them
// without a blocked thread per waiting call — the callback API has only a few threads.
//
// Leader/follower, no thread of its own: the submitter that finds no batch in progress becomes
// the leader and runs batches (up to max_batch documents each, grouped by tenant and collection,
// in arrival order) until the queue is empty; every other submitter enqueues and returns at once.
// `done` runs on the leader's thread, once per submitted document.
//
// Thread-safety: Submit may be called concurrently from any thread.
#pragma once

#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "server/common/service.h"

namespace kyrodb::server {

class InsertBatcher {
 public:
  using Done = std::function<void(const ApiStatus&)>;

  InsertBatcher(Service& service, size_t max_batch) : service_(service), max_batch_(max_batch) {}

  void Submit(RequestContext ctx, std::string collection, Document doc, Done done);

 private:
  struct Item {
    RequestContext ctx;
    std::string collection;
    Document doc;
    Done done;
  };
  void RunBatch(std::vector<Item>& batch);

  Service& service_;
  const size_t max_batch_;
  std::mutex mu_;
  std::vector<Item> queue_;  // guarded by mu_
  bool leader_active_ = false;  // guarded by mu_
};

}  // namespace kyrodb::server
