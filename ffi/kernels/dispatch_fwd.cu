// Chooses the compiled variant for a problem. The Hopper kernel takes what
// it covers on sm_90; the portable kernel serves everything else from sm_80 on.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cutlass/numeric_types.h"
#include "kernels/env_flag.h"
#include "kernels/hopper/supported.h"
#include "kernels/launch_fwd.h"
#include "kernels/portable/schedule.h"

namespace jax_fa3 {
namespace {

#ifdef JAX_FA3_WITH_SM90
// JAX_FA3_FORCE_PORTABLE=1 pins every call to the portable kernel.
bool ForcedPortable() { return EnvFlag("JAX_FA3_FORCE_PORTABLE"); }

bool OnSm90() {
  int device, major, minor;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) return false;
  return major == 9 && minor == 0;  // sm_90a code runs on sm_90 only
}

// Decode-shaped calls (a few query rows, KV-cache features, forced splits)
// belong to the portable kernel's split-KV and packed-GQA paths.
bool HopperTakes(const AttentionParams& p) {
  constexpr int kDecodeRows = 16;
  if (p.is_kvcache() || p.pack_gqa || p.split.num_splits > 1) return false;
  if (!p.is_varlen() && p.seqlen_q <= kDecodeRows) return false;
  return hopper::Supported(p) && !ForcedPortable() && OnSm90();
}

// By the mean sequence (varlen lengths count every token): the short tile
// for 64 queries or fewer, the long one from long_keys keys on: 8192 for
// 16-bit inputs, 4096 for FP8, whose 224-key long tile measured faster
// there (s4096 b4 h16: 788 -> 845 TFLOP/s, causal 709 -> 775; equal at
// s2048; bench/NOTES.md, v34). Dense
// problems of at most one short tile per SM take the short tile, too: the
// medium one would leave half the SMs idle (non-causal b1 s1024 h8: 18.6
// -> 17.3 µs; causal b1 s1024 h8: 19.6 -> 16.8). So do causal problems of
// fewer than two short tiles per SM: each CTA then runs one tile, and the
// tile order puts a short tile beside each long one (tile_order.h; seed
// 2's shape, causal b2 s512 h16, 256 short tiles: 15.4 -> 13.2 µs).
// Measured slower on the short tile past one per SM, so left on the
// medium one: causal b4 s512 h16 (512 short tiles), non-causal b2 s512 h16
// (256: 12.8 -> 15.4 µs), and sliding windows, whose tiles are all about
// as long (b1 s2048 h8 window (128, 128): 12.7 -> 13.4 µs). bench/NOTES.md,
// v30.
// Those dense problems' time is their longest tile's chain of key blocks.
// With 16-bit inputs (where it is built) the key split halves it: two
// warpgroups on one short tile, one CTA per SM. It pays wherever the short
// tile leaves an SM's second CTA slot idle (at most one tile per SM;
// non-causal b1 s1024 h8 17.0 -> 13.7 µs, b1 s512 h16 11.0 -> 9.6), but
// beside a paired short tile only for long chains: causal b1 s2048 h8 29.9
// -> 25.8, b1 s1024 h16 18.2 -> 17.5, seed 2 (s512) 12.1 -> 13.5
// (bench/NOTES.md, v47).
// JAX_FA3_HOPPER_TILE=short, medium, long or split pins the shape (head-dim
// bucket 128; FP8 has no split and takes the short tile), so tests cover
// each.
hopper::TileShape ChooseTileShape(const AttentionParams& p, bool fp8) {
  using hopper::TileShape;
  constexpr int kShortRows = 64;
  constexpr int kSplitPairedKeys = 1024;
  const int long_keys = fp8 ? 4096 : 8192;
  const TileShape one_wave = fp8 ? TileShape::kShort : TileShape::kSplitKeys;
  const char* v = std::getenv("JAX_FA3_HOPPER_TILE");
  if (v != nullptr && std::strcmp(v, "short") == 0) return TileShape::kShort;
  if (v != nullptr && std::strcmp(v, "medium") == 0) return TileShape::kMedium;
  if (v != nullptr && std::strcmp(v, "long") == 0) return TileShape::kLong;
  if (v != nullptr && std::strcmp(v, "split") == 0) return one_wave;
  const int64_t seqs = p.is_varlen() ? std::max(p.batch, 1) : 1;
  if (p.seqlen_q / seqs <= kShortRows) return TileShape::kShort;
  if (!p.is_varlen()) {
    const int64_t short_tiles = int64_t{(p.seqlen_q + kShortRows - 1) / kShortRows} * p.batch * p.num_heads;
    const int64_t sms = portable::NumSms();
    const bool causal = p.window_left < 0 && p.window_right >= 0;
    if (short_tiles <= sms) return one_wave;
    if (causal && short_tiles < 2 * sms) return p.seqlen_k >= kSplitPairedKeys ? one_wave : TileShape::kShort;
  }
  return p.seqlen_k / seqs >= long_keys ? TileShape::kLong : TileShape::kMedium;
}

// JAX_FA3_STATIC_TILE_ORDER=1 withholds the tile counter, so that the
// Hopper kernel keeps a static tile order (bench/tile_order.py compares).
// JAX_FA3_TAIL_SPLIT=0 turns the tail split off, =1 takes it wherever it
// applies (tests), not only where it pays.
AttentionParams WithTileOrderPolicy(const AttentionParams& params) {
  AttentionParams p = params;
  if (EnvFlag("JAX_FA3_STATIC_TILE_ORDER")) p.tile_counter = nullptr;
  const char* tail = std::getenv("JAX_FA3_TAIL_SPLIT");
  if (tail != nullptr && std::strcmp(tail, "0") == 0) p.tail_split = TailSplitMode::kNever;
  if (tail != nullptr && std::strcmp(tail, "1") == 0) p.tail_split = TailSplitMode::kWhereApplies;
  return p;
}

// Head-dim bucket 128 has every shape, the others the medium one; 16-bit
// inputs have buckets 96 and 192 too (see generate_instantiations.py).
template <class In, class Out>
cudaError_t DispatchHopper(const AttentionParams& params, cudaStream_t stream) {
  using hopper::TileShape;
  const AttentionParams p = WithTileOrderPolicy(params);
  if (p.head_dim <= 64) return hopper::LaunchFwd<In, Out, 64, TileShape::kMedium>(p, stream);
  if constexpr (sizeof(In) == 2) {
    if (p.head_dim <= 96) return hopper::LaunchFwd<In, Out, 96, TileShape::kMedium>(p, stream);
    if (p.head_dim > 128 && p.head_dim <= 192) return hopper::LaunchFwd<In, Out, 192, TileShape::kMedium>(p, stream);
  }
  if (p.head_dim > 128) return hopper::LaunchFwd<In, Out, 256, TileShape::kMedium>(p, stream);
  switch (ChooseTileShape(p, sizeof(In) == 1)) {
    case TileShape::kShort: return hopper::LaunchFwd<In, Out, 128, TileShape::kShort>(p, stream);
    case TileShape::kSplitKeys:
      if constexpr (sizeof(In) == 2) return hopper::LaunchFwd<In, Out, 128, TileShape::kSplitKeys>(p, stream);
      return hopper::LaunchFwd<In, Out, 128, TileShape::kShort>(p, stream);
    case TileShape::kLong: return hopper::LaunchFwd<In, Out, 128, TileShape::kLong>(p, stream);
    default: return hopper::LaunchFwd<In, Out, 128, TileShape::kMedium>(p, stream);
  }
}
#endif

}  // namespace

