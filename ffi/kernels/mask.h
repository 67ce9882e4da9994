// The one masking rule, shared by every implementation.
//
// Query row i of a sequence (seqlen_q rows, seqlen_k keys) sees key j when
//   j < seqlen_k, and
//   i + diag - left <= j <= i + diag + right,  diag = seqlen_k - seqlen_q,
// where an unbounded side (-1) drops its inequality. Causal is right = 0, so
// the mask is aligned to the bottom-right corner.
#pragma once

#include "kernels/host_device.h"

namespace jax_fa3 {

struct Mask {
  int seqlen_q;
  int seqlen_k;
  int left;   // -1: unbounded
  int right;  // -1: unbounded

  FA3_HD int diag() const { return seqlen_k - seqlen_q; }

  FA3_HD bool Allowed(int i, int j) const {
    if (j >= seqlen_k || j < 0) return false;
    if (right >= 0 && j > i + diag() + right) return false;
    if (left >= 0 && j < i + diag() - left) return false;
    return true;
  }

  // True when every query row in [row_begin, row_end) sees every key in
  // [key_begin, key_end): such tiles skip the per-element mask.
  FA3_HD bool AllVisible(int row_begin, int row_end, int key_begin, int key_end) const {
    if (key_end > seqlen_k) return false;
    if (right >= 0 && key_end - 1 > row_begin + diag() + right) return false;
    if (left >= 0 && key_begin < row_end - 1 + diag() - left) return false;
    return true;
  }

  // Keys [lo, hi) that any of the query rows [row_begin, row_end) may see.
  FA3_HD void KeyRange(int row_begin, int row_end, int* lo, int* hi) const {
    long long h = seqlen_k;
    long long l = 0;
    if (right >= 0) {
      const long long last = static_cast<long long>(row_end - 1) + diag() + right + 1;
      h = last < h ? last : h;
    }
    if (left >= 0) {
      const long long first = static_cast<long long>(row_begin) + diag() - left;
      l = first > l ? first : l;
    }
    *lo = static_cast<int>(l);
    *hi = static_cast<int>(h > l ? h : l);
  }
};

}  // namespace jax_fa3
