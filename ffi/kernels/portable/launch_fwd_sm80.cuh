// Launch wrapper of the portable kernel, included by the instantiation files.
#pragma once

#include <algorithm>
#include <atomic>

#include "kernels/device_cache.h"
#include "kernels/env_flag.h"
#include "kernels/launch_fwd.h"
#include "kernels/portable/combine.cuh"
#include "kernels/portable/kernel_decode_sm80.cuh"
#include "kernels/portable/kernel_fwd_sm80.cuh"
#include "kernels/portable/schedule.h"

namespace jax_fa3::portable {

template <class Cfg, class In, class Out>
cudaError_t LaunchKernel(const AttentionParams& p, cudaStream_t stream) {
  using Compute = typename ComputeTypeOf<In>::type;
  constexpr int kSmemBytes = Cfg::kSmemElems * sizeof(Compute);
  auto* kernel = &AttentionFwdPortable<Cfg, In, Out>;
  // Host-side attribute, not a stream operation (safe under graph capture),
  // set once per device.
  static std::atomic<int> smem_set[kMaxCachedDevices] = {};
  const auto set_smem = [&] {
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
  };
  if (CachedForDevice(smem_set, [&](int) { return set_smem() == cudaSuccess ? 1 : 0; }) == 0) {
    if (const cudaError_t err = set_smem(); err != cudaSuccess) return err;  // the failure's own code
  }
  const dim3 grid(NumBlocksX<Cfg::kBlockM>(p), p.pack_gqa ? p.num_heads_k : p.num_heads, p.split.num_splits);
  if (grid.x == 0) return cudaSuccess;
  kernel<<<grid, Cfg::kThreads, kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

// The decode kernel's ring depth on a device: the deepest that still lets
// two CTAs share an SM (the bytes in flight come from the ring; more CTAs
// would only add merge work).
template <class Cfg, class In>
int DecodeStages(int smem_per_sm, int smem_per_block) {
  constexpr int kCtasPerSm = 2;
  constexpr int kReservedPerCta = 1024;  // shared memory the runtime keeps per CTA (sm_80 and newer)
  const int budget = std::min(smem_per_block, smem_per_sm / kCtasPerSm - kReservedPerCta);
  const int stages = (budget / static_cast<int>(sizeof(In)) - Cfg::kQueryElems) / Cfg::kStageElems;
  return std::clamp(stages, Cfg::kMinStages, Cfg::kMaxStages);
}

template <class Cfg, class In>
constexpr int DecodeSmemBytes(int stages) {
  return (Cfg::kQueryElems + stages * Cfg::kStageElems) * static_cast<int>(sizeof(In));
}

// The decode kernel serves 16-bit inputs (it copies K/V as stored) up to
// head dim 128 (a deeper ring pays more than larger head dims) ...
template <class In, int kHeadDim>
constexpr bool kHasDecodeKernel = sizeof(In) == 2 && kHeadDim <= 128;

// ... for calls whose packed query rows (tokens times the head group) fit
// one decode tile.
inline bool DecodeKernelTakes(const AttentionParams& p) {
  constexpr int kMaxGridY = 65535;  // the decode grid's y is the batch
  return !p.is_varlen() && static_cast<long long>(p.seqlen_q) * p.head_group() <= DecodeConfig<64>::kBlockM &&
         p.batch <= kMaxGridY;
}

// A launch of the decode kernel whose CTAs (1, 1, cluster_z) form a cluster.
// config points at attr, so the pair is never copied.
struct ClusterLaunch {
  cudaLaunchAttribute attr = {};
  cudaLaunchConfig_t config = {};

  ClusterLaunch(const ClusterLaunch&) = delete;
  ClusterLaunch& operator=(const ClusterLaunch&) = delete;

  ClusterLaunch(dim3 grid, int threads, int smem_bytes, cudaStream_t stream, int cluster_z) {
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = 1;
    attr.val.clusterDim.y = 1;
    attr.val.clusterDim.z = cluster_z;
    config.gridDim = grid;
    config.blockDim = dim3(threads);
    config.dynamicSmemBytes = smem_bytes;
    config.stream = stream;
    config.attrs = &attr;
    config.numAttrs = 1;
  }
};

// Whether the current device runs the decode kernel in clusters of
// kMaxClusterSplits CTAs (and so of any smaller size): sm_90 and newer.
template <class Kernel>
bool ClustersFit(Kernel* kernel, int device, int threads, int smem_bytes) {
  int major = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess || major < 9) {
    return false;
  }
  const ClusterLaunch launch(dim3(1, 1, kMaxClusterSplits), threads, smem_bytes, nullptr, kMaxClusterSplits);
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &launch.config) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return clusters > 0;
}

// How the decode kernel launches on a device, queried once per device and
// kernel: the ring depth (two CTAs per SM) and whether clusters fit.
struct DecodeLaunchInfo {
  int stages = 0;
  bool clusters = false;

  // CachedForDevice holds one positive int per device.
  int Pack() const { return stages << 1 | (clusters ? 1 : 0); }
  static DecodeLaunchInfo Unpack(int v) { return {v >> 1, (v & 1) != 0}; }
};

