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
#include "kernels/varlen_blocks.cuh"

namespace jax_fa3::portable {

struct BlockCoord {
  SeqInfo seq;
  int batch = 0;  // index for descale lookups and the dense batch stride
  int m_block = 0;
  bool valid = false;
};

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
    VarlenBlockScan<kBlockM> scan;
    int vi = 0, m_block = 0;
    const bool hit = scan.Find(p, tile, PackFactor(p), &vi, &m_block);
    if (threadIdx.x == 0) {
      found[0] = hit ? vi : -1;
      found[1] = m_block;
    }
  }
  __syncthreads();
  if (found[0] < 0) return c;
  c.seq = VirtualSeqInfo(p, found[0]);
  c.batch = VirtualSeqBatch(p, found[0]);
  c.m_block = found[1];
  c.valid = true;
  return c;
}

}  // namespace jax_fa3::portable
