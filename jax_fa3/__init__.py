"""FlashAttention-3 class attention for JAX, as XLA FFI custom calls.

Public API: :func:`attention`, :func:`varlen_attention`,
:func:`attention_with_kvcache`, :func:`set_checks`;
:mod:`jax_fa3.reference` holds the plain ``jax.numpy`` reference.
"""

from jax_fa3.attention import attention, set_checks, varlen_attention
from jax_fa3.kvcache import attention_with_kvcache

__all__ = ["attention", "varlen_attention", "attention_with_kvcache", "set_checks"]
__version__ = "0.1.0"
