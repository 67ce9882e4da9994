// Host-side choice of packed GQA and the split-KV count for one call of the
// portable kernel. Depends on shapes and the SM count only (never on device
// data), so a captured CUDA graph replays the same launches.
#pragma once

#include <algorithm>

#include "kernels/params.h"

namespace jax_fa3::portable {

struct ScheduleConfig {
  // Both tile variants fit two CTAs per SM (registers, and 87 KB of shared
  // memory for the decode variant; Nsight Compute on an H100 agrees): split
  // until the grid reaches that.
  static constexpr int kCtasPerSm = 2;
  static constexpr int kMaxSplits = 64;
};

// Multiprocessors of the current device, queried once per device (host
// attribute query: no stream work, safe under graph capture).
int NumSms();

// Sets p->pack_gqa and p->split.num_splits (a forced count is kept).
// kBlockM / kBlockN: the kernel's query and key tile sizes.
inline void ChooseSchedule(AttentionParams* p, int block_m, int block_n, int num_sms) {
  const int group = p->head_group();
  const bool can_split = p->split.max_splits > 1 && p->split.out_accum != nullptr && !p->is_varlen();
  const int target = ScheduleConfig::kCtasPerSm * num_sms;
  // Packed GQA reads each K/V tile once per KV head instead of once per
  // query head; it pays when the query tile is mostly empty (few tokens) and
  // either splits restore the parallelism or the packed grid fills the GPU.
  const long long packed_ctas = static_cast<long long>(p->batch) * p->num_heads_k *
                                ((static_cast<long long>(p->seqlen_q) * group + block_m - 1) / block_m);
  p->pack_gqa = group > 1 && !p->is_varlen() && p->seqlen_q < block_m && (can_split || packed_ctas >= num_sms);
  if (!can_split) {
    p->split.num_splits = 1;
    return;
  }
  if (p->split.num_splits > 0) return;  // forced (validated against the workspace)
  const long long ctas = p->pack_gqa ? packed_ctas
                                     : static_cast<long long>(p->batch) * p->num_heads *
                                           ((p->seqlen_q + block_m - 1) / block_m);
  const int key_blocks = std::max(1, (p->seqlen_k + block_n - 1) / block_n);
  long long splits = ctas >= target ? 1 : (target + ctas - 1) / std::max(ctas, 1LL);
  splits = std::min<long long>({splits, key_blocks, ScheduleConfig::kMaxSplits, p->split.max_splits});
  p->split.num_splits = static_cast<int>(std::max(splits, 1LL));
}

}  // namespace jax_fa3::portable
