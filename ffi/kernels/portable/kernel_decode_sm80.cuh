// Decode kernel (sm_80 and newer, 16-bit K/V): a few query rows against a
// long key range.
//
// Decoding is memory bound, so the whole job is to stream each sequence's
// K/V once at full bandwidth. One CTA serves the (at most 16) packed query
// rows of one (sequence, KV head): every query head of the group reads the
// same K/V tile. A ring of K/V stages keeps several tiles in flight, and the
// four warps split each stage's keys (16 each) instead of its rows, so no
// warp multiplies padding rows. Each warp runs its own online softmax over
// its keys; the warps merge through shared memory at the end and write out
// and lse, or with split-KV the fp32 partials that the combine kernel merges.
#pragma once

#include <cmath>

#include "kernels/mask.h"
#include "kernels/params.h"
#include "kernels/portable/cluster_merge.cuh"
#include "kernels/portable/numeric_sm80.cuh"
#include "kernels/portable/query_tile.cuh"
#include "kernels/portable/softmax.cuh"
#include "kernels/portable/tile_config.h"
#include "kernels/portable/warp_mma.cuh"
#include "kernels/seqlen.h"
#include "kernels/split_kv.h"

namespace jax_fa3::portable {

// cp.async.wait_group takes an immediate; the stage count is a launch-time
// value, so this picks the instruction for it.
template <int kMaxPending>
__device__ __forceinline__ void WaitPendingAtMost(int pending) {
  if constexpr (kMaxPending > 0) {
    if (pending >= kMaxPending) {
      cute::cp_async_wait<kMaxPending>();
    } else {
      WaitPendingAtMost<kMaxPending - 1>(pending);
    }
  } else {
    cute::cp_async_wait<0>();
  }
}

// The copies of one ring stage: K and V rows [pos0, pos0 + kTileKeys) of a
// sequence's cache. Each thread owns one 16-byte column piece of the rows
// r0, r0 + kRowsPerPass, ... so that its addresses step by a constant. On a
// paged cache the locations of those rows are looked up one stage ahead, so
// that the page-table loads' latency hides behind a tile's math instead of
// delaying the copies; a contiguous cache needs no lookup at all.
template <class Cfg>
struct KvStageCopy {
  // Threads per row: the row's pieces rounded up to a power of two, so that
  // rows split evenly over the CTA (head dim 96 leaves a quarter idle).
  static constexpr int kPieces = Cfg::kHeadDim / Cfg::kVecElems;
  static constexpr int kThreadsPerRow = kPieces <= 8 ? 8 : (kPieces <= 16 ? 16 : 32);
  static constexpr int kRowsPerPass = Cfg::kThreads / kThreadsPerRow;
  static constexpr int kPasses = Cfg::kTileKeys / kRowsPerPass;
  static_assert(Cfg::kThreads % kThreadsPerRow == 0 && Cfg::kTileKeys % kRowsPerPass == 0);

  int r0;
  int col;
  bool col_valid;  // the piece holds data; past head_dim it is zero-filled
  bool active;     // the piece lies in the tile: the padding threads of head dim 96 copy nothing
  KvLocation loc[kPasses];  // paged: of rows r0 + j kRowsPerPass of the next stage

  __device__ __forceinline__ KvStageCopy(const AttentionParams& p)
      : r0(threadIdx.x / kThreadsPerRow),
        col((threadIdx.x % kThreadsPerRow) * Cfg::kVecElems),
        col_valid(col < p.head_dim),
        active(col < Cfg::kHeadDim) {}

  __device__ __forceinline__ void LookUpPages(const AttentionParams& p, int batch, int pos0, int rows_valid) {
#pragma unroll
    for (int j = 0; j < kPasses; ++j) {
      const int row = r0 + j * kRowsPerPass;
      loc[j] = row < rows_valid ? KvRowLocation(p, batch, pos0 + row) : KvLocation{0, 0};
    }
  }

