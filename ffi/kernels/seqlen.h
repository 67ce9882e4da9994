// Where sequence `b` lives and how long it is, for dense and varlen problems.
//
// Device data (cu_seqlens, seqused_k) is untrusted: every value is clamped so
// that no row outside [0, total) is ever touched, whatever the input holds.
// Garbage in gives garbage out, never an out-of-bounds access; the checked
// mode in Python reports such input instead.
#pragma once

#include "kernels/host_device.h"
#include "kernels/params.h"

namespace jax_fa3 {

struct SeqInfo {
  int q_start = 0;  // first row of the sequence in q/out/lse
  int k_start = 0;  // first row in k/v
  int seqlen_q = 0;
  int seqlen_k = 0;  // keys actually attended (seqused_k applied)
};

FA3_HD int ClampInt(int x, int lo, int hi) { return x < lo ? lo : (x > hi ? hi : x); }

FA3_HD void ClampedRange(const int32_t* cu, int b, int total, int* start, int* len) {
  const int s = ClampInt(cu[b], 0, total);
  const int e = ClampInt(cu[b + 1], s, total);
  *start = s;
  *len = e - s;
}

// KV cache: keys [leftpad, end) of the sequence's cache positions, where
// end = seqlens[b] + seqlen_new, every bound clamped to the capacity.
FA3_HD SeqInfo GetKvCacheSeqInfo(const AttentionParams& p, int b) {
  SeqInfo s;
  const KvCache& c = p.cache;
  const long long end = static_cast<long long>(ClampInt(c.seqlens[b], 0, c.capacity)) + c.seqlen_new;
  const int end_clamped = end < c.capacity ? static_cast<int>(end) : c.capacity;
  s.k_start = c.leftpad == nullptr ? 0 : ClampInt(c.leftpad[b], 0, end_clamped);
  s.seqlen_k = end_clamped - s.k_start;
  s.seqlen_q = p.seqlen_q;
  return s;
}

FA3_HD SeqInfo GetSeqInfo(const AttentionParams& p, int b) {
  SeqInfo s;
  if (p.is_kvcache()) return GetKvCacheSeqInfo(p, b);
  if (!p.is_varlen()) {
    s.seqlen_q = p.seqlen_q;
    s.seqlen_k = p.seqlen_k;
    return s;
  }
  ClampedRange(p.cu_seqlens_q, b, p.seqlen_q, &s.q_start, &s.seqlen_q);
  ClampedRange(p.cu_seqlens_k, b, p.seqlen_k, &s.k_start, &s.seqlen_k);
  if (p.seqused_k != nullptr) s.seqlen_k = ClampInt(p.seqused_k[b], 0, s.seqlen_k);
  return s;
}

// Rows of q that belong to no sequence (before cu_seqlens_q[0] or after
// cu_seqlens_q[batch]) still get a defined output: zeros and lse = -inf.
// They are handled as two extra key-less sequences at indices -1 and batch.
FA3_HD SeqInfo GetGapInfo(const AttentionParams& p, bool trailing) {
  SeqInfo s;
  const int first = ClampInt(p.cu_seqlens_q[0], 0, p.seqlen_q);
  if (trailing) {
    s.q_start = ClampInt(p.cu_seqlens_q[p.batch], first, p.seqlen_q);
    s.seqlen_q = p.seqlen_q - s.q_start;
  } else {
    s.seqlen_q = first;
  }
  return s;
}

// Where key/value row `pos` (k_start + j) of sequence b lives: the cache
// block (contiguous: the cache row, through batch_idx; paged: the page,
// through the page table) and the row within it. Both indices are clamped
// into the cache. K and V share the location and differ in strides only.
struct KvLocation {
  int block;
  int row;

  FA3_HD int64_t Offset(const TensorStrides& s) const { return block * s.batch + static_cast<int64_t>(row) * s.row; }
};

// Where position `pos` of sequence b lives. The block is a page-table or
// batch_idx load, the part worth issuing early.
FA3_HD KvLocation KvRowLocation(const AttentionParams& p, int b, int pos) {
  const KvCache& c = p.cache;
  if (c.page_table == nullptr) {
    return {c.batch_idx == nullptr ? b : ClampInt(c.batch_idx[b], 0, c.num_blocks - 1), pos};
  }
  KvLocation loc;
  c.page_size.DivMod(pos, &loc.block, &loc.row);
  loc.block = ClampInt(c.page_table[b * c.page_table_stride + loc.block], 0, c.num_blocks - 1);
  return loc;
}

// Element offset of key/value row `pos` of sequence b, head 0.
FA3_HD int64_t KvRowOffset(const AttentionParams& p, const TensorStrides& s, int b, int pos) {
  return KvRowLocation(p, b, pos).Offset(s);
}

FA3_HD float DescaleAt(const Descale& d, int b, int kv_head) {
  return d.ptr == nullptr ? 1.f : d.ptr[b * d.batch_stride + kv_head * d.head_stride];
}

}  // namespace jax_fa3
