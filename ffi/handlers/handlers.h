// Handler symbols registered with XLA (see ffi/module.cc).
#pragma once

#include "xla/ffi/api/c_api.h"

extern "C" {
XLA_FFI_Error* JaxFa3AttentionFwdCpu(XLA_FFI_CallFrame* call_frame);
XLA_FFI_Error* JaxFa3VarlenAttentionFwdCpu(XLA_FFI_CallFrame* call_frame);
XLA_FFI_Error* JaxFa3KvCacheFwdCpu(XLA_FFI_CallFrame* call_frame);
XLA_FFI_Error* JaxFa3KvCacheAppendFwdCpu(XLA_FFI_CallFrame* call_frame);
#ifdef JAX_FA3_WITH_CUDA
XLA_FFI_Error* JaxFa3AttentionFwdCuda(XLA_FFI_CallFrame* call_frame);
XLA_FFI_Error* JaxFa3VarlenAttentionFwdCuda(XLA_FFI_CallFrame* call_frame);
XLA_FFI_Error* JaxFa3KvCacheFwdCuda(XLA_FFI_CallFrame* call_frame);
XLA_FFI_Error* JaxFa3KvCacheAppendFwdCuda(XLA_FFI_CallFrame* call_frame);
#endif
}