  // Starts the stage's copies as one cp.async group, zero-filling rows past
  // rows_valid and columns past head_dim. K and V rows share their location.
  // Contiguous: `block` is the sequence's cache row.
  template <bool kPaged, class In>
  __device__ __forceinline__ void Start(In* sK, In* sV, const In* k, const In* v, const AttentionParams& p,
                                        int block, int pos0, int rows_valid) const {
    using Copy = cute::SM80_CP_ASYNC_CACHEGLOBAL_ZFILL<cute::uint128_t>;
    const In* k_rows = k + col;
    const In* v_rows = v + col;
    if constexpr (!kPaged) {
      k_rows += KvLocation{block, pos0 + r0}.Offset(p.k_stride);
      v_rows += KvLocation{block, pos0 + r0}.Offset(p.v_stride);
      // A full stage (every stage of a long cache but its last) needs no
      // per-row range check or fallback address: 5 fewer instructions per
      // row pair on the loop's every stage.
      if (active && col_valid && rows_valid >= Cfg::kTileKeys) {
#pragma unroll
        for (int j = 0; j < kPasses; ++j) {
          const int dst = (r0 + j * kRowsPerPass) * Cfg::kSmemStride + col;
          Copy::copy(*reinterpret_cast<const cute::uint128_t*>(k_rows + j * kRowsPerPass * p.k_stride.row),
                     *reinterpret_cast<cute::uint128_t*>(sK + dst), true);
          Copy::copy(*reinterpret_cast<const cute::uint128_t*>(v_rows + j * kRowsPerPass * p.v_stride.row),
                     *reinterpret_cast<cute::uint128_t*>(sV + dst), true);
        }
        cute::cp_async_fence();
        return;
      }
    }
#pragma unroll
    for (int j = 0; j < kPasses; ++j) {
      if (!active) break;
      const int row = r0 + j * kRowsPerPass;
      const bool in_range = col_valid && row < rows_valid;
      const In* k_src;
      const In* v_src;
      if constexpr (kPaged) {
        k_src = k_rows + loc[j].Offset(p.k_stride);
        v_src = v_rows + loc[j].Offset(p.v_stride);
      } else {
        k_src = k_rows + j * kRowsPerPass * p.k_stride.row;
        v_src = v_rows + j * kRowsPerPass * p.v_stride.row;
      }
      // Out of range: 0 bytes are read, but the source must be a valid address.
      k_src = in_range ? k_src : k;
      v_src = in_range ? v_src : v;
      const int dst = row * Cfg::kSmemStride + col;
      Copy::copy(*reinterpret_cast<const cute::uint128_t*>(k_src), *reinterpret_cast<cute::uint128_t*>(sK + dst),
                 in_range);
      Copy::copy(*reinterpret_cast<const cute::uint128_t*>(v_src), *reinterpret_cast<cute::uint128_t*>(sV + dst),
                 in_range);
    }
    cute::cp_async_fence();
  }
};

// Merges the warps' softmax states and outputs (each warp saw a quarter of
// every stage's keys) in the drained ring, then writes the tile: out and lse,
// or split blockIdx.z's fp32 partials (normalized, with their lse) to the
// workspace, or, in a cluster, to shared memory for the cluster's merge.
template <class Cfg, class Out>
__device__ __forceinline__ void MergeWarpsAndStore(const AttentionParams& p, int batch, const SeqInfo& seq,
                                                   const QueryTile& t, float v_scale,
                                                   const float (&o)[Cfg::kHeadDim / 8][4],
                                                   const OnlineSoftmax& softmax, float* merge) {
  float* sO = merge;                                                     // (kWarps, kBlockM, kMergeStride)
  float* sMax = merge + Cfg::kWarps * Cfg::kBlockM * Cfg::kMergeStride;  // (kWarps, kBlockM), log2 units
  float* sSum = sMax + Cfg::kWarps * Cfg::kBlockM;                       // (kWarps, kBlockM)
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float sum = softmax.row_sum[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int row = warp * Cfg::kBlockM + lane / 4 + 8 * r;
    if (lane % 4 == 0) {
      sMax[row] = softmax.row_max[r];
      sSum[row] = sum;
    }
#pragma unroll
    for (int d = 0; d < Cfg::kHeadDim / 8; ++d) {
      *reinterpret_cast<float2*>(sO + row * Cfg::kMergeStride + d * 8 + 2 * (lane % 4)) =
          make_float2(o[d][2 * r], o[d][2 * r + 1]);
    }
  }
  __syncthreads();

  // In a cluster (split-KV on sm_90) this split's partial stays in shared
  // memory, after the warps' outputs, for the cluster to merge.
  const bool in_cluster = ClusterCtas() > 1;
  float* sPart = merge + Cfg::kMergeFloats;            // (kBlockM, kHeadDim)
  float* sLse = sPart + Cfg::kBlockM * Cfg::kHeadDim;  // (kBlockM)
  const bool split = p.split.num_splits > 1;
  // A row's weights, normalizer and destination are worked out once by each
  // of the kThreadsPerRow threads that share its pieces, not once per piece:
  // they are most of the CTA's last instructions, which every split of a
  // decode call waits on. A tile of one token with a head group up to
  // kBlockM / 2 takes one pass.
  constexpr int kRowsPerPass = Cfg::kBlockM / 2;
  constexpr int kThreadsPerRow = Cfg::kThreads / kRowsPerPass;
  constexpr int kPiecesPerThread = (Cfg::kHeadDim / kMergeVec + kThreadsPerRow - 1) / kThreadsPerRow;
  const int rows = min(Cfg::kBlockM, t.rows - t.m0);
  const int first_col = threadIdx.x % kThreadsPerRow * kMergeVec;
  for (int row = threadIdx.x / kThreadsPerRow; row < rows; row += kRowsPerPass) {
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < Cfg::kWarps; ++w) m = fmaxf(m, sMax[w * Cfg::kBlockM + row]);
    // A row no warp saw keeps max -inf; weights exp2(-inf - 0) are 0.
    const float ref = m == -INFINITY ? 0.f : m;
    float weight[Cfg::kWarps];
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < Cfg::kWarps; ++w) {
      weight[w] = Exp2(sMax[w * Cfg::kBlockM + row] - ref);
      sum += weight[w] * sSum[w * Cfg::kBlockM + row];
    }
    const float scale = sum > 0.f ? v_scale / sum : 0.f;
    const float lse = sum > 0.f ? m * kLn2 + __logf(sum) : -INFINITY;
    const int64_t token = seq.q_start + t.Token(row);
    const int head = t.Head(row);
    // Where the row goes: this CTA's shared memory (cluster), the split's
    // workspace rows (SplitRow), or out itself.
    float* part_row = nullptr;
    float* lse_dst;
    Out* out_row = nullptr;
    if (in_cluster) {
      part_row = sPart + row * Cfg::kHeadDim;
      lse_dst = sLse + row;
    } else if (split) {
      const int64_t split_row = blockIdx.z * OutRows(p) + SplitRow(p, batch, token, head);
      part_row = p.split.out_accum + split_row * p.head_dim;
      lse_dst = p.split.lse_accum + split_row;
    } else {
      out_row = static_cast<Out*>(p.out) + OutOffset(p, batch, token, head);
      lse_dst = p.lse + LseOffset(p, batch, token, head);
    }
#pragma unroll
    for (int i = 0; i < kPiecesPerThread; ++i) {
      const int col = first_col + i * kThreadsPerRow * kMergeVec;
      if (col >= p.head_dim) break;
      float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
      for (int w = 0; w < Cfg::kWarps; ++w) {
        const float4 x = *reinterpret_cast<const float4*>(sO + (w * Cfg::kBlockM + row) * Cfg::kMergeStride + col);
        acc.x += weight[w] * x.x;
        acc.y += weight[w] * x.y;
        acc.z += weight[w] * x.z;
        acc.w += weight[w] * x.w;
      }
      const float4 value = make_float4(acc.x * scale, acc.y * scale, acc.z * scale, acc.w * scale);
      if (out_row == nullptr) {
        *reinterpret_cast<float4*>(part_row + col) = value;
      } else {
        StoreQuad(out_row + col, value);
      }
    }
    if (first_col == 0) *lse_dst = lse;
  }
  if (in_cluster) MergeClusterSplits<Cfg, Out>(p, batch, seq, t, sPart, sLse);
}

