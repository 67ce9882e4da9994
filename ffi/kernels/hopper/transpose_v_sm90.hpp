// FP8 V transpose. FP8 wgmma reads both operands K-major, but V arrives with
// keys as rows; producer warps 1-3 rewrite each landed V tile as V^T between
// the V (TMA) and Vt pipelines, 16 keys x 32 head-dim bytes per warp step:
// one ldmatrix.trans, four byte permutes, one stmatrix.
//
// Key order inside each 16-key group of V^T: column 4q + r holds key
// 2q + (r & 1) + 8 (r >> 1). That is the order ldmatrix.trans (16-bit
// elements) and one byte permute produce, and it is the order the S
// accumulator already gives each thread (keys {2q, 2q+1, 8+2q, 9+2q} of a
// 16-key group), so the accumulator's registers are a valid A fragment
// (PackP8) and P V sums the same products.
#pragma once

#include <cuda_fp8.h>

#include "kernels/hopper/mainloop_fwd_sm90.hpp"

namespace jax_fa3::hopper {

__device__ __forceinline__ void LdsmX4Trans(uint32_t smem_addr, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr));
}
__device__ __forceinline__ void StsmX4(uint32_t smem_addr, const uint32_t (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};" ::"r"(smem_addr), "r"(r[0]),
               "r"(r[1]), "r"(r[2]), "r"(r[3])
               : "memory");
}

// S (fp32 accumulator, ((2, 2, N/8), 1, 1)) rounded to e4m3 in the A layout
// ((4, 2, 2), 1, N/32) of the P V wgmma, keys in V^T's order (see the top).
template <class TS, class TP>
__device__ __forceinline__ void PackP8(const TS& s, TP& p) {
  Tensor words = recast<uint32_t>(p);  // ((1, 2, 2), 1, N/32)
  constexpr int kSlices = decltype(size<2>(p))::value;
#pragma unroll
  for (int i = 0; i < kSlices; ++i) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
#pragma unroll
      for (int row = 0; row < 2; ++row) {
        const int a = 16 * i + 2 * row + 8 * half;  // accumulator index of keys 2q, 2q+1 (+8 for the next two)
        const uint32_t lo = __nv_cvt_float2_to_fp8x2(make_float2(s(a), s(a + 1)), __NV_SATFINITE, __NV_E4M3);
        const uint32_t hi = __nv_cvt_float2_to_fp8x2(make_float2(s(a + 4), s(a + 5)), __NV_SATFINITE, __NV_E4M3);
        words(4 * i + row + 2 * half) = lo | (hi << 16);
      }
    }
  }
}

// Byte offsets in an FP8 tile of kRows rows of kRowBytes bytes, as
// ss_smem_selector lays it out for K-major wgmma operands: swizzle atoms of
// 8 rows x kAtomBytes (the widest of 128, 64, 32 dividing a row), stacked
// down the rows first, with each 16-byte chunk index XORed by the row's
// bits 7.. of row * kAtomBytes. Both the V tile (keys x d) and V^T (d x
// keys) are such tiles; VTransposer checks that at compile time and builds
// its lane addresses from Swizzle (through the generic CuTe layout each
// access cost ~20 integer instructions).
template <int kRows, int kRowBytes>
struct SwizzledTile {
  static constexpr int kAtomBytes = kRowBytes % 128 == 0 ? 128 : kRowBytes % 64 == 0 ? 64 : 32;
  static constexpr int kChunkMask = kAtomBytes / 16 - 1;
  static constexpr int kBytes = kRows * kRowBytes;
  static_assert(kRowBytes % 32 == 0 && kRows % 8 == 0, "FP8 swizzled tiles have 32-byte multiples per row");

  // The row's 16-byte-chunk XOR. It repeats every 8 rows, so in a group of
  // 16 keys (or a step of 32 d rows) it depends on the lane's row alone.
  __host__ __device__ static constexpr int Swizzle(int row) { return ((row * kAtomBytes) >> 7) & kChunkMask; }

  __host__ __device__ static constexpr int Offset(int row, int col) {
    return col / kAtomBytes * kRows * kAtomBytes + row * kAtomBytes + ((col % kAtomBytes) ^ (Swizzle(row) << 4));
  }

