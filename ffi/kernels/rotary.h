// Rotary position embedding, shared by the CPU path and the CUDA kernels.
//
// Pair c (0 <= c < rotary_dim / 2) of a row at position pos rotates by the
// angle whose cosine and sine are cos[pos][c], sin[pos][c]:
//   y0 = x0 cos - x1 sin,  y1 = x0 sin + x1 cos,
// over dims (c, c + rotary_dim / 2) (GPT-NeoX layout) or (2c, 2c + 1)
// (interleaved, GPT-J layout). Dims past rotary_dim are left alone.
#pragma once

#include "kernels/host_device.h"
#include "kernels/params.h"
#include "kernels/seqlen.h"

namespace jax_fa3 {

FA3_HD void RotaryPairDims(const Rotary& r, int c, int* d0, int* d1) {
  *d0 = r.interleaved ? 2 * c : c;
  *d1 = r.interleaved ? 2 * c + 1 : c + r.rotary_dim / 2;
}

// Table entry of pair c at position pos; positions past the table are
// clamped to its last row (never an out-of-bounds read).
FA3_HD int RotaryIndex(const Rotary& r, long long pos, int c) {
  const long long row = pos < 0 ? 0 : (pos >= r.seqlen_ro ? r.seqlen_ro - 1 : pos);
  return static_cast<int>(row) * (r.rotary_dim / 2) + c;
}

FA3_HD void RotatePair(float x0, float x1, float cos, float sin, float* y0, float* y1) {
  *y0 = x0 * cos - x1 * sin;
  *y1 = x0 * sin + x1 * cos;
}

// Absolute position of query token i (and of appended key i) of sequence b.
FA3_HD long long NewTokenPosition(const AttentionParams& p, int b, int i) {
  return static_cast<long long>(ClampInt(p.cache.seqlens[b], 0, p.cache.capacity)) + i;
}

}  // namespace jax_fa3
