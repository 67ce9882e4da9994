"""attention_with_kvcache on the CPU platform against the reference: cache
layouts, appends, rotary, left padding, split-KV emulation, GQA, dtypes,
out-of-range index data, in-place updates, argument errors."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_fa3
from jax_fa3 import reference_kvcache
from conftest import DTYPES, FP8, rel_err
from kvcache_cases import LAYOUTS, check_case, corrupt_paged_indices, make_case

pytestmark = pytest.mark.usefixtures("on_cpu")


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("seqlen_new", [0, 1, 7])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_and_appends(dtype, seqlen_new, layout):
    case = make_case(LAYOUTS.index(layout) * 10 + seqlen_new, DTYPES[dtype], layout=layout, seqlen_new=seqlen_new,
                     seqlen_q=max(seqlen_new, 1))
    check_case(case, DTYPES[dtype])


@pytest.mark.parametrize("feature", [dict(causal=True), dict(window_size=(5, 1)), dict(window_size=(9, -1), causal=True),
                                     dict(softcap=3.0), dict(softmax_scale=0.3)], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "paged16"])
def test_masks_with_multi_token_queries(feature, layout):
    case = make_case(3, jnp.bfloat16, layout=layout, seqlen_new=7, seqlen_q=7, leftpad=True, **feature)
    check_case(case, jnp.bfloat16)


@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize("rotary_fraction", [1, 2])
@pytest.mark.parametrize("layout", ["contiguous", "paged64"])
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_rotary(interleaved, rotary_fraction, layout, dtype):
    case = make_case(5 + rotary_fraction, DTYPES[dtype], layout=layout, seqlen_new=7, seqlen_q=7, causal=True,
                     rotary_dim=32 // rotary_fraction, interleaved=interleaved)
    check_case(case, DTYPES[dtype])


@pytest.mark.parametrize("layout", ["contiguous", "batch_idx", "paged16"])
def test_leftpad(layout):
    check_case(make_case(8, jnp.float16, layout=layout, seqlen_new=1, leftpad=True, batch=3), jnp.float16)


@pytest.mark.parametrize("num_splits", [1, 2, 3, 7, 16, 64])
def test_forced_splits(num_splits):
    # 200 keys: 4 blocks of 64, so counts past 4 leave splits without keys.
    case = make_case(num_splits, jnp.bfloat16, layout="paged16", seqlen_cache=200, seqlen_new=1,
                     num_splits=num_splits, window_size=(150, -1))
    check_case(case, jnp.bfloat16)


@pytest.mark.parametrize("group", [1, 2, 4, 8, 16])
def test_gqa_ratios(group):
    case = make_case(group, jnp.float16, heads=16, heads_k=16 // group, head_dim=16, seqlen_q=2, seqlen_new=2,
                     layout="paged16", seqlen_cache=48)
    check_case(case, jnp.float16)


def test_out_of_range_index_data_is_clamped():
    """Garbage cache_seqlens / page table / leftpad / batch index never read
    or write outside the cache: they are clamped, which the reference models."""
    case = make_case(9, jnp.float16, layout="paged16", seqlen_new=3, seqlen_q=3, batch=3, leftpad=True)
    corrupt_paged_indices(case)
    check_case(case, jnp.float16)
    case = make_case(10, jnp.bfloat16, layout="batch_idx", seqlen_new=7, seqlen_q=7, batch=2)
    case.cache_seqlens = np.array([78, 2**31 - 2], np.int32)  # appends run past the capacity: dropped
    case.kwargs["cache_batch_idx"] = jnp.asarray([-4, 99], jnp.int32)
    check_case(case, jnp.bfloat16)


def test_donated_caches_are_updated_in_place():
    case = make_case(11, jnp.float16, layout="paged16", seqlen_new=1)
    fn = jax.jit(functools.partial(jax_fa3.attention_with_kvcache, **case.kwargs), donate_argnums=(1, 2))
    compiled = fn.lower(*case.args()).compile()
    hlo = compiled.as_text()
    assert "jax_fa3_kvcache_append_attention_fwd_v1" in hlo
    # Both caches alias an input: the call writes them in place, no copy.
    assert "input_output_alias" in hlo and hlo.count("may-alias") + hlo.count("must-alias") >= 2
    want = reference_kvcache.attention_with_kvcache(*case.args(), **case.kwargs)
    k_cache, v_cache = jnp.array(case.k_cache), jnp.array(case.v_cache)  # copies: the originals get donated
    out, k_new, v_new = compiled(case.q, k_cache, v_cache, jnp.asarray(case.cache_seqlens))
    assert k_cache.is_deleted() and v_cache.is_deleted()
    assert rel_err(out, want[0]) < 1e-3
    np.testing.assert_array_equal(np.asarray(k_new, np.float32), np.asarray(want[1], np.float32))


def test_lowered_module_uses_kvcache_targets():
    case = make_case(12, jnp.float16)
    text = jax.jit(jax_fa3.attention_with_kvcache).lower(*case.args()).as_text()
    assert "jax_fa3_kvcache_attention_fwd_v1" in text and "append" not in text


def test_heuristic_split_count_leaves_workspace_when_useful():
    from jax_fa3.kvcache import workspace_splits
    assert workspace_splits(1, 1, 16, 2, 128, 2048, 0) == 32  # seed decode b1: one key block per split
    assert workspace_splits(64, 1, 32, 8, 128, 8192, 0) == 1  # 512 CTAs already fill the GPU
    assert workspace_splits(64, 1, 32, 8, 128, 8192, 5) == 5  # forced


E = jnp.zeros


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: jax_fa3.attention_with_kvcache(E((2, 1, 4, 32), jnp.float16), E((2, 8, 2, 32), jnp.bfloat16),
                                            E((2, 8, 2, 32), jnp.bfloat16), E((2,), jnp.int32)),
     TypeError, r"k_cache must have q's dtype float16, got bfloat16"),
    (lambda: jax_fa3.attention_with_kvcache(E((2, 1, 4, 32), jnp.float16), E((3, 8, 2, 32), jnp.float16),
                                            E((3, 8, 2, 32), jnp.float16), E((2,), jnp.int32)),
     ValueError, r"k_cache batch \(dim 0\) must be q's batch 2 unless cache_batch_idx is given, got 3"),
    (lambda: jax_fa3.attention_with_kvcache(E((2, 1, 4, 32), jnp.float16), E((5, 24, 2, 32), jnp.float16),
                                            E((5, 24, 2, 32), jnp.float16), E((2,), jnp.int32),
                                            page_table=E((2, 3), jnp.int32)),
     ValueError, r"page size \(k_cache dim 1\) must be a positive multiple of 16, got 24"),
    (lambda: jax_fa3.attention_with_kvcache(E((2, 1, 4, 32), jnp.float16), E((5, 16, 2, 32), jnp.float16),
                                            E((5, 16, 2, 32), jnp.float16), E((2,), jnp.int32),
                                            page_table=E((2, 3), jnp.int32), cache_batch_idx=E((2,), jnp.int32)),
     ValueError, r"cache_batch_idx cannot be combined with page_table"),
    (lambda: jax_fa3.attention_with_kvcache(E((2, 1, 4, 32), jnp.float16), E((2, 8, 2, 32), jnp.float16),
                                            E((2, 8, 2, 32), jnp.float16), E((3,), jnp.int32)),
     ValueError, r"cache_seqlens must have shape \(batch,\) = \(2,\), got \(3,\)"),
    (lambda: jax_fa3.attention_with_kvcache(E((2, 1, 4, 32), jnp.float16), E((2, 8, 2, 32), jnp.float16),
                                            E((2, 8, 2, 32), jnp.float16), E((2,), jnp.int32),
                                            k=E((2, 1, 2, 32), jnp.float16)),
     ValueError, r"k and v must be given together"),
    (lambda: jax_fa3.attention_with_kvcache(E((2, 1, 4, 32), FP8), E((2, 8, 2, 32), FP8), E((2, 8, 2, 32), FP8),
                                            E((2,), jnp.int32), rotary_cos=E((8, 16)), rotary_sin=E((8, 16))),
     TypeError, r"rotary embedding needs float16 or bfloat16 inputs, got float8_e4m3fn"),
    (lambda: jax_fa3.attention_with_kvcache(E((2, 1, 4, 32), jnp.float16), E((2, 8, 2, 32), jnp.float16),
                                            E((2, 8, 2, 32), jnp.float16), E((2,), jnp.int32),
                                            rotary_cos=E((8, 20)), rotary_sin=E((8, 20))),
     ValueError, r"rotary_dim <= head_dim 32, got \(8, 20\)"),
    (lambda: jax_fa3.attention_with_kvcache(E((2, 1, 4, 32), jnp.float16), E((2, 8, 2, 32), jnp.float16),
                                            E((2, 8, 2, 32), jnp.float16), E((2,), jnp.int32), num_splits=65),
     ValueError, r"num_splits must be an int in \[0, 64\]"),
])
def test_argument_errors(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_vmap_runs_each_element():
    n, b, hk, d = 3, 2, 2, 32
    keys = jax.random.split(jax.random.PRNGKey(13), 4)
    q = jax.random.normal(keys[0], (n, b, 1, 4, d)).astype(jnp.float16)
    k_cache, v_cache = (jax.random.normal(kk, (n, b, 40, hk, d)).astype(jnp.float16) for kk in keys[1:3])
    k_new = jax.random.normal(keys[3], (n, b, 1, hk, d)).astype(jnp.float16)
    seqlens = np.array([[3, 9], [17, 33], [0, 39]], np.int32)
    out, k2, v2 = jax.vmap(lambda q, kc, vc, s, kn: jax_fa3.attention_with_kvcache(q, kc, vc, s, k=kn, v=kn))(
        q, k_cache, v_cache, jnp.asarray(seqlens), k_new)
    for i in range(n):
        want, k_want, v_want = reference_kvcache.attention_with_kvcache(q[i], k_cache[i], v_cache[i], seqlens[i],
                                                                        k=k_new[i], v=k_new[i])
        assert rel_err(out[i], want) < 1e-3
        np.testing.assert_array_equal(np.asarray(k2[i], np.float32), np.asarray(k_want, np.float32))
        np.testing.assert_array_equal(np.asarray(v2[i], np.float32), np.asarray(v_want, np.float32))


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("feature", [{}, dict(causal=True, window_size=(70, -1)), dict(softcap=2.0)], ids=str)
def test_dense_decode_runs_as_kvcache_call(dtype, feature):
    """Decode-shaped dense calls too small to fill a GPU take the KV-cache
    target (split-KV); the result is the dense semantics."""
    from jax_fa3 import reference
    from conftest import assert_matches_reference, rand_qkv
    dt = DTYPES[dtype]
    q, k, v = rand_qkv(len(dtype), (2, 3, 16, 64), (2, 300, 2, 64), dt)
    kw = dict(feature)
    if jnp.dtype(dt) == jnp.dtype(FP8):
        kw.update(q_descale=jnp.full((2, 2), 0.5, jnp.float32), v_descale=jnp.float32(2.0))
    fn = jax.jit(functools.partial(jax_fa3.attention, return_lse=True, **kw))
    assert "jax_fa3_kvcache_attention_fwd_v1" in fn.lower(q, k, v).as_text()
    out, lse = fn(q, k, v)
    assert_matches_reference(out, lse, functools.partial(reference.attention, q, k, v, **kw), dt)