cudaError_t AttentionForwardCuda(const AttentionParams& p, cudaStream_t stream) {
  using cutlass::bfloat16_t;
  using cutlass::float_e4m3_t;
  using cutlass::half_t;
#ifdef JAX_FA3_WITH_SM90
  if (HopperTakes(p)) {
    if (p.in_dtype == DType::kF16) return DispatchHopper<half_t, half_t>(p, stream);
    if (p.in_dtype == DType::kBF16) return DispatchHopper<bfloat16_t, bfloat16_t>(p, stream);
    if (p.in_dtype == DType::kF8E4M3) {
      return p.out_dtype == DType::kBF16 ? DispatchHopper<float_e4m3_t, bfloat16_t>(p, stream)
                                         : DispatchHopper<float_e4m3_t, half_t>(p, stream);
    }
  }
#endif
  return portable::Forward(p, stream);
}

namespace portable {
namespace {

template <class In, class Out>
cudaError_t DispatchHeadDim(const AttentionParams& p, cudaStream_t stream) {
  if (p.head_dim <= 64) return LaunchFwd<In, Out, 64>(p, stream);
  if (p.head_dim <= 96) return LaunchFwd<In, Out, 96>(p, stream);
  if (p.head_dim <= 128) return LaunchFwd<In, Out, 128>(p, stream);
  if (p.head_dim <= 192) return LaunchFwd<In, Out, 192>(p, stream);
  return LaunchFwd<In, Out, 256>(p, stream);
}

}  // namespace

cudaError_t Forward(const AttentionParams& p, cudaStream_t stream) {
  using cutlass::bfloat16_t;
  using cutlass::float_e4m3_t;
  using cutlass::half_t;
  switch (p.in_dtype) {
    case DType::kF16: return DispatchHeadDim<half_t, half_t>(p, stream);
    case DType::kBF16: return DispatchHeadDim<bfloat16_t, bfloat16_t>(p, stream);
    case DType::kF8E4M3:
      return p.out_dtype == DType::kBF16 ? DispatchHeadDim<float_e4m3_t, bfloat16_t>(p, stream)
                                         : DispatchHeadDim<float_e4m3_t, half_t>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace portable
}  // namespace jax_fa3
