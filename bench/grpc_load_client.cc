// RunGrpcLoad: `concurrency` clients, each with its own channel (a local subchannel pool, so its
// own TCP connection) and one unary call in flight through the callback stub. The next call is
// issued from the previous call's callback, on gRPC's threads. Search requests are pre-built.
#include <fmt/format.h>
#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>

#include <latch>
#include <memory>
#include <optional>

#include "kyrodb/v1/kyrodb.grpc.pb.h"
#include "load_client.h"
#include "load_run.h"

namespace kyrodb::bench {
namespace {

namespace pb = kyrodb::v1;

constexpr std::chrono::seconds kRequestTimeout{30};
constexpr std::chrono::seconds kConnectTimeout{10};

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, size_t index) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("kyrodb.bench.client", static_cast<int>(index));  // distinct channels
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

std::string StatusText(const grpc::Status& s) {
  return fmt::format("gRPC {}: {}", static_cast<int>(s.error_code()), s.error_message());
}

// One client: a channel and one call in flight. Its calls complete one after another, so its
// members are used by one thread at a time.
class Client {
 public:
  Client(std::shared_ptr<grpc::Channel> channel, LoadRun& run,
         const std::vector<pb::SearchRequest>& searches, uint64_t seed, std::latch& done)
      : channel_(std::move(channel)),
        stub_(pb::KyroDBService::NewStub(channel_)),
        run_(run),
        searches_(searches),
        rng_(seed),
        done_(done) {
    const LoadSpec& spec = run.spec();
    (*insert_.mutable_metadata())["source"] = "kyrodb_bench";
    insert_.set_namespace_(spec.collection);
    query_.set_namespace_(spec.collection);
    query_.set_include_embedding(spec.include_embedding);
  }

  Status Connect() {
    if (!channel_->WaitForConnected(std::chrono::system_clock::now() + kConnectTimeout)) {
      return Status::IoError("gRPC: cannot connect to " + run_.spec().target);
    }
    return Status::Ok();
  }

  void Issue() {
    if (run_.stopped()) {
      done_.count_down();
      return;
    }
    kind_ = run_.NextKind(rng_);
    context_.emplace();
    context_->set_deadline(std::chrono::system_clock::now() + kRequestTimeout);
    t0_ = LoadClock::now();
    switch (kind_) {
      case RequestKind::kSearch:
        search_reply_.Clear();
        stub_->async()->Search(&*context_, &searches_[run_.NextVectorRow()], &search_reply_,
                               [this](grpc::Status s) { Done(s, search_reply_.error(), false); });
        break;
      case RequestKind::kInsert: {
        const FloatMatrix& v = *run_.spec().vectors;
        const float* row = v.Row(run_.NextVectorRow());
        insert_.set_doc_id(run_.NextInsertId());
        insert_.mutable_embedding()->Clear();
        insert_.mutable_embedding()->Add(row, row + v.dim);
        insert_reply_.Clear();
        stub_->async()->Insert(&*context_, &insert_, &insert_reply_, [this](grpc::Status s) {
          Done(s, insert_reply_.success() ? std::string() : "Insert: " + insert_reply_.error(), false);
        });
        break;
      }
      case RequestKind::kQuery:
        query_.set_doc_id(run_.RandomId(rng_));
        query_reply_.Clear();
        stub_->async()->Query(&*context_, &query_, &query_reply_, [this](grpc::Status s) {
          Done(s, query_reply_.error(), !query_reply_.found());
        });
        break;
    }
  }

  ClientTally& tally() { return tally_; }

 private:
  void Done(const grpc::Status& s, const std::string& app_error, bool not_found) {
    if (s.error_code() == grpc::StatusCode::NOT_FOUND && kind_ == RequestKind::kQuery) {
      run_.Record(tally_, kind_, t0_, Outcome::kNotFound);
    } else if (!s.ok()) {
      run_.Record(tally_, kind_, t0_, Outcome::kError, StatusText(s));
    } else if (!app_error.empty()) {
      run_.Record(tally_, kind_, t0_, Outcome::kError, app_error);
    } else {
      run_.Record(tally_, kind_, t0_, not_found ? Outcome::kNotFound : Outcome::kOk);
    }
    Issue();
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::KyroDBService::Stub> stub_;
  LoadRun& run_;
  const std::vector<pb::SearchRequest>& searches_;
  std::mt19937_64 rng_;
  std::latch& done_;
  // The call in flight. A context serves one call; the next one replaces it from the callback
  // (gRPC's callback tag keeps its own reference to the finished call).
  std::optional<grpc::ClientContext> context_;
  RequestKind kind_ = RequestKind::kSearch;
  LoadClock::time_point t0_;
  pb::InsertRequest insert_;
  pb::QueryRequest query_;
  pb::SearchResponse search_reply_;
  pb::InsertResponse insert_reply_;
  pb::QueryResponse query_reply_;
  ClientTally tally_;
};

}  // namespace

Result<LoadResult> RunGrpcLoad(const LoadSpec& spec) {
  if (spec.vectors == nullptr || spec.vectors->rows == 0) return Status::InvalidArgument("load: no vectors");
  std::vector<pb::SearchRequest> searches;
  if (spec.op == LoadOp::kSearch || spec.op == LoadOp::kMixed) {
    const FloatMatrix& v = *spec.vectors;
    searches.resize(v.rows);
    for (size_t r = 0; r < v.rows; ++r) {
      searches[r].mutable_query_embedding()->Add(v.Row(r), v.Row(r) + v.dim);
      searches[r].set_k(spec.k);
      searches[r].set_ef_search(spec.ef);
      searches[r].set_namespace_(spec.collection);
    }
  }

  LoadRun run(spec);
  std::latch done(static_cast<std::ptrdiff_t>(spec.concurrency));
  std::vector<std::unique_ptr<Client>> clients;
  for (size_t c = 0; c < spec.concurrency; ++c) {
    clients.push_back(std::make_unique<Client>(MakeChannel(spec.target, c), run, searches,
                                               spec.seed * 1000003 + c, done));
    if (Status s = clients.back()->Connect(); !s.ok()) return s;
  }

  run.Start();
  for (auto& c : clients) c->Issue();
  LoadResult result;
  run.Drive(&result);
  done.wait();  // every client has seen the stop after its call in flight

  std::vector<ClientTally> tallies;
  for (auto& c : clients) tallies.push_back(std::move(c->tally()));
  run.Merge(tallies, &result);
  return result;
}

}  // namespace kyrodb::bench