// Scaled (log2-domain) scores, masked only where the mask cuts the tile.
template <int kNTiles, class Transform>
__device__ __forceinline__ void ScoresToLogits(float (&s)[kNTiles][4], const Transform& f, const Mask& mask,
                                               bool all_visible, int row0, int col0, const FastDivisor& pack) {
  if (all_visible) {
    TransformAndMask<false>(s, f, mask, row0, col0, pack);
  } else {
    TransformAndMask<true>(s, f, mask, row0, col0, pack);
  }
}

// grid: (batch, num_heads_k * query tiles, num_splits); with split-KV on
// sm_90 the launcher may make each query tile's splits one cluster, which
// then merges them (cluster_merge.cuh). `stages` is the ring's depth, chosen
// at launch for the device's shared memory.
template <class Cfg, class In, class Out>
__global__ void __launch_bounds__(Cfg::kThreads) DecodeFwd(const __grid_constant__ AttentionParams p, int stages) {
  static_assert(sizeof(In) == 2, "the decode kernel copies 16-bit K/V as they are; FP8 takes the tile kernel");
  static_assert((Cfg::kMergeFloats + Cfg::kPartialFloats) * sizeof(float) <=
                    Cfg::kMinStages * Cfg::kStageElems * sizeof(In),
                "the warps' outputs and the split's partial must fit the smallest ring");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  In* sQ = reinterpret_cast<In*>(smem_raw);  // (kBlockM, kSmemStride)
  In* sRing = sQ + Cfg::kQueryElems;         // (stages, K | V, kTileKeys, kSmemStride)

  // KV heads are the grid's fast index: the heads of one key row sit side by
  // side in the cache, and CTAs that start together then read them together
  // (b64 sk8192: 1.4% faster than batch-fast; bench/NOTES.md, d17).
  const int kv_head = blockIdx.x;
  const int batch = blockIdx.y;
  const int group = p.head_group();
  // The launcher sends only calls whose packed rows fit one tile
  // (DecodeKernelTakes): the tile is a KV head's whole group.
  const SeqInfo seq = GetSeqInfo(p, batch);
  const QueryTile t{0, seq.seqlen_q * group, p.query_pack, kv_head * group};

  // No varlen here: the query rows start at row 0 of the batch entry, and
  // their load need not wait for the sequence's cache bounds.
  const In* q = static_cast<const In*>(p.q) + batch * p.q_stride.batch;
  const auto q_row = [&](int r) { return q + int64_t{t.Token(r)} * p.q_stride.row + t.Head(r) * p.q_stride.head; };
  StartTileLoad<Cfg, Cfg::kBlockM, In>(sQ, q_row, t.rows - t.m0, p.head_dim);
  if (p.rotary.rotary_dim > 0) RotateQueryTile<Cfg>(sQ, p, batch, t);

  const int tok0 = t.Token(0);
  const int tok1 = t.Token(t.rows - 1) + 1;
  const Mask mask{seq.seqlen_q, seq.seqlen_k, p.window_left, p.window_right};
  int key_lo, key_hi;
  mask.KeyRange(tok0, tok1, &key_lo, &key_hi);
  if (p.split.num_splits > 1) {
    SplitKeyRange(key_lo, key_hi, Cfg::kTileKeys, blockIdx.z, p.split.num_splits, &key_lo, &key_hi);
  }
  // An empty range runs no tile (see the tile kernel).
  const int first = key_lo < key_hi ? key_lo - key_lo % Cfg::kTileKeys : key_hi;
  const int num_tiles = (key_hi - first + Cfg::kTileKeys - 1) / Cfg::kTileKeys;

  const In* k = static_cast<const In*>(p.k) + kv_head * p.k_stride.head;
  const In* v = static_cast<const In*>(p.v) + kv_head * p.v_stride.head;
  const bool paged = p.cache.page_table != nullptr;
  const int block = paged ? 0 : KvRowLocation(p, batch, 0).block;  // contiguous: the sequence's cache row
  KvStageCopy<Cfg> copy(p);
  const auto first_pos = [&](int tile) { return seq.k_start + first + tile * Cfg::kTileKeys; };
  const auto rows_valid = [&](int tile) {
    return tile < num_tiles ? seq.seqlen_k - first - tile * Cfg::kTileKeys : 0;
  };
  // Every ring slot commits one group (empty past the last tile), so "tile i
  // landed" is "at most stages - 2 groups pending". Tile t lives in slot
  // t % stages; the loop steps the slots instead of dividing (stages is a
  // launch-time value).
  const auto start_next = [&](int tile, int slot) {
    In* sK = sRing + slot * Cfg::kStageElems;
    In* sV = sK + Cfg::kStageElems / 2;
    if (tile >= num_tiles) {
      cute::cp_async_fence();
    } else if (paged) {
      copy.template Start<true>(sK, sV, k, v, p, block, first_pos(tile), rows_valid(tile));
      copy.LookUpPages(p, batch, first_pos(tile + 1), rows_valid(tile + 1));
    } else {
      copy.template Start<false>(sK, sV, k, v, p, block, first_pos(tile), rows_valid(tile));
    }
  };
  if (paged) copy.LookUpPages(p, batch, first_pos(0), rows_valid(0));
  for (int i = 0; i < stages - 1; ++i) start_next(i, i);

  const ScoreTransform transform{
      p.softmax_scale * DescaleAt(p.q_descale, batch, kv_head) * DescaleAt(p.k_descale, batch, kv_head),
      p.softcap};
  const int warp = threadIdx.x / 32;
  float o[Cfg::kHeadDim / 8][4] = {};  // (MMA tiles along head dim, accumulator element)
  float s[Cfg::kBlockN / 8][4];        // (MMA tiles along this warp's keys, accumulator element)
  OnlineSoftmax softmax;
  for (int i = 0, slot = 0; i < num_tiles; ++i, slot = slot + 1 == stages ? 0 : slot + 1) {
    WaitPendingAtMost<Cfg::kMaxStages - 2>(stages - 2);
    __syncthreads();  // tile i landed for every thread; the slot of tile i - 1 is free
    start_next(i + stages - 1, slot == 0 ? stages - 1 : slot - 1);
    const int n0 = first + i * Cfg::kTileKeys + warp * Cfg::kBlockN;  // this warp's first key
    if (n0 >= key_hi || n0 + Cfg::kBlockN <= key_lo) continue;
    const In* sK = sRing + slot * Cfg::kStageElems + warp * Cfg::kBlockN * Cfg::kSmemStride;
    WarpScores<Cfg>(sQ, sK, s);
    const bool all_visible = mask.AllVisible(tok0, tok1, n0, n0 + Cfg::kBlockN);
    if (transform.softcap > 0.f) {
      ScoresToLogits(s, transform, mask, all_visible, t.m0, n0, t.pack);
    } else {
      ScoresToLogits(s, ScaleScores{transform.scale * kLog2e}, mask, all_visible, t.m0, n0, t.pack);
    }
    softmax.Update(s, o);
    WarpAccumulatePV<Cfg>(s, sK + Cfg::kStageElems / 2, o);
  }
  cute::cp_async_wait<0>();
  __syncthreads();  // every warp is done with the ring: it becomes the merge buffer
  MergeWarpsAndStore<Cfg, Out>(p, batch, seq, t, DescaleAt(p.v_descale, batch, kv_head), o, softmax,
                               reinterpret_cast<float*>(sRing));
}

}  // namespace jax_fa3::portable
