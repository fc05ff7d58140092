// Small helpers every test binary may use: ASSERT_OK and a self-removing temp directory.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

#include "kyrodb/status.h"

#define ASSERT_OK(expr)                    \
  do {                                     \
    ::kyrodb::Status _s = (expr);          \
    ASSERT_TRUE(_s.ok()) << _s.ToString(); \
  } while (0)

namespace kyrodb::testing {

// A fresh directory under /tmp, removed with its contents when the object goes away.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kyrodb_test_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace kyrodb::testing
