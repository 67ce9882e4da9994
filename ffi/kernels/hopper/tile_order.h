// Host side of the longest-first (masked, dense) tile order: how many
// (batch, head) pairs form one L2 section, and whether odd waves hand out
// their tiles in reverse (TileScheduler::TileOfCta).
//
// The grid is static, so a CTA's work is the sum of the tiles the order
// gives it. With few tiles per CTA that sum depends on how the section size
// and the wave length line up with the query blocks (bf16 causal d128 on an
// H100: sections of an eighth of L2 gave s8192 575 TFLOP/s but s16384 b1
// 429, where one CTA drew 1.56x the mean work). So the order is chosen by
// summing each CTA's visible key blocks for a few candidates; measured
// throughput followed that sum's max / mean within a few percent.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/mask.h"
#include "kernels/params.h"

namespace jax_fa3::hopper {

struct TileOrder {
  int section = 1;  // (batch, head) pairs per L2 section
  bool snake = false;
};

// Pairs whose K and V fit in an eighth of L2: K/V re-reads by a section's
// query blocks then hit L2 while Q and O stream past (s512 / 2048 / 8192
// causal: L2/2 228 / 400 / 530 TFLOP/s, L2/8 280 / 499 / 575).
inline int L2SectionPairs(const AttentionParams& p, int elem_bytes, int l2_bytes) {
  constexpr int kL2Fraction = 8;
  const int64_t kv_bytes = 2ll * p.seqlen_k * p.head_dim * elem_bytes / p.head_group();
  const int64_t pairs = std::max<int64_t>(1, (l2_bytes / kL2Fraction) / std::max<int64_t>(kv_bytes, 1));
  return static_cast<int>(std::min<int64_t>(pairs, int64_t{p.batch} * p.num_heads));
}

// Max over CTAs of the work the order gives, over the mean; cost[m] is query
// block m's work.
inline double OrderImbalance(const std::vector<int>& cost, int pairs, TileOrder order, int grid) {
  const int m_blocks = static_cast<int>(cost.size());
  std::vector<int64_t> work(grid, 0);
  int64_t total = 0, t = 0;
  for (int first = 0; first < pairs; first += order.section) {
    const int here = std::min(order.section, pairs - first);
    for (int m_index = 0; m_index < m_blocks; ++m_index) {
      for (int q = 0; q < here; ++q, ++t) {
        const int64_t wave = t / grid;
        const int slot = static_cast<int>(t - wave * grid);
        const int cta = order.snake && wave % 2 == 1 ? grid - 1 - slot : slot;
        work[cta] += cost[m_blocks - 1 - m_index];
        total += cost[m_blocks - 1 - m_index];
      }
    }
  }
  const int64_t max_work = *std::max_element(work.begin(), work.end());
  return total == 0 ? 1.0 : static_cast<double>(max_work) * grid / static_cast<double>(total);
}

// Candidates: L2-sized sections, and sections of at least two waves of tiles
// (long sequences: few pairs, many query blocks each); each handed out
// plainly or snaking. The first within 2% of the best wins, L2-sized and
// plain first. Past 32 tiles per CTA every order is even enough.
inline TileOrder ChooseTileOrder(const AttentionParams& p, int block_m, int block_n, int elem_bytes, int l2_bytes,
                                 int m_blocks, int grid) {
  const int pairs = p.batch * p.num_heads;
  const int l2_section = L2SectionPairs(p, elem_bytes, l2_bytes);
  constexpr int kEvenTilesPerCta = 32;
  if (int64_t{pairs} * m_blocks > int64_t{kEvenTilesPerCta} * grid) return {l2_section, true};
  // A tile's work: its visible key blocks, plus one for its prologue and epilogue.
  const Mask mask{p.seqlen_q, p.seqlen_k, p.window_left, p.window_right};
  std::vector<int> cost(m_blocks);
  for (int m = 0; m < m_blocks; ++m) {
    int lo, hi;
    mask.KeyRange(m * block_m, std::min((m + 1) * block_m, p.seqlen_q), &lo, &hi);
    cost[m] = 1 + (lo < hi ? (hi + block_n - 1) / block_n - lo / block_n : 0);
  }
  const int wave_section = std::min(pairs, (2 * grid + m_blocks - 1) / m_blocks);
  const TileOrder candidates[] = {{l2_section, false}, {l2_section, true},
                                  {std::max(l2_section, wave_section), false},
                                  {std::max(l2_section, wave_section), true}};
  constexpr int kCandidates = sizeof(candidates) / sizeof(candidates[0]);
  double imbalance[kCandidates];
  for (int i = 0; i < kCandidates; ++i) imbalance[i] = OrderImbalance(cost, pairs, candidates[i], grid);
  const double best = *std::min_element(imbalance, imbalance + kCandidates);
  constexpr double kTolerance = 1.02;
  int chosen = 0;
  while (imbalance[chosen] > best * kTolerance) ++chosen;
  return candidates[chosen];
}

}  // namespace jax_fa3::hopper
