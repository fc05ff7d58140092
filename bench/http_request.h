// Small HTTP pieces for the benchmarks: parsing "http://host:port" and one blocking request on a
// fresh connection (flush, metrics, collection set-up; not for load — see load_client.h).
// Thread-safety: free functions; each call uses its own connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "kyrodb/status.h"

namespace kyrodb::bench {

struct HttpEndpoint {
  std::string host;
  uint16_t port = 0;

  std::string HostHeader() const { return host + ":" + std::to_string(port); }
};

// "http://host:port", "http://host:port/" or "host:port". InvalidArgument otherwise.
Result<HttpEndpoint> ParseHttpEndpoint(std::string_view url);

struct HttpReply {
  unsigned status = 0;
  std::string body;
};

// Sends `method target` with a JSON body (none if empty) and returns the reply. Connection and
// protocol failures (and the timeout) are an IOError; any HTTP status is a reply. A non-empty
// `api_key` is sent as x-api-key.
Result<HttpReply> HttpCall(const HttpEndpoint& endpoint, std::string_view method, std::string_view target,
                           std::string_view body, std::chrono::seconds timeout, std::string_view api_key = {});

}  // namespace kyrodb::bench
