// CPU-platform handlers: the same targets and validation as on CUDA, run by
// the portable C++ implementation.
#include "handlers/ffi_signature.h"
#include "handlers/handlers.h"
#include "kernels/attention_cpu.h"

namespace jax_fa3 {
namespace {

ffi::Error Run(AttentionCall call) {
  AttentionParams params;
  if (ffi::Error err = Prepare(call, &params); err.failure()) return err;
  AttentionForwardCpu(params);
  return ffi::Error::Success();
}

ffi::Error DenseCpu(ffi::AnyBuffer q, ffi::AnyBuffer k, ffi::AnyBuffer v, ffi::AnyBuffer q_descale,
                    ffi::AnyBuffer k_descale, ffi::AnyBuffer v_descale, ffi::Result<ffi::AnyBuffer> out,
                    ffi::Result<ffi::AnyBuffer> lse, ffi::Result<ffi::AnyBuffer> scratch,
                    float softmax_scale, bool causal, int64_t window_left, int64_t window_right, float softcap) {
  return Run(DenseCall(q, k, v, q_descale, k_descale, v_descale, out, lse, scratch,
                       Attrs(softmax_scale, causal, window_left, window_right, softcap)));
}

ffi::Error VarlenCpu(ffi::AnyBuffer q, ffi::AnyBuffer k, ffi::AnyBuffer v, ffi::AnyBuffer cu_seqlens_q,
                     ffi::AnyBuffer cu_seqlens_k, ffi::AnyBuffer seqused_k, ffi::AnyBuffer q_descale,
                     ffi::AnyBuffer k_descale, ffi::AnyBuffer v_descale, ffi::Result<ffi::AnyBuffer> out,
                     ffi::Result<ffi::AnyBuffer> lse, ffi::Result<ffi::AnyBuffer> scratch,
                     float softmax_scale, bool causal, int64_t window_left, int64_t window_right, float softcap) {
  return Run(VarlenCall(q, k, v, cu_seqlens_q, cu_seqlens_k, seqused_k, q_descale, k_descale, v_descale, out,
                        lse, scratch, Attrs(softmax_scale, causal, window_left, window_right, softcap)));
}

}  // namespace
}  // namespace jax_fa3

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxFa3AttentionFwdCpu, jax_fa3::DenseCpu, jax_fa3::DenseSignature(xla::ffi::Ffi::Bind()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxFa3VarlenAttentionFwdCpu, jax_fa3::VarlenCpu, jax_fa3::VarlenSignature(xla::ffi::Ffi::Bind()));
