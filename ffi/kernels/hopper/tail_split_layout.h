// The dense target's scratch (params.h) and the room the Hopper kernel's
// tail split (tail_split_sm90.hpp) needs in it. Host only, no CUDA: the
// Python module sizes the scratch with it on every build.
#pragma once

#include <cstdint>

namespace jax_fa3::hopper {

// Bytes before the tail split's region: word 0 is the dynamic tile counter.
inline constexpr int64_t kTailScratchOffset = 256;
// Every tile config that takes the split has two consumer warpgroups.
inline constexpr int kTailConsumerThreads = 256;
inline constexpr int kTailCountsPerCta = kTailConsumerThreads / 32;  // one per consumer warp
// The CTAs the scratch has room for: the most SMs of an sm_90 part (H100
// SXM, H200). A GPU with more takes no split.
inline constexpr int kTailMaxCtas = 132;
// The split pays only where a tile has enough key blocks (TailSplit::Plan).
inline constexpr int64_t kTailMinKeys = 1024;

constexpr int64_t TailCountBytes(int64_t ctas) {
  return (ctas * kTailCountsPerCta * 4 + 255) / 256 * 256;
}
// One CTA's partial tile: per consumer thread its row statistics and 2 rows
// of head_dim / 4 O values, in 16-byte vectors (PartialTile).
constexpr int64_t TailSlotBytes(int head_dim) {
  return int64_t{16} * kTailConsumerThreads * (1 + head_dim / 8);
}
// The largest Hopper head-dim bucket a call of this head dim runs in
// (dispatch_fwd.cu: FP8 runs in 128 and 256 what 16-bit inputs run in 96
// and 192), so that the scratch fits every dtype's slots.
constexpr int HeadDimBucket(int64_t head_dim) { return head_dim <= 64 ? 64 : head_dim <= 128 ? 128 : 256; }

// int32 words of scratch for a dense call: the tile counter, and where the
// Hopper kernel may split the last round of its tiles (no mask, long keys,
// more 128-row tiles than the smallest sm_90 part's SMs) room for the split.
constexpr int64_t DenseScratchWords(int64_t batch, int64_t seqlen_q, int64_t seqlen_k, int64_t heads,
                                 int64_t head_dim, bool masked) {
  constexpr int64_t kTileRows = 128;
  constexpr int64_t kMinTiles = 64;
  const int64_t tiles = (seqlen_q + kTileRows - 1) / kTileRows * batch * heads;
  if (masked || seqlen_k < kTailMinKeys || tiles <= kMinTiles) return 1;
  const int64_t bytes =
      kTailScratchOffset + TailCountBytes(kTailMaxCtas) + kTailMaxCtas * TailSlotBytes(HeadDimBucket(head_dim));
  return bytes / 4;
}

}  // namespace jax_fa3::hopper
