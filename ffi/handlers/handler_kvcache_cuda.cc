// CUDA handlers of the KV-cache targets: validate, then launch on XLA's
// stream. The split-KV workspace is a result buffer sized in Python, so the
// handlers neither allocate nor synchronize (command-buffer safe).
#include <cuda_runtime_api.h>

#include "handlers/handlers.h"
#include "handlers/kvcache_signature.h"
#include "kernels/kvcache_cuda.h"

namespace jax_fa3 {
namespace {

ffi::Error Run(cudaStream_t stream, const KvCacheCall& call) {
  AttentionParams params;
  if (ffi::Error err = PrepareKvCache(call, &params); err.failure()) return err;
  if (cudaError_t err = KvCacheForwardCuda(params, stream); err != cudaSuccess) {
    return ffi::Error::Internal(std::string("jax_fa3: CUDA launch failed: ") + cudaGetErrorString(err));
  }
  return ffi::Error::Success();
}

ffi::Error KvCacheCuda(cudaStream_t stream, ffi::AnyBuffer q, ffi::AnyBuffer k_cache, ffi::AnyBuffer v_cache,
                       ffi::AnyBuffer cache_seqlens, ffi::AnyBuffer k, ffi::AnyBuffer v, ffi::AnyBuffer page_table,
                       ffi::AnyBuffer cache_batch_idx, ffi::AnyBuffer cache_leftpad, ffi::AnyBuffer rotary_cos,
                       ffi::AnyBuffer rotary_sin, ffi::AnyBuffer q_descale, ffi::AnyBuffer k_descale,
                       ffi::AnyBuffer v_descale, ffi::Result<ffi::AnyBuffer> out, ffi::Result<ffi::AnyBuffer> lse,
                       ffi::Result<ffi::AnyBuffer> workspace, float softmax_scale, bool causal, int64_t window_left,
                       int64_t window_right, float softcap, int64_t num_splits, bool rotary_interleaved) {
  const KvCacheOperands ops{q, k_cache, v_cache, cache_seqlens, k, v, page_table, cache_batch_idx, cache_leftpad,
                            rotary_cos, rotary_sin, q_descale, k_descale, v_descale};
  return Run(stream, MakeKvCacheCall(ops, out, lse, workspace,
                                     {softmax_scale, causal, window_left, window_right, softcap, num_splits,
                                      rotary_interleaved}));
}

ffi::Error KvCacheAppendCuda(cudaStream_t stream, ffi::AnyBuffer q, ffi::AnyBuffer k_cache, ffi::AnyBuffer v_cache,
                             ffi::AnyBuffer cache_seqlens, ffi::AnyBuffer k, ffi::AnyBuffer v,
                             ffi::AnyBuffer page_table, ffi::AnyBuffer cache_batch_idx, ffi::AnyBuffer cache_leftpad,
                             ffi::AnyBuffer rotary_cos, ffi::AnyBuffer rotary_sin, ffi::AnyBuffer q_descale,
                             ffi::AnyBuffer k_descale, ffi::AnyBuffer v_descale, ffi::Result<ffi::AnyBuffer> out,
                             ffi::Result<ffi::AnyBuffer> lse, ffi::Result<ffi::AnyBuffer> workspace,
                             ffi::Result<ffi::AnyBuffer> k_cache_out, ffi::Result<ffi::AnyBuffer> v_cache_out,
                             float softmax_scale, bool causal, int64_t window_left, int64_t window_right,
                             float softcap, int64_t num_splits, bool rotary_interleaved) {
  const KvCacheOperands ops{q, k_cache, v_cache, cache_seqlens, k, v, page_table, cache_batch_idx, cache_leftpad,
                            rotary_cos, rotary_sin, q_descale, k_descale, v_descale};
  KvCacheCall call = MakeKvCacheCall(ops, out, lse, workspace,
                                     {softmax_scale, causal, window_left, window_right, softcap, num_splits,
                                      rotary_interleaved});
  UseResultCaches(call, k_cache_out, v_cache_out);
  return Run(stream, call);
}

auto CudaBinding() { return ffi::Ffi::Bind().Ctx<ffi::PlatformStream<cudaStream_t>>(); }

}  // namespace
}  // namespace jax_fa3

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxFa3KvCacheFwdCuda, jax_fa3::KvCacheCuda, jax_fa3::KvCacheSignature(jax_fa3::CudaBinding()),
                              {xla::ffi::Traits::kCmdBufferCompatible});
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxFa3KvCacheAppendFwdCuda, jax_fa3::KvCacheAppendCuda,
                              jax_fa3::KvCacheAppendSignature(jax_fa3::CudaBinding()),
                              {xla::ffi::Traits::kCmdBufferCompatible});
