// The gRPC server's transport credentials from config.tls: plaintext when TLS is off; else TLS
// with the PEM certificate chain and private key, and, when tls.ca_file is set, client
// certificates required and verified against that CA bundle (mutual TLS). The files are read and
// checked here (parsable PEM, the key matches the certificate) so that a bad file is a clear
// startup error naming it, not a failed listen.
// Thread-safety: a pure function.
#pragma once

#include <grpcpp/security/server_credentials.h>

#include <memory>

#include "kyrodb/status.h"
#include "server/common/config.h"

namespace kyrodb::server {

Result<std::shared_ptr<::grpc::ServerCredentials>> GrpcServerCredentials(
    const ServerConfig::Tls& tls);

}  // namespace kyrodb::server
