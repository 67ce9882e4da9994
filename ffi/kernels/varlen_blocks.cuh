// Query blocks of a varlen call, found on the device without max_seqlen.
//
// The blocks are counted over virtual sequences: 0 and batch + 1 are the
// rows of q before and after the sequences (zeros and lse -inf, see
// GetGapInfo), 1 .. batch the sequences. A warp finds the virtual sequence
// that holds block `block` by a prefix scan over 32 sequences' block counts
// at a time, so any cu_seqlens works and empty sequences cost nothing.
// Shared by the portable kernel and the Hopper tile scheduler.
#pragma once

#include "kernels/seqlen.h"

namespace jax_fa3 {

__device__ __forceinline__ SeqInfo VirtualSeqInfo(const AttentionParams& p, int vi) {
  if (vi == 0) return GetGapInfo(p, /*trailing=*/false);
  if (vi == p.batch + 1) return GetGapInfo(p, /*trailing=*/true);
  return GetSeqInfo(p, vi - 1);
}

// The batch index of virtual sequence vi (for descales and dense strides):
// the gaps take 0.
__device__ __forceinline__ int VirtualSeqBatch(const AttentionParams& p, int vi) {
  return vi == 0 || vi == p.batch + 1 ? 0 : vi - 1;
}

// Warp-collective: all 32 lanes call Find with the same arguments. The scan
// position persists, so a caller whose blocks increase (a persistent CTA)
// resumes where its previous search stopped.
template <int kBlockM>
struct VarlenBlockScan {
  int chunk = 0;  // virtual sequences before `chunk` hold `base` blocks
  int base = 0;

  // Sets *vi and *m_block and returns true if `block` exists; `pack` is
  // the query rows per token (packed GQA).
  __device__ __forceinline__ bool Find(const AttentionParams& p, int block, int pack, int* vi, int* m_block) {
    const int lane = threadIdx.x % 32;
    const int num_virtual = p.batch + 2;
    for (; chunk < num_virtual; chunk += 32) {
      const int v = chunk + lane;
      const int n = v < num_virtual ? (VirtualSeqInfo(p, v).seqlen_q * pack + kBlockM - 1) / kBlockM : 0;
      int incl = n;
#pragma unroll
      for (int off = 1; off < 32; off *= 2) {
        const int up = __shfl_up_sync(0xffffffffu, incl, off);
        if (lane >= off) incl += up;
      }
      const int excl = incl - n;
      const unsigned hit = __ballot_sync(0xffffffffu, block >= base + excl && block < base + incl);
      if (hit != 0) {
        const int src = __ffs(hit) - 1;
        *vi = __shfl_sync(0xffffffffu, v, src);
        *m_block = block - base - __shfl_sync(0xffffffffu, excl, src);
        return true;
      }
      base += __shfl_sync(0xffffffffu, incl, 31);
    }
    return false;
  }

  // Query blocks over all virtual sequences, or -1 past kCountedChunks
  // chunks of 32 (warp-collective, without touching the scan position).
  // Every chunk's loads are issued before any is used: one memory round
  // trip. Only a balance hint (TileScheduler::BalanceVarlen):
  // rows that malformed cu_seqlens give several sequences may count twice,
  // and each lane's count is capped so that the warp's sum stays an int.
  static constexpr int kCountedChunks = 4;
  static constexpr int kLaneCap = 1 << 22;
  __device__ __forceinline__ static int CountAll(const AttentionParams& p) {
    const int num_virtual = p.batch + 2;
    if (num_virtual > 32 * kCountedChunks) return -1;
    const int lane = threadIdx.x % 32;
    const int total = p.seqlen_q;
    // Virtual sequence v: rows [0, cu[0]), [cu[v-1], cu[v]) or [cu[batch],
    // total): VirtualSeqInfo's bounds, whose loads sit behind its branches.
    int a[kCountedChunks], b[kCountedChunks];
#pragma unroll
    for (int chunk = 0; chunk < kCountedChunks; ++chunk) {
      const int v = chunk * 32 + lane;
      a[chunk] = v < num_virtual ? p.cu_seqlens_q[max(v - 1, 0)] : 0;
      b[chunk] = v < num_virtual ? p.cu_seqlens_q[min(v, p.batch)] : 0;
    }
    int n = 0;
#pragma unroll
    for (int chunk = 0; chunk < kCountedChunks; ++chunk) {
      const int v = chunk * 32 + lane;
      const int start = v == 0 ? 0 : ClampInt(a[chunk], 0, total);
      const int end = v == num_virtual - 1 ? total : ClampInt(b[chunk], start, total);
      // Rounded up without overflow; capped so that the sum stays an int.
      const int rows = end - start;
      const int blocks = min(rows / kBlockM + (rows % kBlockM != 0), kLaneCap);
      n += v < num_virtual ? blocks : 0;
    }
    return __reduce_add_sync(0xffffffffu, n);
  }
};

}  // namespace jax_fa3
