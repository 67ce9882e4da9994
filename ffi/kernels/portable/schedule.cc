#include "kernels/portable/schedule.h"

namespace jax_fa3::portable {
namespace {
// H100 SXM's count, used only if the attribute query fails.
constexpr int kFallbackSms = 132;
}  // namespace

int NumSms() {
  static std::atomic<int> cache[kMaxCachedDevices] = {};
  const int sms = CachedForDevice(cache, [](int device) {
    int count = 0;
    return cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) == cudaSuccess ? count : 0;
  });
  return sms > 0 ? sms : kFallbackSms;
}

}  // namespace jax_fa3::portable
