"""Random attention_with_kvcache problems, shared by the CPU and GPU tests."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

import jax_fa3
from jax_fa3 import reference_kvcache
from conftest import FP8, assert_matches_reference, rand

LAYOUTS = ["contiguous", "batch_idx", "paged16", "paged64", "paged256"]


@dataclasses.dataclass
class Case:
    """One problem: positional arrays and keyword arguments of the call."""

    q: jax.Array
    k_cache: jax.Array
    v_cache: jax.Array
    cache_seqlens: np.ndarray
    kwargs: dict

    def args(self):
        return self.q, self.k_cache, self.v_cache, jnp.asarray(self.cache_seqlens)


def rotary_tables(seqlen_ro: int, rotary_dim: int, base: float = 10000.0):
    """cos, sin float32 (seqlen_ro, rotary_dim / 2) of the usual frequencies."""
    inv_freq = 1.0 / base ** (np.arange(0, rotary_dim, 2) / rotary_dim)
    angles = np.arange(seqlen_ro)[:, None] * inv_freq[None, :]
    return jnp.asarray(np.cos(angles), jnp.float32), jnp.asarray(np.sin(angles), jnp.float32)


def make_case(seed: int, dtype, *, batch=2, seqlen_q=1, heads=4, heads_k=2, head_dim=32, layout="contiguous",
              seqlen_cache=80, seqlen_new=0, leftpad=False, rotary_dim=0, interleaved=False, **kwargs) -> Case:
    """A random problem. Paged layouts take the page size from the name and a
    shuffled page table over more pages than the sequences use."""
    rng = np.random.default_rng(seed)
    keys = jax.random.split(jax.random.PRNGKey(seed), 5)
    q = rand(keys[0], (batch, seqlen_q, heads, head_dim), dtype)
    kw = dict(kwargs)
    if layout.startswith("paged"):
        page_size = int(layout[len("paged"):])
        max_pages = -(-seqlen_cache // page_size)
        num_pages = batch * max_pages + 3
        kw["page_table"] = jnp.asarray(rng.permutation(num_pages)[:batch * max_pages].reshape(batch, max_pages),
                                       jnp.int32)
        cache_shape = (num_pages, page_size, heads_k, head_dim)
        capacity = max_pages * page_size
    else:
        cache_rows = batch + 2 if layout == "batch_idx" else batch
        if layout == "batch_idx":
            kw["cache_batch_idx"] = jnp.asarray(rng.permutation(cache_rows)[:batch], jnp.int32)
        cache_shape = (cache_rows, seqlen_cache, heads_k, head_dim)
        capacity = seqlen_cache
    k_cache, v_cache = rand(keys[1], cache_shape, dtype), rand(keys[2], cache_shape, dtype)
    cache_seqlens = rng.integers(0, capacity - seqlen_new + 1, size=batch).astype(np.int32)
    cache_seqlens[-1] = capacity - seqlen_new  # one full cache
    if leftpad:
        kw["cache_leftpad"] = jnp.asarray(rng.integers(0, cache_seqlens + 1), jnp.int32)
    if seqlen_new:
        new_shape = (batch, seqlen_new, heads_k, head_dim)
        kw["k"], kw["v"] = rand(keys[3], new_shape, dtype), rand(keys[4], new_shape, dtype)
    if rotary_dim:
        kw["rotary_cos"], kw["rotary_sin"] = rotary_tables(capacity + seqlen_q, rotary_dim)
        kw["rotary_interleaved"] = interleaved
    if jnp.dtype(dtype) == jnp.dtype(FP8):
        dk = jax.random.split(jax.random.PRNGKey(seed + 11), 3)
        kw.update(q_descale=jax.random.uniform(dk[0], (batch, heads_k), minval=0.5, maxval=2.0),
                  k_descale=jax.random.uniform(dk[1], (), minval=0.5, maxval=2.0),
                  v_descale=jax.random.uniform(dk[2], (batch, heads_k), minval=0.5, maxval=2.0))
    return Case(q, k_cache, v_cache, cache_seqlens, kw)


def check_case(case: Case, dtype, jit: bool = True):
    """Runs the case and checks out, lse and the updated caches."""
    fn = functools.partial(jax_fa3.attention_with_kvcache, return_lse=True, **case.kwargs)
    result = (jax.jit(fn) if jit else fn)(*case.args())
    appended = "k" in case.kwargs
    out, lse = result[:2]
    assert out.shape == case.q.shape and lse.shape == (case.q.shape[0], case.q.shape[2], case.q.shape[1])
    ref_kwargs = {k: v for k, v in case.kwargs.items() if k != "num_splits"}

    def ref_fn(return_lse=False, **kw):
        r = reference_kvcache.attention_with_kvcache(case.q, case.k_cache, case.v_cache, case.cache_seqlens,
                                                     return_lse=return_lse, **ref_kwargs, **kw)
        if not appended:
            return r
        return r[:2] if return_lse else r[0]

    assert_matches_reference(out, lse, ref_fn, dtype)
    if appended:
        _, _, k_ref, v_ref = reference_kvcache.attention_with_kvcache(
            case.q, case.k_cache, case.v_cache, case.cache_seqlens, return_lse=True, **ref_kwargs)
        k_new, v_new = result[2:]
        np.testing.assert_array_equal(np.asarray(v_new).view(np.uint8), np.asarray(v_ref).view(np.uint8))
        if "rotary_cos" in case.kwargs:
            # Rotation is float32 math rounded once: a fused multiply-add may
            # move a value by one unit in the last place.
            np.testing.assert_allclose(np.asarray(k_new, np.float32), np.asarray(k_ref, np.float32),
                                       rtol=2 ** -7, atol=1e-3)
        else:
            np.testing.assert_array_equal(np.asarray(k_new).view(np.uint8), np.asarray(k_ref).view(np.uint8))
    return result


def corrupt_paged_indices(case: Case) -> None:
    """Points cache_seqlens, the page table and cache_leftpad of a 3-sequence
    paged case with left padding past every bound (huge, negative, INT32_MAX)."""
    case.cache_seqlens = np.array([2**30, -5, 40], np.int32)
    pt = np.asarray(case.kwargs["page_table"]).copy()
    pt[0, 0], pt[1, -1], pt[2, 1] = 10**6, -3, 2**31 - 1
    case.kwargs["page_table"] = jnp.asarray(pt)
    case.kwargs["cache_leftpad"] = jnp.asarray([7, 2**31 - 1, -9], jnp.int32)
