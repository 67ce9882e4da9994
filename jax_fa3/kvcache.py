"""Decoding against a KV cache: :func:`attention_with_kvcache`."""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax_fa3 import _backward, _ffi
from jax_fa3 import _validation as val

Array = Any

# Split-KV: at most this many CTAs share one query block's keys.
MAX_SPLITS = 64
# The workspace is sized for the split heuristic on any GPU with up to this
# many SMs (H100 SXM: 132); the kernel's heuristic never asks for more
# splits than the workspace holds.
SM_COUNT_BOUND = 160
# The heuristic aims at this many CTAs per SM (portable kernel: 4 fit).
CTAS_PER_SM = 2
# Key tile of the portable kernel (32 for head_dim > 128): splits are whole tiles.
KEY_BLOCK = 64
QUERY_BLOCK = 64


def workspace_splits(batch: int, seqlen_q: int, heads: int, heads_k: int, head_dim: int, capacity: int,
                     num_splits: int) -> int:
    """The most splits the CUDA heuristic may pick for this shape (or the
    forced count): the workspace holds that many fp32 partial outputs."""
    if num_splits > 0:
        return num_splits
    key_block = KEY_BLOCK if head_dim <= 128 else KEY_BLOCK // 2
    packed_ctas = batch * heads_k * math.ceil(seqlen_q * (heads // heads_k) / QUERY_BLOCK)
    bound = min(MAX_SPLITS, math.ceil(CTAS_PER_SM * SM_COUNT_BOUND / max(packed_ctas, 1)),
                math.ceil(capacity / key_block))
    return max(bound, 1)


def dense_decode_splits(q_shape: tuple, k_shape: tuple) -> int:
    """Split bound for a dense ``attention`` call that is decode-shaped (its
    packed query rows fit one tile) and too small to fill the GPU; 0 when the
    plain dense target is the better fit."""
    b, sq, h, d = q_shape
    sk, hk = k_shape[1], k_shape[2]
    if sq * (h // hk) > QUERY_BLOCK:
        return 0
    splits = workspace_splits(b, sq, h, hk, d, sk, 0)
    return splits if splits > 1 else 0


def dense_decode_call(cfg: _ffi.KernelConfig, splits: int, q, k, v, q_descale, k_descale, v_descale):
    """A dense call run as a KV-cache call over full caches (k, v), so that it
    gets split-KV: same semantics, out (B, Sq, H, D) and lse (B, H, Sq)."""
    b, sq, h, d = q.shape
    empty = jnp.zeros((0,), jnp.int32)
    nothing = jnp.zeros((0,), jnp.float32)
    out, lse, _, _ = _ffi.kvcache_call(
        cfg, 0, False, splits * b * sq * h * (d + 1), q, k, v, jnp.full((b,), k.shape[1], jnp.int32),
        jnp.zeros((0,), q.dtype), jnp.zeros((0,), q.dtype), empty, empty, empty, nothing, nothing,
        q_descale, k_descale, v_descale)
    return out, lse


def _int32_or_empty(name: str, x, shape: tuple | None, what: str):
    if x is None:
        return jnp.zeros((0,), jnp.int32)
    if not hasattr(x, "dtype") or jnp.dtype(x.dtype) != jnp.int32:
        got = val._describe(x) if hasattr(x, "dtype") else type(x).__name__
        raise TypeError(f"{name} must be an int32 array {what}, got {got}")
    if shape is not None and tuple(x.shape) != shape:
        raise ValueError(f"{name} must have shape {what} = {shape}, got {tuple(x.shape)}")
    return x


def _check_cache(q, k_cache, v_cache, page_table, cache_batch_idx) -> tuple[int, int]:
    """Checks the cache layout; returns (capacity per sequence, page size or 0)."""
    b, _, h, d = q.shape
    for name, x in (("k_cache", k_cache), ("v_cache", v_cache)):
        if not hasattr(x, "shape") or x.ndim != 4:
            raise ValueError(f"{name} must have rank 4 (batch_cache, seqlen_cache, num_heads_k, head_dim) or "
                             f"(num_pages, page_size, num_heads_k, head_dim), got {getattr(x, 'shape', x)}")
        if jnp.dtype(x.dtype) != jnp.dtype(q.dtype):
            raise TypeError(f"{name} must have q's dtype {jnp.dtype(q.dtype).name}, got {jnp.dtype(x.dtype).name}")
    if tuple(v_cache.shape) != tuple(k_cache.shape):
        raise ValueError(f"v_cache must have k_cache's shape {tuple(k_cache.shape)}, got {tuple(v_cache.shape)}")
    hk = k_cache.shape[2]
    if k_cache.shape[3] != d:
        raise ValueError(f"k_cache must have q's head_dim {d}, got {k_cache.shape[3]}")
    if hk < 1 or h % hk != 0:
        raise ValueError(f"num_heads of q ({h}) must be a multiple of num_heads_k of k_cache ({hk})")
    if page_table is not None:
        if cache_batch_idx is not None:
            raise ValueError("cache_batch_idx cannot be combined with page_table")
        page_size = k_cache.shape[1]
        if page_size % 16 != 0 or page_size == 0:
            raise ValueError(f"the page size (k_cache dim 1) must be a positive multiple of 16, got {page_size}")
        if not hasattr(page_table, "dtype") or jnp.dtype(page_table.dtype) != jnp.int32 or page_table.ndim != 2 \
                or page_table.shape[0] != b:
            raise ValueError(f"page_table must be int32 (batch, max_pages) with batch {b}, got "
                             f"{val._describe(page_table) if hasattr(page_table, 'dtype') else page_table!r}")
        return page_table.shape[1] * page_size, page_size
    if cache_batch_idx is None and k_cache.shape[0] != b:
        raise ValueError(f"k_cache batch (dim 0) must be q's batch {b} unless cache_batch_idx is given, "
                         f"got {k_cache.shape[0]}")
    return k_cache.shape[1], 0


def _check_rotary(q, rotary_cos, rotary_sin):
    if (rotary_cos is None) != (rotary_sin is None):
        raise ValueError("rotary_cos and rotary_sin must be given together")
    if rotary_cos is None:
        return jnp.zeros((0,), jnp.float32), jnp.zeros((0,), jnp.float32)
    if jnp.dtype(q.dtype) not in val.HALF_DTYPES:
        raise TypeError(f"rotary embedding needs float16 or bfloat16 inputs, got {jnp.dtype(q.dtype).name}")
    cos, sin = jnp.asarray(rotary_cos), jnp.asarray(rotary_sin)
    d = q.shape[-1]
    if cos.ndim != 2 or not 1 <= 2 * cos.shape[1] <= d:
        raise ValueError(f"rotary_cos must be (seqlen_ro, rotary_dim / 2) with rotary_dim <= head_dim {d}, "
                         f"got {tuple(cos.shape)}")
    if sin.shape != cos.shape:
        raise ValueError(f"rotary_sin must have rotary_cos's shape {tuple(cos.shape)}, got {tuple(sin.shape)}")
    return cos.astype(jnp.float32), sin.astype(jnp.float32)


def attention_with_kvcache(q: Array, k_cache: Array, v_cache: Array, cache_seqlens: Array, *, k: Array | None = None,
                           v: Array | None = None, page_table: Array | None = None,
                           cache_batch_idx: Array | None = None, cache_leftpad: Array | None = None,
                           rotary_cos: Array | None = None, rotary_sin: Array | None = None,
                           rotary_interleaved: bool = False, q_descale: Array | None = None,
                           k_descale: Array | None = None, v_descale: Array | None = None,
                           softmax_scale: float | None = None, causal: bool = False,
                           window_size: tuple[int, int] = (-1, -1), softcap: float = 0.0, num_splits: int = 0,
                           return_lse: bool = False):
    """Attention of new query tokens against a KV cache (decoding), with an
    optional in-place append of new keys/values.

    Sequence b's keys are the cache positions ``[cache_leftpad[b],
    cache_seqlens[b] + seqlen_new)``: the ``seqlen_new`` tokens of ``k``/``v``
    are first written at positions ``cache_seqlens[b] + t``. Masks are aligned
    to the bottom-right corner (the last query sees the last key), as in
    :func:`jax_fa3.attention`.

    Args:
      q: ``(batch, seqlen_q, num_heads, head_dim)``, float16, bfloat16 or
        float8_e4m3fn.
      k_cache, v_cache: q's dtype; contiguous ``(batch_cache, seqlen_cache,
        num_heads_k, head_dim)`` or paged ``(num_pages, page_size, num_heads_k,
        head_dim)`` (page_size a multiple of 16).
      cache_seqlens: int32 ``(batch,)``: end of the tokens already cached.
      k, v: optional ``(batch, seqlen_new, num_heads_k, head_dim)`` appended
        before attending; then the updated caches are returned too. Donate the
        caches (``jax.jit(..., donate_argnums=...)``) to update them in place.
      page_table: int32 ``(batch, max_pages)``: page of position p is
        ``page_table[b, p // page_size]``.
      cache_batch_idx: int32 ``(batch,)``: cache row of sequence b
        (contiguous caches only); default ``b``.
      cache_leftpad: int32 ``(batch,)``: first valid cache position; default 0.
      rotary_cos, rotary_sin: ``(seqlen_ro, rotary_dim / 2)`` (converted to
        float32): rotary embedding of q and the new k at their absolute
        positions ``cache_seqlens[b] + i`` (16-bit inputs only). Positions past
        seqlen_ro use its last row.
      rotary_interleaved: rotate dim pairs (2i, 2i + 1) (GPT-J) instead of
        (i, i + rotary_dim / 2) (GPT-NeoX).
      q_descale, k_descale, v_descale: FP8 only; None, scalar or float32
        ``(batch, num_heads_k)`` (indexed by b, not by the cache row).
      softmax_scale, causal, window_size, softcap: as in :func:`jax_fa3.attention`.
      num_splits: split-KV count; 0 lets a heuristic choose on the GPU (the
        CPU path then does not split), n > 0 forces n (at most 64).
      return_lse: also return lse, float32 ``(batch, num_heads, seqlen_q)``.

    Returns:
      ``out`` ``(batch, seqlen_q, num_heads, head_dim)`` (float16 for FP8
      inputs), then ``lse`` if return_lse, then ``k_cache, v_cache`` if k/v
      were given. Out-of-range cache_seqlens, leftpad, batch indices or page
      table entries are clamped into the cache (meaningless output, never an
      out-of-bounds access); appended tokens past the capacity are dropped.
    """
    val.check_qkv(q, q, q, 4, "(batch, seqlen_q, num_heads, head_dim)")
    b, sq, h, d = q.shape
    capacity, _ = _check_cache(q, k_cache, v_cache, page_table, cache_batch_idx)
    hk = k_cache.shape[2]
    cache_seqlens = _int32_or_empty("cache_seqlens", cache_seqlens, (b,), "(batch,)")
    page_table = _int32_or_empty("page_table", page_table, None, "(batch, max_pages)")
    cache_batch_idx = _int32_or_empty("cache_batch_idx", cache_batch_idx, (b,), "(batch,)")
    cache_leftpad = _int32_or_empty("cache_leftpad", cache_leftpad, (b,), "(batch,)")
    if (k is None) != (v is None):
        raise ValueError("k and v must be given together")
    if k is not None:
        val.check_qkv(q, k, v, 4, "(batch, seqlen_new, num_heads_k, head_dim)")
        if k.shape[0] != b or k.shape[2] != hk:
            raise ValueError(f"k must have shape (batch, seqlen_new, num_heads_k, head_dim) = ({b}, seqlen_new, "
                             f"{hk}, {d}), got {tuple(k.shape)}")
    else:
        k = v = jnp.zeros((0,), q.dtype)
    cos, sin = _check_rotary(q, rotary_cos, rotary_sin)
    if not isinstance(rotary_interleaved, (bool, np.bool_)):
        raise TypeError(f"rotary_interleaved must be a bool, got {rotary_interleaved!r}")
    if not isinstance(num_splits, (int, np.integer)) or not 0 <= num_splits <= MAX_SPLITS:
        raise ValueError(f"num_splits must be an int in [0, {MAX_SPLITS}] (0: heuristic), got {num_splits!r}")
    cfg = val.make_config(q, softmax_scale=softmax_scale, causal=causal, window_size=window_size,
                          softcap=softcap, out_dtype=None)
    ds = [val.descale_operand(n, x, q.dtype, b, hk)
          for n, x in (("q_descale", q_descale), ("k_descale", k_descale), ("v_descale", v_descale))]
    splits = workspace_splits(b, sq, h, hk, d, capacity, int(num_splits))
    workspace = splits * b * sq * h * (d + 1) if splits > 1 else 0
    call = _backward.no_grad(functools.partial(_ffi.kvcache_call, cfg, int(num_splits), bool(rotary_interleaved),
                                               workspace), "attention_with_kvcache")
    out, lse, k_cache_new, v_cache_new = call(q, k_cache, v_cache, cache_seqlens, k, v, page_table,
                                              cache_batch_idx, cache_leftpad, cos, sin, *ds)
    result = (out, lse) if return_lse else (out,)
    if k_cache_new is not None:
        result += (k_cache_new, v_cache_new)
    return result[0] if len(result) == 1 else result
