// Python extension: hands XLA the handler symbols of every target.
#include <nanobind/nanobind.h>

#include "handlers/handlers.h"
#include "kernels/hopper/tail_split_layout.h"

#ifdef JAX_FA3_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace nb = nanobind;

namespace {

template <class Fn>
nb::capsule Capsule(Fn* fn) {
  return nb::capsule(reinterpret_cast<void*>(fn));
}

// Versioned target names: a changed operand or attribute list gets a new
// suffix, so executables serialized against an older build fail loudly.
constexpr const char* kDenseTarget = "jax_fa3_attention_fwd_v1";
constexpr const char* kVarlenTarget = "jax_fa3_varlen_attention_fwd_v1";
// attention_with_kvcache: without and with appended keys/values.
constexpr const char* kKvCacheTarget = "jax_fa3_kvcache_attention_fwd_v1";
constexpr const char* kKvCacheAppendTarget = "jax_fa3_kvcache_append_attention_fwd_v1";

}  // namespace

NB_MODULE(_jax_fa3_ext, m) {
  m.def("registrations", []() {
    nb::dict cpu, cuda, all;
    cpu[kDenseTarget] = Capsule(JaxFa3AttentionFwdCpu);
    cpu[kVarlenTarget] = Capsule(JaxFa3VarlenAttentionFwdCpu);
    cpu[kKvCacheTarget] = Capsule(JaxFa3KvCacheFwdCpu);
    cpu[kKvCacheAppendTarget] = Capsule(JaxFa3KvCacheAppendFwdCpu);
    all["cpu"] = cpu;
#ifdef JAX_FA3_WITH_CUDA
    cuda[kDenseTarget] = Capsule(JaxFa3AttentionFwdCuda);
    cuda[kVarlenTarget] = Capsule(JaxFa3VarlenAttentionFwdCuda);
    cuda[kKvCacheTarget] = Capsule(JaxFa3KvCacheFwdCuda);
    cuda[kKvCacheAppendTarget] = Capsule(JaxFa3KvCacheAppendFwdCuda);
    all["CUDA"] = cuda;
#endif
    return all;
  });
  // Compute capabilities (major * 10 + minor) of the visible GPUs; empty when
  // the build has no CUDA or the machine no driver or device.
  m.def("cuda_devices", []() {
    nb::list caps;
#ifdef JAX_FA3_WITH_CUDA
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
      cudaGetLastError();
      return caps;
    }
    for (int d = 0; d < count; ++d) {
      int major = 0, minor = 0;
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, d);
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, d);
      caps.append(major * 10 + minor);
    }
#endif
    return caps;
  });
  // int32 words of the dense target's scratch result for a problem.
  m.def("dense_scratch_words", &jax_fa3::hopper::DenseScratchWords, nb::arg("batch"), nb::arg("seqlen_q"),
        nb::arg("seqlen_k"), nb::arg("heads"), nb::arg("head_dim"), nb::arg("masked"));
  m.attr("dense_target") = kDenseTarget;
  m.attr("varlen_target") = kVarlenTarget;
  m.attr("kvcache_target") = kKvCacheTarget;
  m.attr("kvcache_append_target") = kKvCacheAppendTarget;
}
