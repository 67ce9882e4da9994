#include "kernels/portable/schedule.h"

#include <cuda_runtime_api.h>

#include <atomic>

namespace jax_fa3::portable {
namespace {
// Devices per process this cache covers; others are queried every call.
constexpr int kMaxCachedDevices = 64;
// H100 SXM's count, used only if the attribute query fails.
constexpr int kFallbackSms = 132;
}  // namespace

int NumSms() {
  static std::atomic<int> cache[kMaxCachedDevices] = {};
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();
    return kFallbackSms;
  }
  if (device >= 0 && device < kMaxCachedDevices) {
    if (const int cached = cache[device].load(std::memory_order_relaxed); cached > 0) return cached;
  }
  int sms = 0;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || sms <= 0) {
    cudaGetLastError();
    return kFallbackSms;
  }
  if (device >= 0 && device < kMaxCachedDevices) cache[device].store(sms, std::memory_order_relaxed);
  return sms;
}

}  // namespace jax_fa3::portable
