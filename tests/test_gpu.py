"""CUDA targets against the float32 reference on random normal data.

Skipped only when JAX sees no GPU; with a GPU present, a build without CUDA
kernels fails here instead of skipping.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_fa3
from jax_fa3 import _ffi, reference
from jax_fa3.seeds import SEED_CU_SEQLENS
from conftest import DTYPES, FP8, assert_matches_reference, gpu, rand_qkv, random_cu_seqlens, rel_err

pytestmark = [pytest.mark.gpu, gpu]

FEATURES = {
    "plain": {},
    "causal": dict(causal=True),
    "window": dict(window_size=(100, 7)),
    "window_causal": dict(window_size=(64, -1), causal=True),
    "softcap": dict(softcap=3.0),
}


def test_cuda_targets_registered():
    assert _ffi.cuda_compute_capabilities(), "JAX sees a GPU but jax_fa3 was built without CUDA kernels"


def fp8_descales(seed, batch, hk):
    keys = jax.random.split(jax.random.PRNGKey(seed), 3)
    return {name: jax.random.uniform(key, (batch, hk), minval=0.25, maxval=2.0)
            for name, key in zip(("q_descale", "k_descale", "v_descale"), keys)}


def run_dense(dtype, sq, sk, h, hk, d, b=2, seed=0, **kw):
    dt = DTYPES[dtype]
    q, k, v = rand_qkv(seed, (b, sq, h, d), (b, sk, hk, d), dt)
    if dt == FP8:
        kw.update(fp8_descales(seed, b, hk))
    out, lse = jax.jit(functools.partial(jax_fa3.attention, return_lse=True, **kw))(q, k, v)
    return assert_matches_reference(out, lse, functools.partial(reference.attention, q, k, v, **kw), dt)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("feature", list(FEATURES))
@pytest.mark.parametrize("sq, sk", [(1, 1023), (113, 239), (239, 113), (1023, 1023)])
def test_dense_features(dtype, feature, sq, sk, kernel_path):
    run_dense(dtype, sq, sk, 4, 2, 128, **FEATURES[feature])


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("d", [8, 64, 80, 96, 128, 192, 256])
def test_head_dims(dtype, d, kernel_path):
    run_dense(dtype, 239, 239, 2, 1, d, causal=True)


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize("feature", list(FEATURES))
@pytest.mark.parametrize("d", [80, 96, 136, 192])
@pytest.mark.parametrize("sq, sk", [(113, 239), (1023, 1023)])
def test_16bit_head_dim_buckets(dtype, feature, d, sq, sk):
    """16-bit inputs have Hopper head-dim buckets 96 (176-key blocks) and
    192 (112-key blocks, O stored from registers) beside 64, 128 and 256:
    every mask and softcap, GQA, at the bucket's width and below it (TMA
    zero-fills the columns past head_dim, and the stores stop there)."""
    run_dense(dtype, sq, sk, 6, 2, d, **FEATURES[feature])


@pytest.mark.parametrize("group", [1, 2, 4, 8, 16])
def test_gqa_ratios(group):
    run_dense("bf16", 17, 1023, 16, 16 // group, 128, b=3)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("feature", ["plain", "causal", "window", "softcap"])
def test_varlen_random(dtype, feature, kernel_path):
    dt = DTYPES[dtype]
    rng = np.random.default_rng(len(dtype) * 100 + len(feature))
    batch, h, hk, d = 23, 8, 2, 128
    cu_q = random_cu_seqlens(rng, batch, 300)
    cu_k = random_cu_seqlens(rng, batch, 300)
    q, k, v = rand_qkv(batch, (int(cu_q[-1]) + 5, h, d), (int(cu_k[-1]), hk, d), dt)
    kw = dict(FEATURES[feature])
    if dt == FP8:
        kw.update(fp8_descales(3, batch, hk))
    kw["seqused_k"] = jnp.asarray(rng.integers(0, np.diff(cu_k) + 1), jnp.int32)
    fn = jax.jit(functools.partial(jax_fa3.varlen_attention, max_seqlen_q=100_000, max_seqlen_k=100_000,
                                   return_lse=True, **kw))
    out, lse = fn(q, k, v, jnp.asarray(cu_q), jnp.asarray(cu_k))
    assert_matches_reference(out, lse, functools.partial(reference.varlen_attention, q, k, v, cu_q, cu_k, **kw), dt)


@pytest.mark.parametrize("dtype", ["f16", "fp8"])
@pytest.mark.parametrize("d", [80, 96])
def test_varlen_narrow_head_dims(dtype, d, kernel_path):
    """Head dims below their Hopper bucket's width (16-bit: 80 in 96; FP8:
    both in 128), where varlen tiles end inside the next sequence: the
    stores of O must stop at head_dim."""
    dt = DTYPES[dtype]
    rng = np.random.default_rng(d)
    batch, h = 9, 4
    cu = random_cu_seqlens(rng, batch, 150)
    q, k, v = rand_qkv(d, (int(cu[-1]), h, d), (int(cu[-1]), h, d), dt)
    kw = fp8_descales(5, batch, h) if dt == FP8 else {}
    fn = jax.jit(functools.partial(jax_fa3.varlen_attention, return_lse=True, **kw))
    out, lse = fn(q, k, v, jnp.asarray(cu), jnp.asarray(cu))
    assert_matches_reference(out, lse, functools.partial(reference.varlen_attention, q, k, v, cu, cu, **kw), dt)


@pytest.mark.parametrize("batch", [126, 127, 300])
def test_fp8_varlen_many_sequences(batch):
    """FP8 varlen tiles go to as many CTAs as a device-side count of the
    query blocks asks for (TileScheduler::BalanceVarlen); the count reads up
    to 128 virtual sequences (batch 126), past that the whole grid takes
    them. Either way, over several rounds, every tile is computed once."""
    rng = np.random.default_rng(batch)
    h = 4
    cu = random_cu_seqlens(rng, batch, 200)
    q, k, v = rand_qkv(batch, (int(cu[-1]), h, 128), (int(cu[-1]), h, 128), FP8)
    kw = fp8_descales(7, batch, h)
    fn = jax.jit(functools.partial(jax_fa3.varlen_attention, return_lse=True, **kw))
    out, lse = fn(q, k, v, jnp.asarray(cu), jnp.asarray(cu))
    assert_matches_reference(out, lse, functools.partial(reference.varlen_attention, q, k, v, cu, cu, **kw), FP8)


def test_seed_fp8_varlen():
    """Seed case 1 exactly, with random data: FP8 E4M3, 84 sequences of 64/48
    tokens, 16 heads, d 128, max_seqlen 1680, per-(batch, head) descale."""
    assert SEED_CU_SEQLENS.shape == (85,) and SEED_CU_SEQLENS[-1] == 5040
    q, k, v = rand_qkv(84, (5040, 16, 128), (5040, 16, 128), FP8)
    kw = dict(q_descale=jnp.ones((84, 16), jnp.float32), k_descale=jnp.ones((84, 16), jnp.float32),
              v_descale=jnp.ones((84, 16), jnp.float32), softmax_scale=1 / np.sqrt(128), causal=False)
    cu = jnp.asarray(SEED_CU_SEQLENS)
    out = jax.jit(functools.partial(jax_fa3.varlen_attention, max_seqlen_q=1680, max_seqlen_k=1680, **kw))(
        q, k, v, cu, cu)
    assert out.dtype == jnp.float16 and out.shape == (5040, 16, 128)
    assert_matches_reference(out, None, functools.partial(reference.varlen_attention, q, k, v, SEED_CU_SEQLENS, SEED_CU_SEQLENS, **kw), FP8)


@pytest.mark.parametrize("dtype", ["bf16", "fp8"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("d", [64, 96, 128, 192, 256])
def test_more_tiles_than_sms(dtype, d, causal, kernel_path):
    """Persistent CTAs wrap around many tiles; L2 sections and the
    longest-first order must still cover every (batch, head, block) once
    (FP8: the transpose warps follow the tiles the TMA warp publishes)."""
    run_dense(dtype, 1023, 1023, 16, 4, d, b=3, causal=causal)


@pytest.mark.parametrize("dtype, d, seqlen", [("bf16", 64, 3000), ("fp8", 64, 4096), ("bf16", 128, 3000),
                                              ("fp8", 128, 3000), ("bf16", 256, 3000), ("fp8", 256, 3000)])
def test_dynamic_tile_order(dtype, d, seqlen):
    """Causal shapes that no static tile order spreads evenly over a 132-SM
    H100 or H200 (b2 h8: the busiest CTA would get 1.3-1.4x the mean work)
    hand out their tiles past the first wave by a counter the launcher
    zeroes. Two calls on different data: a counter left over from the first
    would make the second skip tiles."""
    for seed in (0, 1):
        run_dense(dtype, seqlen, seqlen, 8, 8, d, b=2, seed=seed, causal=True)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_unused_keys_may_hold_nan(dtype, kernel_path):
    """Keys past seqused_k and the tail of cu_seqlens_k are never attended:
    NaN there (an unwritten KV cache) must not reach the output."""
    dt = DTYPES[dtype]
    cu = np.array([0, 200, 211, 600], np.int32)
    used = np.array([130, 11, 1], np.int32)
    q, k, v = rand_qkv(7, (600, 4, 128), (700, 2, 128), dt)
    dead = np.ones(700, bool)
    for b in range(3):
        dead[cu[b]:cu[b] + used[b]] = False
    k = jnp.where(dead[:, None, None], jnp.nan, k).astype(dt)
    v = jnp.where(dead[:, None, None], jnp.nan, v).astype(dt)
    kw = dict(seqused_k=jnp.asarray(used))
    out, lse = jax.jit(functools.partial(jax_fa3.varlen_attention, return_lse=True, **kw))(
        q, k, v, jnp.asarray(cu), jnp.asarray(cu))
    clean_k = jnp.where(dead[:, None, None], 0, k).astype(dt)
    clean_v = jnp.where(dead[:, None, None], 0, v).astype(dt)
    assert_matches_reference(out, lse, functools.partial(reference.varlen_attention, q, clean_k, clean_v, cu, cu,
                                                         **kw), dt)


@pytest.mark.parametrize("causal", [False, True])
def test_fp8_negative_descale(causal, kernel_path):
    """A negative q*k descale flips the scores' order; the row max must
    follow the logits, not the raw scores."""
    q, k, v = rand_qkv(11, (2, 239, 4, 128), (2, 239, 2, 128), FP8)
    kw = dict(q_descale=jnp.full((2, 2), -0.5, jnp.float32), k_descale=jnp.full((2, 2), 0.75, jnp.float32),
              v_descale=jnp.full((2, 2), 1.5, jnp.float32), causal=causal)
    out, lse = jax.jit(functools.partial(jax_fa3.attention, return_lse=True, **kw))(q, k, v)
    assert_matches_reference(out, lse, functools.partial(reference.attention, q, k, v, **kw), FP8)


def test_seed_fp16_causal():
    run_dense("f16", 512, 512, 16, 16, 128, b=2, causal=True)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("seqlen", [1023, 1151])
def test_causal_one_short_tile_per_cta(dtype, seqlen):
    """Causal shapes with more 64-row tiles than SMs but fewer than two per
    SM run on the short tile, one tile per CTA, the first SM-count CTAs
    taking the longest tiles and the rest the others in reverse
    (tile_order.h); from 1024 keys on, 16-bit inputs take the key split
    instead, one CTA per SM taking one or two tiles. Every (head, query
    block) must still be computed once. 11 heads x 16 or 18 query blocks =
    176 or 198 tiles on a 132-SM H100 or H200."""
    run_dense(dtype, seqlen, seqlen, 11, 11, 128, b=1, causal=True)


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("sk", [1, 17, 65, 129, 239])
def test_key_split_block_counts(dtype, causal, sk, monkeypatch):
    """The key split deals a tile's key blocks alternately to two
    warpgroups and merges their partial outputs: one block (the second
    warpgroup has none and only merges), odd and even counts, a partial
    last block, and under causal masking rows that see no key."""
    monkeypatch.setenv("JAX_FA3_HOPPER_TILE", "split")
    run_dense(dtype, 113, sk, 4, 2, 128, b=2, causal=causal)


TAIL_SHAPES = {
    # 136 tiles of 128 rows: on 132 SMs a last round of 4 tiles, each spread
    # over 29 to 80 CTAs' runs of one or two blocks.
    "many_runs_a_tile": dict(sq=1024, sk=7500, h=17, hk=17),
    # 160 tiles: runs of 2 or 3 blocks; partial query and key blocks, GQA.
    "partial_blocks_gqa": dict(sq=1000, sk=1500, h=20, hk=5),
    # 272 tiles: two full rounds, then the split where it pays (not forced).
    "default_policy": dict(sq=2048, sk=4096, h=17, hk=17),
}


@pytest.mark.parametrize("dtype", ["bf16", "fp8"])
@pytest.mark.parametrize("d, tile", [(64, "auto"), (96, "auto"), (128, "auto"), (128, "long"), (192, "auto"),
                                     (256, "auto")])
@pytest.mark.parametrize("shape", list(TAIL_SHAPES))
def test_tail_split(dtype, d, tile, shape, monkeypatch):
    """Dense calls without a mask cut their last round of tiles into runs of
    key blocks, one per CTA; a tile's first CTA folds the others' partial
    outputs into its own (tail_split_sm90.hpp). Forced wherever it applies
    except in the default_policy shape; the long tile (built for head dim
    128 only) has other key-block widths. Two calls on different data:
    counts left over from the first would let the second fold stale
    partials; and a merge whose order depended on timing would make two
    identical calls differ."""
    if shape != "default_policy":
        monkeypatch.setenv("JAX_FA3_TAIL_SPLIT", "1")
    shape = TAIL_SHAPES[shape]
    monkeypatch.setenv("JAX_FA3_HOPPER_TILE", "" if tile == "auto" else tile)
    kw = dict(softcap=5.0) if d == 64 else {}
    for seed in (0, 1):
        run_dense(dtype, shape["sq"], shape["sk"], shape["h"], shape["hk"], d, b=1, seed=seed, **kw)
    dt = DTYPES[dtype]
    q, k, v = rand_qkv(2, (1, shape["sq"], shape["h"], d), (1, shape["sk"], shape["hk"], d), dt)
    fn = jax.jit(jax_fa3.attention)
    np.testing.assert_array_equal(np.asarray(fn(q, k, v)), np.asarray(fn(q, k, v)))


@pytest.mark.parametrize("batch", [1, 32])
def test_seed_fp16_decode_gqa(batch):
    run_dense("f16", 1, 2048, 16, 2, 128, b=batch)


def test_garbage_cu_seqlens_then_correct_call():
    q, k, v = rand_qkv(1, (4000, 4, 64), (4000, 4, 64), jnp.bfloat16)
    for bad in ([0, 5000, -7, 2**30], [2**31 - 1, 0, 3, 1], [-5, -5, 4000, 9000]):
        bad = jnp.asarray(bad, jnp.int32)
        used = jnp.asarray([2**30, -4, 7], jnp.int32)
        jax.block_until_ready(jax_fa3.varlen_attention(q, k, v, bad, bad, seqused_k=used, causal=True))
    cu = np.array([0, 1000, 1003, 4000], np.int32)
    out = jax_fa3.varlen_attention(q, k, v, jnp.asarray(cu), jnp.asarray(cu), causal=True)
    assert_matches_reference(out, None, functools.partial(reference.varlen_attention, q, k, v, cu, cu, causal=True),
                             jnp.bfloat16)


def test_checked_mode_on_gpu():
    q, k, v = rand_qkv(2, (64, 2, 64), (64, 2, 64), jnp.float16)
    jax_fa3.set_checks(True)
    try:
        with pytest.raises(Exception, match="invalid cu_seqlens_k"):
            jax.block_until_ready(jax_fa3.varlen_attention(q, k, v, jnp.array([0, 64], jnp.int32),
                                                           jnp.array([0, 65], jnp.int32)))
    finally:
        jax_fa3.set_checks(False)


def test_vmap_on_gpu():
    q, k, v = rand_qkv(4, (3, 2, 113, 4, 64), (3, 2, 239, 2, 64), jnp.bfloat16)
    out = jax.jit(jax.vmap(functools.partial(jax_fa3.attention, causal=True)))(q, k, v)
    want = jax.vmap(functools.partial(reference.attention, causal=True))(q, k, v)
    naive = jax.vmap(functools.partial(reference.attention, causal=True, compute_dtype=jnp.bfloat16))(q, k, v)
    assert rel_err(out, want) <= 3 * rel_err(naive, want)
