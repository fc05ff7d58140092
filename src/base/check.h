// KYRODB_CHECK: aborts on a broken invariant (a bug), in every build type.
// Expected failures are Status values, never CHECKs.
#pragma once

#include <cstdio>
#include <cstdlib>

#define KYRODB_CHECK(cond)                                                          \
  do {                                                                              \
    if (__builtin_expect(!(cond), 0)) {                                             \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)
