// Chooses the compiled variant for a problem. The portable kernel serves
// every GPU from sm_80 on.
#include "cutlass/numeric_types.h"
#include "kernels/launch_fwd.h"

namespace jax_fa3 {
namespace {

template <class In, class Out>
cudaError_t DispatchHeadDim(const AttentionParams& p, cudaStream_t stream) {
  if (p.head_dim <= 64) return portable::LaunchFwd<In, Out, 64>(p, stream);
  if (p.head_dim <= 96) return portable::LaunchFwd<In, Out, 96>(p, stream);
  if (p.head_dim <= 128) return portable::LaunchFwd<In, Out, 128>(p, stream);
  if (p.head_dim <= 192) return portable::LaunchFwd<In, Out, 192>(p, stream);
  return portable::LaunchFwd<In, Out, 256>(p, stream);
}

}  // namespace

cudaError_t AttentionForwardCuda(const AttentionParams& p, cudaStream_t stream) {
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

}  // namespace jax_fa3
