// CUDA forward pass of attention_with_kvcache: appends the new keys/values
// to the caches (rotary on the keys), then runs the portable kernel over the
// caches (paged or contiguous, packed GQA and split-KV by heuristic).
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/params.h"

namespace jax_fa3 {

// p.k and p.v are the (writable) caches. Launches on `stream`; never
// synchronizes or allocates.
cudaError_t KvCacheForwardCuda(const AttentionParams& p, cudaStream_t stream);

}  // namespace jax_fa3
