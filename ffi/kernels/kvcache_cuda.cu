#include "kernels/kvcache_cuda.h"

#include "cutlass/numeric_types.h"
#include "kernels/launch_fwd.h"
#include "kernels/rotary.h"
#include "kernels/seqlen.h"

namespace jax_fa3 {
namespace {

struct AppendConfig {
  static constexpr int kWarps = 4;  // one warp per appended (token, KV head) row
  static constexpr int kThreads = kWarps * 32;
};

// Writes k_new/v_new row (b, t, h) at cache position seqlens[b] + t (dropped
// past the capacity), rotating the key's first rotary_dim dims.
template <class T>
__global__ void __launch_bounds__(AppendConfig::kThreads) AppendKv(const __grid_constant__ AttentionParams p) {
  const KvCache& c = p.cache;
  const int lane = threadIdx.x % 32;
  const int64_t item = int64_t{blockIdx.x} * AppendConfig::kWarps + threadIdx.x / 32;
  if (item >= int64_t{p.batch} * c.seqlen_new * p.num_heads_k) return;
  const int h = static_cast<int>(item % p.num_heads_k);
  const int t = static_cast<int>((item / p.num_heads_k) % c.seqlen_new);
  const int b = static_cast<int>(item / (int64_t{p.num_heads_k} * c.seqlen_new));
  const long long pos = NewTokenPosition(p, b, t);
  if (pos >= c.capacity) return;
  const int64_t src = b * c.new_stride.batch + t * c.new_stride.row + h * c.new_stride.head;
  const T* k_src = static_cast<const T*>(c.k_new) + src;  // (head_dim)
  const T* v_src = static_cast<const T*>(c.v_new) + src;
  T* k_dst = static_cast<T*>(const_cast<void*>(p.k)) + KvRowOffset(p, p.k_stride, b, static_cast<int>(pos)) +
             h * p.k_stride.head;
  T* v_dst = static_cast<T*>(const_cast<void*>(p.v)) + KvRowOffset(p, p.v_stride, b, static_cast<int>(pos)) +
             h * p.v_stride.head;
  for (int d = lane; d < p.head_dim; d += 32) v_dst[d] = v_src[d];
  if constexpr (sizeof(T) == 1) {  // FP8: rotary is rejected at validation
    for (int d = lane; d < p.head_dim; d += 32) k_dst[d] = k_src[d];
    return;
  }
  for (int d = p.rotary.rotary_dim + lane; d < p.head_dim; d += 32) k_dst[d] = k_src[d];
  for (int pair = lane; pair < p.rotary.rotary_dim / 2; pair += 32) {
    int d0, d1;
    RotaryPairDims(p.rotary, pair, &d0, &d1);
    const int idx = RotaryIndex(p.rotary, pos, pair);
    float y0, y1;
    RotatePair(static_cast<float>(k_src[d0]), static_cast<float>(k_src[d1]), p.rotary.cos[idx],
               p.rotary.sin[idx], &y0, &y1);
    k_dst[d0] = T(y0);
    k_dst[d1] = T(y1);
  }
}

template <class T>
cudaError_t LaunchAppend(const AttentionParams& p, cudaStream_t stream) {
  const int64_t rows = int64_t{p.batch} * p.cache.seqlen_new * p.num_heads_k;
  const int64_t blocks = (rows + AppendConfig::kWarps - 1) / AppendConfig::kWarps;
  if (blocks == 0) return cudaSuccess;
  AppendKv<T><<<static_cast<unsigned>(blocks), AppendConfig::kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t KvCacheForwardCuda(const AttentionParams& p, cudaStream_t stream) {
  using cutlass::bfloat16_t;
  using cutlass::float_e4m3_t;
  using cutlass::half_t;
  if (p.cache.k_new != nullptr) {
    cudaError_t err = p.in_dtype == DType::kF16    ? LaunchAppend<half_t>(p, stream)
                      : p.in_dtype == DType::kBF16 ? LaunchAppend<bfloat16_t>(p, stream)
                                                   : LaunchAppend<float_e4m3_t>(p, stream);
    if (err != cudaSuccess) return err;
  }
  // The portable kernels serve every KV-cache call (the Hopper path does
  // not read paged caches).
  return portable::Forward(p, stream);
}

}  // namespace jax_fa3
