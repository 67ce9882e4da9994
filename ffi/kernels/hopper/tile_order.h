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
// throughput followed that sum's max / mean within a few percent. Where no
// static candidate is even (causal d128 b1 h16 s16384: 1.20 at best; b1 h8
// s8192: 1.24), the order is handed out dynamically
// (TileScheduler::NextTile); simulating how the kernel claims tiles, the
// same model puts those within 1% of even, and they measured 15-26% faster
// (bench/NOTES.md, v23).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <queue>
#include <utility>
#include <vector>

#include "kernels/hopper/tile_scheduler.hpp"
#include "kernels/mask.h"
#include "kernels/params.h"

namespace jax_fa3::hopper {

struct TileOrder {
  int section = 1;  // (batch, head) pairs per L2 section
  bool snake = false;
  bool dynamic = false;  // after the first wave, the next tile goes to the first CTA that asks
  bool pair_reverse = false;  // CTAs past the SM count take their tiles in reverse (PairedPosition)
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

// Per-CTA work of a dynamic order over `costs` (in order): the first wave
// goes to CTAs 0, 1, ...; after that a CTA asks for a tile when it finishes
// one (its producer claims the next tile once the current one's loads are
// issued, about when its consumers finish the tile before).
inline std::vector<int64_t> DynamicWork(const std::vector<int>& costs, int grid) {
  const int n = static_cast<int>(costs.size());
  int next = 0;
  const auto claim = [&] { return next < n ? costs[next++] : -1; };  // -1: none left
  std::vector<int64_t> work(grid, 0);
  using Event = std::pair<int64_t, int>;  // (time its current tile ends, CTA)
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> ends;
  for (int cta = 0; cta < grid && next < n; ++cta) {
    work[cta] = claim();
    ends.push({work[cta], cta});
  }
  while (!ends.empty()) {
    const int cta = ends.top().second;
    ends.pop();
    const int cost = claim();
    if (cost < 0) continue;
    work[cta] += cost;
    ends.push({work[cta], cta});
  }
  return work;
}

// Max over CTAs of the work the order gives, over the mean; cost[m] is query
// block m's work.
inline double OrderImbalance(const std::vector<int>& cost, int pairs, TileOrder order, int grid) {
  const int m_blocks = static_cast<int>(cost.size());
  std::vector<int> costs;  // in the order's sequence
  for (int first = 0; first < pairs; first += order.section) {
    const int here = std::min(order.section, pairs - first);
    for (int m_index = 0; m_index < m_blocks; ++m_index) {
      for (int q = 0; q < here; ++q) costs.push_back(cost[m_blocks - 1 - m_index]);
    }
  }
  std::vector<int64_t> work(grid, 0);
  if (order.dynamic) {
    work = DynamicWork(costs, grid);
  } else {
    for (int64_t t = 0; t < static_cast<int64_t>(costs.size()); ++t) {
      const int64_t wave = t / grid;
      const int slot = static_cast<int>(t - wave * grid);
      work[order.snake && wave % 2 == 1 ? grid - 1 - slot : slot] += costs[t];
    }
  }
  int64_t total = 0;
  for (const int c : costs) total += c;
  const int64_t max_work = *std::max_element(work.begin(), work.end());
  return total == 0 ? 1.0 : static_cast<double>(max_work) * grid / static_cast<double>(total);
}

// With two CTAs per SM (`sms`: the SM count, else 0) and fewer tiles than
// CTA slots, every CTA runs one tile and an SM's two share its tensor
// cores, so what counts is which tiles meet on an SM. The first `sms` CTAs
// land on distinct SMs (bench/sm_placement.cu: every launch of 133, 198,
// 256 and 263 CTAs on the H100, but not of 264, the full grid), so one
// section sorts every tile longest first and those CTAs take the longest;
// the rest take the others in reverse, which pairs the extremes where CTA
// sms + j joins CTA j (every j at 263 CTAs, the first 8-16 at 198 and
// 256). Seed 2's shape on the short tile (causal b2 s512 h16): 14.5 ->
// 13.1 µs (bench/NOTES.md, v30).
//
// Otherwise the candidates: L2-sized sections, and sections of at least
// two waves of tiles (long sequences: few pairs, many query blocks each);
// each handed out plainly or snaking. The first within 2% of the best wins,
// L2-sized and plain first; the dynamic order (which needs `can_count`: a
// tile counter for the launcher to zero) only where it beats that by more
// than 2%: it costs a memset and an atomic per tile, and the model's errors
// run a few percent.
// Past 32 tiles per CTA every order is even enough.
inline TileOrder ChooseTileOrder(const AttentionParams& p, int block_m, int block_n, int elem_bytes, int l2_bytes,
                                 int m_blocks, int grid, bool can_count, int sms) {
  const int pairs = p.batch * p.num_heads;
  if (sms > 0 && grid > sms && grid < 2 * sms) return {pairs, false, false, true};
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
  if (!can_count) return candidates[chosen];
  // Dynamic: sections restart at their longest tile, which a late CTA may
  // draw; a section of twice the L2 size halves those restarts (b1 h8 s8192:
  // 1.22 -> 1.00 in this model).
  const TileOrder dynamic[] = {{l2_section, false, true}, {std::min(pairs, 2 * l2_section), false, true}};
  const double dynamic_imbalance[] = {OrderImbalance(cost, pairs, dynamic[0], grid),
                                      OrderImbalance(cost, pairs, dynamic[1], grid)};
  const int d = dynamic_imbalance[0] <= dynamic_imbalance[1] * kTolerance ? 0 : 1;
  constexpr double kDynamicGain = 1.02;
  return dynamic_imbalance[d] * kDynamicGain < best ? dynamic[d] : candidates[chosen];
}

// ChooseTileOrder remembered per problem: its simulations take up to a few
// hundred microseconds of host time (b2 h16 s8192: 263 µs), and a call site
// launches the same shapes on every step.
inline TileOrder CachedTileOrder(const AttentionParams& p, int block_m, int block_n, int elem_bytes, int l2_bytes,
                                 int m_blocks, int grid, bool can_count, int sms) {
  // Every input ChooseTileOrder reads (m_blocks follows from seqlen_q and block_m).
  using Key = std::array<int64_t, 15>;
  const Key key{p.batch,   p.num_heads, p.num_heads_k, p.seqlen_q, p.seqlen_k,  p.head_dim,
                p.window_left, p.window_right, block_m, block_n, elem_bytes, l2_bytes,
                grid,      can_count,   sms};
  static std::mutex mu;
  static std::map<Key, TileOrder> cache;
  constexpr size_t kMaxEntries = 1024;  // a bound for processes that sweep many shapes
  {
    std::lock_guard<std::mutex> lock(mu);
    if (const auto it = cache.find(key); it != cache.end()) return it->second;
  }
  const TileOrder order =
      ChooseTileOrder(p, block_m, block_n, elem_bytes, l2_bytes, m_blocks, grid, can_count, sms);
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() >= kMaxEntries) cache.clear();
  cache.emplace(key, order);
  return order;
}

}  // namespace jax_fa3::hopper
