// Tile shapes of the portable (sm_80+) forward kernel.
#pragma once

namespace jax_fa3::portable {

// kHeadDim is the compiled head-dim bucket; smaller head dims run in the next
// larger bucket with the tail columns zero-filled.
//
// kDecode: the variant for calls whose (packed) query rows fit one tile.
// Decoding is memory bound and each CTA waits on its oldest K/V tile, so it
// trades the tile size for pipeline depth: more bytes in flight per CTA
// (three 32-key tiles instead of one 64-key tile) in the same shared memory.
template <int kHeadDim_, bool kDecode_ = false>
struct TileConfig {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr bool kDecode = kDecode_;
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kRowsPerWarp = 16;  // one m16n8k16 row block per warp
  static constexpr int kBlockM = kRowsPerWarp * kWarps;
  // K and V tiles shrink for large head dims to stay under sm_89's 99 KB of
  // shared memory per block.
  static constexpr int kBlockN = kHeadDim <= 128 && !kDecode ? 64 : 32;
  // One 16-byte row pad keeps the 8 rows of every ldmatrix in distinct banks.
  static constexpr int kSmemStride = kHeadDim + 8;
  static constexpr int kVecElems = 8;  // elements per global load (16 B of 16-bit data)
  // K/V stages: two overlap the next tile's loads with this tile's math;
  // large head dims keep one to fit sm_89's shared memory.
  static constexpr int kStages = kHeadDim > 128 ? 1 : (kDecode ? 4 : 2);
  static constexpr int kSmemElems = (kBlockM + 2 * kStages * kBlockN) * kSmemStride;

  static_assert(kHeadDim % 16 == 0, "head dim bucket must be a multiple of the MMA K");
  static_assert(kBlockN % 16 == 0, "key tile must be a multiple of two MMA N tiles");
};

// The decode kernel (kernel_decode_sm80.cuh): one CTA holds at most 16
// packed query rows (a token times its head group), which every warp
// shares, and the warps split each kTileKeys-key stage between them, so
// that 4 warps keep the GEMMs busy without multiplying padding rows. Each
// warp keeps its own online softmax state; the warps merge at the end.
template <int kHeadDim_>
struct DecodeConfig {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockM = 16;  // packed query rows: one m16n8k16 row block
  static constexpr int kBlockN = 16;  // keys per warp and stage (what the warp GEMMs see)
  static constexpr int kTileKeys = kBlockN * kWarps;
  static constexpr int kSmemStride = kHeadDim + 8;  // as TileConfig: conflict-free ldmatrix
  static constexpr int kVecElems = 8;
  // The stage count is picked at launch from the device's shared memory
  // (two CTAs per SM); the ring never holds fewer than two.
  static constexpr int kMinStages = 2;
  static constexpr int kMaxStages = 6;
  static constexpr int kStageElems = 2 * kTileKeys * kSmemStride;  // K then V
  static constexpr int kQueryElems = kBlockM * kSmemStride;
  // The warps' partial outputs meet in the drained ring: fp32 rows padded by
  // 8 floats, so each half warp's 64-bit fragment stores (4 rows x 4 column
  // pairs) hit 32 distinct banks.
  static constexpr int kMergeStride = kHeadDim + 8;
  static constexpr int kMergeFloats = kWarps * kBlockM * (kMergeStride + 2);  // outputs, then (max, sum)
  // After them, a split's merged partial and lse for the cluster merge.
  static constexpr int kPartialFloats = kBlockM * (kHeadDim + 1);

  static_assert(kHeadDim % 16 == 0, "head dim bucket must be a multiple of the MMA K");
};

}  // namespace jax_fa3::portable
