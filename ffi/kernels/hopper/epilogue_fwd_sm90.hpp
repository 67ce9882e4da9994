// Writes one consumer warpgroup's rows of O and LSE.
//
// Where the tile config has room (SmemEpilogue), O is converted into a
// shared-memory buffer with stmatrix and leaves from there: by a TMA store
// when the warpgroup's 64 rows all belong to the tile's sequence (or lie
// past a dense tensor's end, which TMA clips), else (a varlen tile ending
// inside the next sequence, which a TMA box would overwrite) by 16-byte
// stores of the sequence's rows, a full 32-byte sector per pair of threads
// (one consumer warpgroup only: see kRowStores). The register path stored 4-byte pairs, 32 per thread, half a
// sector each, and the warpgroup stalled on the store queue; it remains for
// head dim 256 (no shared memory left) and unaligned outputs. LSE is always
// stored from registers.
#pragma once

#include "cute/tensor.hpp"
#include "cutlass/array.h"
#include "cutlass/numeric_conversion.h"
#include "kernels/hopper/mainloop_fwd_sm90.hpp"

namespace jax_fa3::hopper {

using namespace cute;

// o and coord are (rows, cols) views of the O accumulator and of its
// coordinates inside the tile; out_scale = 0 writes zeros. With store_o
// false only the LSE is written.
template <int kBlockM, int kHeadDim, class Out, int kRows, class TO, class TC>
__device__ __forceinline__ void StoreTile(const AttentionParams& p, const TileInfo& tile, const TO& o,
                                          const TC& coord, const float (&out_scale)[kRows],
                                          const float (&lse)[kRows], bool store_o) {
  static_assert(decltype(size<0>(o))::value == kRows);
  using Pair = cutlass::Array<Out, 2>;
  cutlass::NumericArrayConverter<Out, float, 2> convert;
  const int m0 = tile.m_block * kBlockM;
  // Columns are the thread's first column plus compile-time offsets: with the
  // row base pointer at that column, every store takes an immediate offset.
  const int thread_col0 = get<1>(coord(0, 0));
  const bool full_width = p.head_dim == kHeadDim;
  Out* out = static_cast<Out*>(p.out) + tile.batch * p.out_stride.batch + tile.head * p.out_stride.head + thread_col0;
  float* lse_out = p.lse + tile.batch * p.lse_batch_stride + tile.head * p.lse_head_stride;
#pragma unroll
  for (int r = 0; r < size<0>(o); ++r) {
    const int row = m0 + get<0>(coord(r, 0));
    if (row >= tile.seq.seqlen_q) continue;
    const int64_t token = tile.seq.q_start + row;
    if (store_o) {
      Out* dst = out + token * p.out_stride.row;
#pragma unroll
      for (int c = 0; c < size<1>(o); c += 2) {
        const int offset = get<1>(coord(r, c)) - thread_col0;
        cutlass::Array<float, 2> v;
        v[0] = o(r, c) * out_scale[r];
        v[1] = o(r, c + 1) * out_scale[r];
        const Pair pair = convert(v);
        if (full_width || thread_col0 + offset < p.head_dim) *reinterpret_cast<Pair*>(dst + offset) = pair;
      }
    }
    if (threadIdx.x % 4 == 0) lse_out[token] = lse[r];
  }
}

// How a warpgroup's O leaves (see the top of this file).
enum class OStorePath { kRegisters, kTma, kRows };

template <class Cfg>
struct SmemEpilogue {
  using Out = typename Cfg::ElementOut;
  static constexpr int kWarpgroupThreads = 128;
  static constexpr int kRows = Cfg::kRowsPerWarpgroup;
  // Row stores only beside one consumer warpgroup (the short tile, which
  // varlen batches of short sequences take): with two at 240 registers,
  // keeping the row bounds live until the epilogue spilled 16 bytes (bf16
  // head dim 64), so their partial varlen tiles keep the register path.
  static constexpr bool kRowStores = Cfg::kConsumerWarpgroups == 1;

  __device__ __forceinline__ static OStorePath Path(const KernelParams<Cfg>& kp, const TileInfo& tile, int wg_row0) {
    if constexpr (!Cfg::kSmemEpilogue) {
      return OStorePath::kRegisters;
    } else {
      if (!kp.o_tma) return OStorePath::kRegisters;
      if (!kp.p.is_varlen() || wg_row0 + kRows <= tile.seq.seqlen_q) return OStorePath::kTma;
      return kRowStores ? OStorePath::kRows : OStorePath::kRegisters;
    }
  }

