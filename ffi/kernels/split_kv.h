// How split-KV divides one query block's keys, shared by the CPU emulation
// and the CUDA kernels so both split at the same places.
#pragma once

#include "kernels/host_device.h"

namespace jax_fa3 {

// The most CTAs that share one query block's keys (the combine kernel holds
// this many partial LSEs per row in registers).
inline constexpr int kMaxSplits = 64;

// The most splits that one thread-block cluster merges on sm_90
// (portable/cluster_merge.cuh): the portable cluster size. Clusters of 16
// measured slower (bench/NOTES.md, d12).
inline constexpr int kMaxClusterSplits = 8;

// Split `split` of `num_splits` owns the blocks [b0, b1) of the block_n-key
// blocks that cover [key_lo, key_hi) (the first one aligned down to a block
// boundary): its keys are [*lo, *hi). Splits past the block count own none.
FA3_HD void SplitKeyRange(int key_lo, int key_hi, int block_n, int split, int num_splits, int* lo, int* hi) {
  const int first = key_lo - key_lo % block_n;
  const int blocks = key_hi > first ? (key_hi - first + block_n - 1) / block_n : 0;
  // floor(blocks * s / num_splits) without a 64-bit product (a division
  // subroutine on the GPU): blocks = q num_splits + r gives q s + floor(r s / num_splits).
  const int q = blocks / num_splits;
  const int r = blocks - q * num_splits;
  const int b0 = q * split + r * split / num_splits;
  const int b1 = q * (split + 1) + r * (split + 1) / num_splits;
  const int begin = first + b0 * block_n;
  const int end = first + b1 * block_n;
  *lo = begin > key_lo ? begin : key_lo;
  *hi = end < key_hi ? end : key_hi;
  if (*hi < *lo) *hi = *lo;
}

}  // namespace jax_fa3
