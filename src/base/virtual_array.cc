#include "base/virtual_array.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace kyrodb {

VirtualRegion::~VirtualRegion() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

VirtualRegion::VirtualRegion(VirtualRegion&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}

VirtualRegion& VirtualRegion::operator=(VirtualRegion&& o) noexcept {
  if (this != &o) {
    if (data_ != nullptr) ::munmap(data_, size_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

Result<VirtualRegion> VirtualRegion::Reserve(size_t bytes) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  bytes = (bytes + page - 1) / page * page;
  if (bytes == 0) bytes = page;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    return Status::ResourceExhausted("cannot reserve " + std::to_string(bytes) +
                                     " bytes of address space: " + std::strerror(errno));
  }
  // Transparent huge pages where the kernel allows them (advice only; failure is harmless):
  // 512x fewer page faults while filling, and fewer TLB misses on the random accesses of a
  // graph walk.
  if (bytes >= (2u << 20)) ::madvise(p, bytes, MADV_HUGEPAGE);
  VirtualRegion r;
  r.data_ = static_cast<char*>(p);
  r.size_ = bytes;
  return r;
}

}  // namespace kyrodb
