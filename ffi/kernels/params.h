// Framework-free description of one attention forward call.
//
// Both the CPU implementation and the CUDA kernels consume this struct; the
// FFI handlers fill it (field by field, in one function) from XLA buffers.
#pragma once

#include <cstdint>

#include "kernels/fast_div.h"
#include "kernels/host_device.h"

namespace jax_fa3 {

enum class DType : int { kF16, kBF16, kF8E4M3, kF32, kS32, kUnknown };

// Per-tensor descale factors for FP8 inputs: value = stored * descale.
// Indexed as ptr[batch * batch_stride + kv_head * head_stride]; a null pointer
// means 1. A scalar descale has both strides 0.
struct Descale {
  const float* ptr = nullptr;
  int64_t batch_stride = 0;
  int64_t head_stride = 0;
};

// Strides are in elements. For varlen problems the batch stride is 0 and rows
// are addressed through cu_seqlens.
struct TensorStrides {
  int64_t batch = 0;
  int64_t row = 0;
  int64_t head = 0;
};

// KV-cache calls (attention_with_kvcache): k and v are the caches. Null
// `seqlens` means a plain dense or varlen call. Sequence b's keys sit at
// cache positions [leftpad[b], min(seqlens[b] + seqlen_new, capacity)).
struct KvCache {
  const int32_t* seqlens = nullptr;     // (batch,) keys already in the cache (end position)
  const int32_t* batch_idx = nullptr;   // (batch,) cache row of each sequence; null: b
  const int32_t* leftpad = nullptr;     // (batch,) first valid position; null: 0
  const int32_t* page_table = nullptr;  // (batch, max_pages); null: contiguous cache
  int64_t page_table_stride = 0;        // max_pages
  FastDivisor page_size;                // paged only: positions per page
  int num_blocks = 0;                   // cache rows (contiguous) or pages (paged), for clamping
  int capacity = 0;                     // positions per sequence: seqlen_cache or max_pages * page_size
  int seqlen_new = 0;                   // tokens appended per sequence before attending
  const void* k_new = nullptr;          // (batch, seqlen_new, num_heads_k, head_dim); null: no append
  const void* v_new = nullptr;          // like k_new
  TensorStrides new_stride;             // of k_new and v_new
};

// Rotary embedding of the query rows (at absolute position seqlens[b] + i),
// applied on load; 16-bit inputs only.
struct Rotary {
  const float* cos = nullptr;  // (seqlen_ro, rotary_dim / 2)
  const float* sin = nullptr;  // like cos
  int rotary_dim = 0;          // 0: no rotary
  int seqlen_ro = 0;
  bool interleaved = false;    // pairs (2i, 2i + 1) instead of (i, i + rotary_dim / 2)
};

// Split-KV: num_splits CTAs share one query block's keys, each writing fp32
// partials (laid out like out and lse, split-major) that a combine kernel
// merges. 1: the kernel writes out and lse directly.
struct SplitKv {
  int num_splits = 1;          // 0 until the launcher's heuristic picks a count
  int max_splits = 1;          // what the workspace holds
  float* out_accum = nullptr;  // (num_splits, batch * seqlen_q * num_heads, head_dim)
  float* lse_accum = nullptr;  // (num_splits, batch * seqlen_q * num_heads), row order of out
};

// Whether the Hopper kernel cuts the last round of a dense call's tiles
// into runs of key blocks across every CTA (hopper/tail_split_sm90.hpp):
// where it pays (the default), never, or wherever it applies (tests).
enum class TailSplitMode : int { kWherePays, kNever, kWhereApplies };

struct AttentionParams {
  const void* q = nullptr;  // (batch, seqlen_q, num_heads, head_dim) or (total_q, num_heads, head_dim)
  const void* k = nullptr;  // (batch, seqlen_k, num_heads_k, head_dim) or (total_k, num_heads_k, head_dim)
  const void* v = nullptr;  // like k
  void* out = nullptr;      // like q, in out_dtype
  float* lse = nullptr;     // (batch, num_heads, seqlen_q) or (num_heads, total_q); natural log
  TensorStrides q_stride, k_stride, v_stride, out_stride;
  int64_t lse_batch_stride = 0;
  int64_t lse_head_stride = 0;

  // Varlen only (null for dense problems). cu_seqlens have batch + 1 entries.
  const int32_t* cu_seqlens_q = nullptr;
  const int32_t* cu_seqlens_k = nullptr;
  const int32_t* seqused_k = nullptr;  // (batch,), may be null

  Descale q_descale, k_descale, v_descale;

  int batch = 0;
  // Dense: the per-sequence lengths. Varlen: the total token counts, which
  // bound every sequence (device data is clamped to them).
  int seqlen_q = 0;
  int seqlen_k = 0;
  int num_heads = 0;
  int num_heads_k = 0;
  int head_dim = 0;

  float softmax_scale = 0.f;
  float softcap = 0.f;      // 0 disables
  int window_left = -1;     // -1: unbounded
  int window_right = -1;    // -1: unbounded; causal is window_right = 0

  DType in_dtype = DType::kF16;
  DType out_dtype = DType::kF16;

  KvCache cache;
  Rotary rotary;
  SplitKv split;
  // Scratch (contents undefined on entry), or null; the Hopper kernel's
  // launcher zeroes what it uses. One int32: its dynamic tile counter;
  // beyond it, room for its tail split (hopper/tail_split_layout.h).
  int32_t* tile_counter = nullptr;
  void* tail_scratch = nullptr;
  int64_t tail_scratch_bytes = 0;
  TailSplitMode tail_split = TailSplitMode::kWherePays;
  // Packed GQA: one CTA serves every query head of a KV head; row r of the
  // query tile is (token r / head_group, head kv_head * head_group + r % head_group).
  bool pack_gqa = false;
  // Splits a packed query row into (token, head): head_group() for packed
  // tiles, else 1. Set by the portable launchers (a division costs the
  // kernels ~20 instructions; this costs 3).
  FastDivisor query_pack;

  FA3_HD bool is_varlen() const { return cu_seqlens_q != nullptr; }
  FA3_HD int head_group() const { return num_heads / num_heads_k; }
  FA3_HD bool is_kvcache() const { return cache.seqlens != nullptr; }
};

}  // namespace jax_fa3
