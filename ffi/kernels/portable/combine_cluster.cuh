// Split-KV combine inside the decode kernel, on sm_90: the splits of one
// query tile are launched as one thread-block cluster. Each CTA leaves its
// partial (normalized output rows and their LSE) in its own shared memory;
// after a cluster barrier every CTA merges a share of the tile's items from
// all of them over distributed shared memory, with the combine kernel's rule
// (combine.cuh). That saves the fp32 partials' round trip through global
// memory and the second kernel, which at batch 1 cost more than the
// attention itself.
#pragma once

#include <cuda_runtime_api.h>

#include <cmath>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#include <cooperative_groups.h>
#endif

#include "kernels/params.h"
#include "kernels/portable/query_tile.cuh"
#include "kernels/seqlen.h"

namespace jax_fa3::portable {

// The largest cluster (and so split count) this path takes: H100's
// non-portable maximum; more splits go through the combine kernel.
inline constexpr int kMaxClusterSplits = 16;

// A CTA's partial, in its shared memory: (kBlockM, kHeadDim) normalized
// rows, then kBlockM LSEs.
template <class Cfg>
struct ClusterPartial {
  static constexpr int kFloats = Cfg::kBlockM * Cfg::kHeadDim + Cfg::kBlockM;
  float* rows;
  __device__ __forceinline__ float* Row(int row) const { return rows + row * Cfg::kHeadDim; }
  __device__ __forceinline__ float* Lse() const { return rows + Cfg::kBlockM * Cfg::kHeadDim; }
};

// Writes 4 columns of one packed row of out (and its lse once per row).
template <class Out>
__device__ __forceinline__ void StoreRowPiece(const AttentionParams& p, int batch, const SeqInfo& seq,
                                              const QueryTile& t, int row, int col, float4 v, float lse) {
  const int64_t token = seq.q_start + t.Token(row);
  const int head = t.Head(row);
  Out* dst = static_cast<Out*>(p.out) + batch * p.out_stride.batch + token * p.out_stride.row +
             head * p.out_stride.head + col;
  StorePair(dst, v.x, v.y);
  StorePair(dst + 2, v.z, v.w);
  if (col == 0) p.lse[batch * p.lse_batch_stride + head * p.lse_head_stride + token] = lse;
}

// Every CTA of the cluster calls this after writing its partial.
template <class Cfg, class Out>
__device__ __forceinline__ void MergeClusterSplits(const AttentionParams& p, int batch, const SeqInfo& seq,
                                                   const QueryTile& t, const ClusterPartial<Cfg>& mine) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  const cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();  // every split's partial is written
  const int splits = static_cast<int>(cluster.num_blocks());
  constexpr int kVec = 4;
  constexpr int kVecsPerRow = Cfg::kHeadDim / kVec;
  for (int item = cluster.block_rank() * Cfg::kThreads + threadIdx.x; item < Cfg::kBlockM * kVecsPerRow;
       item += splits * Cfg::kThreads) {
    const int row = item / kVecsPerRow;
    const int col = (item % kVecsPerRow) * kVec;
    if (t.m0 + row >= t.rows || col >= p.head_dim) continue;
    float part_lse[kMaxClusterSplits];
    float max_lse = -INFINITY;
#pragma unroll
    for (int s = 0; s < kMaxClusterSplits; ++s) {
      part_lse[s] = s < splits ? cluster.map_shared_rank(mine.Lse(), s)[row] : -INFINITY;
      max_lse = fmaxf(max_lse, part_lse[s]);
    }
    // A row no split saw keeps sum 0: out 0 and lse -inf.
    float sum = 0.f;
    if (max_lse > -INFINITY) {
#pragma unroll
      for (int s = 0; s < kMaxClusterSplits; ++s) sum += __expf(part_lse[s] - max_lse);
    }
    const float lse = sum > 0.f ? max_lse + __logf(sum) : -INFINITY;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int s = 0; s < kMaxClusterSplits; ++s) {
      if (part_lse[s] > -INFINITY) {  // splits without keys weigh 0 (and past `splits` there are none)
        const float w = __expf(part_lse[s] - lse);
        const float4 x = *reinterpret_cast<const float4*>(cluster.map_shared_rank(mine.Row(row), s) + col);
        acc.x += w * x.x;
        acc.y += w * x.y;
        acc.z += w * x.z;
        acc.w += w * x.w;
      }
    }
    StoreRowPiece<Out>(p, batch, seq, t, row, col, acc, lse);
  }
  cluster.sync();  // no CTA exits while another still reads its shared memory
#endif
}

// A launch configuration whose clusters span grid.z (the split axis).
struct ClusterLaunch {
  cudaLaunchConfig_t config = {};
  cudaLaunchAttribute cluster = {};

  ClusterLaunch(dim3 grid, int threads, int smem_bytes, cudaStream_t stream) {
    config.gridDim = grid;
    config.blockDim = dim3(threads);
    config.dynamicSmemBytes = smem_bytes;
    config.stream = stream;
    cluster.id = cudaLaunchAttributeClusterDimension;
    cluster.val.clusterDim.x = 1;
    cluster.val.clusterDim.y = 1;
    cluster.val.clusterDim.z = grid.z;
    config.attrs = &cluster;
    config.numAttrs = 1;
  }
  ClusterLaunch(const ClusterLaunch&) = delete;  // config points at cluster
  ClusterLaunch& operator=(const ClusterLaunch&) = delete;
};

// The largest cluster of `kernel` the current device runs (16 or 8), or 0:
// no clusters before sm_90, nor when the kernel's binary is an sm_80 build
// running on a newer GPU (its cluster code is compiled out). Host-side
// queries only, so safe under graph capture.
template <class Kernel>
int MaxClusterSplits(Kernel* kernel, int threads, int smem_bytes) {
  cudaFuncAttributes attrs;
  int device = 0, major = 0;
  if (cudaFuncGetAttributes(&attrs, kernel) != cudaSuccess || attrs.binaryVersion < 90 ||
      cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess || major < 9 ||
      cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  for (int size = kMaxClusterSplits; size >= 8; size /= 2) {
    const ClusterLaunch launch(dim3(1, 1, size), threads, smem_bytes, nullptr);
    int clusters = 0;
    if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &launch.config) == cudaSuccess && clusters > 0) {
      return size;
    }
    cudaGetLastError();
  }
  return 0;
}

}  // namespace jax_fa3::portable
