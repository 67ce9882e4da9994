"""Plain ``jax.numpy`` attention with the exact semantics of jax_fa3.

Used by the tests and benchmarks as ground truth (float32 or float64 math),
and, with lower-precision ``compute_dtype``/``probs_dtype``, as the "naive"
computation whose error bounds what the kernels may lose.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = Any


def _descale(d, batch: int, heads_k: int, dtype) -> Array:
    if d is None:
        return jnp.ones((batch, heads_k), dtype)
    d = jnp.asarray(d, dtype)
    return jnp.broadcast_to(d.reshape(()) if d.ndim < 2 else d, (batch, heads_k))


def mask(seqlen_q: int, seqlen_k: int, causal: bool = False, window_size=(-1, -1)) -> np.ndarray:
    """Boolean (seqlen_q, seqlen_k): True where query i sees key j."""
    left, right = window_size
    if causal:
        right = 0
    i = np.arange(seqlen_q)[:, None] + (seqlen_k - seqlen_q)
    j = np.arange(seqlen_k)[None, :]
    m = np.ones((seqlen_q, seqlen_k), bool)
    if right >= 0:
        m &= j <= i + right
    if left >= 0:
        m &= j >= i - left
    return m


def attention(q, k, v, *, q_descale=None, k_descale=None, v_descale=None, softmax_scale=None,
              causal=False, window_size=(-1, -1), softcap=0.0, out_dtype=None,
              compute_dtype=jnp.float32, probs_dtype=None, return_lse=False):
    """Reference for :func:`jax_fa3.attention` (same arguments).

    compute_dtype: dtype of the dequantized inputs, scores, softmax and
      products (float32 or float64 for ground truth).
    probs_dtype: if set, probabilities are rounded to it before ``P @ V``
      (models kernels that feed P to the tensor cores in low precision).
    """
    b, sq, h, d = q.shape
    sk, hk = k.shape[1], k.shape[2]
    group = h // hk
    if softmax_scale is None:
        softmax_scale = 1.0 / math.sqrt(d)
    in_dt = jnp.dtype(q.dtype)
    if out_dtype is None:
        out_dtype = jnp.float16 if in_dt == jnp.dtype(jnp.float8_e4m3fn) else in_dt
    cd = jnp.dtype(compute_dtype)
    per_head = lambda x: jnp.repeat(x, group, axis=1)[:, None, :, None]  # (B, 1, H, 1)
    qf = q.astype(jnp.float32).astype(cd) * per_head(_descale(q_descale, b, hk, cd))
    kf = jnp.repeat(k.astype(jnp.float32).astype(cd) * _descale(k_descale, b, hk, cd)[:, None, :, None], group, axis=2)
    vf = jnp.repeat(v.astype(jnp.float32).astype(cd) * _descale(v_descale, b, hk, cd)[:, None, :, None], group, axis=2)
    hi = jax.lax.Precision.HIGHEST
    s = jnp.einsum("bqhd,bkhd->bhqk", qf, kf, precision=hi) * jnp.asarray(softmax_scale, cd)
    if softcap > 0:
        s = softcap * jnp.tanh(s / softcap)
    allowed = jnp.asarray(mask(sq, sk, causal, window_size))
    s = jnp.where(allowed, s, -jnp.inf)
    row_max = jnp.max(s, axis=-1, keepdims=True, initial=-jnp.inf)
    ref = jnp.where(jnp.isfinite(row_max), row_max, 0)
    p = jnp.exp(s - ref)
    row_sum = jnp.sum(p, axis=-1, keepdims=True)
    if probs_dtype is not None:
        p = p.astype(probs_dtype).astype(cd)
    o = jnp.einsum("bhqk,bkhd->bqhd", p, vf, precision=hi)
    denom = jnp.moveaxis(row_sum, 1, 2)  # (B, Sq, H, 1)
    o = jnp.where(denom > 0, o / jnp.where(denom > 0, denom, 1), 0)
    lse = jnp.where(row_sum[..., 0] > 0, ref[..., 0] + jnp.log(jnp.where(row_sum[..., 0] > 0, row_sum[..., 0], 1)), -jnp.inf)
    out = o.astype(out_dtype)
    return (out, lse.astype(jnp.float32)) if return_lse else out


def varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_k, *, seqused_k=None, q_descale=None,
                     k_descale=None, v_descale=None, max_seqlen_q=None, max_seqlen_k=None,
                     out_dtype=None, return_lse=False, **kwargs):
    """Reference for :func:`jax_fa3.varlen_attention`: one dense call per
    sequence. cu_seqlens and seqused_k must be concrete (host) values."""
    cu_q = np.asarray(cu_seqlens_q)
    cu_k = np.asarray(cu_seqlens_k)
    used = None if seqused_k is None else np.asarray(seqused_k)
    batch = len(cu_q) - 1
    tq, h, d = q.shape
    hk = k.shape[1]
    in_dt = jnp.dtype(q.dtype)
    if out_dtype is None:
        out_dtype = jnp.float16 if in_dt == jnp.dtype(jnp.float8_e4m3fn) else in_dt
    out = jnp.zeros((tq, h, d), out_dtype)
    lse = jnp.full((h, tq), -jnp.inf, jnp.float32)

    def pick(x, b):
        if x is None or jnp.ndim(x) < 2:
            return x
        return x[b:b + 1]

    for b in range(batch):
        q0, q1 = int(cu_q[b]), int(cu_q[b + 1])
        k0, k1 = int(cu_k[b]), int(cu_k[b + 1])
        if used is not None:
            k1 = k0 + int(used[b])
        if q1 == q0:
            continue
        o_b, lse_b = attention(q[None, q0:q1], k[None, k0:k1], v[None, k0:k1],
                               q_descale=pick(q_descale, b), k_descale=pick(k_descale, b),
                               v_descale=pick(v_descale, b), out_dtype=out_dtype, return_lse=True, **kwargs)
        out = out.at[q0:q1].set(o_b[0])
        lse = lse.at[:, q0:q1].set(lse_b[0])
    return (out, lse) if return_lse else out
