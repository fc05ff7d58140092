// InsertBatcher: coalesces concurrent single-document inserts (gRPC Insert, HTTP /v1/insert) into Service::BulkInsert calls,
// so that one WAL group commit (one fsync with fsync_policy: always) acknowledges many of them
// without a blocked thread per waiting call — the callback API has only a few threads.
//
// Leader/follower, no thread of its own: the submitter that finds no batch in progress becomes
// the leader and runs batches (up to max_batch documents each, grouped by tenant and collection,
// in arrival order) until the queue is empty; every other submitter enqueues and returns at once.
// `done` runs on the leader's thread, once per submitted document.
//
// Gathering (fsync_policy always, persistence.group_commit_wait_us > 0): writers acknowledged by
// one commit send their next insert while the next commit is already under way, so C clients
// split into two alternating groups of C/2 and every fsync carries half of them. After a commit
// of n > 1 documents, with q queued meanwhile, the leader therefore waits until n + q documents
// are queued (the acknowledged writers are back), or until min(group_commit_wait_us, half the
// last commit's time) has passed — a short wait that merges the groups under load and never
// happens for a lone writer (as PostgreSQL's commit_delay).
//
// Thread-safety: Submit may be called concurrently from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
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

  InsertBatcher(Service& service, size_t max_batch);

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
  const std::chrono::microseconds max_gather_;  // 0: never wait
  std::mutex mu_;
  std::condition_variable gathered_;
  std::vector<Item> queue_;  // guarded by mu_
  bool leader_active_ = false;  // guarded by mu_
  size_t gather_target_ = 0;    // guarded by mu_; > 0 while the leader waits for this many
};

}  // namespace kyrodb::server
