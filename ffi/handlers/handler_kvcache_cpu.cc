// CPU handlers of the KV-cache targets (attention_with_kvcache).
#include "handlers/handlers.h"
#include "handlers/kvcache_signature.h"
#include "kernels/kvcache_cpu.h"

namespace jax_fa3 {
namespace {

ffi::Error Run(const KvCacheCall& call) {
  AttentionParams params;
  if (ffi::Error err = PrepareKvCache(call, &params); err.failure()) return err;
  // The CPU path splits only when asked to (it exercises the combine math).
  if (params.split.num_splits == 0) params.split.num_splits = 1;
  KvCacheForwardCpu(params);
  return ffi::Error::Success();
}

ffi::Error KvCacheCpu(ffi::AnyBuffer q, ffi::AnyBuffer k_cache, ffi::AnyBuffer v_cache, ffi::AnyBuffer cache_seqlens,
                      ffi::AnyBuffer k, ffi::AnyBuffer v, ffi::AnyBuffer page_table, ffi::AnyBuffer cache_batch_idx,
                      ffi::AnyBuffer cache_leftpad, ffi::AnyBuffer rotary_cos, ffi::AnyBuffer rotary_sin,
                      ffi::AnyBuffer q_descale, ffi::AnyBuffer k_descale, ffi::AnyBuffer v_descale,
                      ffi::Result<ffi::AnyBuffer> out, ffi::Result<ffi::AnyBuffer> lse,
                      ffi::Result<ffi::AnyBuffer> workspace, float softmax_scale, bool causal, int64_t window_left,
                      int64_t window_right, float softcap, int64_t num_splits, bool rotary_interleaved) {
  const KvCacheOperands ops{q, k_cache, v_cache, cache_seqlens, k, v, page_table, cache_batch_idx, cache_leftpad,
                            rotary_cos, rotary_sin, q_descale, k_descale, v_descale};
  return Run(MakeKvCacheCall(ops, out, lse, workspace,
                             {softmax_scale, causal, window_left, window_right, softcap, num_splits,
                              rotary_interleaved}));
}

ffi::Error KvCacheAppendCpu(ffi::AnyBuffer q, ffi::AnyBuffer k_cache, ffi::AnyBuffer v_cache,
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
  return Run(call);
}

}  // namespace
}  // namespace jax_fa3

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxFa3KvCacheFwdCpu, jax_fa3::KvCacheCpu, jax_fa3::KvCacheSignature(xla::ffi::Ffi::Bind()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxFa3KvCacheAppendFwdCpu, jax_fa3::KvCacheAppendCpu,
                              jax_fa3::KvCacheAppendSignature(xla::ffi::Ffi::Bind()));
