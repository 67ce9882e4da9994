// Portable forward kernel (sm_80 and newer): FlashAttention-2 style.
//
// One CTA owns kBlockM query rows of one head, 16 rows per warp. It walks
// the visible key blocks: load K/V tiles, S = Q K^T on mma.sync, online
// softmax in registers, O += P V with P reused from the S registers.
// Correct for every feature; the Hopper path is the fast one.
#pragma once

#include "kernels/params.h"
#include "kernels/portable/scheduler.cuh"
#include "kernels/portable/softmax.cuh"
#include "kernels/portable/tile_config.h"
#include "kernels/portable/warp_mma.cuh"

namespace jax_fa3::portable {

template <class Cfg, class Out>
__device__ __forceinline__ void StoreOutput(const AttentionParams& p, const BlockCoord& c, int head,
                                            float (&o)[Cfg::kHeadDim / 8][4], OnlineSoftmax& softmax,
                                            float v_scale) {
  const int lane = threadIdx.x % 32;
  const int warp_row = c.m_block * Cfg::kBlockM + (threadIdx.x / 32) * Cfg::kRowsPerWarp + lane / 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float out_scale, lse;
    softmax.Finalize(r, v_scale, &out_scale, &lse);
    const int row = warp_row + 8 * r;
    if (row >= c.seq.seqlen_q) continue;
    const int64_t token = c.seq.q_start + row;
    Out* dst = static_cast<Out*>(p.out) + c.batch * p.out_stride.batch + token * p.out_stride.row +
               head * p.out_stride.head;
#pragma unroll
    for (int d = 0; d < Cfg::kHeadDim / 8; ++d) {
      const int col = d * 8 + 2 * (lane % 4);
      if (col < p.head_dim) StorePair(dst + col, o[d][2 * r] * out_scale, o[d][2 * r + 1] * out_scale);
    }
    if (lane % 4 == 0) p.lse[c.batch * p.lse_batch_stride + head * p.lse_head_stride + token] = lse;
  }
}

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
  const int head = blockIdx.y;
  const int kv_head = head / p.head_group();
  const int m0 = c.m_block * Cfg::kBlockM;

  const In* q = static_cast<const In*>(p.q) + c.batch * p.q_stride.batch +
                (c.seq.q_start + m0) * p.q_stride.row + head * p.q_stride.head;
  const In* k = static_cast<const In*>(p.k) + c.batch * p.k_stride.batch +
                int64_t{c.seq.k_start} * p.k_stride.row + kv_head * p.k_stride.head;
  const In* v = static_cast<const In*>(p.v) + c.batch * p.v_stride.batch +
                int64_t{c.seq.k_start} * p.v_stride.row + kv_head * p.v_stride.head;
  StartTileLoad<Cfg, Cfg::kBlockM>(sQ, q, p.q_stride.row, c.seq.seqlen_q - m0, p.head_dim);

  const Mask mask{c.seq.seqlen_q, c.seq.seqlen_k, p.window_left, p.window_right};
  int key_lo, key_hi;
  mask.KeyRange(m0, min(m0 + Cfg::kBlockM, c.seq.seqlen_q), &key_lo, &key_hi);
  const ScoreTransform transform{
      p.softmax_scale * DescaleAt(p.q_descale, c.batch, kv_head) * DescaleAt(p.k_descale, c.batch, kv_head),
      p.softcap};
  const int warp_row0 = m0 + (threadIdx.x / 32) * Cfg::kRowsPerWarp;

  // Stage s holds K at sKV + 2 s kTileElems and V right after it.
  auto start_kv = [&](int n0, int stage) {
    Compute* sK = sKV + 2 * stage * kTileElems;
    StartTileLoad<Cfg, Cfg::kBlockN>(sK, k + int64_t{n0} * p.k_stride.row, p.k_stride.row,
                                     c.seq.seqlen_k - n0, p.head_dim);
    StartTileLoad<Cfg, Cfg::kBlockN>(sK + kTileElems, v + int64_t{n0} * p.v_stride.row, p.v_stride.row,
                                     c.seq.seqlen_k - n0, p.head_dim);
  };

  float o[Cfg::kHeadDim / 8][4] = {};  // (MMA tiles along head dim, accumulator element)
  float s[Cfg::kBlockN / 8][4];        // (MMA tiles along keys, accumulator element)
  OnlineSoftmax softmax;
  const int first = key_lo - key_lo % Cfg::kBlockN;
  if (first < key_hi) start_kv(first, 0);
  int stage = 0;
  for (int n0 = first; n0 < key_hi; n0 += Cfg::kBlockN) {
    cute::cp_async_wait<0>();
    __syncthreads();  // this stage landed for every thread; the other one is free
    const bool has_next = n0 + Cfg::kBlockN < key_hi;
    if (Cfg::kStages == 2 && has_next) start_kv(n0 + Cfg::kBlockN, stage ^ 1);
    const Compute* sK = sKV + 2 * stage * kTileElems;
    WarpScores<Cfg>(sQ, sK, s);
    if (mask.AllVisible(warp_row0, warp_row0 + Cfg::kRowsPerWarp, n0, n0 + Cfg::kBlockN)) {
      TransformAndMask<false>(s, transform, mask, warp_row0, n0);
    } else {
      TransformAndMask<true>(s, transform, mask, warp_row0, n0);
    }
    softmax.Update(s, o);
    WarpAccumulatePV<Cfg>(s, sK + kTileElems, o);
    if (Cfg::kStages == 1 && has_next) {
      __syncthreads();  // every warp is done with the only stage
      start_kv(n0 + Cfg::kBlockN, 0);
    }
    stage ^= Cfg::kStages - 1;
  }
  cute::cp_async_wait<0>();  // no copy may outlive the CTA (empty key ranges)
  StoreOutput<Cfg, Out>(p, c, head, o, softmax, DescaleAt(p.v_descale, c.batch, kv_head));
}

}  // namespace jax_fa3::portable
