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


def dense_call(cfg: KernelConfig, q, k, v, q_descale, k_descale, v_descale):
    """q (B, Sq, H, D), k/v (B, Sk, Hk, D) -> out (B, Sq, H, D), lse (B, H, Sq)."""
    b, sq, h, _ = q.shape
    result = (
        jax.ShapeDtypeStruct(q.shape, cfg.out_dtype),
        jax.ShapeDtypeStruct((b, h, sq), jnp.float32),
    )
    return jax.ffi.ffi_call(DENSE_TARGET, result)(
        q, k, v, q_descale, k_descale, v_descale, **cfg.attributes()
    )


def varlen_call(cfg: KernelConfig, q, k, v, cu_seqlens_q, cu_seqlens_k, seqused_k,
                q_descale, k_descale, v_descale):
    """q (Tq, H, D), k/v (Tk, Hk, D) -> out (Tq, H, D), lse (H, Tq)."""
    tq, h, _ = q.shape
    result = (
        jax.ShapeDtypeStruct(q.shape, cfg.out_dtype),
        jax.ShapeDtypeStruct((h, tq), jnp.float32),
    )
    return jax.ffi.ffi_call(VARLEN_TARGET, result)(
        q, k, v, cu_seqlens_q, cu_seqlens_k, seqused_k, q_descale, k_descale, v_descale,
        **cfg.attributes(),
    )
