"""Registration of the XLA FFI targets and the raw custom calls."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jax_fa3 import _jax_fa3_ext as _ext

DENSE_TARGET: str = _ext.dense_target
VARLEN_TARGET: str = _ext.varlen_target
KVCACHE_TARGET: str = _ext.kvcache_target
KVCACHE_APPEND_TARGET: str = _ext.kvcache_append_target


@functools.cache
def cuda_compute_capabilities() -> tuple[int, ...]:
    """Compute capabilities (e.g. 90) of the GPUs this build can run on."""
    return tuple(_ext.cuda_devices())


def _register() -> None:
    regs = _ext.registrations()
    for name, capsule in regs["cpu"].items():
        jax.ffi.register_ffi_target(name, capsule, platform="cpu")
    # CUDA targets only where they can run: a build without CUDA, or a machine
    # without a driver or GPU, registers none.
    if "CUDA" in regs and cuda_compute_capabilities():
        for name, capsule in regs["CUDA"].items():
            jax.ffi.register_ffi_target(name, capsule, platform="CUDA")


_register()


@dataclasses.dataclass(frozen=True)
class KernelConfig:
    """Static (trace-time) settings of one attention call."""

    softmax_scale: float
    causal: bool
    window_left: int
    window_right: int
    softcap: float
    out_dtype: np.dtype

    def attributes(self) -> dict:
        return dict(
            softmax_scale=np.float32(self.softmax_scale),
            causal=bool(self.causal),
            window_left=np.int64(self.window_left),
            window_right=np.int64(self.window_right),
            softcap=np.float32(self.softcap),
        )


# Both attention targets take an int32 scratch result for the Hopper kernel,
# whose launcher zeroes what it uses: (1,), its dynamic tile counter, and for
# dense calls whose last round of tiles it may split across every SM, room
# for the split's partial tiles (ffi/kernels/hopper/tail_split_layout.h).
_TILE_COUNTER = jax.ShapeDtypeStruct((1,), jnp.int32)


def dense_call(cfg: KernelConfig, q, k, v, q_descale, k_descale, v_descale):
    """q (B, Sq, H, D), k/v (B, Sk, Hk, D) -> out (B, Sq, H, D), lse (B, H, Sq)."""
    b, sq, h, d = q.shape
    masked = cfg.causal or cfg.window_left >= 0 or cfg.window_right >= 0
    scratch_words = _ext.dense_scratch_words(b, sq, k.shape[1], h, d, masked)
    result = (
        jax.ShapeDtypeStruct(q.shape, cfg.out_dtype),
        jax.ShapeDtypeStruct((b, h, sq), jnp.float32),
        jax.ShapeDtypeStruct((scratch_words,), jnp.int32),
    )
    out, lse, _ = jax.ffi.ffi_call(DENSE_TARGET, result)(
        q, k, v, q_descale, k_descale, v_descale, **cfg.attributes()
    )
    return out, lse


def varlen_call(cfg: KernelConfig, q, k, v, cu_seqlens_q, cu_seqlens_k, seqused_k,
                q_descale, k_descale, v_descale):
    """q (Tq, H, D), k/v (Tk, Hk, D) -> out (Tq, H, D), lse (H, Tq)."""
    tq, h, _ = q.shape
    result = (
        jax.ShapeDtypeStruct(q.shape, cfg.out_dtype),
        jax.ShapeDtypeStruct((h, tq), jnp.float32),
        _TILE_COUNTER,
    )
    out, lse, _ = jax.ffi.ffi_call(VARLEN_TARGET, result)(
        q, k, v, cu_seqlens_q, cu_seqlens_k, seqused_k, q_descale, k_descale, v_descale,
        **cfg.attributes(),
    )
    return out, lse


def kvcache_call(cfg: KernelConfig, num_splits: int, rotary_interleaved: bool, workspace_floats: int,
                 q, k_cache, v_cache, cache_seqlens, k, v, page_table, cache_batch_idx, cache_leftpad,
                 rotary_cos, rotary_sin, q_descale, k_descale, v_descale):
    """q (B, Sq, H, D) against a KV cache -> out (B, Sq, H, D), lse (B, H, Sq),
    and the updated k_cache, v_cache when new k/v (B, Sn, Hk, D) are given.

    Absent operands are (0,) arrays. The float32 workspace holds the split-KV
    partials; the caches of the append target alias operands 1 and 2, so
    donated caches are updated in place.
    """
    b, sq, h, _ = q.shape
    result = [
        jax.ShapeDtypeStruct(q.shape, cfg.out_dtype),
        jax.ShapeDtypeStruct((b, h, sq), jnp.float32),
        jax.ShapeDtypeStruct((workspace_floats,), jnp.float32),
    ]
    append = k.ndim == 4
    aliases = None
    if append:
        result += [jax.ShapeDtypeStruct(k_cache.shape, k_cache.dtype), jax.ShapeDtypeStruct(v_cache.shape, v_cache.dtype)]
        aliases = {1: 3, 2: 4}
    outs = jax.ffi.ffi_call(KVCACHE_APPEND_TARGET if append else KVCACHE_TARGET, tuple(result),
                            vmap_method="sequential", input_output_aliases=aliases)(
        q, k_cache, v_cache, cache_seqlens, k, v, page_table, cache_batch_idx, cache_leftpad, rotary_cos, rotary_sin,
        q_descale, k_descale, v_descale, num_splits=np.int64(num_splits),
        rotary_interleaved=bool(rotary_interleaved), **cfg.attributes())
    out, lse = outs[0], outs[1]
    return (out, lse, outs[3], outs[4]) if append else (out, lse, None, None)
