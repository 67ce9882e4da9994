"""Backward pass of dense 16-bit attention, in ``jax.numpy``.

The forward kernel saves ``out`` and the natural-log ``lse``; from them the
gradients follow key block by key block as in FlashAttention's backward
(P = exp(S - lse), dV = P^T dO, dP = dO V^T, dS = P (dP - rowsum(dO O) +
dlse), dQ = dS K, dK = dS^T Q), so memory grows with seqlen_q times one key
block, never with seqlen_q times seqlen_k. The GEMMs take their operands in
the input dtype and accumulate in float32, as tensor cores do; softmax math
is float32. XLA compiles it for whatever platform runs the forward.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jax_fa3._ffi import KernelConfig

Array = Any

GRAD_SCOPE = ("gradients exist for jax_fa3.attention with float16/bfloat16 inputs (reverse mode: "
              "jax.grad, jax.vjp); ")


def no_grad(fn, what: str):
    """fn, whose differentiation raises a clear error naming what has a backward pass."""
    wrapped = jax.custom_jvp(fn)

    def jvp(primals, tangents):
        raise NotImplementedError(f"jax_fa3: {what} has no backward pass; {GRAD_SCOPE}"
                                  "compute this call under jax.lax.stop_gradient or use jax_fa3.attention")

    wrapped.defjvp(jvp)
    return wrapped


# Keys per scan step: the step's float32 temporaries are (batch, heads,
# seqlen_q, KEY_BLOCK) each; a larger block means fewer, larger GEMMs.
KEY_BLOCK = 256
# Under a causal or window mask the query rows are cut into up to
# MAX_QUERY_CHUNKS chunks of at least MIN_QUERY_CHUNK rows, each scanning
# only the keys its rows can see: a causal backward with P chunks does
# (P + 1) / 2P of the unmasked work instead of all of it.
MIN_QUERY_CHUNK = 512
MAX_QUERY_CHUNKS = 8


def _reach(cfg: KernelConfig) -> tuple[int, int]:
    """How far left and right of its (bottom-right aligned) diagonal a query
    row sees keys; -1: without bound."""
    return cfg.window_left, 0 if cfg.causal else cfg.window_right


def _visible(cfg: KernelConfig, seqlen_q: int, seqlen_k: int, rows: Array, keys: Array, key_end: int) -> Array:
    """Boolean (rows, keys): query row i sees key j (keys at or past key_end
    are padding)."""
    i = rows[:, None] + (seqlen_k - seqlen_q)
    j = keys[None, :]
    seen = j < key_end
    left, right = _reach(cfg)
    if right >= 0:
        seen &= j <= i + right
    if left >= 0:
        seen &= j >= i - left
    return seen


def _key_span(cfg: KernelConfig, seqlen_q: int, seqlen_k: int, row0: int, row1: int) -> tuple[int, int]:
    """The keys [lo, hi) that query rows [row0, row1) can see."""
    offset = seqlen_k - seqlen_q
    left, right = _reach(cfg)
    hi = seqlen_k if right < 0 else min(seqlen_k, max(0, row1 - 1 + offset + right + 1))
    lo = 0 if left < 0 else min(seqlen_k, max(0, row0 + offset - left))
    return lo, max(lo, hi)


def _query_chunks(cfg: KernelConfig, seqlen_q: int) -> int:
    masked = max(_reach(cfg)) >= 0
    return min(MAX_QUERY_CHUNKS, max(1, seqlen_q // MIN_QUERY_CHUNK)) if masked else 1


def dense_grads(cfg: KernelConfig, q: Array, k: Array, v: Array, out: Array, lse: Array,
                dout: Array, dlse: Array, query_chunks: int | None = None) -> tuple[Array, Array, Array]:
    """Gradients of ``(out, lse) = attention(q, k, v)`` for cotangents ``dout``, ``dlse``.

    Args:
      q: ``(batch, seqlen_q, num_heads, head_dim)`` float16/bfloat16.
      k, v: ``(batch, seqlen_k, num_heads_k, head_dim)``, q's dtype.
      out: the forward's ``(batch, seqlen_q, num_heads, head_dim)``.
      lse: the forward's float32 ``(batch, num_heads, seqlen_q)``; -inf on
        rows that see no key (their gradients are 0).
      dout: ``out``'s shape; dlse: ``lse``'s shape, float32.
      query_chunks: how many chunks of query rows to scan separately, each
        over the keys it can see; None picks it from the mask and seqlen_q.

    Returns:
      ``(dq, dk, dv)`` in the dtypes and shapes of q, k, v.
    """
    b, sq, h, d = q.shape
    sk, hk = k.shape[1], k.shape[2]
    g = h // hk
    f32 = jnp.float32
    dt = q.dtype

    qg = q.reshape(b, sq, hk, g, d)
    dog = dout.astype(dt).reshape(b, sq, hk, g, d)
    # Rows without keys: lse = -inf, and exp(s - inf) = 0 keeps them at 0.
    lse_g = jnp.where(jnp.isfinite(lse), lse, jnp.inf).reshape(b, hk, g, sq)
    delta = jnp.einsum("bqhd,bqhd->bhq", dout.astype(f32), out.astype(f32)).reshape(b, hk, g, sq)
    delta = delta - dlse.astype(f32).reshape(b, hk, g, sq)

    chunks = _query_chunks(cfg, sq) if query_chunks is None else max(1, min(query_chunks, sq))
    bounds = [sq * c // chunks for c in range(chunks + 1)]
    dq_parts = []
    dk = jnp.zeros((b, sk, hk, d), f32)
    dv = jnp.zeros((b, sk, hk, d), f32)
    for row0, row1 in zip(bounds[:-1], bounds[1:]):
        lo, hi = _key_span(cfg, sq, sk, row0, row1)
        rows = slice(row0, row1)
        if hi == lo:  # rows that see no key: zero gradients
            dq_parts.append(jnp.zeros((b, row1 - row0, hk, g, d), f32))
            continue
        dq_c, dk_c, dv_c = _span_grads(cfg, sq, sk, row0, lo, qg[:, rows], dog[:, rows], lse_g[..., rows],
                                       delta[..., rows], k[:, lo:hi], v[:, lo:hi])
        dq_parts.append(dq_c)
        dk = dk.at[:, lo:hi].add(dk_c)
        dv = dv.at[:, lo:hi].add(dv_c)
    dq = jnp.concatenate(dq_parts, axis=1)
    return dq.reshape(q.shape).astype(dt), dk.astype(k.dtype), dv.astype(v.dtype)


def _span_grads(cfg: KernelConfig, sq: int, sk: int, row0: int, key0: int, qg: Array, dog: Array,
                lse_g: Array, delta: Array, k: Array, v: Array) -> tuple[Array, Array, Array]:
    """float32 (dq, dk, dv) of query rows row0.. (qg, dog: (b, rows, hk, g, d);
    lse_g, delta: (b, hk, g, rows)) against keys key0.. (k, v: (b, span, hk, d)),
    one KEY_BLOCK of keys per scan step; masks in the full problem's indices."""
    b, n, hk, g, d = qg.shape
    span = k.shape[1]
    f32 = jnp.float32
    dt = qg.dtype
    scale = jnp.asarray(cfg.softmax_scale, f32)
    block = min(KEY_BLOCK, span)
    blocks = -(-span // block)
    pad = blocks * block - span
    kb = jnp.pad(k, ((0, 0), (0, pad), (0, 0), (0, 0))).reshape(b, blocks, block, hk, d)
    vb = jnp.pad(v, ((0, 0), (0, pad), (0, 0), (0, 0))).reshape(b, blocks, block, hk, d)
    rows = row0 + jnp.arange(n)

    def step(dq, xs):
        kj, vj, k0 = xs  # (b, block, hk, d) x2, first key of the block
        s = jnp.einsum("bqhgd,bnhd->bhgqn", qg, kj, preferred_element_type=f32) * scale
        if cfg.softcap > 0:
            tanh = jnp.tanh(s / cfg.softcap)
            s = cfg.softcap * tanh
        keys = k0 + jnp.arange(block)
        # Keys past the span are padding here even where the full problem has keys.
        seen = _visible(cfg, sq, sk, rows, keys, key0 + span)
        p = jnp.where(seen, jnp.exp(s - lse_g[..., None]), 0.0)  # (b, hk, g, rows, block)
        dv = jnp.einsum("bhgqn,bqhgd->bnhd", p.astype(dt), dog, preferred_element_type=f32)
        dp = jnp.einsum("bqhgd,bnhd->bhgqn", dog, vj, preferred_element_type=f32)
        ds = p * (dp - delta[..., None])
        if cfg.softcap > 0:
            ds = ds * (1.0 - tanh * tanh)
        ds = (ds * scale).astype(dt)
        dq = dq + jnp.einsum("bhgqn,bnhd->bqhgd", ds, kj, preferred_element_type=f32)
        dk = jnp.einsum("bhgqn,bqhgd->bnhd", ds, qg, preferred_element_type=f32)
        return dq, (dk, dv)

    starts = key0 + jnp.arange(blocks, dtype=jnp.int32) * block
    dq, (dk, dv) = jax.lax.scan(step, jnp.zeros(qg.shape, f32),
                                (jnp.moveaxis(kb, 1, 0), jnp.moveaxis(vb, 1, 0), starts))
    dk = jnp.moveaxis(dk, 0, 1).reshape(b, blocks * block, hk, d)[:, :span]
    dv = jnp.moveaxis(dv, 0, 1).reshape(b, blocks * block, hk, d)[:, :span]
    return dq, dk, dv