  // Scales O by row, writes it to the warpgroup's buffer and sends it out
  // by `path` (kTma or kRows). tid: 0 .. kConsumerThreads-1, mma: the P V
  // TiledMma.
  template <class TiledMma, class TO>
  __device__ __forceinline__ static void Store(const KernelParams<Cfg>& kp, typename Cfg::SharedStorage& ss,
                                               const TileInfo& tile, const TiledMma& mma, const TO& tOrO,
                                               const float (&out_scale)[2], int wg_row0, OStorePath path,
                                               int tid) {
    const int warpgroup = tid / kWarpgroupThreads;
    const bool issuer = tid % kWarpgroupThreads == 0;
    const uint32_t barrier = uint32_t(Barrier::kEpilogue0) + warpgroup;
    // The buffer still feeds this warpgroup's previous store until it is
    // read: by the TMA (waited for here) or by every thread's row loads
    // (ordered by the barrier).
    if (issuer) tma_store_wait<0>();
    NamedBarrierSync(kWarpgroupThreads, barrier);

    Tensor rO = make_tensor<Out>(tOrO.layout());                           // (MMA, MMA_M, MMA_N)
    Tensor o_rc = make_tensor(tOrO.data(), RowColLayout(tOrO.layout()));   // (rows, cols)
    Tensor r_rc = make_tensor(rO.data(), RowColLayout(rO.layout()));       // (rows, cols)
    cutlass::NumericArrayConverter<Out, float, 2> convert;
#pragma unroll
    for (int r = 0; r < size<0>(o_rc); ++r) {
#pragma unroll
      for (int c = 0; c < size<1>(o_rc); c += 2) {
        cutlass::Array<float, 2> v;
        v[0] = o_rc(r, c) * out_scale[r];
        v[1] = o_rc(r, c + 1) * out_scale[r];
        const cutlass::Array<Out, 2> pair = convert(v);
        r_rc(r, c) = pair[0];
        r_rc(r, c + 1) = pair[1];
      }
    }
    Tensor sO = make_tensor(make_smem_ptr(ss.o.data()), typename Cfg::SmemLayoutO{});  // (M, D)
    auto copy_o = make_tiled_copy_C(Copy_Atom<SM90_U32x4_STSM_N, Out>{}, mma);
    auto thr_copy = copy_o.get_thread_slice(tid);
    Tensor tOrR = thr_copy.retile_S(rO);     // (CPY, CPY_M, CPY_N)
    Tensor tOsO = thr_copy.partition_D(sO);  // (CPY, CPY_M, CPY_N)
    copy(copy_o, tOrR, tOsO);
    if (path == OStorePath::kTma) {
      cutlass::arch::fence_view_async_shared();  // generic-proxy stores, read by the TMA's async proxy
    }
    NamedBarrierSync(kWarpgroupThreads, barrier);

    Tensor sOw = make_tensor(make_smem_ptr(ss.o.data() + warpgroup * cosize_v<typename Cfg::SmemLayoutOWarpgroup>),
                             typename Cfg::SmemLayoutOWarpgroup{});  // (64, D)
    if constexpr (kRowStores) {
      if (path == OStorePath::kRows) {
        StoreRows(kp.p, tile, sOw, wg_row0, tid % kWarpgroupThreads);
        return;
      }
    }
    if (issuer) {
      using WarpgroupTile = Shape<Int<kRows>, typename Cfg::HeadDim>;
      Tensor mO = kp.tma_o.get_tma_tensor(kp.shape_q);  // (seqlen_q, d, heads, batch)
      const int b = kp.p.is_varlen() ? 0 : tile.batch;
      Tensor gO = local_tile(domain_offset(make_coord(tile.seq.q_start, _0{}), mO(_, _, tile.head, b)),
                             WarpgroupTile{},
                             make_coord(tile.m_block * Cfg::kMmaWarpgroups + warpgroup, _0{}));  // (64, D)
      auto [tOgT, tOsT] = tma_partition(kp.tma_o, _0{}, Layout<_1>{}, group_modes<0, 2>(sOw),
                                        group_modes<0, 2>(gO));  // (TMA), (TMA)
      copy(kp.tma_o, tOsT, tOgT);
      tma_store_arrive();
    }
  }

  // The warpgroup's rows inside its sequence, from its buffer to `out` in
  // 16-byte pieces: each pass covers kRowsPerPass whole rows. All loads
  // come first, so that the stores leave back to back. wt: the thread's
  // index in the warpgroup.
  template <class TS>
  __device__ __forceinline__ static void StoreRows(const AttentionParams& p, const TileInfo& tile, const TS& sOw,
                                                   int wg_row0, int wt) {  // sOw: (64, D)
    constexpr int kPieceElems = 16 / int(sizeof(Out));
    constexpr int kPiecesPerRow = Cfg::kHeadDim / kPieceElems;
    static_assert(kWarpgroupThreads % kPiecesPerRow == 0);
    constexpr int kRowsPerPass = kWarpgroupThreads / kPiecesPerRow;
    constexpr int kPasses = kRows / kRowsPerPass;
    const int piece = wt % kPiecesPerRow;
    const int row0 = wt / kPiecesPerRow;
    uint4 pieces[kPasses];
#pragma unroll
    for (int i = 0; i < kPasses; ++i) pieces[i] = LoadPiece(&sOw(row0 + i * kRowsPerPass, piece * kPieceElems));
    // head_dim is a multiple of 8 (make_params.cc), so a piece is all in or all out.
    if (piece * kPieceElems >= p.head_dim) return;
    const int rows = min(kRows, tile.seq.seqlen_q - wg_row0);
    Out* out = static_cast<Out*>(p.out) + tile.batch * p.out_stride.batch + tile.head * p.out_stride.head +
               (tile.seq.q_start + wg_row0) * p.out_stride.row + piece * kPieceElems;
#pragma unroll
    for (int i = 0; i < kPasses; ++i) {
      const int r = row0 + i * kRowsPerPass;
      if (r < rows) *reinterpret_cast<uint4*>(out + r * p.out_stride.row) = pieces[i];
    }
  }

  // One 16-byte piece of the buffer. A tensor element's address is already
  // swizzled, and the swizzle permutes whole pieces, so a piece is one
  // ld.shared (the address as a generic pointer would give a generic load).
  __device__ __forceinline__ static uint4 LoadPiece(const Out* first) {
    const uint32_t addr = cast_smem_ptr_to_uint(first);
    uint4 v;
    asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "r"(addr));
    return v;
  }

  // Before the CTA exits: its last stores must have read their buffers.
  __device__ __forceinline__ static void Drain(int tid) {
    if (Cfg::kSmemEpilogue && tid % kWarpgroupThreads == 0) tma_store_wait<0>();
  }
};

}  // namespace jax_fa3::hopper
