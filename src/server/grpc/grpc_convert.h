// Conversions between the v1 protocol's messages (kyrodb.v1) and the engine/Service types, and
// ApiError -> grpc::Status. Decoders copy the embedding once (one memcpy from the repeated field)
// and report errors naming the request's field; encoders move strings out of the replies.
// Thread-safety: pure functions.
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "kyrodb/types.h"
#include "kyrodb/v1/kyrodb.pb.h"
#include "server/common/api_error.h"
#include "server/common/metadata_filter.h"
#include "server/common/service.h"

namespace kyrodb::server::grpc_convert {

namespace pb = ::kyrodb::v1;

// grpc::Status(GrpcCode(error.code), error.message).
::grpc::Status ToGrpcStatus(const ApiError& error);

// Decoders. Ids are numeric (the v1 protocol has no string ids); Service validates them.
Document ToDocument(const pb::InsertRequest& request);
Metadata ToMetadata(const google::protobuf::Map<std::string, std::string>& map);

// The request's filter: `filter` (when set) AND the deprecated `metadata_filters` map (exact
// matches). `*has_filter` is false when the request filters nothing. Errors name the field path
// ("filter.and_filter.filters[1].range: no bound set").
ApiStatus ToFilter(const pb::SearchRequest& request, MetadataFilter* out, bool* has_filter);
// One MetadataFilter message; `field` is its path for error messages. An unset oneof is an error.
ApiStatus ToFilter(const pb::MetadataFilter& filter, const std::string& field, MetadataFilter* out);

// SearchRequest without the filter (Service::Search takes it separately). A min_score of 0 means
// "not set" (proto3 scalars have no presence).
SearchRequest ToSearchRequest(const pb::SearchRequest& request);

// Encoders.
void FillSearchResponse(SearchReply&& reply, pb::SearchResponse* out);
void FillQueryResponse(GetResult&& doc, pb::QueryResponse* out);
pb::QueryResponse::Tier ToProtoTier(Tier tier);

}  // namespace kyrodb::server::grpc_convert
