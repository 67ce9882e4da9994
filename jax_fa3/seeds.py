"""The user's three seed cases through the public API.

    python -m jax_fa3.seeds

Runs on the GPU when JAX has one, else on the CPU; prints each case's
relative error against the float32 reference and its time.
"""

from __future__ import annotations

import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

import jax_fa3
from jax_fa3 import reference

# 21 sequences of 64 tokens then 7 of 48, three times: 84 sequences, 5040 tokens.
SEED_CU_SEQLENS = np.array([0] + list(np.cumsum(([64] * 21 + [48] * 7) * 3)), np.int32)
SEED_SOFTMAX_SCALE = 1 / math.sqrt(128)


def random_qkv(seed: int, q_shape, kv_shape, dtype):
    """Random normal q, k, v in `dtype` (never constant data)."""
    keys = jax.random.split(jax.random.PRNGKey(seed), 3)
    return tuple(jax.random.normal(k, s, jnp.float32).astype(dtype) for k, s in zip(keys, (q_shape, kv_shape, kv_shape)))


def _timed(fn, args) -> tuple[jax.Array, float]:
    out = jax.block_until_ready(fn(*args))
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, (time.perf_counter() - t0) * 1e3


def rel_err(x, ref) -> float:
    """||x - ref|| / ||ref||, in float32."""
    x, ref = jnp.asarray(x, jnp.float32), jnp.asarray(ref, jnp.float32)
    return float(jnp.linalg.norm(x - ref) / jnp.linalg.norm(ref))


def fp8_varlen_call(q: jax.Array, k: jax.Array, v: jax.Array) -> tuple:
    """Seed 1's call on (5040, 16, 128) q, k, v: (jitted fn, its arguments).

    The per-(sequence, head) descales (84, 16) float32, all 1, are jit
    arguments, as a model's are: bound in as constants, XLA rebuilds them by
    a kernel on every call."""
    ones = jnp.ones((84, 16), jnp.float32)
    cu = jnp.asarray(SEED_CU_SEQLENS)
    fn = jax.jit(lambda q, k, v, cu, qd, kd, vd: jax_fa3.varlen_attention(
        q, k, v, cu, cu, max_seqlen_q=1680, max_seqlen_k=1680, q_descale=qd, k_descale=kd, v_descale=vd,
        softmax_scale=SEED_SOFTMAX_SCALE))
    return fn, (q, k, v, cu, ones, ones, ones)


def fp8_varlen(on_gpu: bool) -> str:
    q, k, v = random_qkv(1, (5040, 16, 128), (5040, 16, 128), jnp.float8_e4m3fn)
    ones = jnp.ones((84, 16), jnp.float32)
    kw = dict(q_descale=ones, k_descale=ones, v_descale=ones, softmax_scale=SEED_SOFTMAX_SCALE, causal=False)
    out, ms = _timed(*fp8_varlen_call(q, k, v))
    # The packed reference is quadratic in the token count: on the CPU it
    # checks the first 12 sequences (768 tokens) only.
    n = 84 if on_gpu else 12
    end = int(SEED_CU_SEQLENS[n])
    ref = reference.varlen_attention(q[:end], k[:end], v[:end], SEED_CU_SEQLENS[:n + 1], SEED_CU_SEQLENS[:n + 1],
                                     **dict(kw, q_descale=ones[:n], k_descale=ones[:n], v_descale=ones[:n]))
    return f"FP8 E4M3 varlen, 84 seqs, 16 heads, d128 -> {out.dtype}: err {rel_err(out[:end], ref):.2e} " \
           f"(vs reference on {n} sequences), {ms:.3f} ms"


def fp16_causal() -> str:
    q, k, v = random_qkv(2, (2, 512, 16, 128), (2, 512, 16, 128), jnp.float16)
    out, ms = _timed(jax.jit(functools.partial(jax_fa3.attention, causal=True)), (q, k, v))
    ref = reference.attention(q, k, v, causal=True)
    return f"FP16 causal, b2 s512 h16 d128: err {rel_err(out, ref):.2e}, {ms:.3f} ms"


def fp16_decode(batch: int) -> str:
    q, k, v = random_qkv(3, (batch, 1, 16, 128), (batch, 2048, 2, 128), jnp.float16)
    out, ms = _timed(jax.jit(jax_fa3.attention), (q, k, v))
    ref = reference.attention(q, k, v)
    return f"FP16 decode, b{batch} sq1 sk2048 16/2 heads (GQA): err {rel_err(out, ref):.2e}, {ms:.3f} ms"


def main() -> None:
    on_gpu = jax.default_backend() == "gpu"
    print(f"jax_fa3 seed cases on {jax.devices()[0].device_kind} ({jax.default_backend()}); "
          "wall time of one blocked call")
    for line in (fp8_varlen(on_gpu), fp16_causal(), fp16_decode(1), fp16_decode(32)):
        print("  " + line)


if __name__ == "__main__":
    main()
