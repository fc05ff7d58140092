// VirtualRegion: a fixed range of address space reserved up front (MAP_NORESERVE) whose pages
// the kernel commits on first touch. Lets an index grow to `capacity` without ever moving
// memory that concurrent readers hold pointers into. Not thread-safe by itself; callers
// publish what they write.
#pragma once

#include <cstddef>

#include "kyrodb/status.h"

namespace kyrodb {

class VirtualRegion {
 public:
  VirtualRegion() = default;
  ~VirtualRegion();
  VirtualRegion(VirtualRegion&& o) noexcept;
  VirtualRegion& operator=(VirtualRegion&& o) noexcept;
  VirtualRegion(const VirtualRegion&) = delete;
  VirtualRegion& operator=(const VirtualRegion&) = delete;

  // Reserves `bytes` (rounded up to pages) of zero-filled address space.
  static Result<VirtualRegion> Reserve(size_t bytes);

  char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace kyrodb
