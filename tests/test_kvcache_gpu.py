"""attention_with_kvcache on the CUDA targets against the float32 reference:
layouts and page sizes, appends, rotary, left padding, forced and heuristic
split-KV, packed GQA ratios, dtypes, out-of-range index data, in-place
updates. Skipped only when JAX sees no GPU."""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_fa3
from conftest import DTYPES, gpu
from kvcache_cases import LAYOUTS, check_case, corrupt_paged_indices, make_case

pytestmark = [pytest.mark.gpu, gpu]

D = 128  # the head dim served models use most


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("seqlen_new", [0, 1, 7])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_and_appends(dtype, seqlen_new, layout):
    case = make_case(LAYOUTS.index(layout) * 10 + seqlen_new, DTYPES[dtype], batch=3, heads=8, heads_k=2,
                     head_dim=D, layout=layout, seqlen_cache=700, seqlen_new=seqlen_new, seqlen_q=max(seqlen_new, 1))
    check_case(case, DTYPES[dtype])


@pytest.mark.parametrize("num_splits", [0, 1, 2, 3, 5, 8, 12, 16, 33, 64])
@pytest.mark.parametrize("layout", ["contiguous", "paged64"])
def test_splits(num_splits, layout):
    # At most 1000 keys: 16 key tiles, so 33 and 64 splits include empty ones
    # (and shorter random sequences give empty ones at any count).
    case = make_case(num_splits, jnp.bfloat16, batch=2, heads=16, heads_k=2, head_dim=D, layout=layout,
                     seqlen_cache=1000, seqlen_new=1, num_splits=num_splits)
    check_case(case, jnp.bfloat16)


