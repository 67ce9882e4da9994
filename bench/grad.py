"""Forward + backward time of jax_fa3.attention next to cuDNN (through
jax.nn.dot_product_attention), in one run: jit(grad(sum(out * w))) of
bf16 attention, batch x seqlen = 16384, 16 heads, head dim 128.

Kernel time by CUPTI (every kernel the call launches), median; FLOPs =
3.5 x the forward's (the backward's five GEMMs are 2.5 forwards).

    python bench/grad.py [--seqlens 512 2048 8192] [--iters 10]
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp

import jax_fa3
from jax_fa3.seeds import random_qkv
from run import kernel_ms, visible_pairs  # bench/run.py


def grad_fn(attention_fn):
    def loss(q, k, v, w):
        return jnp.sum(attention_fn(q, k, v).astype(jnp.float32) * w)
    return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seqlens", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args()
    h, d = 16, 128
    print("| seqlen | causal | impl | fwd+bwd ms | TFLOP/s |")
    print("|---|---|---|---|---|")
    for s in args.seqlens:
        b = max(16384 // s, 1)
        q, k, v = random_qkv(s, (b, s, h, d), (b, s, h, d), jnp.bfloat16)
        w = jax.random.normal(jax.random.PRNGKey(1), q.shape, jnp.float32)
        for causal in (False, True):
            flops = 3.5 * 4 * b * h * d * visible_pairs(s, s, causal)
            impls = {"jax_fa3": functools.partial(jax_fa3.attention, causal=causal),
                     "cudnn": functools.partial(jax.nn.dot_product_attention, is_causal=causal,
                                                implementation="cudnn")}
            for name, fn in impls.items():
                try:
                    ms = kernel_ms(grad_fn(fn), (q, k, v, w), args.iters)
                    print(f"| {s} | {causal} | {name} | {ms:.3f} | {flops / ms / 1e9:.0f} |", flush=True)
                except Exception as e:  # a baseline that refuses a shape is reported, not fatal
                    print(f"| {s} | {causal} | {name} | {type(e).__name__}: {str(e).splitlines()[0][:60]} | |")


if __name__ == "__main__":
    main()
