"""The issue-3 target shapes (head dim 128 and others, causal and not),
jax_fa3 next to cuDNN in one run. A narrower, faster companion of run.py
for kernel tuning; run.py holds the full table.

    python bench/hopper_sweep.py [--seqlens 512 2048 8192] [--iters 10] [--tiles medium long]
"""

from __future__ import annotations

import argparse
import os
import sys

import run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seqlens", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--dtypes", nargs="+", default=["bf16"])
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--head-dims", type=int, nargs="+", default=[64, 96, 192, 256],
                        help="head dims other than 128, each at s8192 b2 h16, causal and not")
    parser.add_argument("--out", default="bench/hopper_sweep.md")
    parser.add_argument("--tiles", nargs="+", default=["auto"],
                        help="Hopper tile shapes to run jax_fa3 with (JAX_FA3_HOPPER_TILE: short, medium, long, "
                             "or auto); the baselines run once, with the first")
    args = parser.parse_args()

    def bench(name, *shape, check=False):
        rows = []
        for i, tile in enumerate(args.tiles):
            os.environ["JAX_FA3_HOPPER_TILE"] = "" if tile == "auto" else tile
            label = name if len(args.tiles) == 1 else f"{name} [{tile}]"
            rows += run.bench_dense(label, *shape, args.iters, with_baselines=i == 0, check=check)
        return rows

    rows = bench("seed2 f16 causal b2 s512 h16 d128", "f16", 2, 512, 512, 16, 16, 128, True, check=True)
    for dtype in args.dtypes:
        for causal in (False, True):
            for s in args.seqlens:
                b = 16384 // s
                rows += bench(f"{dtype} {'causal' if causal else 'full'} s{s} b{b} h16 d128", dtype, b, s, s, 16, 16,
                              128, causal, check=s <= 2048)
        for d in args.head_dims:
            for causal in (False, True):
                rows += bench(f"{dtype} {'causal' if causal else 'full'} s8192 b2 h16 d{d}", dtype, 2, 8192, 8192,
                              16, 16, d, causal)
    run.report(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
