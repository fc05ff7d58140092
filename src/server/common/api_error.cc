#include "server/common/api_error.h"

#include <string_view>

namespace kyrodb::server {

namespace {

struct CodeInfo {
  const char* name;
  int http;
  int grpc;  // grpc::StatusCode values
};

// grpc::StatusCode: 3 INVALID_ARGUMENT, 5 NOT_FOUND, 6 ALREADY_EXISTS, 7 PERMISSION_DENIED,
// 8 RESOURCE_EXHAUSTED, 12 UNIMPLEMENTED, 13 INTERNAL, 14 UNAVAILABLE, 16 UNAUTHENTICATED.
CodeInfo Info(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidJson: return {"INVALID_JSON", 400, 3};
    case ErrorCode::kInvalidArgument: return {"INVALID_ARGUMENT", 400, 3};
    case ErrorCode::kUnknownField: return {"UNKNOWN_FIELD", 400, 3};
    case ErrorCode::kMissingField: return {"MISSING_FIELD", 400, 3};
    case ErrorCode::kDimensionMismatch: return {"DIMENSION_MISMATCH", 400, 3};
    case ErrorCode::kNonFiniteValue: return {"NON_FINITE_VALUE", 400, 3};
    case ErrorCode::kInvalidEmbedding: return {"INVALID_EMBEDDING", 400, 3};
    case ErrorCode::kInvalidDocId: return {"INVALID_DOC_ID", 400, 3};
    case ErrorCode::kInvalidK: return {"INVALID_K", 400, 3};
    case ErrorCode::kInvalidEfSearch: return {"INVALID_EF_SEARCH", 400, 3};
    case ErrorCode::kInvalidCollection: return {"INVALID_COLLECTION", 400, 3};
    case ErrorCode::kCollectionNotFound: return {"COLLECTION_NOT_FOUND", 404, 5};
    case ErrorCode::kDocumentNotFound: return {"DOCUMENT_NOT_FOUND", 404, 5};
    case ErrorCode::kRouteNotFound: return {"NOT_FOUND", 404, 12};
    case ErrorCode::kCollectionExists: return {"COLLECTION_EXISTS", 409, 6};
    case ErrorCode::kMethodNotAllowed: return {"METHOD_NOT_ALLOWED", 405, 12};
    case ErrorCode::kPayloadTooLarge: return {"PAYLOAD_TOO_LARGE", 413, 8};
    case ErrorCode::kUnsupportedMediaType: return {"UNSUPPORTED_MEDIA_TYPE", 415, 3};
    case ErrorCode::kUnauthenticated: return {"UNAUTHENTICATED", 401, 16};
    case ErrorCode::kPermissionDenied: return {"PERMISSION_DENIED", 403, 7};
    case ErrorCode::kResourceExhausted: return {"RESOURCE_EXHAUSTED", 429, 8};
    case ErrorCode::kNotReady: return {"NOT_READY", 503, 14};
    case ErrorCode::kUnavailable: return {"UNAVAILABLE", 503, 14};
    case ErrorCode::kInternal: return {"INTERNAL", 500, 13};
  }
  return {"INTERNAL", 500, 13};
}

bool Contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

}  // namespace

const char* ErrorCodeName(ErrorCode code) { return Info(code).name; }
int HttpStatus(ErrorCode code) { return Info(code).http; }
int GrpcCode(ErrorCode code) { return Info(code).grpc; }

ApiError FromStatus(const Status& status) {
  const std::string& m = status.message();
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
      if (Contains(m, "has dimension")) return {ErrorCode::kDimensionMismatch, m};
      if (Contains(m, "non-finite")) return {ErrorCode::kNonFiniteValue, m};
      if (Contains(m, "doc_id")) return {ErrorCode::kInvalidDocId, m};
      if (Contains(m, "ef_search")) return {ErrorCode::kInvalidEfSearch, m};
      if (Contains(m, "k must")) return {ErrorCode::kInvalidK, m};
      if (Contains(m, "zero vector") || Contains(m, "embedding")) return {ErrorCode::kInvalidEmbedding, m};
      if (Contains(m, "collection")) return {ErrorCode::kInvalidCollection, m};
      return {ErrorCode::kInvalidArgument, m};
    case StatusCode::kNotFound:
      if (Contains(m, "collection")) return {ErrorCode::kCollectionNotFound, m};
      return {ErrorCode::kDocumentNotFound, m};
    case StatusCode::kAlreadyExists: return {ErrorCode::kCollectionExists, m};
    case StatusCode::kResourceExhausted: return {ErrorCode::kResourceExhausted, m};
    case StatusCode::kUnavailable: return {ErrorCode::kUnavailable, m};
    case StatusCode::kFailedPrecondition: return {ErrorCode::kInvalidArgument, m};
    default: return {ErrorCode::kInternal, m};
  }
}

}  // namespace kyrodb::server
