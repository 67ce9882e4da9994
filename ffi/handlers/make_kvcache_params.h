// Validation and params of the KV-cache target (attention_with_kvcache),
// shared by its CPU and CUDA handlers; errors name the argument and shape.
#pragma once

#include <cstdint>
#include <string>

#include "handlers/make_params.h"

namespace jax_fa3 {

struct KvCacheCall {
  BufferView q;                          // (batch, seqlen_q, num_heads, head_dim)
  BufferView k_cache, v_cache;           // (batch_cache, seqlen_cache, heads_k, d) or (pages, page_size, heads_k, d)
  BufferView cache_seqlens;              // int32 (batch,)
  BufferView k_new, v_new;               // (batch, seqlen_new, heads_k, d) or empty
  BufferView page_table;                 // int32 (batch, max_pages) or empty
  BufferView cache_batch_idx;            // int32 (batch,) or empty
  BufferView cache_leftpad;              // int32 (batch,) or empty
  BufferView rotary_cos, rotary_sin;     // float32 (seqlen_ro, rotary_dim / 2) or empty
  BufferView q_descale, k_descale, v_descale;
  BufferView out, lse, workspace;        // workspace: float32 (splits * rows * (head_dim + 1),)
  AttentionAttrs attrs;
  int64_t num_splits = 0;                // 0: heuristic
  bool rotary_interleaved = false;
};

// Floats of workspace per split: an fp32 output row and an LSE per query row.
inline int64_t WorkspaceFloatsPerSplit(int64_t batch, int64_t seqlen_q, int64_t heads, int64_t head_dim) {
  return batch * seqlen_q * heads * (head_dim + 1);
}

// Returns an empty string on success, else a message naming the argument.
// k/v of the params point at the caches, which the call may write.
std::string MakeKvCacheParams(const KvCacheCall& call, AttentionParams* params);

}  // namespace jax_fa3
