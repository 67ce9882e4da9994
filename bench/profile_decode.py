"""One decode case of bench/decode.py (CASES[--case]) run a few times, for a
profiler:

    ncu -k regex:'DecodeFwd|CombineSplits' -c 2 python3 bench/profile_decode.py --case 0

ncu flushes the caches before each kernel by default; add `-s 4
--cache-control none --clock-control none` to profile calls as a benchmark
loop runs them (warm L2 and instruction caches, boost clock).
"""

import argparse

import jax

import decode  # bench/decode.py

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", type=int, default=2, help="index into decode.CASES")
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    _, dt, b, sk, h, hk, page, _ = decode.CASES[args.case]
    (fn, fn_args), _, _ = decode.decode_call(dt, b, sk, h, hk, page)
    for _ in range(args.calls):
        jax.block_until_ready(fn(*fn_args))
