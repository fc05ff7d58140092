#include "server/common/service.h"
// Stub: the real Service lands in the next commit.
namespace kyrodb::server {}
