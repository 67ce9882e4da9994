"""Plain ``jax.numpy`` attention with the exact semantics of jax_fa3.

Used by the tests and benchmarks as ground truth (float32 or float64 math),
and, with lower-precision ``compute_dtype``/``probs_dtype``, as the "naive"
computation whose error bounds what the kernels may lose.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = Any


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


def _statics(q, softmax_scale, softcap, out_dtype, compute_dtype, probs_dtype) -> dict:
    """The static (hashable) keyword arguments of _core, defaults resolved."""
    if out_dtype is None:
        out_dtype = jnp.float16 if jnp.dtype(q.dtype) == jnp.dtype(jnp.float8_e4m3fn) else q.dtype
    return dict(scale=float(softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(q.shape[-1])),
                softcap=float(softcap), out_dtype=jnp.dtype(out_dtype), compute_dtype=jnp.dtype(compute_dtype),
                probs_dtype=None if probs_dtype is None else jnp.dtype(probs_dtype))


@functools.partial(jax.jit, static_argnames=("scale", "softcap", "out_dtype", "compute_dtype", "probs_dtype"))
def _core(q, k, v, q_descale, k_descale, v_descale, allowed, *, scale, softcap, out_dtype, compute_dtype,
          probs_dtype):
    """q (B, Sq, H, D), k/v (B, Sk, Hk, D); descales per token (B, S, Hk);
    allowed (B, Sq, Sk). Returns out (B, Sq, H, D), lse (B, H, Sq)."""
    group = q.shape[2] // k.shape[2]
    cd = jnp.dtype(compute_dtype)

    def dequant(x, d):
        x = x.astype(jnp.float32).astype(cd) * d.astype(cd)[..., None]
        return jnp.repeat(x, group, axis=2)

    qf = q.astype(jnp.float32).astype(cd) * jnp.repeat(q_descale.astype(cd), group, axis=2)[..., None]
    kf, vf = dequant(k, k_descale), dequant(v, v_descale)
    hi = jax.lax.Precision.HIGHEST
    s = jnp.einsum("bqhd,bkhd->bhqk", qf, kf, precision=hi) * jnp.asarray(scale, cd)
    if softcap > 0:
        s = softcap * jnp.tanh(s / softcap)
    s = jnp.where(allowed[:, None], s, -jnp.inf)
    row_max = jnp.max(s, axis=-1, keepdims=True, initial=-jnp.inf)
    ref = jnp.where(jnp.isfinite(row_max), row_max, 0)
    p = jnp.exp(s - ref)
    row_sum = jnp.sum(p, axis=-1, keepdims=True)
    if probs_dtype is not None:
        # The barrier keeps XLA from folding the convert pair away (it does
        # on GPU), so P really is rounded to probs_dtype, subnormals included.
        p = jax.lax.optimization_barrier(p.astype(probs_dtype)).astype(cd)
    o = jnp.einsum("bhqk,bkhd->bqhd", p, vf, precision=hi)
    denom = jnp.moveaxis(row_sum, 1, 2)  # (B, Sq, H, 1)
    seen = denom > 0
    o = jnp.where(seen, o / jnp.where(seen, denom, 1), 0)
    total = row_sum[..., 0]
    lse = jnp.where(total > 0, ref[..., 0] + jnp.log(jnp.where(total > 0, total, 1)), -jnp.inf)
    return o.astype(out_dtype), lse.astype(jnp.float32)


def _per_token(d, batch: int, seqlen: int, heads_k: int):
    """A descale argument (None, scalar, or (batch, heads_k)) as (batch, seqlen, heads_k)."""
    if d is None:
        return jnp.ones((batch, seqlen, heads_k), jnp.float32)
    d = jnp.asarray(d, jnp.float32)
    d = d.reshape(()) if d.ndim < 2 else d[:, None, :]
    return jnp.broadcast_to(d, (batch, seqlen, heads_k))


def attention(q, k, v, *, q_descale=None, k_descale=None, v_descale=None, softmax_scale=None,
              causal=False, window_size=(-1, -1), softcap=0.0, out_dtype=None,
              compute_dtype=jnp.float32, probs_dtype=None, return_lse=False):
    """Reference for :func:`jax_fa3.attention` (same arguments).

    compute_dtype: dtype of the dequantized inputs, scores, softmax and
      products (float32 or float64 for ground truth).
    probs_dtype: if set, probabilities are rounded to it before ``P @ V``
      (models kernels that feed P to the tensor cores in low precision).
    """
    b, sq = q.shape[:2]
    sk, hk = k.shape[1], k.shape[2]
    allowed = jnp.broadcast_to(jnp.asarray(mask(sq, sk, causal, window_size)), (b, sq, sk))
    out, lse = _core(q, k, v, _per_token(q_descale, b, sq, hk), _per_token(k_descale, b, sk, hk),
                     _per_token(v_descale, b, sk, hk), allowed,
                     **_statics(q, softmax_scale, softcap, out_dtype, compute_dtype, probs_dtype))
    return (out, lse) if return_lse else out


def varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_k, *, seqused_k=None, q_descale=None,
                     k_descale=None, v_descale=None, max_seqlen_q=None, max_seqlen_k=None,
                     softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0, out_dtype=None,
                     compute_dtype=jnp.float32, probs_dtype=None, return_lse=False):
    """Reference for :func:`jax_fa3.varlen_attention`: one packed computation
    with a block-diagonal mask. cu_seqlens and seqused_k must be concrete."""
    cu_q = np.asarray(cu_seqlens_q, np.int64)
    cu_k = np.asarray(cu_seqlens_k, np.int64)
    used = np.diff(cu_k) if seqused_k is None else np.asarray(seqused_k, np.int64)
    tq, tk, hk = q.shape[0], k.shape[0], k.shape[1]
    allowed = np.zeros((tq, tk), bool)
    seg_q = np.zeros(tq, np.int64)
    seg_k = np.zeros(tk, np.int64)
    for b in range(len(cu_q) - 1):
        q0, q1, k0 = cu_q[b], cu_q[b + 1], cu_k[b]
        seg_q[q0:q1] = b
        seg_k[k0:cu_k[b + 1]] = b
        allowed[q0:q1, k0:k0 + used[b]] = mask(q1 - q0, int(used[b]), causal, window_size)

    def per_token(d, seg):
        if d is None or jnp.ndim(d) < 2:
            return _per_token(d, 1, len(seg), hk)
        return jnp.asarray(d, jnp.float32)[seg][None]

    out, lse = _core(q[None], k[None], v[None], per_token(q_descale, seg_q), per_token(k_descale, seg_k),
                     per_token(v_descale, seg_k), jnp.asarray(allowed)[None],
                     **_statics(q, softmax_scale, softcap, out_dtype, compute_dtype, probs_dtype))
    return (out[0], lse[0]) if return_lse else out[0]
