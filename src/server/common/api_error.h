// The errors the servers report, and the one place that maps them to HTTP status codes and gRPC
// codes. Both transports build an ApiError (from request decoding or from Service) and hand it to
// their writer: HTTP answers {"error": message, "error_code": name} with HttpStatus(code); gRPC
// answers grpc::Status(GrpcCode(code), message). Thread-safety: plain values.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "kyrodb/status.h"

namespace kyrodb::server {

enum class ErrorCode {
  kInvalidJson,           // INVALID_JSON            400 / INVALID_ARGUMENT
  kInvalidArgument,       // INVALID_ARGUMENT        400 / INVALID_ARGUMENT
  kUnknownField,          // UNKNOWN_FIELD           400 / INVALID_ARGUMENT
  kMissingField,          // MISSING_FIELD           400 / INVALID_ARGUMENT
  kDimensionMismatch,     // DIMENSION_MISMATCH      400 / INVALID_ARGUMENT
  kNonFiniteValue,        // NON_FINITE_VALUE        400 / INVALID_ARGUMENT
  kInvalidEmbedding,      // INVALID_EMBEDDING       400 / INVALID_ARGUMENT (empty, too long, zero for cosine)
  kInvalidDocId,          // INVALID_DOC_ID          400 / INVALID_ARGUMENT
  kInvalidK,              // INVALID_K               400 / INVALID_ARGUMENT
  kInvalidEfSearch,       // INVALID_EF_SEARCH       400 / INVALID_ARGUMENT
  kInvalidCollection,     // INVALID_COLLECTION      400 / INVALID_ARGUMENT (bad name or options)
  kCollectionNotFound,    // COLLECTION_NOT_FOUND    404 / NOT_FOUND
  kDocumentNotFound,      // DOCUMENT_NOT_FOUND      404 / NOT_FOUND
  kRouteNotFound,         // NOT_FOUND               404 / UNIMPLEMENTED
  kCollectionExists,      // COLLECTION_EXISTS       409 / ALREADY_EXISTS
  kMethodNotAllowed,      // METHOD_NOT_ALLOWED      405 / UNIMPLEMENTED
  kPayloadTooLarge,       // PAYLOAD_TOO_LARGE       413 / RESOURCE_EXHAUSTED
  kUnsupportedMediaType,  // UNSUPPORTED_MEDIA_TYPE  415 / INVALID_ARGUMENT
  kUnauthenticated,       // UNAUTHENTICATED         401 / UNAUTHENTICATED
  kPermissionDenied,      // PERMISSION_DENIED       403 / PERMISSION_DENIED
  kResourceExhausted,     // RESOURCE_EXHAUSTED      429 / RESOURCE_EXHAUSTED
  kNotReady,              // NOT_READY               503 / UNAVAILABLE
  kUnavailable,           // UNAVAILABLE             503 / UNAVAILABLE (WAL circuit breaker open)
  kInternal,              // INTERNAL                500 / INTERNAL
};

const char* ErrorCodeName(ErrorCode code);  // "DIMENSION_MISMATCH", ...
int HttpStatus(ErrorCode code);             // 400, 404, ...
int GrpcCode(ErrorCode code);               // numeric grpc::StatusCode (3 = INVALID_ARGUMENT, ...)

struct ApiError {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;  // a human sentence naming the field or object
};

// Maps an engine Status (not OK) to the API error a client sees. The engine's messages already
// name the field; the code is refined from the message where the engine has no finer code
// (e.g. "has dimension" -> DIMENSION_MISMATCH).
ApiError FromStatus(const Status& status);

// A value or an ApiError.
template <typename T>
class [[nodiscard]] ApiResult {
 public:
  ApiResult(T value) : v_(std::move(value)) {}       // NOLINT(google-explicit-constructor)
  ApiResult(ApiError error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return v_.index() == 0; }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const ApiError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, ApiError> v_;
};

// No value, or an ApiError.
using ApiStatus = std::optional<ApiError>;  // nullopt = OK

}  // namespace kyrodb::server
