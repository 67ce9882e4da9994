"""The CPU platform's FFI targets against the reference, for every feature
and dtype at small sizes; jit and vmap behaviour; checked mode."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_fa3
from jax_fa3 import reference
from conftest import DTYPES, FP8, assert_matches_reference, rand, rand_qkv, random_cu_seqlens

pytestmark = pytest.mark.usefixtures("on_cpu")

FEATURES = {
    "plain": {},
    "causal": dict(causal=True),
    "window": dict(window_size=(5, 2)),
    "window_left_causal": dict(window_size=(9, -1), causal=True),
    "softcap": dict(softcap=4.0),
    "scale": dict(softmax_scale=0.3),
}


def descales(seed, dtype, batch, hk):
    if jnp.dtype(dtype) != jnp.dtype(FP8):
        return {}
    keys = jax.random.split(jax.random.PRNGKey(seed + 7), 3)
    return dict(q_descale=jax.random.uniform(keys[0], (batch, hk), minval=0.5, maxval=2.0),
                k_descale=jax.random.uniform(keys[1], (), minval=0.5, maxval=2.0),
                v_descale=jax.random.uniform(keys[2], (batch, hk), minval=0.5, maxval=2.0))


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("feature", list(FEATURES))
@pytest.mark.parametrize("sq, sk", [(1, 17), (17, 17), (23, 9)])
def test_dense(dtype, feature, sq, sk):
    dt = DTYPES[dtype]
    b, h, hk, d = 2, 4, 2, 32
    q, k, v = rand_qkv(sq * 31 + sk, (b, sq, h, d), (b, sk, hk, d), dt)
    kw = dict(FEATURES[feature], **descales(sq, dt, b, hk))
    out, lse = jax.jit(functools.partial(jax_fa3.attention, return_lse=True, **kw))(q, k, v)
    assert out.shape == q.shape and out.dtype == (jnp.float16 if dt == FP8 else dt)
    assert lse.shape == (b, h, sq) and lse.dtype == jnp.float32
    assert_matches_reference(out, lse, functools.partial(reference.attention, q, k, v, **kw), dt)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("feature", ["plain", "causal", "window", "softcap"])
@pytest.mark.parametrize("seqused", [False, True])
def test_varlen(dtype, feature, seqused):
    dt = DTYPES[dtype]
    rng = np.random.default_rng(abs(hash((dtype, feature, seqused))) % 2**32)
    batch, h, hk, d = 6, 4, 1, 40
    cu_q = random_cu_seqlens(rng, batch, 20)
    cu_k = random_cu_seqlens(rng, batch, 20)
    tq, tk = int(cu_q[-1]) + 3, int(cu_k[-1])  # 3 trailing rows belong to no sequence
    q, k, v = rand_qkv(int(rng.integers(1 << 30)), (tq, h, d), (tk, hk, d), dt)
    kw = dict(FEATURES[feature], **descales(7, dt, batch, hk))
    if seqused:
        kw["seqused_k"] = jnp.asarray(rng.integers(0, np.diff(cu_k) + 1), jnp.int32)
    out, lse = jax_fa3.varlen_attention(q, k, v, jnp.asarray(cu_q), jnp.asarray(cu_k), max_seqlen_q=1680,
                                        return_lse=True, **kw)
    assert lse.shape == (h, tq)
    assert np.all(np.asarray(out[cu_q[-1]:], np.float32) == 0) and np.all(np.isneginf(np.asarray(lse[:, cu_q[-1]:])))
    assert_matches_reference(out, lse, functools.partial(reference.varlen_attention, q, k, v, cu_q, cu_k, **kw), dt)


@pytest.mark.parametrize("group", [1, 2, 4])
def test_gqa_and_fp8_bf16_output(group):
    b, s, hk, d = 1, 13, 2, 64
    q, k, v = rand_qkv(group, (b, s, hk * group, d), (b, s, hk, d), FP8)
    kw = dict(out_dtype=jnp.bfloat16, **descales(1, FP8, b, hk))
    out = jax_fa3.attention(q, k, v, **kw)
    assert out.dtype == jnp.bfloat16
    assert_matches_reference(out, None, functools.partial(reference.attention, q, k, v, **kw), FP8)


def test_fully_masked_rows_are_zero_not_nan():
    # seqlen_q > seqlen_k with causal: the first rows see no key at all.
    q, k, v = rand_qkv(3, (1, 9, 2, 16), (1, 4, 2, 16), jnp.float16)
    out, lse = jax_fa3.attention(q, k, v, causal=True, return_lse=True)
    assert np.all(np.asarray(out[0, :5], np.float32) == 0)
    assert np.all(np.isneginf(np.asarray(lse[0, :, :5])))
    assert np.all(np.isfinite(np.asarray(lse[0, :, 5:])))


def test_jit_reuses_executable_across_cu_seqlens():
    q, k, v = rand_qkv(0, (20, 2, 16), (20, 2, 16), jnp.float16)
    fn = jax.jit(lambda q, k, v, cq, ck: jax_fa3.varlen_attention(q, k, v, cq, ck, causal=True))
    cu_a = np.array([0, 3, 20], np.int32)
    cu_b = np.array([0, 11, 12], np.int32)
    compiled = fn.lower(q, k, v, cu_a, cu_a).compile()
    for cu in (cu_a, cu_b):
        want = reference.varlen_attention(q, k, v, cu, cu, causal=True)
        np.testing.assert_allclose(np.asarray(compiled(q, k, v, cu, cu), np.float32),
                                   np.asarray(want, np.float32), atol=2e-3)


def test_lowered_module_contains_custom_call():
    q, k, v = rand_qkv(0, (1, 8, 2, 16), (1, 8, 2, 16), jnp.bfloat16)
    text = jax.jit(jax_fa3.attention).lower(q, k, v).as_text()
    assert "jax_fa3_attention_fwd_v1" in text
    cu = jnp.array([0, 8], jnp.int32)
    text = jax.jit(jax_fa3.varlen_attention).lower(q[0], k[0], v[0], cu, cu).as_text()
    assert "jax_fa3_varlen_attention_fwd_v1" in text


def test_vmap_dense_folds_into_batch():
    q, k, v = rand_qkv(5, (3, 2, 11, 4, 16), (3, 2, 7, 2, 16), jnp.float16)
    dq = jax.random.uniform(jax.random.PRNGKey(0), (3,), minval=0.5, maxval=2)
    q8, k8, v8 = (x.astype(FP8) for x in (q, k, v))
    out = jax.vmap(lambda q, k, v, d: jax_fa3.attention(q, k, v, causal=True, q_descale=d))(q8, k8, v8, dq)
    for i in range(3):
        want = reference.attention(q8[i], k8[i], v8[i], causal=True, q_descale=dq[i])
        np.testing.assert_allclose(np.asarray(out[i], np.float32), np.asarray(want, np.float32), atol=2e-3)
    # unbatched k/v broadcast against batched q
    out = jax.vmap(jax_fa3.attention, in_axes=(0, None, None))(q, k[0], v[0])
    want = jax.vmap(reference.attention, in_axes=(0, None, None))(q, k[0], v[0])
    np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(want, np.float32), atol=2e-3)


def test_vmap_varlen_folds_into_batch():
    n, t, h, d = 3, 24, 2, 16
    q, k, v = rand_qkv(9, (n, t, h, d), (n, t, h, d), jnp.bfloat16)
    cus = np.array([[0, 5, 5, 19], [0, 0, 24, 24], [2, 10, 12, 13]], np.int32)
    used = np.array([[3, 0, 14], [0, 20, 0], [8, 1, 1]], np.int32)
    fn = jax.vmap(lambda q, k, v, c, u: jax_fa3.varlen_attention(q, k, v, c, c, seqused_k=u, causal=True,
                                                                  return_lse=True))
    out, lse = fn(q, k, v, jnp.asarray(cus), jnp.asarray(used))
    assert lse.shape == (n, h, t)
    for i in range(n):
        want, want_lse = reference.varlen_attention(q[i], k[i], v[i], cus[i], cus[i], seqused_k=used[i],
                                                    causal=True, return_lse=True)
        np.testing.assert_allclose(np.asarray(out[i], np.float32), np.asarray(want, np.float32), atol=2e-2)
        np.testing.assert_allclose(np.asarray(lse[i]), np.asarray(want_lse), atol=1e-3)


def test_garbage_cu_seqlens_is_safe_and_checked_mode_reports_it():
    q, k, v = rand_qkv(2, (16, 2, 16), (16, 2, 16), jnp.float16)
    bad = jnp.array([5, -3, 1000, 2], jnp.int32)
    out = jax_fa3.varlen_attention(q, k, v, bad, bad)  # clamped: no crash, no out-of-bounds
    assert out.shape == q.shape
    good = np.array([0, 7, 16, 16], np.int32)
    want = reference.varlen_attention(q, k, v, good, good)
    np.testing.assert_allclose(np.asarray(jax_fa3.varlen_attention(q, k, v, good, good), np.float32),
                               np.asarray(want, np.float32), atol=2e-3)
    jax_fa3.set_checks(True)
    try:
        with pytest.raises(Exception, match="invalid cu_seqlens_q, cu_seqlens_k"):
            jax.block_until_ready(jax_fa3.varlen_attention(q, k, v, bad, bad))
        with pytest.raises(Exception, match="invalid seqused_k"):
            jax.block_until_ready(jax_fa3.varlen_attention(q, k, v, good, good, seqused_k=jnp.array([8, 1, 0], jnp.int32)))
        jax.block_until_ready(jax_fa3.varlen_attention(q, k, v, good, good))
    finally:
        jax_fa3.set_checks(False)


def test_random_inputs_are_random():
    x = rand(jax.random.PRNGKey(0), (64,), jnp.float16)
    assert float(jnp.std(x.astype(jnp.float32))) > 0.5
