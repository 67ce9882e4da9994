"""Benchmark: jax_fa3 next to cuDNN and XLA attention, in one run.

Kernel time by CUPTI (every kernel a call launches), median over
iterations; FLOPs = 4 * sum(seqlen_q * seqlen_k visible) * heads * head_dim.
Prints a markdown table and writes it to --out.

    python bench/run.py [--quick] [--out bench/results.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import jax_fa3
from jax_fa3 import reference
from jax_fa3.seeds import SEED_CU_SEQLENS, SEED_SOFTMAX_SCALE, fp8_varlen_call, random_qkv, rel_err

import decode  # bench/decode.py: the issue-4 decode cases

FP8 = jnp.float8_e4m3fn
DTYPES = {"f16": jnp.float16, "bf16": jnp.bfloat16, "fp8": FP8}


@dataclasses.dataclass
class Row:
    case: str
    impl: str
    ms: float | None
    tflops: float | None
    err: float | None
    note: str = ""


def kernel_ms(fn, args, iterations: int) -> float:
    """Median per-call device time (ms) of every kernel `fn` launches."""
    try:
        from jax.experimental.mosaic.gpu import profiler
        _, times = profiler.measure(fn, iterations=iterations)(*args)
        if times:
            return float(statistics.median(times))
    except (ImportError, RuntimeError):
        pass
    # No CUPTI (e.g. CPU): wall clock of a blocked call.
    jax.block_until_ready(fn(*args))
    samples = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        samples.append((time.perf_counter() - t0) * 1e3)
    return float(statistics.median(samples))


def visible_pairs(sq: int, sk: int, causal: bool) -> int:
    return int(reference.mask(sq, sk, causal).sum()) if causal else sq * sk


def bench_dense(name, dtype, b, sq, sk, h, hk, d, causal, iters, with_baselines=True, check=True):
    dt = DTYPES[dtype]
    q, k, v = random_qkv(sq, (b, sq, h, d), (b, sk, hk, d), dt)
    flops = 4 * b * h * d * visible_pairs(sq, sk, causal)
    ref = None
    if check:
        ref = jax.jit(functools.partial(reference.attention, causal=causal))(q, k, v)
    impls = {"jax_fa3": jax.jit(functools.partial(jax_fa3.attention, causal=causal))}
    if with_baselines and dt != FP8:
        # XLA's unfused attention materializes (B, H, Sq, Sk) scores: skipped
        # past 4096 where it is only a memory test.
        for impl in ("cudnn", "xla") if sq <= 4096 else ("cudnn",):
            impls[impl] = jax.jit(functools.partial(jax.nn.dot_product_attention, is_causal=causal,
                                                    implementation=impl))
    rows = []
    for impl, fn in impls.items():
        try:
            out = fn(q, k, v)
            ms = kernel_ms(fn, (q, k, v), iters)
            rows.append(Row(name, impl, ms, flops / ms / 1e9, rel_err(out, ref) if ref is not None else None))
        except Exception as e:  # a baseline that refuses a shape is reported, not fatal
            rows.append(Row(name, impl, None, None, None, type(e).__name__ + ": " + str(e).splitlines()[0][:60]))
    return rows


def bench_seed_fp8_varlen(iters):
    q, k, v = random_qkv(84, (5040, 16, 128), (5040, 16, 128), FP8)
    ones = jnp.ones((84, 16), jnp.float32)
    kw = dict(q_descale=ones, k_descale=ones, v_descale=ones, softmax_scale=SEED_SOFTMAX_SCALE)
    # Descales as jit arguments (a 0.9 µs broadcast kernel per call, counted
    # in this row until the thirteenth session, when they were constants).
    fn, args = fp8_varlen_call(q, k, v)
    out = fn(*args)
    ref = reference.varlen_attention(q, k, v, SEED_CU_SEQLENS, SEED_CU_SEQLENS, **kw)
    ms = kernel_ms(fn, args, iters)
    flops = 4 * 16 * 128 * int(np.sum(np.diff(SEED_CU_SEQLENS) ** 2))
    rows = [Row("seed1 fp8 varlen 84x(64|48) h16 d128", "jax_fa3", ms, flops / ms / 1e9, rel_err(out, ref))]
    # cuDNN baseline: the same batch padded to 64 tokens, fp16 (JAX's cuDNN has no fp8 varlen).
    lens = np.diff(SEED_CU_SEQLENS)
    qp = jnp.zeros((84, 64, 16, 128), jnp.float16)
    idx = np.concatenate([np.arange(s, s + n) for s, n in zip(SEED_CU_SEQLENS[:-1], lens)])
    bi = np.repeat(np.arange(84), lens)
    ti = np.concatenate([np.arange(n) for n in lens])
    qp = qp.at[bi, ti].set(q[idx].astype(jnp.float16))
    kp = jnp.zeros_like(qp).at[bi, ti].set(k[idx].astype(jnp.float16))
    vp = jnp.zeros_like(qp).at[bi, ti].set(v[idx].astype(jnp.float16))
    lens_j = jnp.asarray(lens, jnp.int32)
    cud = jax.jit(lambda q, k, v, l: jax.nn.dot_product_attention(
        q, k, v, query_seq_lengths=l, key_value_seq_lengths=l, implementation="cudnn"))
    try:
        cud(qp, kp, vp, lens_j)
        ms = kernel_ms(cud, (qp, kp, vp, lens_j), iters)
        rows.append(Row("seed1 fp8 varlen 84x(64|48) h16 d128", "cudnn (fp16, padded)", ms, flops / ms / 1e9, None))
    except Exception as e:
        rows.append(Row("seed1 fp8 varlen 84x(64|48) h16 d128", "cudnn (fp16, padded)", None, None, None, str(e)[:60]))
    return rows


def table(rows: list[Row], device: str) -> str:
    lines = [f"Device: {device}; jax {jax.__version__}; CUPTI kernel time, median.", "",
             "| case | impl | time (µs) | TFLOP/s | rel. error vs f32 ref |", "|---|---|---|---|---|"]
    for r in rows:
        t = f"{r.ms * 1e3:.1f}" if r.ms is not None else "n/a"
        f = f"{r.tflops:.0f}" if r.tflops is not None else "n/a"
        e = f"{r.err:.1e}" if r.err is not None else ""
        lines.append(f"| {r.case} | {r.impl} | {t} | {f} | {e}{' ' + r.note if r.note else ''} |")
    return "\n".join(lines)


def report(rows: list[Row], out: str) -> None:
    """Prints the table for this device and writes it to `out`."""
    text = table(rows, jax.devices()[0].device_kind)
    print(text)
    with open(out, "w") as f:
        f.write(text + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="seed cases and a small grid only")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--out", default="bench/results.md")
    parser.add_argument("--decode", action="store_true", help="the decode (KV cache) cases only")
    args = parser.parse_args()
    it = args.iters
    if args.decode:
        report(decode.bench_decode(lambda fn, fn_args: kernel_ms(fn, fn_args, it), Row), args.out)
        return 0
    rows = bench_seed_fp8_varlen(it)
    rows += bench_dense("seed2 f16 causal b2 s512 h16 d128", "f16", 2, 512, 512, 16, 16, 128, True, it)
    for b in (1, 32):
        rows += bench_dense(f"seed3 f16 decode b{b} sk2048 h16/2 d128", "f16", b, 1, 2048, 16, 2, 128, False, it)
    rows += decode.bench_decode(lambda fn, fn_args: kernel_ms(fn, fn_args, it), Row)
    seqlens = (512, 2048) if args.quick else (512, 1024, 2048, 4096, 8192, 16384)
    for dtype in ("bf16", "f16", "fp8"):
        for causal in (False, True):
            for s in seqlens:
                rows += bench_dense(f"{dtype} {'causal' if causal else 'full'} s{s} b{16384 // s} h16 d128", dtype,
                                    16384 // s, s, s, 16, 16, 128, causal, it, check=s <= 4096)
    report(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
