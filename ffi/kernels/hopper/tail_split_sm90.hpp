// A dense call's last round of tiles, cut into runs of key blocks across
// every CTA (stream-K for the tail; TailSplitParams says who takes what).
//
// Without a mask every tile of a dense call takes as long as any other, so a
// persistent grid of G CTAs runs ceil(T / G) rounds: b2 h16 s8192 (2048
// tiles of 128 rows on 132 SMs, 15.5 rounds of work) took as long as 2112
// tiles (1.545 and 1.563 ms; bench/NOTES.md, v49). Under the split, every
// CTA takes an equal run of the last round's key blocks. A tile whose
// blocks span several runs is finished by the CTA that holds its first
// blocks (the owner): each other CTA writes its piece's partial tile
// (PartialTile) to its slot of global memory and counts it in the owner's
// counter of each consumer warp; the owner's producer warp waits for the
// counts, and its consumers fold the partial tiles into their own in a fixed
// order (so that the output does not depend on timing) and store the tile.
//
// A contribution is a CTA's first piece of the tail, and an owner waits
// only for CTAs of lower index: it assumes that those run at the same time
// or start earlier, as a persistent grid of at most one CTA per SM does.
#pragma once

#include "kernels/hopper/partial_tile.hpp"
#include "kernels/hopper/tail_split_layout.h"
#include "kernels/hopper/tile_config.h"

namespace jax_fa3::hopper {

template <class Cfg>
struct TailSplit {
  static constexpr int kThreads = Cfg::kConsumerThreads;
  static_assert(!Cfg::kTailSplit || kThreads == kTailConsumerThreads);
  static constexpr int kCountsPerCta = kTailCountsPerCta;
  using Partial = PartialTile<kThreads>;
  // One thread's O values: 2 rows of kHeadDim / 4 columns (TailSlotBytes).
  static constexpr int kSlotVectors = Partial::template kVectors<Cfg::kHeadDim / 4> * kThreads;
  static_assert(!Cfg::kTailSplit || int64_t{kSlotVectors} * 16 == TailSlotBytes(Cfg::kHeadDim));

  // Where it applies: a dense call without a mask (its tiles all alike,
  // each of `blocks` key blocks), more tiles than CTAs but no multiple of
  // them, at least a unit per CTA, and room for every CTA in the scratch.
  // Where it pays: the CTAs the last round leaves idle, (grid - tail
  // tiles) x blocks block times, come to kMinSavedBlocks a CTA or more; it
  // costs each CTA a partial tile's write or read and one more tile start.
  // Null counts: no split.
  static constexpr int kMinSavedBlocks = 4;
  static __host__ TailSplitParams Plan(const AttentionParams& p, int num_tiles, int grid) {
    TailSplitParams t;
    if (!Cfg::kTailSplit || p.tail_split == TailSplitMode::kNever || p.tail_scratch == nullptr ||
        p.is_varlen() || p.window_left >= 0 || p.window_right >= 0) {
      return t;
    }
    const int rounds = num_tiles / grid;
    const int tail_tiles = num_tiles % grid;
    const int blocks = (p.seqlen_k + Cfg::kBlockN - 1) / Cfg::kBlockN;
    if (rounds == 0 || tail_tiles == 0 || blocks < 2) return t;
    if (p.tail_split == TailSplitMode::kWherePays &&
        int64_t{grid - tail_tiles} * blocks < int64_t{kMinSavedBlocks} * grid) {
      return t;
    }
    const int64_t units = int64_t{tail_tiles} * blocks;
    // Every run holds a unit: an owner counts each CTA between it and its
    // tile's last unit as a contributor (with empty runs it waited forever).
    if (units < grid) return t;
    if (units * grid > INT_MAX) return t;  // TailPieceOf's int arithmetic
    const int64_t count_bytes = TailCountBytes(grid);
    if (count_bytes + grid * TailSlotBytes(Cfg::kHeadDim) > p.tail_scratch_bytes) return t;
    t.first_index = rounds;
    t.first_tile = rounds * grid;
    t.grid = FastDivisor(grid);
    t.blocks = FastDivisor(blocks);
    t.units = FastDivisor(int(units));
    t.counts = static_cast<int*>(p.tail_scratch);
    t.partials = reinterpret_cast<float4*>(static_cast<char*>(p.tail_scratch) + count_bytes);
    return t;
  }

