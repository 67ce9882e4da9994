"""Shared helpers: random inputs, the error-ratio rule, device selection."""

from __future__ import annotations

import os

# Autotuning every reference GEMM shape took most of the GPU suite's time
# (minutes); the references need correct GEMMs, not fast ones. Set before JAX
# creates its backends; an explicit XLA_FLAGS setting wins.
if "xla_gpu_autotune_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_autotune_level=0").strip()
# The kernel-path tests switch JAX_FA3_FORCE_PORTABLE between runs of one
# executable; the handler reads it at each execution, which a command buffer
# (CUDA graph) recorded once would skip.
if "xla_gpu_enable_command_buffer" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] += " --xla_gpu_enable_command_buffer="

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_fa3 import reference

FP8 = jnp.float8_e4m3fn
DTYPES = {"f16": jnp.float16, "bf16": jnp.bfloat16, "fp8": FP8}

# Error-ratio rule: our error against the float32 reference may be at most
# RATIO times that of the same computation done naively in the input dtype,
# plus ATOL (relative-norm units) so exact cases (e.g. one visible key) pass.
RATIO = 3.0
ATOL = 2e-5


def gpu_devices() -> list:
    try:
        return jax.devices("gpu")
    except RuntimeError:
        return []


def rand(key, shape, dtype):
    """Random normal data in `dtype` (never constant: constants hide indexing bugs)."""
    x = jax.random.normal(key, shape, jnp.float32)
    return x.astype(dtype)


def rand_qkv(seed: int, q_shape, kv_shape, dtype):
    kq, kk, kv = jax.random.split(jax.random.PRNGKey(seed), 3)
    return rand(kq, q_shape, dtype), rand(kk, kv_shape, dtype), rand(kv, kv_shape, dtype)


def rel_err(x, ref) -> float:
    x = np.asarray(jnp.asarray(x, jnp.float32), np.float64)
    ref = np.asarray(jnp.asarray(ref, jnp.float32), np.float64)
    assert np.all(np.isfinite(x)), "output has NaN/Inf"
    denom = np.linalg.norm(ref)
    return float(np.linalg.norm(x - ref) / denom) if denom > 0 else float(np.linalg.norm(x))


def naive_kwargs(dtype) -> dict:
    """The 'naive in the input dtype' computation for the error-ratio rule.

    16-bit inputs: every step in that dtype. FP8: scores and softmax in
    float32 but probabilities rounded to e4m3 before P @ V, as an FP8 tensor
    core pipeline must.
    """
    if jnp.dtype(dtype) == jnp.dtype(FP8):
        return dict(compute_dtype=jnp.float32, probs_dtype=FP8)
    return dict(compute_dtype=dtype)


def assert_matches_reference(out, lse, ref_fn, dtype, **kwargs):
    """Checks out (and lse) against the float32 reference with the ratio rule."""
    ref_out, ref_lse = ref_fn(return_lse=True, **kwargs)
    naive_out = ref_fn(**naive_kwargs(dtype), **kwargs)
    err = rel_err(out, ref_out)
    naive = rel_err(naive_out, ref_out)
    assert err <= RATIO * naive + ATOL, f"error {err:.3e} vs naive {naive:.3e}"
    if lse is not None:
        lse = np.asarray(lse)
        ref_lse = np.asarray(ref_lse)
        assert np.array_equal(np.isneginf(lse), np.isneginf(ref_lse)), "lse -inf pattern differs"
        finite = np.isfinite(ref_lse)
        assert np.all(np.isfinite(lse[finite]))
        # lse is float32 end to end: its error is that of the score GEMM.
        assert np.max(np.abs(lse[finite] - ref_lse[finite]), initial=0) <= 2e-2
    return err, naive


def random_cu_seqlens(rng: np.random.Generator, batch: int, max_len: int, zero_and_one: bool = True):
    lens = rng.integers(0, max_len + 1, size=batch)
    if zero_and_one and batch >= 3:
        lens[0], lens[1] = 0, 1
        rng.shuffle(lens)
    return np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)


@pytest.fixture
def on_cpu():
    """Runs the test body on the CPU platform (also on GPU machines)."""
    with jax.default_device(jax.devices("cpu")[0]):
        yield


gpu = pytest.mark.skipif(not gpu_devices(), reason="no GPU visible to JAX")


HOPPER_TILES = ("short", "split", "medium", "long")


@pytest.fixture(params=["auto", *HOPPER_TILES, "portable"])
def kernel_path(request, monkeypatch) -> str:
    """Runs a GPU test on the default kernel choice (the Hopper kernel on
    sm_90 where it covers the problem), again with each of the Hopper
    kernel's tile shapes pinned (head-dim bucket 128, where they are built;
    other buckets keep their one shape; FP8 has no key split and runs
    "split" on the short tile), and pinned to the portable kernel. The
    default takes the short tile or the key split for most problems of a
    wave or less, so small test shapes need the medium one pinned."""
    monkeypatch.setenv("JAX_FA3_FORCE_PORTABLE", "1" if request.param == "portable" else "0")
    monkeypatch.setenv("JAX_FA3_HOPPER_TILE", request.param if request.param in HOPPER_TILES else "")
    return request.param
