// Maps a CTA to (sequence, query block, head).
//
// Query blocks count (packed) rows: seqlen_q * PackFactor per sequence.
// Dense problems: grid.x = batch * query blocks. Varlen problems never trust
// max_seqlen: grid.x = ceil(total_q / kBlockM) + batch + 2 bounds the number
// of query blocks for any cu_seqlens, and each CTA finds its block by a warp
// prefix scan over cu_seqlens on the device. CTAs past the last block exit.
// Virtual sequence 0 and batch + 1 are the uncovered head and tail of q,
// which get zeros (see GetGapInfo).
#pragma once

#include "kernels/seqlen.h"

namespace jax_fa3::portable {

struct BlockCoord {
  SeqInfo seq;
  int batch = 0;  // index for descale lookups and the dense batch stride
  int m_block = 0;
  bool valid = false;
};

__device__ __forceinline__ SeqInfo VirtualSeqInfo(const AttentionParams& p, int vi) {
  if (vi == 0) return GetGapInfo(p, /*trailing=*/false);
  if (vi == p.batch + 1) return GetGapInfo(p, /*trailing=*/true);
  return GetSeqInfo(p, vi - 1);
}

// Query rows per token: with packed GQA every head of a group is a row.
__host__ __device__ inline int PackFactor(const AttentionParams& p) { return p.pack_gqa ? p.head_group() : 1; }

template <int kBlockM>
__host__ __device__ inline int NumBlocksX(const AttentionParams& p) {
  const long long rows = static_cast<long long>(p.seqlen_q) * PackFactor(p);
  if (!p.is_varlen()) return p.batch * static_cast<int>((rows + kBlockM - 1) / kBlockM);
  return static_cast<int>((rows + kBlockM - 1) / kBlockM) + p.batch + 2;
}

template <int kBlockM>
__device__ BlockCoord FindBlock(const AttentionParams& p) {
  BlockCoord c;
  const int tile = blockIdx.x;
  if (!p.is_varlen()) {
    const int m_blocks = (p.seqlen_q * PackFactor(p) + kBlockM - 1) / kBlockM;
    c.batch = tile / m_blocks;
    c.m_block = tile % m_blocks;
    c.seq = GetSeqInfo(p, c.batch);
    c.valid = true;
    return c;
  }
  __shared__ int found[2];
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    int base = 0;
    int seq = -1, m_block = 0;
    for (int chunk = 0; chunk < p.batch + 2; chunk += 32) {
      const int vi = chunk + lane;
      const int n =
          vi < p.batch + 2 ? (VirtualSeqInfo(p, vi).seqlen_q * PackFactor(p) + kBlockM - 1) / kBlockM : 0;
      int incl = n;
#pragma unroll
      for (int off = 1; off < 32; off *= 2) {
        const int up = __shfl_up_sync(0xffffffffu, incl, off);
        if (lane >= off) incl += up;
      }
      const int excl = incl - n;
      const unsigned hit = __ballot_sync(0xffffffffu, tile >= base + excl && tile < base + incl);
      if (hit != 0) {
        const int src = __ffs(hit) - 1;
        seq = __shfl_sync(0xffffffffu, vi, src);
        m_block = tile - base - __shfl_sync(0xffffffffu, excl, src);
        break;
      }
      base += __shfl_sync(0xffffffffu, incl, 31);
    }
    if (lane == 0) {
      found[0] = seq;
      found[1] = m_block;
    }
  }
  __syncthreads();
  if (found[0] < 0) return c;
  c.seq = VirtualSeqInfo(p, found[0]);
  c.batch = found[0] == 0 || found[0] == p.batch + 1 ? 0 : found[0] - 1;
  c.m_block = found[1];
  c.valid = true;
  return c;
}

}  // namespace jax_fa3::portable
