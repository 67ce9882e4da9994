// Portable forward kernel (sm_80 and newer): FlashAttention-2 style.
//
// One CTA owns kBlockM query rows of one head, 16 rows per warp (with packed
// GQA, rows of every head of one KV head). It walks the visible key blocks
// (of its split, with split-KV): load K/V tiles, S = Q K^T on mma.sync,
// online softmax in registers, O += P V with P reused from the S registers.
// Correct for every feature; the Hopper path is the fast one.
#pragma once

#include "kernels/params.h"
#include "kernels/portable/query_tile.cuh"
#include "kernels/portable/scheduler.cuh"
#include "kernels/split_kv.h"
#include "kernels/portable/softmax.cuh"
#include "kernels/portable/tile_config.h"
#include "kernels/portable/warp_mma.cuh"

namespace jax_fa3::portable {

// Writes this warp's rows: normalized output and LSE, or with split-KV the
// fp32 partials of split blockIdx.z.
template <class Cfg, class Out>
__device__ __forceinline__ void StoreOutput(const AttentionParams& p, const BlockCoord& c, const QueryTile& t,
                                            float (&o)[Cfg::kHeadDim / 8][4], OnlineSoftmax& softmax,
                                            float v_scale) {
  const int lane = threadIdx.x % 32;
  const int warp_row = (threadIdx.x / 32) * Cfg::kRowsPerWarp + lane / 4;
  const bool split = p.split.num_splits > 1;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float out_scale, lse;
    softmax.Finalize(r, v_scale, &out_scale, &lse);
    const int row = warp_row + 8 * r;
    if (t.m0 + row >= t.rows) continue;
    const int64_t token = c.seq.q_start + t.Token(row);
    const int head = t.Head(row);
    if (split) {
      const int64_t split_row = blockIdx.z * OutRows(p) + SplitRow(p, c.batch, token, head);
      float* dst = p.split.out_accum + split_row * p.head_dim;
#pragma unroll
      for (int d = 0; d < Cfg::kHeadDim / 8; ++d) {
        const int col = d * 8 + 2 * (lane % 4);
        if (col < p.head_dim) {
          *reinterpret_cast<float2*>(dst + col) = make_float2(o[d][2 * r] * out_scale, o[d][2 * r + 1] * out_scale);
        }
      }
      if (lane % 4 == 0) p.split.lse_accum[split_row] = lse;
      continue;
    }
    Out* dst = static_cast<Out*>(p.out) + OutOffset(p, c.batch, token, head);
#pragma unroll
    for (int d = 0; d < Cfg::kHeadDim / 8; ++d) {
      const int col = d * 8 + 2 * (lane % 4);
      if (col < p.head_dim) StorePair(dst + col, o[d][2 * r] * out_scale, o[d][2 * r + 1] * out_scale);
    }
    if (lane % 4 == 0) p.lse[LseOffset(p, c.batch, token, head)] = lse;
  }
}

