// Division by a run-time constant as a multiply-high and a shift, for index
// math on the kernels' copy paths (a 32-bit integer division costs about 20
// instructions; this costs 3). Round-up multiplier method (Granlund and
// Montgomery): for d >= 1, shift = ceil(log2 d) and
// multiplier = floor(2^32 (2^shift - d) / d) + 1 give
// n / d = (umulhi(n, multiplier) + n) >> shift for every 0 <= n < 2^31.
#pragma once

#include <cstdint>

#include "kernels/host_device.h"

namespace jax_fa3 {

struct FastDivisor {
  int divisor = 1;
  uint32_t multiplier = 1;
  uint32_t shift = 0;

  FastDivisor() = default;
  explicit FastDivisor(int d) : divisor(d) {
    while ((uint64_t{1} << shift) < static_cast<uint64_t>(d)) ++shift;
    multiplier = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1);
  }

  // n in [0, 2^31).
  FA3_HD int Div(int n) const {
    const uint32_t u = static_cast<uint32_t>(n);
#if defined(__CUDA_ARCH__)
    const uint32_t hi = __umulhi(u, multiplier);
#else
    const uint32_t hi = static_cast<uint32_t>((static_cast<uint64_t>(u) * multiplier) >> 32);
#endif
    return static_cast<int>((hi + u) >> shift);
  }

  FA3_HD void DivMod(int n, int* quotient, int* remainder) const {
    *quotient = Div(n);
    *remainder = n - *quotient * divisor;
  }
};

}  // namespace jax_fa3