  // True when `layout` ((rows, cols, stages), in bytes) is this tile with
  // kBytes between stages: every offset of the first 8-row swizzle period,
  // one offset per 8-row group and atom column, and the same in stage 1.
  template <class Layout>
  static constexpr bool Matches(Layout layout) {
    for (int row = 0; row < 8; ++row) {
      for (int col = 0; col < kRowBytes; ++col) {
        if (layout(row, col, 0) != Offset(row, col)) return false;
      }
    }
    for (int row = 0; row < kRows; row += 8) {
      for (int col = 37; col < kRowBytes; col += kAtomBytes) {
        for (int stage = 0; stage < 2; ++stage) {
          if (layout(row + 3, col, stage) != stage * kBytes + Offset(row + 3, col)) return false;
        }
      }
    }
    return true;
  }
};

template <class Cfg>
struct VTransposer {
  using PipelineV = typename Cfg::PipelineV;
  using PipelineVt = typename Cfg::PipelineVt;
  using TileV = SwizzledTile<Cfg::kBlockN, Cfg::kHeadDim>;   // (keys, d)
  using TileVt = SwizzledTile<Cfg::kHeadDim, Cfg::kBlockN>;  // (d, keys)
  static constexpr int kWarps = Cfg::kTransposeThreads / 32;
  static constexpr int kKeyGroups = Cfg::kBlockN / 16;
  static constexpr int kChunkPairs = Cfg::kHeadDim / 32;  // a step covers two 16-byte chunks of d
  static constexpr int kStepsPerAtom = TileV::kAtomBytes / 32;
  static_assert(Cfg::kBlockN % 16 == 0 && Cfg::kHeadDim % 32 == 0, "16-key groups, 32-byte steps of d");
  static_assert(TileV::Matches(typename Cfg::SmemLayoutVLoad{}), "V tile layout");
  static_assert(TileVt::Matches(typename Cfg::SmemLayoutVt{}), "V^T tile layout");

  // A lane's part of each step's shared-memory addresses, fixed for the
  // kernel: ldmatrix takes one 16-byte row per lane (lanes 8m..8m+7: matrix
  // m, keys 8 (m & 1) + i of chunk m >> 1), stmatrix one row of V^T per lane.
  struct LaneAddressing {
    // The lane's chunk within its atom, swizzled; step s of the atom XORs in
    // 32 s (the chunk pair's first chunk is even, the swizzle a plain XOR).
    uint32_t load_xor;
    int load_row;             // key within the group, times the atom width
    int store_row;            // d row within the step, times the atom width
    int store_swizzle;        // V^T row's chunk XOR, in bytes
    uint32_t perm_lo, perm_hi;  // which of d 2j / 2j+1 goes to stmatrix matrix 2s / 2s+1

    __device__ __forceinline__ explicit LaneAddressing(int lane) {
      const int m = lane >> 3, i = lane & 7;
      const int key = 8 * (m & 1) + i;
      load_row = key * TileV::kAtomBytes;
      load_xor = (16 * (m >> 1)) ^ (TileV::Swizzle(key) << 4);
      // Matrix rows of d {2i | 2i+1} alternating at i = 4 put a matrix's 8
      // rows at distinct d mod 8: distinct bank groups under every swizzle
      // (all-even rows conflict 2-way).
      const int swap = i >= 4;
      const int d = 16 * (m >> 1) + 2 * i + ((m & 1) ^ swap);
      store_row = d * TileVt::kAtomBytes;
      store_swizzle = TileVt::Swizzle(d) << 4;
      // This thread's ldmatrix column is d pair j = lane / 4: rows 2j, 2j+1.
      const bool odd_first = (lane >> 2) >= 4;
      perm_lo = odd_first ? 0x7531 : 0x6420;
      perm_hi = odd_first ? 0x6420 : 0x7531;
    }
  };

  // Byte mask of this thread's four keys {2q, 2q+1, 8+2q, 9+2q} of a group
  // that are below valid_keys (the rest become zeros, for the reason of
  // ConsumerMainloop::ZeroVTail).
  __device__ __forceinline__ static uint32_t TailMask(int key0, int valid_keys, int lane) {
    const int k = key0 + 2 * (lane & 3);
    return (k < valid_keys ? 0xffu : 0u) | (k + 1 < valid_keys ? 0xff00u : 0u) |
           (k + 8 < valid_keys ? 0xff0000u : 0u) | (k + 9 < valid_keys ? 0xff000000u : 0u);
  }

