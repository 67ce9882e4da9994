"""Trace-time argument checks: each failure names the argument, what was
expected and what was given."""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
import numpy as np

from jax_fa3._ffi import KernelConfig

FP8 = jnp.dtype(jnp.float8_e4m3fn)
HALF_DTYPES = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))
MAX_HEAD_DIM = 256


def _describe(x: Any) -> str:
    return f"{jnp.dtype(x.dtype).name}{tuple(x.shape)}"


def check_qkv(q, k, v, rank: int, layout: str) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise TypeError(f"{name} must be an array, got {type(x).__name__}")
        if x.ndim != rank:
            raise ValueError(f"{name} must have rank {rank} {layout}, got shape {tuple(x.shape)}")
    dt = jnp.dtype(q.dtype)
    if dt not in HALF_DTYPES and dt != FP8:
        raise TypeError(f"q must be float16, bfloat16 or float8_e4m3fn, got {dt.name}")
    for name, x in (("k", k), ("v", v)):
        if jnp.dtype(x.dtype) != dt:
            raise TypeError(f"{name} must have q's dtype {dt.name}, got {jnp.dtype(x.dtype).name}")
    if tuple(v.shape) != tuple(k.shape):
        raise ValueError(f"v must have k's shape {tuple(k.shape)}, got {tuple(v.shape)}")
    d = q.shape[-1]
    if k.shape[-1] != d:
        raise ValueError(f"k must have q's head_dim {d}, got {k.shape[-1]}")
    if d % 8 != 0 or not 8 <= d <= MAX_HEAD_DIM:
        raise ValueError(f"head_dim must be a multiple of 8 in [8, {MAX_HEAD_DIM}], got {d}")
    h, hk = q.shape[-2], k.shape[-2]
    if hk < 1 or h % hk != 0:
        raise ValueError(
            f"num_heads of q ({h}) must be a multiple of num_heads_k of k and v ({hk})")


def make_config(q, *, softmax_scale, causal, window_size, softcap, out_dtype) -> KernelConfig:
    d = q.shape[-1]
    if softmax_scale is None:
        softmax_scale = 1.0 / math.sqrt(d)
    if not isinstance(softmax_scale, (int, float, np.floating)) or not softmax_scale > 0:
        raise ValueError(f"softmax_scale must be a positive Python float, got {softmax_scale!r}")
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"causal must be a bool, got {causal!r}")
    if (not isinstance(window_size, (tuple, list)) or len(window_size) != 2
            or not all(isinstance(w, (int, np.integer)) and w >= -1 for w in window_size)):
        raise ValueError(f"window_size must be a pair of ints >= -1 (-1: unbounded), got {window_size!r}")
    if not isinstance(softcap, (int, float, np.floating)) or softcap < 0 or not math.isfinite(softcap):
        raise ValueError(f"softcap must be a finite float >= 0 (0 disables), got {softcap!r}")
    in_dt = jnp.dtype(q.dtype)
    if out_dtype is None:
        out_dt = jnp.dtype(jnp.float16) if in_dt == FP8 else in_dt
    else:
        out_dt = jnp.dtype(out_dtype)
        allowed = HALF_DTYPES if in_dt == FP8 else (in_dt,)
        if out_dt not in allowed:
            raise TypeError(
                f"out_dtype must be one of {[a.name for a in allowed]} for {in_dt.name} inputs, "
                f"got {out_dt.name}")
    return KernelConfig(
        softmax_scale=float(softmax_scale), causal=bool(causal),
        window_left=int(window_size[0]), window_right=int(window_size[1]),
        softcap=float(softcap), out_dtype=out_dt)


def descale_operand(name: str, x, in_dtype, batch: int, heads_k: int):
    """Normalizes a descale argument: absent -> float32 (0,), else scalar or
    (batch, num_heads_k) float32."""
    if x is None:
        return jnp.zeros((0,), jnp.float32)
    if jnp.dtype(in_dtype) != FP8:
        raise TypeError(f"{name} is only allowed with float8_e4m3fn inputs, got {jnp.dtype(in_dtype).name} inputs")
    x = jnp.asarray(x)
    if x.dtype != jnp.float32:
        raise TypeError(f"{name} must be float32, got {_describe(x)}")
    if x.shape not in ((), (1,), (batch, heads_k)):
        raise ValueError(
            f"{name} must be a scalar or shape (batch, num_heads_k) = {(batch, heads_k)}, got {tuple(x.shape)}")
    return x


def int32_vector(name: str, x, length: int | None, what: str):
    if not hasattr(x, "dtype") or jnp.dtype(x.dtype) != jnp.int32:
        got = _describe(x) if hasattr(x, "dtype") else type(x).__name__
        raise TypeError(f"{name} must be an int32 array {what}, got {got}")
    if x.ndim != 1 or (length is not None and x.shape[0] != length) or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape {what}, got {tuple(x.shape)}")
    return x


def check_max_seqlen(name: str, value) -> None:
    if value is not None and (not isinstance(value, (int, np.integer)) or value < 0):
        raise ValueError(f"{name} must be None or a static int >= 0, got {value!r}")
