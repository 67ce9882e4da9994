"""Per-kernel CUPTI times of the decode cases (bench/decode.py CASES): which
of a call's kernels (append, attention, split combine) takes the time, and
what XLA's reductions take to read the same K and V once; with
--splits, the total time of each contiguous case at forced split counts
(what the split heuristic should pick), with --combine-kernel also with the
splits merged by the combine kernel instead of in a cluster.

    python bench/decode_kernels.py [--iters N] [--splits 1 2 4 ...] [--combine-kernel]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.mosaic.gpu import profiler

import decode  # bench/decode.py
import jax_fa3


def kernel_times(fn, args, iters: int) -> list[tuple[str, float]]:
    """(kernel name, median µs over iters calls) for each kernel of one call."""
    jax.block_until_ready(fn(*args))
    _, per_iter = profiler.measure(fn, aggregate=False, iterations=iters)(*args)
    names = [name for name, _ in per_iter[0]]
    return [(name, 1e3 * float(np.median([it[i][1] for it in per_iter]))) for i, name in enumerate(names)]


@contextlib.contextmanager
def combine_kernel(on: bool):
    """JAX_FA3_SPLIT_COMBINE_KERNEL (read by the launcher at each call) while inside."""
    old = os.environ.get("JAX_FA3_SPLIT_COMBINE_KERNEL")
    os.environ["JAX_FA3_SPLIT_COMBINE_KERNEL"] = "1" if on else "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["JAX_FA3_SPLIT_COMBINE_KERNEL"]
        else:
            os.environ["JAX_FA3_SPLIT_COMBINE_KERNEL"] = old


def sweep_splits(counts: list[int], iters: int, compare_merge: bool) -> None:
    for name, dt, b, sk, h, hk, page, _ in decode.CASES:
        if page:
            continue
        _, (q, k, v), _ = decode.decode_call(dt, b, sk, h, hk, 0)
        seqlens = jnp.full((b,), sk, jnp.int32)
        for forced in (False, True) if compare_merge else (False,):
            cells = []
            for splits in [0] + counts:
                fn = jax.jit(functools.partial(jax_fa3.attention_with_kvcache, num_splits=splits))
                with combine_kernel(forced):
                    total = sum(t for _, t in kernel_times(fn, (q, k, v, seqlens), iters))
                cells.append(f"{splits or 'heuristic'}: {total:.1f}")
            merge = "combine kernel" if forced else "default merge"
            print(f"{name} | {merge} | µs by num_splits | " + ", ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--splits", type=int, nargs="*", default=[], help="forced split counts to time")
    parser.add_argument("--combine-kernel", action="store_true",
                        help="with --splits, also time each count with the combine kernel's merge")
    args = parser.parse_args()
    print(f"Device: {jax.devices()[0].device_kind}; per-kernel CUPTI time, median of {args.iters}")
    if args.splits:
        sweep_splits(args.splits, args.iters, args.combine_kernel)
        return
    cudnn = jax.jit(functools.partial(jax.nn.dot_product_attention, implementation="cudnn"))
    # A floor for reading the cache once at this size: XLA's own reductions
    # over K and V (no attention), start-up and tail included.
    read_once = jax.jit(lambda q, k, v: (jnp.max(k), jnp.max(v)))
    for name, dt, b, sk, h, hk, page, _ in decode.CASES:
        (fn, fn_args), qkv, _ = decode.decode_call(dt, b, sk, h, hk, page)
        for impl, f, a in (("jax_fa3", fn, fn_args), ("cudnn", cudnn, qkv), ("xla max(K), max(V)", read_once, qkv)):
            times = kernel_times(f, a, args.iters)
            total = sum(t for _, t in times)
            parts = ", ".join(f"{n[:48]} {t:.1f}" for n, t in times)
            print(f"{name} | {impl} | total {total:.1f} µs | {parts}")


if __name__ == "__main__":
    main()
