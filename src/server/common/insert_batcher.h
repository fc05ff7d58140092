// InsertBatcher: coalesces concurrent single-document inserts (gRPC Insert, HTTP /v1/insert) into
// Service::BulkInsert calls, so that one WAL group commit (one fsync with fsync_policy: always)
// acknowledges many of them.
//
// One committer thread of its own runs the batches (up to max_batch documents each, grouped by
// tenant and collection, in arrival order). Submit only enqueues (waking the committer if it
// sleeps) and returns: the caller, an io thread or one of gRPC's few callback threads, never
// waits for a commit. `done` runs once per submitted document on a second thread, the acker, so
// that acknowledging one batch (a gRPC reply is written by the thread that finishes the call)
// overlaps the next batch's commit instead of delaying it.
//
// Gathering (fsync_policy always, persistence.group_commit_wait_us > 0): writers acknowledged by
// one commit send their next insert while the next commit is already under way, so C clients
// split into two alternating groups of C/2 and every fsync carries half of them. After a commit
// of n > 1 documents, with q queued meanwhile, the committer therefore waits until n + q
// documents are queued (the acknowledged writers are back), or until min(group_commit_wait_us,
// half the last commit's time) has passed — a short wait that merges the groups under load and
// never happens for a lone writer (as PostgreSQL's commit_delay).
//
// Thread-safety: Submit may be called concurrently from any thread. The destructor commits what
// is queued (every `done` runs), then joins the committer.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/common/service.h"

namespace kyrodb::server {

class InsertBatcher {
 public:
  using Done = std::function<void(const ApiStatus&)>;

  InsertBatcher(Service& service, size_t max_batch);
  ~InsertBatcher();
  InsertBatcher(const InsertBatcher&) = delete;
  InsertBatcher& operator=(const InsertBatcher&) = delete;

  void Submit(RequestContext ctx, std::string collection, Document doc, Done done);

 private:
  struct Item {
    RequestContext ctx;
    std::string collection;
    Document doc;
    Done done;
  };
  struct Ack {
    Done done;
    ApiStatus result;
  };
  void Run();  // the committer thread
  void RunBatch(std::vector<Item>& batch);
  void RunAcks();  // the acker thread

  Service& service_;
  const size_t max_batch_;
  const std::chrono::microseconds max_gather_;  // 0: never wait
  std::mutex mu_;
  std::condition_variable work_;  // the committer waits here for inserts (or for enough of them)
  std::vector<Item> queue_;       // guarded by mu_
  bool committer_idle_ = false;   // guarded by mu_: it sleeps until the queue is not empty
  size_t gather_target_ = 0;      // guarded by mu_; > 0 while it waits for this many
  bool stop_ = false;             // guarded by mu_

  std::mutex ack_mu_;
  std::condition_variable ack_ready_;
  std::vector<Ack> acks_;         // guarded by ack_mu_
  bool ack_stop_ = false;         // guarded by ack_mu_

  std::thread acker_;             // last: they start once the rest is built
  std::thread committer_;
};

}  // namespace kyrodb::server
