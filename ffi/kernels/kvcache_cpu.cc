#include "kernels/kvcache_cpu.h"

#include <cstring>
#include <vector>

#include "kernels/attention_cpu.h"
#include "kernels/numeric_host.h"
#include "kernels/rotary.h"
#include "kernels/seqlen.h"

namespace jax_fa3 {
namespace {

size_t ElementBytes(DType t) { return t == DType::kF8E4M3 ? 1 : 2; }

float Load16(const uint16_t* src, DType t) {
  return t == DType::kBF16 ? host::Bf16ToFloat(*src) : host::F16ToFloat(*src);
}

uint16_t Round16(float x, DType t) { return t == DType::kBF16 ? host::FloatToBf16(x) : host::FloatToF16(x); }

// Copies one head_dim row, rotating its first rotary_dim dims (16-bit only:
// rotary is rejected for FP8 at validation) for position `pos`.
void CopyRow(const AttentionParams& p, const void* src, void* dst, long long pos, bool rotate) {
  std::memmove(dst, src, p.head_dim * ElementBytes(p.in_dtype));
  if (!rotate || p.rotary.rotary_dim == 0) return;
  const auto* s = static_cast<const uint16_t*>(src);
  auto* d = static_cast<uint16_t*>(dst);
  for (int c = 0; c < p.rotary.rotary_dim / 2; ++c) {
    int d0, d1;
    RotaryPairDims(p.rotary, c, &d0, &d1);
    const int idx = RotaryIndex(p.rotary, pos, c);
    float y0, y1;
    RotatePair(Load16(s + d0, p.in_dtype), Load16(s + d1, p.in_dtype), p.rotary.cos[idx], p.rotary.sin[idx],
               &y0, &y1);
    d[d0] = Round16(y0, p.in_dtype);
    d[d1] = Round16(y1, p.in_dtype);
  }
}

// Writes k_new/v_new at positions seqlens[b] + t; tokens past the capacity
// are dropped.
void AppendNewKv(const AttentionParams& p) {
  const size_t bytes = ElementBytes(p.in_dtype);
  const KvCache& c = p.cache;
  for (int b = 0; b < p.batch; ++b) {
    for (int t = 0; t < c.seqlen_new; ++t) {
      const long long pos = NewTokenPosition(p, b, t);
      if (pos >= c.capacity) break;
      for (int h = 0; h < p.num_heads_k; ++h) {
        const int64_t src = b * c.new_stride.batch + t * c.new_stride.row + h * c.new_stride.head;
        const int64_t k_dst = KvRowOffset(p, p.k_stride, b, static_cast<int>(pos)) + h * p.k_stride.head;
        const int64_t v_dst = KvRowOffset(p, p.v_stride, b, static_cast<int>(pos)) + h * p.v_stride.head;
        CopyRow(p, static_cast<const char*>(c.k_new) + src * bytes,
                static_cast<char*>(const_cast<void*>(p.k)) + k_dst * bytes, pos, /*rotate=*/true);
        CopyRow(p, static_cast<const char*>(c.v_new) + src * bytes,
                static_cast<char*>(const_cast<void*>(p.v)) + v_dst * bytes, pos, /*rotate=*/false);
      }
    }
  }
}

}  // namespace

void KvCacheForwardCpu(const AttentionParams& p) {
  if (p.cache.k_new != nullptr) AppendNewKv(p);
  if (p.rotary.rotary_dim == 0) {
    AttentionForwardCpu(p);
    return;
  }
  // Rotated copy of q (the kernel rotates on load instead).
  const size_t bytes = ElementBytes(p.in_dtype);
  const int64_t elems = int64_t{p.batch} * p.seqlen_q * p.num_heads * p.head_dim;
  std::vector<char> q_rot(elems * bytes);
  for (int b = 0; b < p.batch; ++b) {
    for (int i = 0; i < p.seqlen_q; ++i) {
      for (int h = 0; h < p.num_heads; ++h) {
        const int64_t off = b * p.q_stride.batch + i * p.q_stride.row + h * p.q_stride.head;
        CopyRow(p, static_cast<const char*>(p.q) + off * bytes, q_rot.data() + off * bytes,
                NewTokenPosition(p, b, i), /*rotate=*/true);
      }
    }
  }
  AttentionParams rotated = p;
  rotated.q = q_rot.data();
  AttentionForwardCpu(rotated);
}

}  // namespace jax_fa3
