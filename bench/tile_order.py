"""Causal shapes whose static tile order is uneven: the Hopper kernel with
its static order (JAX_FA3_STATIC_TILE_ORDER=1) and with the order it picks
(dynamic where tile_order.h's model says it pays), next to cuDNN, one run.

    python bench/tile_order.py [--iters 10] [--out bench/tile_order.md]
"""

from __future__ import annotations

import argparse
import os
import sys

import run

# (dtype, batch, seqlen, heads, head dim); causal, heads_k = heads.
SHAPES = [
    ("bf16", 1, 16384, 16, 128),
    ("bf16", 2, 8192, 16, 128),
    ("bf16", 2, 8192, 16, 256),
    ("bf16", 1, 8192, 8, 128),
    ("bf16", 2, 5000, 8, 128),
    ("bf16", 2, 3000, 8, 128),
    ("bf16", 1, 16384, 16, 64),
    ("bf16", 1, 16384, 16, 256),
    ("fp8", 1, 16384, 16, 128),
    ("fp8", 2, 3000, 8, 128),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--out", default="bench/tile_order.md")
    args = parser.parse_args()
    rows = []
    for dtype, b, s, h, d in SHAPES:
        name = f"{dtype} causal b{b} s{s} h{h} d{d}"
        for i, order in enumerate(("static", "chosen")):
            os.environ["JAX_FA3_STATIC_TILE_ORDER"] = "1" if order == "static" else "0"
            rows += run.bench_dense(f"{name} [{order}]", dtype, b, s, s, h, h, d, True, args.iters,
                                    with_baselines=i == 0, check=s <= 3000)
    os.environ.pop("JAX_FA3_STATIC_TILE_ORDER")
    run.report(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