// One CTA: kBlockM (packed) query rows of one head (or, packed, of one KV
// head's group), against the keys of split blockIdx.z of their key range.
template <class Cfg, class In, class Out>
__global__ void __launch_bounds__(Cfg::kThreads)
    AttentionFwdPortable(const __grid_constant__ AttentionParams p) {
  using Compute = typename ComputeTypeOf<In>::type;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Compute* sQ = reinterpret_cast<Compute*>(smem_raw);  // (kBlockM, kSmemStride)
  Compute* sKV = sQ + Cfg::kBlockM * Cfg::kSmemStride;   // (kStages, K|V, kBlockN, kSmemStride)
  constexpr int kTileElems = Cfg::kBlockN * Cfg::kSmemStride;

  const BlockCoord c = FindBlock<Cfg::kBlockM>(p);
  if (!c.valid) return;
  const int kv_head = p.pack_gqa ? blockIdx.y : blockIdx.y / p.head_group();
  const QueryTile t{c.m_block * Cfg::kBlockM, c.seq.seqlen_q * p.query_pack.divisor, p.query_pack,
                    p.pack_gqa ? kv_head * p.head_group() : static_cast<int>(blockIdx.y)};

  const In* q = static_cast<const In*>(p.q) + c.batch * p.q_stride.batch + c.seq.q_start * p.q_stride.row;
  const auto q_row = [&](int r) { return q + int64_t{t.Token(r)} * p.q_stride.row + t.Head(r) * p.q_stride.head; };
  StartTileLoad<Cfg, Cfg::kBlockM, In>(sQ, q_row, t.rows - t.m0, p.head_dim);
  if (p.rotary.rotary_dim > 0) RotateQueryTile<Cfg>(sQ, p, c.batch, t);

  const Mask mask{c.seq.seqlen_q, c.seq.seqlen_k, p.window_left, p.window_right};
  int key_lo, key_hi;
  mask.KeyRange(t.Token(0), t.Token(min(Cfg::kBlockM, t.rows - t.m0) - 1) + 1, &key_lo, &key_hi);
  if (p.split.num_splits > 1) {
    SplitKeyRange(key_lo, key_hi, Cfg::kBlockN, blockIdx.z, p.split.num_splits, &key_lo, &key_hi);
  }
  const ScoreTransform transform{
      p.softmax_scale * DescaleAt(p.q_descale, c.batch, kv_head) * DescaleAt(p.k_descale, c.batch, kv_head),
      p.softcap};
  const int warp_row0 = t.m0 + (threadIdx.x / 32) * Cfg::kRowsPerWarp;  // packed row
  const int warp_tok0 = t.pack.Div(warp_row0);
  const int warp_tok1 = t.pack.Div(warp_row0 + Cfg::kRowsPerWarp - 1) + 1;
  // Decode tiles are mostly empty (one token x the head group): warps past
  // the last row only help load K/V, which leaves the GEMMs' shared-memory
  // reads to the warps that have rows.
  const bool warp_has_rows = warp_row0 < t.rows;

  const In* k = static_cast<const In*>(p.k) + kv_head * p.k_stride.head;
  const In* v = static_cast<const In*>(p.v) + kv_head * p.v_stride.head;
  // Stage s holds K at sKV + 2 s kTileElems and V right after it. Rows are
  // addressed one by one: paged caches and cache_batch_idx go through
  // KvRowOffset.
  auto start_kv = [&](int n0, int stage) {
    Compute* sK = sKV + 2 * stage * kTileElems;
    const int key0 = c.seq.k_start + n0;
    const auto k_row = [&](int r) { return k + KvRowOffset(p, p.k_stride, c.batch, key0 + r); };
    const auto v_row = [&](int r) { return v + KvRowOffset(p, p.v_stride, c.batch, key0 + r); };
    StartTileLoad<Cfg, Cfg::kBlockN, In>(sK, k_row, c.seq.seqlen_k - n0, p.head_dim);
    StartTileLoad<Cfg, Cfg::kBlockN, In>(sK + kTileElems, v_row, c.seq.seqlen_k - n0, p.head_dim);
  };

  float o[Cfg::kHeadDim / 8][4] = {};  // (MMA tiles along head dim, accumulator element)
  float s[Cfg::kBlockN / 8][4];        // (MMA tiles along keys, accumulator element)
  OnlineSoftmax softmax;
  // An empty range runs no tile: an unaligned empty split would otherwise
  // attend to the keys of the aligned tile below it, which another split owns.
  const int first = key_lo < key_hi ? key_lo - key_lo % Cfg::kBlockN : key_hi;
  const int num_tiles = (key_hi - first + Cfg::kBlockN - 1) / Cfg::kBlockN;
  // Ring of kStages buffers: kStages - 1 tiles in flight while one is used.
  // Every tile slot commits one cp.async group (empty past the last tile), so
  // "tile i landed" is always "at most kStages - 2 groups pending".
  constexpr int kAhead = Cfg::kStages > 1 ? Cfg::kStages - 1 : 1;
  constexpr int kPendingAllowed = Cfg::kStages > 1 ? Cfg::kStages - 2 : 0;
#pragma unroll
  for (int i = 0; i < kAhead; ++i) {
    if (i < num_tiles) {
      start_kv(first + i * Cfg::kBlockN, i);
    } else {
      cute::cp_async_fence();
    }
  }
  for (int i = 0; i < num_tiles; ++i) {
    const int n0 = first + i * Cfg::kBlockN;
    cute::cp_async_wait<kPendingAllowed>();
    __syncthreads();  // tile i landed for every thread; the slot of tile i - 1 is free
    if constexpr (Cfg::kStages > 1) {
      const int next = i + Cfg::kStages - 1;
      if (next < num_tiles) {
        start_kv(first + next * Cfg::kBlockN, next % Cfg::kStages);
      } else {
        cute::cp_async_fence();
      }
    }
    const Compute* sK = sKV + 2 * (i % Cfg::kStages) * kTileElems;
    if (warp_has_rows) {
      WarpScores<Cfg>(sQ + (threadIdx.x / 32) * Cfg::kRowsPerWarp * Cfg::kSmemStride, sK, s);
      if (mask.AllVisible(warp_tok0, warp_tok1, n0, n0 + Cfg::kBlockN)) {
        TransformAndMask<false>(s, transform, mask, warp_row0, n0, t.pack);
      } else {
        TransformAndMask<true>(s, transform, mask, warp_row0, n0, t.pack);
      }
      softmax.Update(s, o);
      WarpAccumulatePV<Cfg>(s, sK + kTileElems, o);
    }
    if (Cfg::kStages == 1 && i + 1 < num_tiles) {
      __syncthreads();  // every warp is done with the only stage
      start_kv(n0 + Cfg::kBlockN, 0);
    }
  }
  cute::cp_async_wait<0>();  // no copy may outlive the CTA (empty key ranges)
  StoreOutput<Cfg, Out>(p, c, t, o, softmax, DescaleAt(p.v_descale, c.batch, kv_head));
}

}  // namespace jax_fa3::portable
