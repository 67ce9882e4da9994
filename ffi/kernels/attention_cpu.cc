#include "kernels/attention_cpu.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/mask.h"
#include "kernels/numeric_host.h"
#include "kernels/seqlen.h"
#include "kernels/split_kv.h"

namespace jax_fa3 {
namespace {

// Split-KV emulation divides keys in blocks of this size (the CUDA kernel's
// key tile; the result does not depend on it beyond rounding).
constexpr int kCpuSplitBlock = 64;

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

// Softmax-weighted sum of the values of keys [lo, hi) for one query row:
// `acc` gets the normalized output (v descale applied), the return value is
// the natural-log LSE (-inf and acc = 0 when no key is visible).
float AttendKeys(const AttentionParams& p, int b, const SeqInfo& seq, int h, int i, int lo, int hi,
                 std::vector<float>& scores, std::vector<float>& acc) {
  const int kv_head = h / p.head_group();
  const float score_scale = p.softmax_scale * DescaleAt(p.q_descale, b, kv_head) *
                            DescaleAt(p.k_descale, b, kv_head);
  const float v_scale = DescaleAt(p.v_descale, b, kv_head);
  const Mask mask{seq.seqlen_q, seq.seqlen_k, p.window_left, p.window_right};
  const int64_t q_off = RowOffset(p.q_stride, b, seq.q_start + i, h);
  float row_max = -std::numeric_limits<float>::infinity();
  scores.assign(std::max(hi - lo, 0), -std::numeric_limits<float>::infinity());
  for (int j = lo; j < hi; ++j) {
    if (!mask.Allowed(i, j)) continue;
    const int64_t k_off = KvRowOffset(p, p.k_stride, b, seq.k_start + j) + kv_head * p.k_stride.head;
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
  for (int j = lo; j < hi && row_max > -std::numeric_limits<float>::infinity(); ++j) {
    const float w = std::exp(scores[j - lo] - row_max);
    if (w == 0.f) continue;
    row_sum += w;
    const int64_t v_off = KvRowOffset(p, p.v_stride, b, seq.k_start + j) + kv_head * p.v_stride.head;
    for (int d = 0; d < p.head_dim; ++d) acc[d] += w * LoadAsFloat(p.v, v_off + d, p.in_dtype);
  }
  const float inv = row_sum > 0.f ? v_scale / row_sum : 0.f;
  for (float& a : acc) a *= inv;
  return row_sum > 0.f ? row_max + std::log(row_sum) : -std::numeric_limits<float>::infinity();
}

// One query row. With split-KV the keys are attended split by split and the
// partials merged by their LSE, as the CUDA combine kernel does.
void AttendRow(const AttentionParams& p, int b, const SeqInfo& seq, int h, int i,
               std::vector<float>& scores, std::vector<float>& total) {
  const Mask mask{seq.seqlen_q, seq.seqlen_k, p.window_left, p.window_right};
  int lo, hi;
  mask.KeyRange(i, i + 1, &lo, &hi);
  float lse = -std::numeric_limits<float>::infinity();
  if (p.split.num_splits <= 1) {
    lse = AttendKeys(p, b, seq, h, i, lo, hi, scores, total);
  } else {
    std::vector<float> split_lse(p.split.num_splits);
    std::vector<std::vector<float>> split_out(p.split.num_splits);
    for (int s = 0; s < p.split.num_splits; ++s) {
      int s_lo, s_hi;
      SplitKeyRange(lo, hi, kCpuSplitBlock, s, p.split.num_splits, &s_lo, &s_hi);
      split_lse[s] = AttendKeys(p, b, seq, h, i, s_lo, s_hi, scores, split_out[s]);
      lse = std::max(lse, split_lse[s]);
    }
    total.assign(p.head_dim, 0.f);
    if (lse > -std::numeric_limits<float>::infinity()) {
      float sum = 0.f;
      for (float l : split_lse) sum += std::exp(l - lse);
      const float max_lse = lse;
      lse = max_lse + std::log(sum);
      for (int s = 0; s < p.split.num_splits; ++s) {
        const float w = std::exp(split_lse[s] - lse);
        for (int d = 0; d < p.head_dim; ++d) total[d] += w * split_out[s][d];
      }
    }
  }
  const int64_t o_off = RowOffset(p.out_stride, b, seq.q_start + i, h);
  for (int d = 0; d < p.head_dim; ++d) StoreFromFloat(p.out, o_off + d, p.out_dtype, total[d]);
  p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + seq.q_start + i] = lse;
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
  std::vector<float> scores, total;
  if (p.is_varlen()) {
    WriteEmptyRows(p, GetGapInfo(p, /*trailing=*/false));
    WriteEmptyRows(p, GetGapInfo(p, /*trailing=*/true));
  }
  for (int b = 0; b < p.batch; ++b) {
    const SeqInfo seq = GetSeqInfo(p, b);
    for (int h = 0; h < p.num_heads; ++h) {
      for (int i = 0; i < seq.seqlen_q; ++i) AttendRow(p, b, seq, h, i, scores, total);
    }
  }
}

}  // namespace jax_fa3
