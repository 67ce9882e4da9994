"""Reference for :func:`jax_fa3.attention_with_kvcache`, built on
:mod:`jax_fa3.reference`: the cache update in NumPy, then one masked dense
attention over every sequence's logical key positions.

Index arrays (cache_seqlens, page_table, cache_batch_idx, cache_leftpad)
must be concrete. Out-of-range values are clamped exactly as the kernels
clamp them, so the reference also defines what garbage input produces.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jax_fa3 import reference

Array = Any


def apply_rotary(x, cos, sin, positions, interleaved: bool):
    """Rotary embedding of x ``(B, S, H, D)`` at integer positions ``(B, S)``
    (clamped into the table), computed in float32 and rounded to x's dtype.

    cos, sin: ``(seqlen_ro, rotary_dim / 2)``; dims past rotary_dim unchanged.
    Non-interleaved pairs dims (i, i + rotary_dim / 2), interleaved (2i, 2i + 1).
    """
    cos = jnp.asarray(cos, jnp.float32)
    sin = jnp.asarray(sin, jnp.float32)
    half = cos.shape[1]
    rd = 2 * half
    pos = np.clip(np.asarray(positions, np.int64), 0, cos.shape[0] - 1)
    c, s = cos[pos][:, :, None, :], sin[pos][:, :, None, :]  # (B, S, 1, rd / 2)
    xf = jnp.asarray(x).astype(jnp.float32)
    x0, x1 = (xf[..., 0:rd:2], xf[..., 1:rd:2]) if interleaved else (xf[..., :half], xf[..., half:rd])
    y0, y1 = x0 * c - x1 * s, x0 * s + x1 * c
    rot = jnp.stack([y0, y1], axis=-1).reshape(y0.shape[:-1] + (rd,)) if interleaved else jnp.concatenate(
        [y0, y1], axis=-1)
    return jnp.concatenate([rot, xf[..., rd:]], axis=-1).astype(x.dtype)


def _cache_rows(batch: int, capacity: int, page_table, page_size: int, cache_batch_idx, num_blocks: int):
    """(block, row) of every (sequence, position): (B, capacity) int arrays."""
    pos = np.arange(capacity)[None, :]
    if page_table is not None:
        pt = np.asarray(page_table, np.int64)
        blocks = np.clip(pt[:, pos[0] // page_size], 0, num_blocks - 1)
        return blocks, np.broadcast_to(pos % page_size, (batch, capacity))
    idx = np.arange(batch) if cache_batch_idx is None else np.clip(np.asarray(cache_batch_idx, np.int64), 0,
                                                                   num_blocks - 1)
    return np.broadcast_to(idx[:, None], (batch, capacity)), np.broadcast_to(pos, (batch, capacity))


def attention_with_kvcache(q, k_cache, v_cache, cache_seqlens, *, k=None, v=None, page_table=None,
                           cache_batch_idx=None, cache_leftpad=None, rotary_cos=None, rotary_sin=None,
                           rotary_interleaved=False, q_descale=None, k_descale=None, v_descale=None,
                           softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0, num_splits=0,
                           return_lse=False, compute_dtype=jnp.float32, probs_dtype=None):
    """Same arguments and results as :func:`jax_fa3.attention_with_kvcache`
    (num_splits is ignored), plus compute_dtype/probs_dtype as in
    :func:`jax_fa3.reference.attention`. Returns out[, lse][, k_cache, v_cache]."""
    b, sq, _, _ = q.shape
    hk = k_cache.shape[2]
    page_size = k_cache.shape[1] if page_table is not None else 0
    capacity = np.asarray(page_table).shape[1] * page_size if page_table is not None else k_cache.shape[1]
    blocks, rows = _cache_rows(b, capacity, page_table, page_size, cache_batch_idx, k_cache.shape[0])
    cached = np.clip(np.asarray(cache_seqlens, np.int64), 0, capacity)
    rotary = rotary_cos is not None

    kc, vc = np.array(k_cache), np.array(v_cache)
    sn = 0 if k is None else k.shape[1]
    if k is not None:
        new_pos = cached[:, None] + np.arange(sn)[None, :]  # (B, Sn)
        k_new = apply_rotary(k, rotary_cos, rotary_sin, new_pos, rotary_interleaved) if rotary else k
        k_new, v_new = np.asarray(k_new), np.asarray(v)
        for bi in range(b):
            for t in range(sn):
                p = new_pos[bi, t]
                if p < capacity:
                    kc[blocks[bi, p], rows[bi, p]] = k_new[bi, t]
                    vc[blocks[bi, p], rows[bi, p]] = v_new[bi, t]

    end = np.minimum(cached + sn, capacity)
    start = np.clip(np.asarray(cache_leftpad, np.int64), 0, end) if cache_leftpad is not None else np.zeros(b, np.int64)
    allowed = np.zeros((b, sq, capacity), bool)
    for bi in range(b):
        n = int(end[bi] - start[bi])
        allowed[bi, :, start[bi]:end[bi]] = reference.mask(sq, n, causal, window_size)
    if rotary:
        q = apply_rotary(q, rotary_cos, rotary_sin, cached[:, None] + np.arange(sq)[None, :], rotary_interleaved)
    keys = jnp.asarray(kc[blocks, rows])  # (B, capacity, Hk, D)
    values = jnp.asarray(vc[blocks, rows])
    out, lse = reference._core(
        q, keys, values, reference._per_token(q_descale, b, sq, hk), reference._per_token(k_descale, b, capacity, hk),
        reference._per_token(v_descale, b, capacity, hk), jnp.asarray(allowed),
        **reference._statics(q, softmax_scale, softcap, None, compute_dtype, probs_dtype))
    result = (out, lse) if return_lse else (out,)
    if k is not None:
        result += (jnp.asarray(kc), jnp.asarray(vc))
    return result[0] if len(result) == 1 else result
