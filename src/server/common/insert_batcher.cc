#include "server/common/insert_batcher.h"

#include <algorithm>
#include <utility>

namespace kyrodb::server {

InsertBatcher::InsertBatcher(Service& service, size_t max_batch)
    : service_(service),
      max_batch_(max_batch),
      max_gather_(service.config().persistence.fsync_policy == "always"
                      ? service.config().persistence.group_commit_wait_us
                      : 0),
      acker_([this] { RunAcks(); }),
      committer_([this] { Run(); }) {}

InsertBatcher::~InsertBatcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_.notify_one();
  committer_.join();  // commits what is queued, hands over its acknowledgements
  {
    std::lock_guard<std::mutex> lock(ack_mu_);
    ack_stop_ = true;
  }
  ack_ready_.notify_one();
  acker_.join();
}

void InsertBatcher::RunAcks() {
  std::vector<Ack> acks;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(ack_mu_);
      ack_ready_.wait(lock, [&] { return ack_stop_ || !acks_.empty(); });
      if (acks_.empty()) return;  // stopping, nothing left
      acks.swap(acks_);
    }
    for (Ack& a : acks) a.done(a.result);
    acks.clear();
  }
}

void InsertBatcher::Submit(RequestContext ctx, std::string collection, Document doc, Done done) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back({std::move(ctx), std::move(collection), std::move(doc), std::move(done)});
    wake = committer_idle_ || (gather_target_ > 0 && queue_.size() >= gather_target_);
  }
  if (wake) work_.notify_one();
}

void InsertBatcher::Run() {
  size_t last_size = 0;
  std::chrono::steady_clock::duration last_time{};
  std::vector<Item> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (queue_.empty()) {
        if (stop_) return;
        committer_idle_ = true;
        work_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        committer_idle_ = false;
        if (queue_.empty()) return;  // stopping, nothing left
        last_size = 0;  // a writer that found the committer asleep does not wait for others
      }
      if (last_size > 1 && max_gather_.count() > 0 && !stop_) {
        // The writers just acknowledged come back on top of those that queued meanwhile.
        const size_t target = std::min(last_size + queue_.size(), max_batch_);
        const auto wait = std::min<std::chrono::steady_clock::duration>(max_gather_, last_time / 2);
        gather_target_ = target;
        work_.wait_for(lock, wait, [&] { return stop_ || queue_.size() >= target; });
        gather_target_ = 0;
      }
      if (queue_.size() <= max_batch_) {
        batch.swap(queue_);
      } else {
        auto end = queue_.begin() + static_cast<std::ptrdiff_t>(max_batch_);
        batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(end));
        queue_.erase(queue_.begin(), end);
      }
    }
    const auto t0 = std::chrono::steady_clock::now();
    RunBatch(batch);
    last_time = std::chrono::steady_clock::now() - t0;
    last_size = batch.size();
    batch.clear();
  }
}

void InsertBatcher::RunBatch(std::vector<Item>& batch) {
  std::vector<bool> taken(batch.size(), false);
  std::vector<size_t> group;  // indices into batch of one (tenant, collection)
  std::vector<Document> docs;
  std::vector<Ack> acks;
  acks.reserve(batch.size());
  for (size_t first = 0; first < batch.size(); ++first) {
    if (taken[first]) continue;
    group.clear();
    docs.clear();
    for (size_t i = first; i < batch.size(); ++i) {
      if (taken[i] || batch[i].collection != batch[first].collection ||
          batch[i].ctx.tenant != batch[first].ctx.tenant) {
        continue;
      }
      taken[i] = true;
      group.push_back(i);
      docs.push_back(std::move(batch[i].doc));
    }
    BulkInsertReply reply = service_.BulkInsert(batch[first].ctx, batch[first].collection,
                                                std::move(docs));
    std::vector<ApiStatus> results(group.size());
    for (auto& [index, error] : reply.errors) {
      if (index < results.size()) results[index] = std::move(error);
    }
    // Every refused document carries its error; a count that does not add up means the call
    // failed in a way the reply cannot attribute, so nobody gets a false acknowledgement.
    const bool consistent = reply.inserted + reply.errors.size() == group.size();
    for (size_t j = 0; j < group.size(); ++j) {
      if (!results[j] && !consistent) {
        results[j] = ApiError{ErrorCode::kInternal, "insert failed (batch of " +
                                                        std::to_string(group.size()) + ")"};
      }
      acks.push_back({std::move(batch[group[j]].done), std::move(results[j])});
    }
  }
  {
    std::lock_guard<std::mutex> lock(ack_mu_);
    if (acks_.empty()) {
      acks_.swap(acks);
    } else {
      acks_.insert(acks_.end(), std::make_move_iterator(acks.begin()), std::make_move_iterator(acks.end()));
    }
  }
  ack_ready_.notify_one();
}

}  // namespace kyrodb::server
