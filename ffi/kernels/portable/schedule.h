// Host-side choice of packed GQA and the split-KV count for one call of the
// portable kernel. Depends on shapes and the SM count only (never on device
// data), so a captured CUDA graph replays the same launches.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>

#include "kernels/device_cache.h"
#include "kernels/params.h"
#include "kernels/split_kv.h"

namespace jax_fa3::portable {

struct ScheduleConfig {
  // Both tile variants fit two CTAs per SM (registers, and 87 KB of shared
  // memory for the decode variant; Nsight Compute on an H100 agrees): split
  // until the grid reaches that.
  static constexpr int kCtasPerSm = 2;
  static constexpr int kMaxSplits = jax_fa3::kMaxSplits;
};

// Multiprocessors of the current device.
int NumSms();

// Split-KV needs a workspace, and varlen calls have no split path.
inline bool CanSplit(const AttentionParams& p) {
  return p.split.max_splits > 1 && p.split.out_accum != nullptr && !p.is_varlen();
}

// Split count of the decode kernel for `ctas` CTAs (one per sequence, KV
// head and query tile) of `key_tiles` stages each, on `slots` concurrent
// streams of work. Its efficiency estimate is the useful work over what the
// waves occupy (slots times the longest split); the count is the smallest
// within kSlack of the best, since each extra split only adds partial
// writes and combine work.
inline int ChooseDecodeSplits(long long ctas, int key_tiles, int slots, int max_splits) {
  constexpr double kSlack = 0.95;
  const int limit = std::max(1, std::min({key_tiles, ScheduleConfig::kMaxSplits, max_splits}));
  const auto efficiency = [&](int splits) {
    const long long grid = ctas * splits;
    const long long waves = (grid + slots - 1) / slots;
    const long long longest = (key_tiles + splits - 1) / splits;
    return static_cast<double>(ctas) * key_tiles / (static_cast<double>(waves) * slots * longest);
  };
  double best = 0.0;
  for (int s = 1; s <= limit; ++s) best = std::max(best, efficiency(s));
  for (int s = 1; s <= limit; ++s) {
    if (efficiency(s) >= kSlack * best) return s;
  }
  return limit;
}

// Whether the decode kernel's `splits` CTAs of each of its `ctas` query tiles
// should form a cluster and merge there instead of in the combine kernel
// (bench/NOTES.md, d12). A cluster runs inside one GPC, so its CTAs share
// that GPC's part of the memory bandwidth: it pays only with clusters enough
// to spread over every GPC (seed b32, 64 clusters of 2: 31.1 -> 30.2 µs;
// seed b1, 2 clusters of 8 or 16: no gain), and only where the grid leaves
// room to place them, one CTA per SM at most (seed b32 with 4 or 8 splits,
// 256 or 512 CTAs: 33.4 -> 36.1 and 35.6 -> 40.1 µs).
inline bool ClusterMergePays(long long ctas, int splits, int num_sms) {
  constexpr int kSmsPerCluster = 4;  // a cluster per 4 SMs: about four per GPC of 16-18 SMs
  return splits > 1 && splits <= kMaxClusterSplits && ctas * kSmsPerCluster >= num_sms &&
         ctas * splits <= num_sms;
}

// Sets p->pack_gqa and p->split.num_splits (a forced count is kept).
// kBlockM / kBlockN: the kernel's query and key tile sizes.
inline void ChooseSchedule(AttentionParams* p, int block_m, int block_n, int num_sms) {
  const int group = p->head_group();
  const bool can_split = CanSplit(*p);
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
