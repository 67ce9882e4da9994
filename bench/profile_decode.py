"""One decode call for a profiler (ncu): bf16, batch 64, 8192 cached keys,
32 query heads over 8 KV heads, head dim 128, contiguous cache.

    ncu -k regex:AttentionFwdPortable -c 1 python3 bench/profile_decode.py
"""

import jax
import jax.numpy as jnp

import jax_fa3
from jax_fa3.seeds import random_qkv

if __name__ == "__main__":
    q, k, v = random_qkv(0, (64, 1, 32, 128), (64, 8192, 8, 128), jnp.bfloat16)
    seqlens = jnp.full((64,), 8192, jnp.int32)
    jax.block_until_ready(jax.jit(jax_fa3.attention_with_kvcache)(q, k, v, seqlens))
