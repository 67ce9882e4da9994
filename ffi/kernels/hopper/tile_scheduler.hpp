// Persistent tile scheduler of the Hopper kernel.
//
// grid.x = min(tiles, CTA slots); CTA c takes tile c of each wave of grid.x
// tiles, or (snake, chosen on the host: tile_order.h) grid.x - 1 - c in odd
// waves, so that a CTA that drew a long tile draws a short one next. With
// two CTAs per SM and one tile each, the tiles past the SM count go to the
// later CTAs in reverse (PairedPosition), so that a long tile's SM gets a
// short one beside it. An FP8 varlen call may deal its waves to fewer
// CTAs than the grid (BalanceVarlen). Where no static assignment is even
// (few long causal tiles per CTA), the tiles after the first wave go to
// whichever CTA asks first, by a counter in global memory that the
// launcher zeroes. The TMA warp decodes each tile and publishes it
// (TileWork) with the tile's Q buffer, so the consumers' and the FP8
// transpose warps' per-tile chains start without the scan below, a global
// load or the counter.
//
// Dense order without a causal or window mask: the query block is the fast
// index, so the CTAs that read one (batch, head)'s K/V run at the same time
// (one DRAM read, the rest L2 hits; GQA heads of one KV head are adjacent
// pairs). With a mask, longest tiles first: (batch, head) pairs are grouped
// in L2-sized sections, inside which the query block is the slow index
// (descending, as later blocks see more keys) and the pair the fast one.
// Varlen: tile = query block * heads + head, query blocks counted
// over the virtual sequences of varlen_blocks.cuh by a warp prefix scan over
// cu_seqlens on the device, resumed where the previous tile stopped.
#pragma once

#include <climits>

#include "kernels/fast_div.h"
#include "kernels/host_device.h"
#include "kernels/seqlen.h"
#include "kernels/varlen_blocks.cuh"

