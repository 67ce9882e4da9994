// FP8 V transpose. FP8 wgmma reads both operands K-major, but V arrives with
// keys as rows; producer warps 1-3 rewrite each landed V tile as V^T, 4 keys
// x 16 head-dim bytes per step, between the V (TMA) and Vt pipelines.
#pragma once

#include <cuda_fp8.h>

#include "kernels/hopper/mainloop_fwd_sm90.hpp"

namespace jax_fa3::hopper {

// Key order inside each 32-key slice of V^T. The FP8 wgmma's A fragment
// holds, per thread, columns {4q..4q+3, 16+4q..19+4q} of a slice, while the
// S accumulator gives that thread keys {2q, 2q+1, 8+2q, 9+2q, 16+2q, ...}.
// Storing V^T column 16h + 4q + r as key 16h + 2q + (r & 1) + 8 (r >> 1)
// makes the accumulator's own registers a valid A fragment (PackP8) while
// P V sums the same products.
__device__ __forceinline__ int PermutedKey(int column) {
  const int slice = column & ~31;
  const int w = column & 31;
  const int h = w >> 4, q = (w >> 2) & 3, r = w & 3;
  return slice + 16 * h + 2 * q + (r & 1) + 8 * (r >> 1);
}

// Four words of 4 keys x 4 bytes of d become four words of 4 d x 4 keys.
__device__ __forceinline__ void Transpose4x4(const uint32_t (&in)[4], uint32_t (&out)[4]) {
  const uint32_t lo01 = __byte_perm(in[0], in[1], 0x5140);
  const uint32_t hi01 = __byte_perm(in[0], in[1], 0x7362);
  const uint32_t lo23 = __byte_perm(in[2], in[3], 0x5140);
  const uint32_t hi23 = __byte_perm(in[2], in[3], 0x7362);
  out[0] = __byte_perm(lo01, lo23, 0x5410);
  out[1] = __byte_perm(lo01, lo23, 0x7632);
  out[2] = __byte_perm(hi01, hi23, 0x5410);
  out[3] = __byte_perm(hi01, hi23, 0x7632);
}

// S (fp32 accumulator, ((2, 2, N/8), 1, 1)) rounded to e4m3 in the A layout
// ((4, 2, 2), 1, N/32) of the P V wgmma, keys in PermutedKey order.
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
// keys) are such tiles; VTransposer checks that at compile time. Written
// out, a unit's 16 store addresses are static XORs plus immediate offsets;
// through the generic layout every access cost ~20 integer instructions,
// which made the transpose warps the FP8 kernel's bottleneck.
template <int kRows, int kRowBytes>
struct SwizzledTile {
  static constexpr int kAtomBytes = kRowBytes % 128 == 0 ? 128 : kRowBytes % 64 == 0 ? 64 : 32;
  static constexpr int kChunkMask = kAtomBytes / 16 - 1;
  static constexpr int kBytes = kRows * kRowBytes;
  static_assert(kRowBytes % 32 == 0 && kRows % 8 == 0, "FP8 swizzled tiles have 32-byte multiples per row");

  __host__ __device__ static constexpr int Offset(int row, int col) {
    // One atom column (head dim 128 V tiles): col needs no division, which
    // the compiler cannot prove for the transpose's runtime d0.
    constexpr bool kOneAtomColumn = kRowBytes == kAtomBytes;
    const int atom_col = kOneAtomColumn ? 0 : col / kAtomBytes;
    const int c = kOneAtomColumn ? col : col % kAtomBytes;
    return atom_col * kRows * kAtomBytes + row * kAtomBytes + (c ^ ((((row * kAtomBytes) >> 7) & kChunkMask) << 4));
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
  using TileV = SwizzledTile<Cfg::kBlockN, Cfg::kHeadDim>;              // (keys, d)
  using TileVt = SwizzledTile<Cfg::kHeadDim, Cfg::kBlockN>;     // (d, keys)
  static_assert(Cfg::kBlockN % 32 == 0 && Cfg::kHeadDim % 16 == 0, "32-key slices, 16-byte chunks of d");
  static_assert(TileV::Matches(typename Cfg::SmemLayoutVLoad{}), "V tile layout");
  static_assert(TileVt::Matches(typename Cfg::SmemLayoutVt{}), "V^T tile layout");

  // sv: one landed (keys, d) stage; svt: one (d, keys) stage for the MMA.
  // Keys >= valid_keys become zeros, for the same reason as
  // ConsumerMainloop::ZeroVTail. A unit is 4 keys x 16 bytes of d: four
  // 16-byte loads (whole swizzle chunks), four 4x4 byte transposes, sixteen
  // 4-byte stores; neighbouring threads store neighbouring 4-key columns.
  __device__ __forceinline__ static void Stage(const uint8_t* sv, uint8_t* svt, int valid_keys, int tid) {
    constexpr int kColumnGroups = Cfg::kBlockN / 4;
    constexpr int kUnits = kColumnGroups * Cfg::kHeadDim / 16;
    for (int u = tid; u < kUnits; u += Cfg::kTransposeThreads) {
      const int column = 4 * (u % kColumnGroups);
      const int d0 = 16 * (u / kColumnGroups);  // a multiple of 16: the rows' swizzle bits below are static
      const int key0 = PermutedKey(column);     // the group's keys: key0 + {0, 1, 8, 9}
      uint4 rows[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int key = key0 + (r & 1) + 8 * (r >> 1);
        rows[r] = key < valid_keys ? *reinterpret_cast<const uint4*>(sv + TileV::Offset(key, d0)) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        auto word = [&](const uint4& v) { return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w; };
        const uint32_t in[4] = {word(rows[0]), word(rows[1]), word(rows[2]), word(rows[3])};
        uint32_t out[4];
        Transpose4x4(in, out);
#pragma unroll
        for (int t = 0; t < 4; ++t) {
          *reinterpret_cast<uint32_t*>(svt + TileVt::Offset(d0 + 4 * j + t, column)) = out[t];
        }
      }
    }
  }

  // Producer warps 1-3: the same tile walk as the TMA warp.
  __device__ __forceinline__ static void Run(const KernelParams<Cfg>& kp, typename Cfg::SharedStorage& ss,
                                             PipelineV& pipe_v, PipelineVt& pipe_vt) {
    const int tid = threadIdx.x - 32;
    const uint8_t* sv = reinterpret_cast<const uint8_t*>(ss.v.data());  // stages of (N, D), TileV
    uint8_t* svt = reinterpret_cast<uint8_t*>(ss.vt.data());              // stages of (D, N or more), TileVt
    typename PipelineV::PipelineState read;
    auto write = cutlass::make_producer_start_state<PipelineVt>();
    TileScheduler<Cfg::kBlockM> scheduler{kp.p, kp.sched};
    for (int index = 0, t = scheduler.TileOfCta(0); t < kp.sched.num_tiles; t = scheduler.TileOfCta(++index)) {
      const TileInfo tile = scheduler.Decode(t);
      if (!tile.valid) break;
      const KeyBlocks kb = VisibleKeyBlocks<Cfg>(kp.p, tile);
      const int tail = VTailRow<Cfg>(kp.p, tile, kb);
      for (int n = kb.hi - 1; n >= kb.lo; --n) {
        pipe_v.consumer_wait(read);
        pipe_vt.producer_acquire(write);
        Stage(sv + read.index() * TileV::kBytes, svt + write.index() * TileVt::kBytes,
              n == kb.hi - 1 && tail >= 0 ? tail : Cfg::kBlockN, tid);
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