def _cluster_case(seed: int, head_dim: int, num_splits: int):
    # On sm_90 the decode kernel merges 2 or 3 splits in a thread-block
    # cluster when the grid has a query tile (sequence, KV head) per 4 SMs or
    # more and at most a CTA per SM (schedule.h): a sequence per 4 SMs, 1 KV
    # head. 100 keys are 2 key tiles, so 3 splits leave one empty, as do the
    # shorter random sequences.
    batch = -(-jax.devices()[0].core_count // 4)
    return make_case(seed, jnp.bfloat16, batch=batch, heads=8, heads_k=1, head_dim=head_dim, layout="paged16",
                     seqlen_cache=100, seqlen_new=1, num_splits=num_splits)


@pytest.mark.parametrize("merge", ["cluster", "combine_kernel"])
@pytest.mark.parametrize("num_splits", [2, 3])
@pytest.mark.parametrize("head_dim", [64, 128])
def test_split_merge_paths(head_dim, num_splits, merge, monkeypatch):
    # JAX_FA3_SPLIT_COMBINE_KERNEL=1 merges in the combine kernel instead of
    # the cluster (other GPUs always do).
    if merge == "combine_kernel":
        monkeypatch.setenv("JAX_FA3_SPLIT_COMBINE_KERNEL", "1")
    check_case(_cluster_case(90 + num_splits, head_dim, num_splits), jnp.bfloat16)


def test_cluster_merge_launches_no_combine_kernel(monkeypatch):
    if jax.devices()[0].compute_capability != "9.0":
        pytest.skip("the thread-block cluster merge is the sm_90 path")
    # CUPTI's kernel list; imported here because it needs a CUDA jaxlib.
    from jax.experimental.mosaic.gpu import profiler

    case = _cluster_case(7, D, 2)
    fn = jax.jit(functools.partial(jax_fa3.attention_with_kvcache, **case.kwargs))
    args = case.args()

    def kernel_names():
        jax.block_until_ready(fn(*args))
        _, timings = profiler.measure(fn, aggregate=False, iterations=1)(*args)  # [(kernel name, ms)]
        return [name for name, _ in timings]

    names = kernel_names()
    assert any("DecodeFwd" in n for n in names) and not any("CombineSplits" in n for n in names), names
    monkeypatch.setenv("JAX_FA3_SPLIT_COMBINE_KERNEL", "1")
    assert any("CombineSplits" in n for n in kernel_names())


@pytest.mark.parametrize("num_splits", [3, 20, 40])
def test_combine_many_rows(num_splits, monkeypatch):
    # 559 rows of out, more than the other cases' few dozen: the combine
    # kernel's last CTA holds fewer rows than its warps, and 20 and 40 splits
    # take more than one batch of partial loads. Pinned to the combine kernel,
    # which 3 splits of 43 tiles would skip on sm_90 (cluster merge).
    monkeypatch.setenv("JAX_FA3_SPLIT_COMBINE_KERNEL", "1")
    case = make_case(70 + num_splits, jnp.float16, batch=43, heads=13, heads_k=1, head_dim=D, layout="contiguous",
                     seqlen_cache=300, num_splits=num_splits)
    check_case(case, jnp.float16)


@pytest.mark.parametrize("group", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("seqlen_q", [1, 5])
def test_gqa_ratios(group, seqlen_q):
    case = make_case(group + seqlen_q, jnp.float16, batch=2, heads=16, heads_k=16 // group, head_dim=D,
                     layout="paged16", seqlen_cache=333, seqlen_q=seqlen_q, seqlen_new=seqlen_q, causal=True)
    check_case(case, jnp.float16)


@pytest.mark.parametrize("feature", [dict(causal=True), dict(window_size=(100, 3)), dict(softcap=5.0)], ids=str)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_features_leftpad(feature, dtype):
    case = make_case(21, DTYPES[dtype], batch=3, heads=8, heads_k=1, head_dim=D, layout="batch_idx",
                     seqlen_cache=500, seqlen_new=7, seqlen_q=7, leftpad=True, **feature)
    check_case(case, DTYPES[dtype])


@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize("rotary_dim", [64, 128])
@pytest.mark.parametrize("layout", ["contiguous", "paged256"])
def test_rotary(interleaved, rotary_dim, layout):
    case = make_case(rotary_dim, jnp.bfloat16, batch=2, heads=8, heads_k=2, head_dim=D, layout=layout,
                     seqlen_cache=600, seqlen_new=7, seqlen_q=7, causal=True, rotary_dim=rotary_dim,
                     interleaved=interleaved, num_splits=3)
    check_case(case, jnp.bfloat16)


@pytest.mark.parametrize("head_dim", [64, 96, 192, 256])
def test_head_dims(head_dim):
    case = make_case(head_dim, jnp.float16, batch=2, heads=8, heads_k=2, head_dim=head_dim, layout="paged16",
                     seqlen_cache=300, seqlen_new=1)
    check_case(case, jnp.float16)


def test_out_of_range_index_data_is_clamped():
    case = make_case(9, jnp.float16, batch=3, heads=8, heads_k=2, head_dim=D, layout="paged64", seqlen_cache=400,
                     seqlen_new=3, seqlen_q=3, leftpad=True, num_splits=4)
    corrupt_paged_indices(case)
    check_case(case, jnp.float16)
    case = make_case(10, jnp.bfloat16, batch=2, heads=8, heads_k=2, head_dim=D, layout="batch_idx",
                     seqlen_cache=300, seqlen_new=7, seqlen_q=7)
    case.cache_seqlens = np.array([298, 2**31 - 2], np.int32)
    case.kwargs["cache_batch_idx"] = jnp.asarray([-4, 99], jnp.int32)
    check_case(case, jnp.bfloat16)


def test_donated_append_runs_in_place():
    case = make_case(11, jnp.bfloat16, batch=4, heads=32, heads_k=8, head_dim=D, layout="paged64", seqlen_cache=2048,
                     seqlen_new=1)
    fn = jax.jit(functools.partial(jax_fa3.attention_with_kvcache, **case.kwargs), donate_argnums=(1, 2))
    hlo = fn.lower(*case.args()).compile().as_text()
    # The custom call writes the donated caches in place: no copy in the module.
    assert "jax_fa3_kvcache_append_attention_fwd_v1" in hlo
    assert not re.findall(r"\s(copy|copy-start)\(%", hlo), hlo
    check_case(case, jnp.bfloat16)
