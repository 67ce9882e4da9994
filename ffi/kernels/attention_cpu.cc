#include "kernels/attention_cpu.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/mask.h"
#include "kernels/numeric_host.h"
#include "kernels/seqlen.h"

namespace jax_fa3 {
namespace {

// Decoding e4m3 bit by bit dominates FP8 runs; 256 entries cover every value.
const std::array<float, 256>& F8E4M3Table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[i] = host::F8E4M3ToFloat(static_cast<uint8_t>(i));
    return t;
  }();
  return table;
}

float LoadAsFloat(const void* base, int64_t index, DType dtype) {
  switch (dtype) {
    case DType::kF16: return host::F16ToFloat(static_cast<const uint16_t*>(base)[index]);
    case DType::kBF16: return host::Bf16ToFloat(static_cast<const uint16_t*>(base)[index]);
    case DType::kF8E4M3: return F8E4M3Table()[static_cast<const uint8_t*>(base)[index]];
    default: return 0.f;
  }
}

void StoreFromFloat(void* base, int64_t index, DType dtype, float value) {
  auto* dst = static_cast<uint16_t*>(base) + index;
  *dst = dtype == DType::kBF16 ? host::FloatToBf16(value) : host::FloatToF16(value);
}

int64_t RowOffset(const TensorStrides& s, int b, int row, int head) {
  return b * s.batch + static_cast<int64_t>(row) * s.row + static_cast<int64_t>(head) * s.head;
}

// One query row against its visible keys: scores, softmax, weighted sum.
void AttendRow(const AttentionParams& p, int b, const SeqInfo& seq, int h, int i,
               std::vector<float>& scores, std::vector<float>& acc) {
  const int kv_head = h / p.head_group();
  const float score_scale = p.softmax_scale * DescaleAt(p.q_descale, b, kv_head) *
                            DescaleAt(p.k_descale, b, kv_head);
  const float v_scale = DescaleAt(p.v_descale, b, kv_head);
  const Mask mask{seq.seqlen_q, seq.seqlen_k, p.window_left, p.window_right};
  int lo, hi;
  mask.KeyRange(i, i + 1, &lo, &hi);
  const int64_t q_off = RowOffset(p.q_stride, b, seq.q_start + i, h);
  float row_max = -std::numeric_limits<float>::infinity();
  scores.assign(std::max(hi - lo, 0), 0.f);
  for (int j = lo; j < hi; ++j) {
    const int64_t k_off = RowOffset(p.k_stride, b, seq.k_start + j, kv_head);
    float dot = 0.f;
    for (int d = 0; d < p.head_dim; ++d) {
      dot += LoadAsFloat(p.q, q_off + d, p.in_dtype) * LoadAsFloat(p.k, k_off + d, p.in_dtype);
    }
    float s = dot * score_scale;
    if (p.softcap > 0.f) s = p.softcap * std::tanh(s / p.softcap);
    scores[j - lo] = s;
    row_max = std::max(row_max, s);
  }
  acc.assign(p.head_dim, 0.f);
  float row_sum = 0.f;
  for (int j = lo; j < hi; ++j) {
    const float w = std::exp(scores[j - lo] - row_max);
    row_sum += w;
    const int64_t v_off = RowOffset(p.v_stride, b, seq.k_start + j, kv_head);
    for (int d = 0; d < p.head_dim; ++d) acc[d] += w * LoadAsFloat(p.v, v_off + d, p.in_dtype);
  }
  const float inv = row_sum > 0.f ? v_scale / row_sum : 0.f;
  const int64_t o_off = RowOffset(p.out_stride, b, seq.q_start + i, h);
  for (int d = 0; d < p.head_dim; ++d) StoreFromFloat(p.out, o_off + d, p.out_dtype, acc[d] * inv);
  const int64_t lse_idx = b * p.lse_batch_stride + h * p.lse_head_stride + seq.q_start + i;
  p.lse[lse_idx] = row_sum > 0.f ? row_max + std::log(row_sum)
                                 : -std::numeric_limits<float>::infinity();
}

void WriteEmptyRows(const AttentionParams& p, const SeqInfo& seq) {
  for (int h = 0; h < p.num_heads; ++h) {
    for (int i = 0; i < seq.seqlen_q; ++i) {
      const int64_t o_off = RowOffset(p.out_stride, 0, seq.q_start + i, h);
      for (int d = 0; d < p.head_dim; ++d) StoreFromFloat(p.out, o_off + d, p.out_dtype, 0.f);
      p.lse[h * p.lse_head_stride + seq.q_start + i] = -std::numeric_limits<float>::infinity();
    }
  }
}

}  // namespace

void AttentionForwardCpu(const AttentionParams& p) {
  std::vector<float> scores, acc;
  if (p.is_varlen()) {
    WriteEmptyRows(p, GetGapInfo(p, /*trailing=*/false));
    WriteEmptyRows(p, GetGapInfo(p, /*trailing=*/true));
  }
  for (int b = 0; b < p.batch; ++b) {
    const SeqInfo seq = GetSeqInfo(p, b);
    for (int h = 0; h < p.num_heads; ++h) {
      for (int i = 0; i < seq.seqlen_q; ++i) AttendRow(p, b, seq, h, i, scores, acc);
    }
  }
}

}  // namespace jax_fa3