  __device__ __forceinline__ static void AddRelease(int* counter, int value) {
    asm volatile("red.release.gpu.global.add.s32 [%0], %1;" ::"l"(counter), "r"(value) : "memory");
  }
  // Every lane spins (lane i on counter i mod 8): with some lanes spinning
  // and a __syncwarp after, ptxas spilled 112 bytes in the TMA warp's loads,
  // although that warp never runs this.
  __device__ __forceinline__ static void SpinUntil(const int* counter, int target) {
    int value;
    do {
      asm volatile("ld.acquire.gpu.global.b32 %0, [%1];" : "=r"(value) : "l"(counter) : "memory");
    } while (value < target);
  }

  // A contributor: its rows' partial tile to the CTA's slot, then a count
  // for the owner's warp that holds the same rows. t: the thread's index
  // among the consumers.
  template <class Softmax, class TO>
  __device__ __forceinline__ static void Contribute(const TailSplitParams& tail, const TailPiece& piece,
                                                    const Softmax& softmax, const TO& o_rc,
                                                    int t) {  // o_rc: (rows, cols)
    static_assert(decltype(size<1>(o_rc))::value == Cfg::kHeadDim / 4);
    float4* slot = tail.partials + int64_t{blockIdx.x} * kSlotVectors + t;
    Partial::Write(softmax, o_rc, [&](int i, float4 v) { __stcg(slot + i, v); });
    // Each lane fences its stores and the warp meets, so the release covers
    // what all its lanes wrote.
    __threadfence();
    __syncwarp();
    if (t % 32 == 0) AddRelease(&tail.counts[piece.owner * kCountsPerCta + t / 32], 1);
  }

  // A producer-warpgroup warp of an owner whose last piece has peers: waits
  // for every consumer warp's count, then lets the consumers collect. In
  // the consumers' code, a wait before the folds cost the long tile 228
  // bytes of spills. Called by all 32 lanes.
  __device__ __forceinline__ static void AwaitContributions(const TailSplitParams& tail) {
    const int peers = OwnedPeers(tail);
    if (peers == 0) return;
    SpinUntil(&tail.counts[blockIdx.x * kCountsPerCta + threadIdx.x % kCountsPerCta], peers);
    NamedBarrierArrive(32 + kThreads, uint32_t(Barrier::kTailCollect));
  }

  // The owner's consumers: the contributions of the `peers` CTAs below it
  // folded into their partial tile, nearest first.
  template <class Softmax, class TO>
  __device__ __forceinline__ static void Collect(const TailSplitParams& tail, int peers, Softmax& softmax,
                                                 TO& o_rc, float scale_log2, int t) {  // o_rc: (rows, cols)
    if (peers == 0) return;
    NamedBarrierSync(32 + kThreads, uint32_t(Barrier::kTailCollect));
    for (int j = 1; j <= peers; ++j) {
      const float4* slot = tail.partials + int64_t{blockIdx.x - j} * kSlotVectors + t;
      Partial::Fold(softmax, o_rc, scale_log2, [&](int i) { return __ldcg(slot + i); });
    }
  }

 private:
  // The peers of the tile the CTA's run ends in, if the run owns it (holds
  // its first block), else 0: TailPieceOf's figure for the CTA's last
  // piece, in fewer registers.
  __device__ __forceinline__ static int OwnedPeers(const TailSplitParams& t) {
    const int grid = t.grid.divisor;
    const int blocks = t.blocks.divisor;
    const int rank = grid - 1 - int(blockIdx.x);
    const int start = t.grid.Div(rank * t.units.divisor);
    const int end = t.grid.Div((rank + 1) * t.units.divisor);
    if (start >= end) return 0;
    const int tile = t.blocks.Div(end - 1);
    if (tile * blocks < start) return 0;
    return t.units.Div((tile + 1) * blocks * grid - 1) - rank;
  }
};

}  // namespace jax_fa3::hopper
