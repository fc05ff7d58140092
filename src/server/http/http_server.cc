#include "server/http/http_server.h"
// Stub: the HTTP server lands with its own commit.
