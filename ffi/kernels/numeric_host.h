// Scalar conversions for the CPU implementation (round to nearest even).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace jax_fa3::host {

inline float BitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

inline uint32_t FloatToBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

inline float Bf16ToFloat(uint16_t h) { return BitsToFloat(static_cast<uint32_t>(h) << 16); }

inline uint16_t FloatToBf16(float f) {
  uint32_t u = FloatToBits(f);
  if (std::isnan(f)) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

inline float F16ToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const int exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  if (exp == 0) return std::ldexp(static_cast<float>(mant), -24) * (sign ? -1.f : 1.f);
  if (exp == 31) return BitsToFloat(sign | 0x7f800000 | (mant << 13));
  return BitsToFloat(sign | static_cast<uint32_t>(exp - 15 + 127) << 23 | (mant << 13));
}

inline uint16_t FloatToF16(float f) {
  const uint32_t u = FloatToBits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  if (std::isnan(f)) return sign | 0x7e00;
  const float a = std::fabs(f);
  if (a >= 65520.f) return sign | 0x7c00;  // rounds to infinity
  if (a < 6.103515625e-05f) {              // subnormal: multiples of 2^-24
    const float q = std::nearbyint(a * 16777216.f);
    return sign | static_cast<uint16_t>(q);
  }
  uint32_t m = u & 0x7fffffff;
  m += 0xfff + ((m >> 13) & 1);
  const int exp = static_cast<int>(m >> 23) - 127 + 15;
  return sign | static_cast<uint16_t>(exp << 10) | static_cast<uint16_t>((m >> 13) & 0x3ff);
}

// float8_e4m3fn: no infinities, 0x7f/0xff are NaN.
inline float F8E4M3ToFloat(uint8_t x) {
  const float sign = (x & 0x80) ? -1.f : 1.f;
  const int exp = (x >> 3) & 0xf;
  const int mant = x & 0x7;
  if (exp == 15 && mant == 7) return NAN;
  if (exp == 0) return sign * std::ldexp(static_cast<float>(mant), -9);
  return sign * std::ldexp(1.f + mant / 8.f, exp - 7);
}

}  // namespace jax_fa3::host
