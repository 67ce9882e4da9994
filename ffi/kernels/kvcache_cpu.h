// CPU implementation of attention_with_kvcache: appends the new keys and
// values to the caches (rotary on the keys), then attends with the rotated
// queries through AttentionForwardCpu, which reads the caches through
// KvRowOffset (contiguous or paged).
#pragma once

#include "kernels/params.h"

namespace jax_fa3 {

// p.k and p.v are the (writable) cache buffers; see KvCache in params.h.
void KvCacheForwardCpu(const AttentionParams& p);

}  // namespace jax_fa3
