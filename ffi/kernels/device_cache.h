// Per-device caches of host-side queries (attributes, occupancy), so that
// launchers query each device once instead of on every call.
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>

namespace jax_fa3 {

// Devices per process that per-device caches cover; others query every call.
inline constexpr int kMaxCachedDevices = 64;

// The current device's value of `query(device)`, a positive int computed
// from host-side queries only (no stream work, so safe under graph capture),
// once per device. 0 when the query fails.
template <class Query>
int CachedForDevice(std::atomic<int> (&cache)[kMaxCachedDevices], const Query& query) {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  const bool cacheable = device >= 0 && device < kMaxCachedDevices;
  if (cacheable) {
    if (const int cached = cache[device].load(std::memory_order_relaxed); cached > 0) return cached;
  }
  const int value = query(device);
  if (value <= 0) {
    cudaGetLastError();
    return 0;
  }
  if (cacheable) cache[device].store(value, std::memory_order_relaxed);
  return value;
}

}  // namespace jax_fa3
