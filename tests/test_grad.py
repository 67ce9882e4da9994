"""Gradients of jax_fa3.attention (16-bit inputs) against the gradients of the
float32 reference, with the error-ratio rule per input, on the CPU and (when
JAX sees one) the GPU; and the clear errors where no backward pass exists."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_fa3
from jax_fa3 import _backward, reference
from jax_fa3._ffi import KernelConfig
from conftest import ATOL, FP8, RATIO, gpu, gpu_devices, rand, rand_qkv, rel_err

FEATURES = {
    "plain": {},
    "causal": dict(causal=True),
    "window": dict(window_size=(100, 7)),
    "window_left_causal": dict(window_size=(9, -1), causal=True),
    "softcap": dict(softcap=3.0),
    "scale": dict(softmax_scale=0.3),
}
DTYPES16 = {"f16": jnp.float16, "bf16": jnp.bfloat16}


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=gpu)])
def device(request):
    """Runs the test body on the named platform."""
    with jax.default_device((gpu_devices() if request.param == "gpu" else jax.devices("cpu"))[0]):
        yield request.param


def loss_fn(attention_fn, weights, lse_weight: float):
    """A scalar loss of out and lse whose gradient reaches every input."""
    def loss(q, k, v):
        out, lse = attention_fn(q, k, v, return_lse=True)
        lse_term = jnp.sum(jnp.where(jnp.isfinite(lse), lse, 0.0)) * lse_weight
        return jnp.sum(out.astype(jnp.float32) * weights) + lse_term
    return loss


def assert_grads_match(q, k, v, dtype, lse_weight: float = 0.5, out_weight: float = 1.0, **kw):
    weights = out_weight * rand(jax.random.PRNGKey(99), q.shape, jnp.float32)
    grad = functools.partial(jax.grad, argnums=(0, 1, 2))
    ours = jax.jit(grad(loss_fn(functools.partial(jax_fa3.attention, **kw), weights, lse_weight)))(q, k, v)
    ref = grad(loss_fn(functools.partial(reference.attention, **kw), weights, lse_weight))(q, k, v)
    naive = grad(loss_fn(functools.partial(reference.attention, compute_dtype=dtype, **kw), weights,
                         lse_weight))(q, k, v)
    for name, x, r, n, primal in zip("qkv", ours, ref, naive, (q, k, v)):
        assert x.shape == primal.shape and x.dtype == primal.dtype, name
        err, naive_err = rel_err(x, r), rel_err(n, r)
        assert err <= RATIO * naive_err + ATOL, f"d{name}: error {err:.3e} vs naive {naive_err:.3e}"


@pytest.mark.parametrize("dtype", list(DTYPES16))
@pytest.mark.parametrize("feature", list(FEATURES))
@pytest.mark.parametrize("sq, sk", [(1, 17), (113, 239), (239, 113)])
def test_grads(dtype, feature, sq, sk, device):
    dt = DTYPES16[dtype]
    q, k, v = rand_qkv(sq * 7 + sk, (2, sq, 4, 64), (2, sk, 2, 64), dt)
    assert_grads_match(q, k, v, dt, **FEATURES[feature])


@pytest.mark.parametrize("h, hk", [(4, 4), (8, 2), (8, 1)])
def test_grads_gqa_over_several_key_blocks(h, hk, device):
    """1023 keys: several backward key blocks, the last one padded."""
    q, k, v = rand_qkv(h * 10 + hk, (1, 17, h, 32), (1, 1023, hk, 32), jnp.bfloat16)
    assert_grads_match(q, k, v, jnp.bfloat16, causal=True)


@pytest.mark.parametrize("feature", ["causal", "window", "window_left_causal"])
def test_grads_long_masked(feature, device):
    """Over 1024 query rows a masked backward scans chunks of rows, each over
    the keys it sees."""
    q, k, v = rand_qkv(31, (1, 1031, 2, 32), (1, 1279, 1, 32), jnp.bfloat16)
    assert_grads_match(q, k, v, jnp.bfloat16, **FEATURES[feature])


MASKS = {
    "causal": dict(causal=True, window_left=-1, window_right=0),
    "window": dict(causal=False, window_left=20, window_right=3),
    "window_left_causal": dict(causal=True, window_left=9, window_right=-1),
    "window_right_only": dict(causal=False, window_left=-1, window_right=5),
}


@pytest.mark.parametrize("chunks", [2, 7])
@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("sq, sk", [(113, 239), (239, 113)])
def test_query_chunks_change_nothing(chunks, mask, sq, sk):
    """Cutting the query rows into chunks, each scanning only its visible keys,
    gives one chunk's gradients up to float32 summation order (and rows or
    chunks that see no key give 0)."""
    cfg = KernelConfig(softmax_scale=0.125, softcap=0.0, out_dtype=np.dtype(np.float16), **MASKS[mask])
    q, k, v = rand_qkv(sq + sk + chunks, (2, sq, 4, 64), (2, sk, 2, 64), jnp.float16)
    window = (cfg.window_left, cfg.window_right)
    out, lse = jax_fa3.attention(q, k, v, softmax_scale=cfg.softmax_scale, causal=cfg.causal,
                                 window_size=window, return_lse=True)
    dout = rand(jax.random.PRNGKey(3), out.shape, jnp.float16)
    dlse = rand(jax.random.PRNGKey(4), lse.shape, jnp.float32)
    grads = jax.jit(_backward.dense_grads, static_argnums=0, static_argnames="query_chunks")
    one = grads(cfg, q, k, v, out, lse, dout, dlse, query_chunks=1)
    cut = grads(cfg, q, k, v, out, lse, dout, dlse, query_chunks=chunks)
    for name, a, b in zip("qkv", one, cut):
        # float16 results that may differ by one rounding (2^-11 relative).
        assert rel_err(b, a) <= 1e-3, f"d{name}"


@pytest.mark.parametrize("which", ["out", "lse"])
def test_grads_of_one_output(which, device):
    """A loss of out alone or lse alone (the other's cotangent is zero)."""
    q, k, v = rand_qkv(5, (2, 33, 4, 64), (2, 47, 2, 64), jnp.float16)
    assert_grads_match(q, k, v, jnp.float16, lse_weight=float(which == "lse"), out_weight=float(which == "out"),
                       window_size=(20, 3))


def test_grad_of_vmapped_call_matches_each_element(device):
    q, k, v = rand_qkv(3, (3, 2, 19, 4, 32), (3, 2, 29, 2, 32), jnp.bfloat16)

    def loss(q, k, v):
        return jnp.sum(jax_fa3.attention(q, k, v, causal=True).astype(jnp.float32) ** 2)

    batched = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1, 2))))(q, k, v)
    for i in range(3):
        single = jax.grad(loss, argnums=(0, 1, 2))(q[i], k[i], v[i])
        for x, y in zip(batched, single):
            # Batched GEMMs may sum in another order: bf16 results can differ
            # by one rounding (2^-8 relative), not more.
            assert rel_err(x[i], y) <= 1e-2