  // sv: one landed (keys, d) stage; svt: one (d, keys) stage for the MMA
  // (shared-space addresses).
  template <bool kTail>
  __device__ __forceinline__ static void Stage(uint32_t sv, uint32_t svt, int valid_keys, int warp, int lane,
                                               const LaneAddressing& la) {
    for (int g = warp; g < kKeyGroups; g += kWarps) {
      const int key0 = 16 * g;
      const uint32_t src = sv + key0 * TileV::kAtomBytes + la.load_row;
      const uint32_t dst = svt + (key0 / TileVt::kAtomBytes) * Cfg::kHeadDim * TileVt::kAtomBytes +
                           ((key0 % TileVt::kAtomBytes) ^ la.store_swizzle) + la.store_row;
      const uint32_t mask = kTail ? TailMask(key0, valid_keys, lane) : ~0u;
      // Head dim 256 keeps two steps in flight: all four of an atom did not
      // fit the producer warpgroup's 40 registers (8 bytes of spills), one
      // at a time measured 15% slower.
#pragma unroll 1
      for (int atom = 0; atom < kChunkPairs / kStepsPerAtom; ++atom) {
#pragma unroll(kChunkPairs > 4 ? 2 : kStepsPerAtom)
        for (int s = 0; s < kStepsPerAtom; ++s) {
          uint32_t r[4];  // (keys 0-7 | 8-15) x (chunk 2 step | 2 step + 1)
          LdsmX4Trans(src + atom * Cfg::kBlockN * TileV::kAtomBytes + (la.load_xor ^ (32 * s)), r);
          uint32_t w[4];  // V^T rows, in stmatrix's matrix order
          w[0] = __byte_perm(r[0], r[1], la.perm_lo) & mask;
          w[1] = __byte_perm(r[0], r[1], la.perm_hi) & mask;
          w[2] = __byte_perm(r[2], r[3], la.perm_lo) & mask;
          w[3] = __byte_perm(r[2], r[3], la.perm_hi) & mask;
          const int step = atom * kStepsPerAtom + s;
          StsmX4(dst + 32 * step * TileVt::kAtomBytes, w);
        }
      }
    }
  }

  // Producer warps 1-3: the tiles the TMA warp publishes.
  __device__ __forceinline__ static void Run(const KernelParams<Cfg>& kp, typename Cfg::SharedStorage& ss,
                                             PipelineV& pipe_v, PipelineVt& pipe_vt) {
    const int warp = (threadIdx.x - 32) / 32;
    const int lane = threadIdx.x % 32;
    const LaneAddressing la(lane);
    const uint32_t sv = cute::cast_smem_ptr_to_uint(ss.v.data());   // stages of (N, D), TileV
    const uint32_t svt = cute::cast_smem_ptr_to_uint(ss.vt.data());  // stages of (D, N), TileVt
    typename PipelineV::PipelineState read;
    auto write = cutlass::make_producer_start_state<PipelineVt>();
    // Kept as a running (buffer, phase) pair in a rolled loop: the index
    // arithmetic cost head dim 256's 40-register warps 8 bytes of spills.
#pragma unroll 1
    for (int q_buffer = 0, phase = 0, index = 0;; ++index, phase ^= q_buffer == Cfg::kQStages - 1,
             q_buffer = q_buffer == Cfg::kQStages - 1 ? 0 : q_buffer + 1) {
      ss.q_full[q_buffer].wait(phase);
      const TileInfo tile = ss.work[q_buffer].tile;
      if (!tile.valid) break;
      NamedBarrierArrive(Cfg::kQueryEmptyThreads, uint32_t(Barrier::kQueryEmpty0) + q_buffer);
      const KeyBlocks kb = TileKeyBlocks<Cfg>(kp, tile, index);
      // The blocks arrive last first; only the first can have a tail. A
      // block count and the tail are all the loop keeps (40 registers).
      int tail = VTailRow<Cfg>(kp.p, tile, kb);
      for (int blocks = kb.hi - kb.lo; blocks > 0; --blocks, tail = -1) {
        pipe_v.consumer_wait(read);
        pipe_vt.producer_acquire(write);
        const uint32_t src = sv + read.index() * TileV::kBytes;
        const uint32_t dst = svt + write.index() * TileVt::kBytes;
        if (tail >= 0) {
          Stage<true>(src, dst, tail, warp, lane, la);
        } else {
          Stage<false>(src, dst, Cfg::kBlockN, warp, lane, la);
        }
        cutlass::arch::fence_view_async_shared();  // generic-proxy stores, read by wgmma's async proxy
        pipe_vt.producer_commit(write);
        ++write;
        pipe_v.consumer_release(read);
        ++read;
      }
    }
  }
};

}  // namespace jax_fa3::hopper
