// CUDA-platform handlers: validate, then launch on XLA's stream. No host
// synchronization or allocation, so the targets are command-buffer safe.
#include <cuda_runtime_api.h>

#include "handlers/ffi_signature.h"
#include "handlers/handlers.h"
#include "kernels/launch_fwd.h"

namespace jax_fa3 {
namespace {

ffi::Error Run(cudaStream_t stream, AttentionCall call) {
  AttentionParams params;
  if (ffi::Error err = Prepare(call, &params); err.failure()) return err;
  if (cudaError_t err = AttentionForwardCuda(params, stream); err != cudaSuccess) {
    return ffi::Error::Internal(std::string("jax_fa3: CUDA launch failed: ") + cudaGetErrorString(err));
  }
  return ffi::Error::Success();
}

ffi::Error DenseCuda(cudaStream_t stream, ffi::AnyBuffer q, ffi::AnyBuffer k, ffi::AnyBuffer v,
                     ffi::AnyBuffer q_descale, ffi::AnyBuffer k_descale, ffi::AnyBuffer v_descale,
                     ffi::Result<ffi::AnyBuffer> out, ffi::Result<ffi::AnyBuffer> lse,
                     ffi::Result<ffi::AnyBuffer> scratch, float softmax_scale, bool causal,
                     int64_t window_left, int64_t window_right, float softcap) {
  return Run(stream, DenseCall(q, k, v, q_descale, k_descale, v_descale, out, lse, scratch,
                               Attrs(softmax_scale, causal, window_left, window_right, softcap)));
}

ffi::Error VarlenCuda(cudaStream_t stream, ffi::AnyBuffer q, ffi::AnyBuffer k, ffi::AnyBuffer v,
                      ffi::AnyBuffer cu_seqlens_q, ffi::AnyBuffer cu_seqlens_k, ffi::AnyBuffer seqused_k,
                      ffi::AnyBuffer q_descale, ffi::AnyBuffer k_descale, ffi::AnyBuffer v_descale,
                      ffi::Result<ffi::AnyBuffer> out, ffi::Result<ffi::AnyBuffer> lse,
                      ffi::Result<ffi::AnyBuffer> scratch, float softmax_scale, bool causal,
                      int64_t window_left, int64_t window_right, float softcap) {
  return Run(stream, VarlenCall(q, k, v, cu_seqlens_q, cu_seqlens_k, seqused_k, q_descale, k_descale,
                                v_descale, out, lse, scratch,
                                Attrs(softmax_scale, causal, window_left, window_right, softcap)));
}

auto CudaBinding() { return ffi::Ffi::Bind().Ctx<ffi::PlatformStream<cudaStream_t>>(); }

}  // namespace
}  // namespace jax_fa3

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxFa3AttentionFwdCuda, jax_fa3::DenseCuda, jax_fa3::DenseSignature(jax_fa3::CudaBinding()),
                              {xla::ffi::Traits::kCmdBufferCompatible});
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxFa3VarlenAttentionFwdCuda, jax_fa3::VarlenCuda, jax_fa3::VarlenSignature(jax_fa3::CudaBinding()),
                              {xla::ffi::Traits::kCmdBufferCompatible});