template <class Cfg, class In, class Kernel>
DecodeLaunchInfo QueryDecodeLaunch(Kernel* kernel) {
  static std::atomic<int> cache[kMaxCachedDevices] = {};
  return DecodeLaunchInfo::Unpack(CachedForDevice(cache, [&](int device) {
    int per_sm = 0, per_block = 0, ctas = 0;
    if (cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&per_block, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
      return 0;
    }
    DecodeLaunchInfo info;
    info.stages = DecodeStages<Cfg, In>(per_sm, per_block);
    const int bytes = DecodeSmemBytes<Cfg, In>(info.stages);
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&ctas, kernel, Cfg::kThreads, bytes) != cudaSuccess ||
        ctas <= 0) {
      return 0;
    }
    info.clusters = ClustersFit(kernel, device, Cfg::kThreads, bytes);
    return info.Pack();
  }));
}

template <class In, class Out, int kHeadDim>
cudaError_t LaunchDecode(AttentionParams p, cudaStream_t stream) {
  using Cfg = DecodeConfig<kHeadDim>;
  auto* kernel = &DecodeFwd<Cfg, In, Out>;
  // The query raised the kernel's shared-memory limit to the ring's size.
  const DecodeLaunchInfo info = QueryDecodeLaunch<Cfg, In>(kernel);
  if (info.stages == 0) return cudaErrorInvalidDevice;

  // One tile per (sequence, KV head): DecodeKernelTakes admits only calls
  // whose packed rows fit it.
  const long long ctas = static_cast<long long>(p.batch) * p.num_heads_k;
  if (ctas == 0 || p.seqlen_q == 0) return cudaSuccess;
  p.query_pack = FastDivisor(p.head_group());
  if (!CanSplit(p)) {
    p.split.num_splits = 1;
  } else if (p.split.num_splits == 0) {
    const int key_tiles = std::max(1, (p.seqlen_k + Cfg::kTileKeys - 1) / Cfg::kTileKeys);
    // Waves are counted in SMs, not CTA slots: one decode CTA per SM already
    // streams K/V at the copy rate (seed b32: 2 splits, 128 CTAs, beat 4
    // splits, 256 CTAs, by 1 µs; bench/NOTES.md, d8).
    p.split.num_splits = ChooseDecodeSplits(ctas, key_tiles, NumSms(), p.split.max_splits);
  }
  const dim3 grid(p.num_heads_k, p.batch, p.split.num_splits);
  const int smem_bytes = DecodeSmemBytes<Cfg, In>(info.stages);
  // JAX_FA3_SPLIT_COMBINE_KERNEL=1 merges splits in the combine kernel even
  // where a cluster could (tests and bench/decode_kernels.py compare both).
  if (info.clusters && ClusterMergePays(ctas, p.split.num_splits, NumSms()) &&
      !EnvFlag("JAX_FA3_SPLIT_COMBINE_KERNEL")) {
    const ClusterLaunch launch(grid, Cfg::kThreads, smem_bytes, stream, p.split.num_splits);
    const cudaError_t err = cudaLaunchKernelEx(&launch.config, kernel, p, info.stages);
    if (err != cudaSuccess) cudaGetLastError();  // returned here, not left for the next launch to report
    return err;
  }
  kernel<<<grid, Cfg::kThreads, smem_bytes, stream>>>(p, info.stages);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess || p.split.num_splits <= 1) return err;
  return LaunchCombine<Out>(p, stream);
}

// Picks the decode kernel, or packed GQA, the split count and the tile
// variant, launches the
// kernel and, with split-KV, the combine kernel.
template <class In, class Out, int kHeadDim>
cudaError_t LaunchFwd(const AttentionParams& params, cudaStream_t stream) {
  if constexpr (kHasDecodeKernel<In, kHeadDim>) {
    if (DecodeKernelTakes(params)) return LaunchDecode<In, Out, kHeadDim>(params, stream);
  }
  using Cfg = TileConfig<kHeadDim>;
  AttentionParams p = params;
  ChooseSchedule(&p, Cfg::kBlockM, Cfg::kBlockN, NumSms());
  p.query_pack = FastDivisor(PackFactor(p));
  cudaError_t err;
  if constexpr (kHeadDim <= 128) {
    // Decode-shaped calls (every sequence's packed rows fit one query tile)
    // take the deeper K/V pipeline.
    const bool decode = !p.is_varlen() && static_cast<long long>(p.seqlen_q) * PackFactor(p) <= Cfg::kBlockM;
    err = decode ? LaunchKernel<TileConfig<kHeadDim, true>, In, Out>(p, stream)
                 : LaunchKernel<Cfg, In, Out>(p, stream);
  } else {
    err = LaunchKernel<Cfg, In, Out>(p, stream);
  }
  if (err != cudaSuccess || p.split.num_splits <= 1) return err;
  return LaunchCombine<Out>(p, stream);
}

}  // namespace jax_fa3::portable