namespace jax_fa3::hopper {

// The CTA that takes position r of a wave of `grid` tiles, and (an
// involution) the position CTA r takes: with pair_sms > 0 the positions
// past pair_sms go to CTAs pair_sms .. grid-1 in reverse (tile_order.h says
// when and why), else position r to CTA r.
FA3_HD int PairedPosition(int r, int grid, int pair_sms) {
  return pair_sms > 0 && r >= pair_sms ? pair_sms + grid - 1 - r : r;
}

// The tail split (tail_split_sm90.hpp): a dense call's last, partial round
// of equal tiles cut into runs of key blocks, one per CTA. CTA c takes the
// run of rank G-1-c (G = gridDim.x) of the tail's units (tile, key block),
// units [rank U / G, (rank + 1) U / G), as at most two pieces: the end of
// one tile, which it contributes, and the start of the next, which it owns.
struct TailSplitParams {
  int first_index = INT_MAX;  // a CTA's index-th tile from here on is a piece; INT_MAX: no split
  int first_tile = 0;         // the tail's first tile (full rounds x G)
  // Multiply-shifts: the producer warp computes its pieces in 24 registers.
  FastDivisor grid;           // G
  FastDivisor blocks;         // key blocks of a tile
  FastDivisor units;          // tail tiles x blocks
  int* counts = nullptr;      // per CTA and consumer warp: contributions written for it (zeroed at launch)
  float4* partials = nullptr;  // per CTA: the partial tile it contributes
};

// One CTA's piece of a tail tile.
struct TailPiece {
  int tail_tile = -1;  // tile - first_tile, or -1: none
  int lo = 0;          // key blocks [lo, hi) of the tile
  int hi = 0;
  int peers = 0;       // owner (lo == 0): the pieces after its own, each a lower CTA's contribution
  int owner = -1;      // contributor (lo > 0): the owner's CTA
  __device__ bool contributes() const { return lo > 0; }
};

// The CTA's piece (0: its first, 1: its second) of the tail.
__device__ __forceinline__ TailPiece TailPieceOf(const TailSplitParams& t, int piece) {
  const int grid = t.grid.divisor;
  const int blocks = t.blocks.divisor;
  const int rank = grid - 1 - int(blockIdx.x);
  // The host keeps grid x units inside int (TailSplit::Plan).
  const int start = t.grid.Div(rank * t.units.divisor);
  const int end = t.grid.Div((rank + 1) * t.units.divisor);
  const int tile = t.blocks.Div(start) + piece;
  TailPiece p;
  p.lo = piece == 0 ? start - tile * blocks : 0;
  p.hi = min(end - tile * blocks, blocks);
  if (p.lo >= p.hi) return TailPiece{};
  p.tail_tile = tile;
  // The rank whose run holds unit u: the last rank whose run starts at or
  // before u.
  auto rank_of = [&](int u) { return t.units.Div((u + 1) * grid - 1); };
  if (p.lo == 0) {
    p.peers = rank_of((tile + 1) * blocks - 1) - rank;
  } else {
    p.owner = grid - 1 - rank_of(tile * blocks);
  }
  return p;
}

// The tile of the CTA's index-th piece of the tail, or `none`.
__device__ __forceinline__ int TailTile(const TailSplitParams& t, int index, int none) {
  const TailPiece piece = TailPieceOf(t, index - t.first_index);
  return piece.tail_tile < 0 ? none : t.first_tile + piece.tail_tile;
}

// The divisors are multiply-shifts (fast_div.h): a tile's decode lies on the
// producer's path to its first TMA load, where each hardware division's ~20
// dependent instructions add to every CTA's first tile (bench/NOTES.md, v32).
struct SchedulerParams {
  int num_tiles = 0;       // dense: exact; varlen: an upper bound for any cu_seqlens
  FastDivisor m_blocks;    // dense only: query blocks per (batch, head)
  FastDivisor heads;       // num_heads
  FastDivisor head_group;  // query heads per KV head
  int section = 1;         // (batch, head) pairs per L2 section, longest-first only
  bool longest_first = false;
  bool snake = false;      // odd waves hand out their tiles in reverse
  int pair_sms = 0;        // PairedPosition's: the SM count where later CTAs take the tiles in reverse, else 0
  int* tile_counter = nullptr;  // dynamic: zero at launch; tiles taken past the first wave
  TailSplitParams tail;

  // Everything but the tile order's choices (section, snake, pair_sms, tile_counter).
  static __host__ SchedulerParams Make(const AttentionParams& p, int num_tiles, int m_blocks) {
    SchedulerParams s;
    s.num_tiles = num_tiles;
    s.m_blocks = FastDivisor(m_blocks > 0 ? m_blocks : 1);  // varlen without query rows: 0, and unused
    s.heads = FastDivisor(p.num_heads);
    s.head_group = FastDivisor(p.head_group());
    s.longest_first = p.window_right >= 0;
    return s;
  }
};

struct TileInfo {
  SeqInfo seq;
  int batch = 0;  // descale index and dense batch coordinate
  int head = 0;
  int m_block = 0;
  bool valid = false;
};

// What the TMA warp publishes in shared memory for each tile it walks,
// including tiles without visible keys; valid == false ends the walk.
struct TileWork {
  TileInfo tile;
  float score_descale = 1.f;  // q_descale * k_descale
  float v_descale = 1.f;
};

template <int kBlockM>
struct TileScheduler {
  const AttentionParams& p;
  const SchedulerParams& s;
  VarlenBlockScan<kBlockM> scan;  // varlen: resumed by each tile's search
  int ctas = gridDim.x;           // the CTAs the static order deals tiles to

