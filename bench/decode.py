"""Decode benchmark (issue 4): attention_with_kvcache next to cuDNN and the
device copy bandwidth, all measured in the same run.

Memory-bound cases: bytes = the visible K and V cache once + q + out; the
achieved rate is compared with a device copy (an elementwise pass over
512 MiB, counting bytes read plus bytes written). Used by bench/run.py.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np

import jax_fa3
from jax_fa3 import reference
from jax_fa3.seeds import random_qkv, rel_err

COPY_BYTES = 512 << 20
# (name, dtype, batch, seqlen_k, heads, heads_k, page size or 0, check against the f32 reference)
CASES = [
    ("seed3 f16 decode b1 sk2048 h16/2", jnp.float16, 1, 2048, 16, 2, 0, True),
    ("seed3 f16 decode b32 sk2048 h16/2", jnp.float16, 32, 2048, 16, 2, 0, True),
    ("bf16 decode b64 sk8192 h32/8", jnp.bfloat16, 64, 8192, 32, 8, 0, False),
    ("bf16 decode b64 sk8192 h32/8 paged64", jnp.bfloat16, 64, 8192, 32, 8, 64, False),
    ("bf16 decode b1 sk131072 h32/8", jnp.bfloat16, 1, 131072, 32, 8, 0, False),
]
HEAD_DIM = 128
# The in-place append: (batch, seqlen_k, heads, heads_k, page size).
APPEND_CASE = (64, 8192, 32, 8, 64)


def copy_tbps(kernel_ms) -> float:
    """Device copy rate (TB/s, read + write) of an elementwise pass."""
    x = jnp.arange(COPY_BYTES // 2, dtype=jnp.bfloat16)
    fn = jax.jit(lambda x: x + jnp.bfloat16(1))
    fn(x).block_until_ready()
    ms = kernel_ms(fn, (x,))
    return 2 * COPY_BYTES / ms / 1e9


def _paged(k, page_size: int, rng):
    """(B, S, Hk, D) -> shuffled pages (B * S / page, page, Hk, D) and the page table."""
    b, s = k.shape[:2]
    per = s // page_size
    perm = rng.permutation(b * per)
    pages = k.reshape((b * per, page_size) + k.shape[2:])
    inv = np.empty_like(perm)
    inv[perm] = np.arange(b * per)
    return pages[inv], jnp.asarray(perm.reshape(b, per), jnp.int32)


def decode_call(dt, b: int, sk: int, h: int, hk: int, page: int):
    """One decode case: (jitted attention_with_kvcache, its args), the dense
    (q, k, v), and the bytes a single pass reads and writes."""
    q, k, v = random_qkv(sk + b, (b, 1, h, HEAD_DIM), (b, sk, hk, HEAD_DIM), dt)
    seqlens = jnp.full((b,), sk, jnp.int32)
    nbytes = 2 * k.size * k.dtype.itemsize + 2 * q.size * q.dtype.itemsize
    if not page:
        return (jax.jit(jax_fa3.attention_with_kvcache), (q, k, v, seqlens)), (q, k, v), nbytes
    # K and V pages take the same shuffle: one page table serves both.
    kc, pt = _paged(k, page, np.random.default_rng(page))
    vc, _ = _paged(v, page, np.random.default_rng(page))
    fn = jax.jit(lambda q, kc, vc, sl, pt: jax_fa3.attention_with_kvcache(q, kc, vc, sl, page_table=pt))
    return (fn, (q, kc, vc, seqlens, pt)), (q, k, v), nbytes


def bench_decode(kernel_ms, row_cls) -> list:
    """Rows for every decode case: jax_fa3 (heuristic splits), cuDNN, and the
    in-place append of one token (one call, caches donated)."""
    copy = copy_tbps(kernel_ms)
    rows = [row_cls("device copy (512 MiB, read + write)", "xla elementwise", None, None, None,
                    f"{copy:.2f} TB/s")]
    for name, dt, b, sk, h, hk, page, check in CASES:
        (fn, args), (q, k, v), nbytes = decode_call(dt, b, sk, h, hk, page)
        out = fn(*args)
        ref = jax.jit(reference.attention)(q, k, v) if check else None
        ms = kernel_ms(fn, args)
        rate = nbytes / ms / 1e9
        rows.append(row_cls(name, "jax_fa3 kvcache", ms, None, rel_err(out, ref) if check else None,
                            f"{rate:.2f} TB/s = {rate / copy:.2f}x copy"))
        if check:  # the seed cases also through the dense API (decode-shaped: split-KV too)
            dense = jax.jit(jax_fa3.attention)
            dms = kernel_ms(dense, (q, k, v))
            rows.append(row_cls(name, "jax_fa3 attention", dms, None, rel_err(dense(q, k, v), ref),
                                f"{nbytes / dms / 1e9:.2f} TB/s"))
        cud = jax.jit(functools.partial(jax.nn.dot_product_attention, implementation="cudnn"))
        try:
            cout = cud(q, k, v)
            cms = kernel_ms(cud, (q, k, v))
            crate = nbytes / cms / 1e9
            rows.append(row_cls(name, "cudnn (contiguous)" if page else "cudnn", cms, None, rel_err(cout, ref) if check else rel_err(out, cout),
                                f"{crate:.2f} TB/s{'' if check else ' (err: jax_fa3 vs cudnn)'}"))
        except Exception as e:  # a baseline that refuses a shape is reported, not fatal
            rows.append(row_cls(name, "cudnn", None, None, None, type(e).__name__ + ": " + str(e).splitlines()[0][:60]))
        del args, k, v
    rows += bench_append_in_place(kernel_ms, row_cls)
    return rows


def bench_append_in_place(kernel_ms, row_cls) -> list:
    """One decode step with a one-token append into donated paged caches:
    the optimized module must hold the custom call and no cache copy."""
    b, sk, h, hk, page = APPEND_CASE
    q, k, v = random_qkv(5, (b, 1, h, HEAD_DIM), (b, sk, hk, HEAD_DIM), jnp.bfloat16)
    kc, pt = _paged(k, page, np.random.default_rng(1))
    vc, _ = _paged(v, page, np.random.default_rng(1))
    del k, v
    kn, vn = q[:, :, :hk], q[:, :, hk:2 * hk]
    seqlens = jnp.full((b,), sk - 1, jnp.int32)
    fn = jax.jit(lambda q, kc, vc, sl, pt, kn, vn: jax_fa3.attention_with_kvcache(q, kc, vc, sl, page_table=pt,
                                                                                     k=kn, v=vn),
                 donate_argnums=(1, 2))
    hlo = fn.lower(q, kc, vc, seqlens, pt, kn, vn).compile().as_text()
    ops = [op for line in hlo.splitlines() if " = " in line for op in re.findall(r"\s([a-z][a-z0-9-]*)\(%", line)]
    copies = sum(op in ("copy", "copy-start") for op in ops)
    calls = sum(op == "custom-call" for op in ops)
    note = (f"optimized module: {calls} custom-call, {copies} copies; ops: "
            + ", ".join(sorted(set(ops))))
    return [row_cls("bf16 append 1 token + decode b64 sk8192 h32/8 paged64, donated", "jax_fa3 kvcache", None, None,
                    None, note)]
