// Split-KV merge inside a thread-block cluster (sm_90 and newer). When the
// num_splits CTAs of one decode query tile are launched as one cluster, each
// leaves its normalized fp32 partial and lse in its own shared memory and the
// cluster merges them over distributed shared memory: no fp32 workspace round
// trip through L2 and no combine kernel, whose launch alone cost 2.6-3.2 µs
// at the seed decode shapes (bench/NOTES.md, d12). The math is the combine
// kernel's (combine.cuh).
#pragma once

#include <cooperative_groups.h>

#include <cmath>

#include "kernels/params.h"
#include "kernels/portable/numeric_sm80.cuh"
#include "kernels/portable/query_tile.cuh"
#include "kernels/seqlen.h"
#include "kernels/split_kv.h"

namespace jax_fa3::portable {

// Columns of a row that one thread merges and stores at a time (a float4).
inline constexpr int kMergeVec = 4;

// CTAs in this CTA's cluster: 1 before sm_90 and for launches without one.
__device__ __forceinline__ int ClusterCtas() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  return static_cast<int>(cooperative_groups::this_cluster().num_blocks());
#else
  return 1;
#endif
}

// Writes columns [col, col + kMergeVec) of packed row `row` of tile t to out,
// and the row's lse with its first piece.
template <class Out>
__device__ __forceinline__ void StoreOutPiece(const AttentionParams& p, int batch, const SeqInfo& seq,
                                              const QueryTile& t, int row, int col, float4 value, float lse) {
  const int64_t token = seq.q_start + t.Token(row);
  const int head = t.Head(row);
  Out* dst = static_cast<Out*>(p.out) + OutOffset(p, batch, token, head) + col;
  StoreQuad(dst, value);
  if (col == 0) p.lse[LseOffset(p, batch, token, head)] = lse;
}

// Merges the partials of the cluster's CTAs (split s = cluster rank s) into
// out and lse. Each CTA holds sPart (kBlockM, kHeadDim), its normalized
// partial output, and sLse (kBlockM), its rows' lse (natural log, -inf for a
// split without keys); the cluster's threads share the tile's pieces. Every
// thread of every CTA of the cluster must call this.
template <class Cfg, class Out>
__device__ __forceinline__ void MergeClusterSplits(const AttentionParams& p, int batch, const SeqInfo& seq,
                                                   const QueryTile& t, const float* sPart, const float* sLse) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  const int splits = static_cast<int>(cluster.num_blocks());
  const int rank = static_cast<int>(cluster.block_rank());
  cluster.sync();  // release / acquire: every split's partial is visible cluster-wide
  constexpr int kPiecesPerRow = Cfg::kHeadDim / kMergeVec;
  for (int item = rank * Cfg::kThreads + threadIdx.x; item < Cfg::kBlockM * kPiecesPerRow;
       item += splits * Cfg::kThreads) {
    const int row = item / kPiecesPerRow;
    const int col = (item % kPiecesPerRow) * kMergeVec;
    if (t.m0 + row >= t.rows || col >= p.head_dim) continue;
    // All of a piece's remote loads are issued before the first is used: one
    // distributed-shared-memory round trip for the LSEs, one for the partials.
    float lse[kMaxClusterSplits];
    float max_lse = -INFINITY;
#pragma unroll
    for (int s = 0; s < kMaxClusterSplits; ++s) {
      lse[s] = s < splits ? *cluster.map_shared_rank(sLse + row, s) : -INFINITY;
      max_lse = fmaxf(max_lse, lse[s]);
    }
    // A row no split saw keeps sum 0: out 0 and lse -inf.
    float sum = 0.f;
    if (max_lse > -INFINITY) {
#pragma unroll
      for (int s = 0; s < kMaxClusterSplits; ++s) sum += __expf(lse[s] - max_lse);
    }
    const float total = sum > 0.f ? max_lse + __logf(sum) : -INFINITY;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    if (sum > 0.f) {
      float4 x[kMaxClusterSplits];
#pragma unroll
      for (int s = 0; s < kMaxClusterSplits; ++s) {
        x[s] = s < splits ? *reinterpret_cast<const float4*>(
                                cluster.map_shared_rank(sPart + row * Cfg::kHeadDim + col, s))
                          : make_float4(0.f, 0.f, 0.f, 0.f);
      }
#pragma unroll
      for (int s = 0; s < kMaxClusterSplits; ++s) {
        const float w = __expf(lse[s] - total);  // 0 for splits without keys (and past `splits`)
        acc.x += w * x[s].x;
        acc.y += w * x[s].y;
        acc.z += w * x[s].z;
        acc.w += w * x[s].w;
      }
    }
    StoreOutPiece<Out>(p, batch, seq, t, row, col, acc, total);
  }
  cluster.sync();  // the peers read this CTA's shared memory until every thread gets here
#endif
}

}  // namespace jax_fa3::portable
