#include "server/grpc/grpc_server.h"
#include "kyrodb/v1/kyrodb.grpc.pb.h"
// Stub: the gRPC server lands with its own commit.
