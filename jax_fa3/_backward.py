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


def _visible(cfg: KernelConfig, seqlen_q: int, seqlen_k: int, k0: Array, block: int) -> Array:
    """Boolean (seqlen_q, block): query i sees key k0 + j (bottom-right aligned
    causal/window mask; keys past seqlen_k are padding)."""
    i = jnp.arange(seqlen_q)[:, None] + (seqlen_k - seqlen_q)
    j = k0 + jnp.arange(block)[None, :]
    seen = j < seqlen_k
    right = 0 if cfg.causal else cfg.window_right
    if right >= 0:
        seen &= j <= i + right
    if cfg.window_left >= 0:
        seen &= j >= i - cfg.window_left
    return seen


def dense_grads(cfg: KernelConfig, q: Array, k: Array, v: Array, out: Array, lse: Array,
                dout: Array, dlse: Array) -> tuple[Array, Array, Array]:
    """Gradients of ``(out, lse) = attention(q, k, v)`` for cotangents ``dout``, ``dlse``.

    Args:
      q: ``(batch, seqlen_q, num_heads, head_dim)`` float16/bfloat16.
      k, v: ``(batch, seqlen_k, num_heads_k, head_dim)``, q's dtype.
      out: the forward's ``(batch, seqlen_q, num_heads, head_dim)``.
      lse: the forward's float32 ``(batch, num_heads, seqlen_q)``; -inf on
        rows that see no key (their gradients are 0).
      dout: ``out``'s shape; dlse: ``lse``'s shape, float32.

    Returns:
      ``(dq, dk, dv)`` in the dtypes and shapes of q, k, v.
    """
    b, sq, h, d = q.shape
    sk, hk = k.shape[1], k.shape[2]
    g = h // hk
    f32 = jnp.float32
    dt = q.dtype
    scale = jnp.asarray(cfg.softmax_scale, f32)
    block = min(KEY_BLOCK, sk)
    blocks = -(-sk // block)
    pad = blocks * block - sk

    qg = q.reshape(b, sq, hk, g, d)
    dog = dout.astype(dt).reshape(b, sq, hk, g, d)
    # Rows without keys: lse = -inf, and exp(s - inf) = 0 keeps them at 0.
    lse_g = jnp.where(jnp.isfinite(lse), lse, jnp.inf).reshape(b, hk, g, sq)
    delta = jnp.einsum("bqhd,bqhd->bhq", dout.astype(f32), out.astype(f32)).reshape(b, hk, g, sq)
    delta = delta - dlse.astype(f32).reshape(b, hk, g, sq)
    kb = jnp.pad(k, ((0, 0), (0, pad), (0, 0), (0, 0))).reshape(b, blocks, block, hk, d)
    vb = jnp.pad(v, ((0, 0), (0, pad), (0, 0), (0, 0))).reshape(b, blocks, block, hk, d)

    def step(dq, xs):
        kj, vj, k0 = xs  # (b, block, hk, d) x2, first key
        s = jnp.einsum("bqhgd,bnhd->bhgqn", qg, kj, preferred_element_type=f32) * scale
        if cfg.softcap > 0:
            tanh = jnp.tanh(s / cfg.softcap)
            s = cfg.softcap * tanh
        seen = _visible(cfg, sq, sk, k0, block)
        p = jnp.where(seen, jnp.exp(s - lse_g[..., None]), 0.0)  # (b, hk, g, sq, block)
        dv = jnp.einsum("bhgqn,bqhgd->bnhd", p.astype(dt), dog, preferred_element_type=f32)
        dp = jnp.einsum("bqhgd,bnhd->bhgqn", dog, vj, preferred_element_type=f32)
        ds = p * (dp - delta[..., None])
        if cfg.softcap > 0:
            ds = ds * (1.0 - tanh * tanh)
        ds = (ds * scale).astype(dt)
        dq = dq + jnp.einsum("bhgqn,bnhd->bqhgd", ds, kj, preferred_element_type=f32)
        dk = jnp.einsum("bhgqn,bqhgd->bnhd", ds, qg, preferred_element_type=f32)
        return dq, (dk, dv)

    starts = jnp.arange(blocks, dtype=jnp.int32) * block
    dq, (dk, dv) = jax.lax.scan(step, jnp.zeros(qg.shape, f32),
                                (jnp.moveaxis(kb, 1, 0), jnp.moveaxis(vb, 1, 0), starts))
    dk = jnp.moveaxis(dk, 0, 1).reshape(b, blocks * block, hk, d)[:, :sk]
    dv = jnp.moveaxis(dv, 0, 1).reshape(b, blocks * block, hk, d)[:, :sk]
    return dq.reshape(q.shape).astype(dt), dk.astype(k.dtype), dv.astype(v.dtype)