def test_fully_masked_rows_have_zero_grads(device):
    """Rows that see no key give 0, never NaN. With 40 queries, 8 keys and
    window (2, 0), query i sees keys i - 34 .. i - 32: none below row 32, one
    at row 32, two or three after. Row 32's dq is 0 only in exact arithmetic
    (out is that V row, so dP - rowsum(dO * O) cancels); the two sums add in
    different orders, so it is held to rounding size, not to 0."""
    q, k, v = rand_qkv(11, (1, 40, 2, 32), (1, 8, 2, 32), jnp.float16)
    weights = rand(jax.random.PRNGKey(1), q.shape, jnp.float32)
    dq = jax.grad(lambda q: jnp.sum(jax_fa3.attention(q, k, v, window_size=(2, 0)).astype(jnp.float32)
                                    * weights))(q)
    dq = np.asarray(dq, np.float32)
    assert np.all(np.isfinite(dq))
    assert np.all(dq[:, :32] == 0) and np.all(np.any(dq[:, 33:] != 0, axis=-1))
    assert np.max(np.abs(dq[:, 32])) <= 1e-3 * np.max(np.abs(dq[:, 33:]))


def test_fp8_grad_is_a_clear_error():
    q, k, v = rand_qkv(0, (1, 16, 2, 32), (1, 16, 2, 32), FP8)
    with pytest.raises(NotImplementedError, match="float8_e4m3fn inputs has no backward pass"):
        jax.grad(lambda q: jax_fa3.attention(q, k, v).astype(jnp.float32).sum())(q)


def test_varlen_grad_is_a_clear_error():
    q, k, v = rand_qkv(0, (9, 2, 32), (9, 2, 32), jnp.bfloat16)
    cu = jnp.asarray([0, 4, 9], jnp.int32)
    with pytest.raises(NotImplementedError, match="varlen_attention has no backward pass"):
        jax.grad(lambda q: jax_fa3.varlen_attention(q, k, v, cu, cu).astype(jnp.float32).sum())(q)


def test_kvcache_grad_is_a_clear_error():
    q = rand(jax.random.PRNGKey(0), (1, 1, 4, 32), jnp.float16)
    cache = rand(jax.random.PRNGKey(1), (1, 16, 2, 32), jnp.float16)
    seqlens = jnp.asarray([5], jnp.int32)
    with pytest.raises(NotImplementedError, match="attention_with_kvcache has no backward pass"):
        jax.grad(lambda q: jax_fa3.attention_with_kvcache(q, cache, cache, seqlens).astype(jnp.float32).sum())(q)
