"""The prefill seed cases (and a short dense case) for a profiler: per-kernel
CUPTI times with --times, else a few plain calls of one case, e.g.
(JAX_FA3_HOPPER_TILE=short, medium or long pins the Hopper tile shape)

    python3 bench/profile_seeds.py --times
    ncu -k regex:AttentionFwdSm90 -c 1 --set full python3 bench/profile_seeds.py --case seed1
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp

import jax_fa3
from jax_fa3.seeds import SEED_CU_SEQLENS, SEED_SOFTMAX_SCALE, fp8_varlen_call, random_qkv

from decode_kernels import kernel_times  # bench/decode_kernels.py


def seed1(dtype=jnp.float8_e4m3fn):
    q, k, v = random_qkv(84, (5040, 16, 128), (5040, 16, 128), dtype)
    if dtype == jnp.float8_e4m3fn:
        return fp8_varlen_call(q, k, v)
    cu = jnp.asarray(SEED_CU_SEQLENS)
    return jax.jit(lambda q, k, v, cu: jax_fa3.varlen_attention(
        q, k, v, cu, cu, max_seqlen_q=1680, max_seqlen_k=1680, softmax_scale=SEED_SOFTMAX_SCALE)), (q, k, v, cu)


def dense(dtype, b, s, h, d, causal):
    q, k, v = random_qkv(s, (b, s, h, d), (b, s, h, d), dtype)
    return jax.jit(functools.partial(jax_fa3.attention, causal=causal)), (q, k, v)


CASES = {
    "seed1": seed1,
    "seed1_f16": lambda: seed1(jnp.float16),
    "seed2": lambda: dense(jnp.float16, 2, 512, 16, 128, True),
    "seed2_bf16": lambda: dense(jnp.bfloat16, 2, 512, 16, 128, True),
    "seed1_bf16": lambda: seed1(jnp.bfloat16),
    # Causal problems of one short-tile wave (dispatch_fwd.cu), like seed 2.
    "s1024_causal_b1": lambda: dense(jnp.float16, 1, 1024, 16, 128, True),
    "s1024_causal_b1_bf16": lambda: dense(jnp.bfloat16, 1, 1024, 16, 128, True),
    "s2048_causal_h8": lambda: dense(jnp.float16, 1, 2048, 8, 128, True),
    "s2048_causal_h8_bf16": lambda: dense(jnp.bfloat16, 1, 2048, 8, 128, True),
    # Non-causal, at most one short tile per SM.
    "s1024_h8_b1": lambda: dense(jnp.float16, 1, 1024, 8, 128, False),
    "s512_h16_b1_bf16": lambda: dense(jnp.bfloat16, 1, 512, 16, 128, False),
    "s512": lambda: dense(jnp.bfloat16, 32, 512, 16, 128, False),
    "s512_causal": lambda: dense(jnp.bfloat16, 32, 512, 16, 128, True),
    "s2048": lambda: dense(jnp.bfloat16, 8, 2048, 16, 128, False),
    "s2048_causal": lambda: dense(jnp.bfloat16, 8, 2048, 16, 128, True),
    "s8192": lambda: dense(jnp.bfloat16, 2, 8192, 16, 128, False),
    "s16384": lambda: dense(jnp.bfloat16, 1, 16384, 16, 128, False),
    "fp8_s2048": lambda: dense(jnp.float8_e4m3fn, 8, 2048, 16, 128, False),
    "fp8_s2048_causal": lambda: dense(jnp.float8_e4m3fn, 8, 2048, 16, 128, True),
    "fp8_s512": lambda: dense(jnp.float8_e4m3fn, 32, 512, 16, 128, False),
    "fp8_s8192": lambda: dense(jnp.float8_e4m3fn, 2, 8192, 16, 128, False),
    "d64_s8192": lambda: dense(jnp.bfloat16, 2, 8192, 16, 64, False),
    "fp8_d64_s8192": lambda: dense(jnp.float8_e4m3fn, 2, 8192, 16, 64, False),
    "d256_s8192": lambda: dense(jnp.bfloat16, 2, 8192, 16, 256, False),
    "d256_s8192_causal": lambda: dense(jnp.bfloat16, 2, 8192, 16, 256, True),
    "d256_s2048": lambda: dense(jnp.bfloat16, 8, 2048, 16, 256, False),
    # 16-bit head-dim buckets 96 and 192 (and below them).
    "d96_s2048": lambda: dense(jnp.bfloat16, 8, 2048, 16, 96, False),
    "d96_s8192": lambda: dense(jnp.bfloat16, 2, 8192, 16, 96, False),
    "d96_s8192_causal": lambda: dense(jnp.bfloat16, 2, 8192, 16, 96, True),
    "d80_s8192": lambda: dense(jnp.bfloat16, 2, 8192, 16, 80, False),
    "d192_s2048": lambda: dense(jnp.bfloat16, 8, 2048, 16, 192, False),
    "d192_s8192": lambda: dense(jnp.bfloat16, 2, 8192, 16, 192, False),
    "d192_s8192_causal": lambda: dense(jnp.bfloat16, 2, 8192, 16, 192, True),
    "fp8_d256_s8192": lambda: dense(jnp.float8_e4m3fn, 2, 8192, 16, 256, False),
}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", choices=sorted(CASES), default="seed1")
    parser.add_argument("--times", action="store_true", help="per-kernel CUPTI times of every case")
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=sorted(CASES),
                        help="with --times: the cases to time")
    args = parser.parse_args()
    if args.times:
        for name, make in CASES.items():
            if name not in args.cases:
                continue
            fn, fn_args = make()
            times = kernel_times(fn, fn_args, 20)
            print(f"{name}: total {sum(t for _, t in times):.1f} µs | "
                  + ", ".join(f"{n[:60]} {t:.1f}" for n, t in times))
    else:
        fn, fn_args = CASES[args.case]()
        for _ in range(args.calls):
            jax.block_until_ready(fn(*fn_args))