  // Varlen: the host knows only a bound on the tiles, so the grid fills
  // every CTA slot, and where the tiles do not divide by it, the last round
  // kept a few CTAs busy while the rest had finished (seed 1: 1344 tiles on
  // 264 CTAs, 24 with a sixth). Counted on the device, the tiles are dealt
  // to the fewest CTAs that need no more rounds (224 x 6); the others exit.
  // Called once by the producer warp before its first tile, where the tile
  // config asks for it (TileConfig::kBalanceVarlen).
  __device__ __forceinline__ void BalanceVarlen() {
    if (!p.is_varlen() || s.tile_counter != nullptr) return;
    const int blocks = VarlenBlockScan<kBlockM>::CountAll(p);
    // 32-bit arithmetic: this lies on every CTA's path to its first load,
    // where 64-bit divisions cost seed 1 0.6 µs (bench/NOTES.md, v43).
    // Any count in [1, grid] deals every tile (CTA c takes index * ctas + c),
    // so a wrong hint costs balance, never coverage.
    if (blocks <= 0 || blocks > INT_MAX / p.num_heads) return;
    const int tiles = blocks * p.num_heads;
    const int rounds = tiles / gridDim.x + (tiles % gridDim.x != 0);
    ctas = tiles / rounds + (tiles % rounds != 0);
  }

  // The CTA's index-th tile (increasing in index, as DecodeVarlen needs);
  // num_tiles (none) for a CTA the order leaves out.
  __device__ __forceinline__ int TileOfCta(int index) const {
    if (blockIdx.x >= ctas) return s.num_tiles;
    const int position = PairedPosition(blockIdx.x, ctas, s.pair_sms);
    const int slot = s.snake && index % 2 == 1 ? ctas - 1 - position : position;
    return index * ctas + slot;
  }

  // The CTA's index-th tile; called by all lanes of one warp, once per
  // index, in increasing order.
  __device__ __forceinline__ int NextTile(int index) const {
    if (s.tile_counter == nullptr || index == 0) return TileOfCta(index);
    int t = 0;
    if (threadIdx.x % 32 == 0) t = gridDim.x + atomicAdd(s.tile_counter, 1);
    return __shfl_sync(0xffffffffu, t, 0);
  }

  static __host__ int NumTilesUpperBound(const AttentionParams& p, int* m_blocks) {
    *m_blocks = (p.seqlen_q + kBlockM - 1) / kBlockM;
    if (!p.is_varlen()) return *m_blocks * p.batch * p.num_heads;
    return (*m_blocks + p.batch + 2) * p.num_heads;
  }

  // Called by all 32 lanes of a warp.
  __device__ __forceinline__ TileInfo Decode(int t) {
    return p.is_varlen() ? DecodeVarlen(t) : DecodeDense(t);
  }

 private:
  __device__ __forceinline__ TileInfo DecodeDense(int t) const {
    TileInfo info;
    int pair;
    if (s.longest_first) {
      // Hardware divisions here: as multiply-shifts they cost the FP8
      // two-warpgroup kernels 16 bytes of spills in the producer warpgroup.
      const int per_section = s.section * s.m_blocks.divisor;
      const int section = t / per_section;
      const int r = t - section * per_section;
      const int pairs_here = min(s.section, p.batch * p.num_heads - section * s.section);
      const int m_index = r / pairs_here;
      pair = section * s.section + (r - m_index * pairs_here);
      info.m_block = s.m_blocks.divisor - 1 - m_index;
    } else {
      s.m_blocks.DivMod(t, &pair, &info.m_block);
    }
    s.heads.DivMod(pair, &info.batch, &info.head);
    info.seq = GetSeqInfo(p, info.batch);
    info.valid = true;
    return info;
  }

  __device__ __forceinline__ TileInfo DecodeVarlen(int t) {
    TileInfo info;
    int block;
    s.heads.DivMod(t, &block, &info.head);
    int vi;
    if (scan.Find(p, block, /*pack=*/1, &vi, &info.m_block)) {
      info.seq = VirtualSeqInfo(p, vi);
      info.batch = VirtualSeqBatch(p, vi);
      info.valid = true;
    }
    return info;
  }
};

}  // namespace jax_fa3::hopper
