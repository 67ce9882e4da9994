"""Per-kernel CUPTI times of the decode cases (bench/decode.py CASES): which
of a call's kernels (append, attention, split combine) takes the time.

    python bench/decode_kernels.py [--iters N]
"""

from __future__ import annotations

import argparse
import functools

import jax
import numpy as np
from jax.experimental.mosaic.gpu import profiler

import decode  # bench/decode.py


def kernel_times(fn, args, iters: int) -> list[tuple[str, float]]:
    """(kernel name, median µs over iters calls) for each kernel of one call."""
    jax.block_until_ready(fn(*args))
    _, per_iter = profiler.measure(fn, aggregate=False, iterations=iters)(*args)
    names = [name for name, _ in per_iter[0]]
    return [(name, 1e3 * float(np.median([it[i][1] for it in per_iter]))) for i, name in enumerate(names)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()
    print(f"Device: {jax.devices()[0].device_kind}; per-kernel CUPTI time, median of {args.iters}")
    cudnn = jax.jit(functools.partial(jax.nn.dot_product_attention, implementation="cudnn"))
    for name, dt, b, sk, h, hk, page, _ in decode.CASES:
        (fn, fn_args), qkv, _ = decode.decode_call(dt, b, sk, h, hk, page)
        for impl, f, a in (("jax_fa3", fn, fn_args), ("cudnn", cudnn, qkv)):
            times = kernel_times(f, a, args.iters)
            total = sum(t for _, t in times)
            parts = ", ".join(f"{n[:48]} {t:.1f}" for n, t in times)
            print(f"{name} | {impl} | total {total:.1f} µs | {parts}")


if __name__ == "__main__":
    main()
