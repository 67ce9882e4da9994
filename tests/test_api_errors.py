"""Every trace-time rule raises TypeError/ValueError naming the argument,
what was expected and what was given."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import jax_fa3

F16 = jnp.float16


def dense(b=2, sq=5, sk=7, h=4, hk=2, d=64, dtype=F16):
    return (jnp.zeros((b, sq, h, d), dtype), jnp.zeros((b, sk, hk, d), dtype), jnp.zeros((b, sk, hk, d), dtype))


def packed(tq=9, tk=11, h=4, hk=2, d=64, dtype=F16):
    return (jnp.zeros((tq, h, d), dtype), jnp.zeros((tk, hk, d), dtype), jnp.zeros((tk, hk, d), dtype))


CU = jnp.array([0, 4, 9], jnp.int32)
CU_K = jnp.array([0, 5, 11], jnp.int32)


@pytest.mark.parametrize(
    "mutate, exc, pattern",
    [
        (lambda q, k, v: (q[0], k, v), ValueError, r"q must have rank 4 .*got shape \(5, 4, 64\)"),
        (lambda q, k, v: (q, k[0], v), ValueError, r"k must have rank 4"),
        (lambda q, k, v: (q.astype(jnp.float32), k, v), TypeError, r"q must be float16, bfloat16 or float8_e4m3fn, got float32"),
        (lambda q, k, v: (q, k.astype(jnp.bfloat16), v), TypeError, r"k must have q's dtype float16, got bfloat16"),
        (lambda q, k, v: (q, k, v[:, :3]), ValueError, r"v must have k's shape \(2, 7, 2, 64\), got \(2, 3, 2, 64\)"),
        (lambda q, k, v: (q, k[..., :32], v[..., :32]), ValueError, r"k must have q's head_dim 64, got 32"),
        (lambda q, k, v: (q[..., :60], k[..., :60], v[..., :60]), ValueError, r"head_dim must be a multiple of 8 in \[8, 256\], got 60"),
        (lambda q, k, v: (jnp.zeros((2, 5, 4, 264), F16),) + (jnp.zeros((2, 7, 2, 264), F16),) * 2, ValueError, r"got 264"),
        (lambda q, k, v: (q[:, :, :3], k, v), ValueError, r"num_heads of q \(3\) must be a multiple of num_heads_k of k and v \(2\)"),
        (lambda q, k, v: (q, k[:1], v[:1]), ValueError, r"k and v must have q's batch size 2, got 1"),
    ],
)
def test_dense_shape_rules(mutate, exc, pattern):
    with pytest.raises(exc, match=pattern):
        jax_fa3.attention(*mutate(*dense()))


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (dict(softmax_scale=-1.0), ValueError, r"softmax_scale must be a positive"),
        (dict(softmax_scale=0.0), ValueError, r"softmax_scale must be a positive"),
        (dict(causal=1), TypeError, r"causal must be a bool, got 1"),
        (dict(window_size=(3,)), ValueError, r"window_size must be a pair of ints >= -1"),
        (dict(window_size=(-2, 0)), ValueError, r"window_size must be a pair"),
        (dict(softcap=-1.0), ValueError, r"softcap must be a finite float >= 0"),
        (dict(out_dtype=jnp.bfloat16), TypeError, r"out_dtype must be one of \['float16'\] for float16 inputs, got bfloat16"),
        (dict(q_descale=jnp.float32(1)), TypeError, r"q_descale is only allowed with float8_e4m3fn inputs, got float16"),
    ],
)
def test_argument_values(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        jax_fa3.attention(*dense(), **kwargs)


@pytest.mark.parametrize(
    "descale, exc, pattern",
    [
        (jnp.ones((2, 3), jnp.float32), ValueError, r"k_descale must be a scalar or shape \(batch, num_heads_k\) = \(2, 2\), got \(2, 3\)"),
        (jnp.ones((2, 2), jnp.float16), TypeError, r"k_descale must be float32, got float16\(2, 2\)"),
    ],
)
def test_descale_rules(descale, exc, pattern):
    q, k, v = dense(dtype=jnp.float8_e4m3fn)
    with pytest.raises(exc, match=pattern):
        jax_fa3.attention(q, k, v, k_descale=descale)


def test_fp8_out_dtype_rule():
    q, k, v = dense(dtype=jnp.float8_e4m3fn)
    with pytest.raises(TypeError, match=r"out_dtype must be one of \['float16', 'bfloat16'\] for float8_e4m3fn inputs, got float32"):
        jax_fa3.attention(q, k, v, out_dtype=jnp.float32)


@pytest.mark.parametrize(
    "args, kwargs, exc, pattern",
    [
        ((CU.astype(jnp.float32), CU_K), {}, TypeError, r"cu_seqlens_q must be an int32 array \(batch \+ 1,\), got float32\(3,\)"),
        ((CU[None], CU_K), {}, ValueError, r"cu_seqlens_q must have shape \(batch \+ 1,\), got \(1, 3\)"),
        ((CU[:1], CU_K[:1]), {}, ValueError, r"batch >= 1"),
        ((CU, CU_K[:2]), {}, ValueError, r"cu_seqlens_k must have shape \(batch \+ 1,\) = \(3,\), got \(2,\)"),
        ((CU, CU_K), dict(seqused_k=jnp.array([1, 2, 3], jnp.int32)), ValueError, r"seqused_k must have shape \(batch,\) = \(2,\), got \(3,\)"),
        ((CU, CU_K), dict(seqused_k=jnp.array([1.0, 2.0])), TypeError, r"seqused_k must be an int32 array"),
        ((CU, CU_K), dict(max_seqlen_q=-3), ValueError, r"max_seqlen_q must be None or a static int >= 0, got -3"),
        ((CU, [0, 5, 11]), {}, TypeError, r"cu_seqlens_k must be an int32 array \(batch \+ 1,\) = \(3,\), got list"),
    ],
)
def test_varlen_rules(args, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        jax_fa3.varlen_attention(*packed(), *args, **kwargs)


def test_varlen_rank_rule():
    q, k, v = dense()
    with pytest.raises(ValueError, match=r"q must have rank 3 \(total_tokens, num_heads, head_dim\)"):
        jax_fa3.varlen_attention(q, k, v, CU, CU_K)


def test_varlen_descale_shape_is_per_sequence():
    q, k, v = packed(dtype=jnp.float8_e4m3fn)
    with pytest.raises(ValueError, match=r"v_descale must be a scalar or shape \(batch, num_heads_k\) = \(2, 2\), got \(9, 2\)"):
        jax_fa3.varlen_attention(q, k, v, CU, CU_K, v_descale=jnp.ones((9, 2), jnp.float32))


def test_forward_mode_grad_is_a_clear_error():
    q, k, v = dense()
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jax.jvp(lambda q: jax_fa3.attention(q, k, v), (q,), (q,))
