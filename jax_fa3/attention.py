"""Public attention functions."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jax_fa3 import _backward, _ffi
from jax_fa3 import _validation as val
from jax_fa3 import kvcache
from jax_fa3._ffi import KernelConfig

Array = Any

_CHECKS = {"enabled": False}


def set_checks(enabled: bool) -> None:
    """Turns the checked mode on or off (off by default).

    Kernels never read or write out of bounds, whatever ``cu_seqlens_*`` and
    ``seqused_k`` hold: bad values are clamped and give meaningless output. In
    checked mode, calls traced afterwards also verify those arrays on the
    device and raise an error naming the bad argument when the computation
    runs. It costs a device-to-host transfer per call: meant for debugging.
    """
    _CHECKS["enabled"] = bool(enabled)


def _dense_with_grad(op, cfg: KernelConfig):
    """The dense op with a backward pass (_backward.py) for 16-bit inputs."""
    wrapped = jax.custom_vjp(op)

    def fwd(q, k, v, q_descale, k_descale, v_descale):
        out, lse = op(q, k, v, q_descale, k_descale, v_descale)
        return (out, lse), (q, k, v, q_descale, k_descale, v_descale, out, lse)

    def bwd(res, cotangents):
        q, k, v, q_descale, k_descale, v_descale, out, lse = res
        if jnp.dtype(q.dtype) == jnp.dtype(jnp.float8_e4m3fn):
            raise NotImplementedError(f"jax_fa3: attention with float8_e4m3fn inputs has no backward pass; "
                                      f"{_backward.GRAD_SCOPE}FP8 is for inference")
        dout, dlse = cotangents
        dq, dk, dv = _backward.dense_grads(cfg, q, k, v, out, lse, dout, dlse)
        return (dq, dk, dv, jnp.zeros_like(q_descale), jnp.zeros_like(k_descale), jnp.zeros_like(v_descale))

    wrapped.defvjp(fwd, bwd)
    return wrapped


def _broadcast_batched(axis_size: int, in_batched, args):
    return [x if b else jnp.broadcast_to(x, (axis_size,) + x.shape) for x, b in zip(args, in_batched)]


def _fold_descale(d, batched: bool, axis_size: int, seqs: int, heads_k: int, pad_after: int = 0):
    """Descale of a vmapped call whose mapped axis folds into the batch axis:
    returns a scalar (unchanged) or ``(axis_size * (seqs + pad_after), heads_k)``,
    each group padded with ones."""
    if not batched and d.ndim < 2:
        return d  # absent or one scalar: the same meaning after folding
    if not batched:
        d = jnp.broadcast_to(d, (axis_size,) + d.shape)
    elif d.ndim < 3:  # one scalar per mapped element
        d = jnp.broadcast_to(d.reshape(axis_size, 1, 1), (axis_size, seqs, heads_k))
    if pad_after:
        d = jnp.concatenate([d, jnp.ones((axis_size, pad_after, heads_k), d.dtype)], axis=1)
    return d.reshape(-1, heads_k)


@functools.cache
def _dense_op(cfg: KernelConfig):
    @jax.custom_batching.custom_vmap
    def op(q, k, v, q_descale, k_descale, v_descale):
        # Decode-shaped calls that cannot fill the GPU run as a KV-cache call
        # over full caches: same semantics, plus split-KV.
        splits = kvcache.dense_decode_splits(q.shape, k.shape)
        if splits:
            return kvcache.dense_decode_call(cfg, splits, q, k, v, q_descale, k_descale, v_descale)
        return _ffi.dense_call(cfg, q, k, v, q_descale, k_descale, v_descale)

    @op.def_vmap
    def rule(axis_size, in_batched, q, k, v, q_descale, k_descale, v_descale):
        # The mapped axis folds into batch: a free reshape of BTNH tensors.
        q, k, v = _broadcast_batched(axis_size, in_batched[:3], (q, k, v))
        b, hk = q.shape[1], k.shape[3]
        ds = [_fold_descale(d, bt, axis_size, b, hk)
              for d, bt in zip((q_descale, k_descale, v_descale), in_batched[3:])]
        out, lse = op(q.reshape((-1,) + q.shape[2:]), k.reshape((-1,) + k.shape[2:]),
                      v.reshape((-1,) + v.shape[2:]), *ds)
        return (out.reshape(q.shape[:2] + out.shape[1:]), lse.reshape(q.shape[:2] + lse.shape[1:])), (True, True)

    return _dense_with_grad(op, cfg)


@functools.cache
def _varlen_op(cfg: KernelConfig):
    @jax.custom_batching.custom_vmap
    def op(q, k, v, cu_q, cu_k, seqused_k, q_descale, k_descale, v_descale):
        return _ffi.varlen_call(cfg, q, k, v, cu_q, cu_k, seqused_k, q_descale, k_descale, v_descale)

    @op.def_vmap
    def rule(axis_size, in_batched, q, k, v, cu_q, cu_k, seqused_k, q_descale, k_descale, v_descale):
        # The mapped axis folds into the packed token axis. Element i's
        # sequences are shifted by i * total; between consecutive elements a
        # filler sequence with no keys (seqused_k = 0) covers the unused
        # rows, which therefore come out as zeros like in an unmapped call.
        q, k, v, cu_q, cu_k = _broadcast_batched(axis_size, in_batched[:5], (q, k, v, cu_q, cu_k))
        n, tq, tk, hk = axis_size, q.shape[1], k.shape[1], k.shape[2]
        b = cu_q.shape[1] - 1
        cu_q2 = (cu_q + tq * jnp.arange(n, dtype=jnp.int32)[:, None]).reshape(-1)
        cu_k2 = (cu_k + tk * jnp.arange(n, dtype=jnp.int32)[:, None]).reshape(-1)
        used = cu_k[:, 1:] - cu_k[:, :-1]
        if seqused_k.shape[-1] > 0:
            used = seqused_k if in_batched[5] else jnp.broadcast_to(seqused_k, (n, b))
        used2 = jnp.concatenate([used, jnp.zeros((n, 1), jnp.int32)], axis=1).reshape(-1)[:-1]
        ds = [_fold_descale(d, bt, n, b, hk, pad_after=1)
              for d, bt in zip((q_descale, k_descale, v_descale), in_batched[6:])]
        ds = [d[:-1] if d.ndim == 2 else d for d in ds]
        out, lse = op(q.reshape((-1,) + q.shape[2:]), k.reshape((-1,) + k.shape[2:]),
                      v.reshape((-1,) + v.shape[2:]), cu_q2, cu_k2, used2, *ds)
        lse = jnp.moveaxis(lse.reshape(lse.shape[0], n, tq), 1, 0)
        return (out.reshape((n, tq) + out.shape[1:]), lse), (True, True)

    return _backward.no_grad(op, "varlen_attention")


def attention(q: Array, k: Array, v: Array, *, q_descale: Array | None = None,
              k_descale: Array | None = None, v_descale: Array | None = None,
              softmax_scale: float | None = None, causal: bool = False,
              window_size: tuple[int, int] = (-1, -1), softcap: float = 0.0,
              out_dtype: Any = None, return_lse: bool = False):
    """Multi-head attention on padded batches (the BTNH layout of
    ``jax.nn.dot_product_attention``).

    Args:
      q: ``(batch, seqlen_q, num_heads, head_dim)``, float16, bfloat16 or
        float8_e4m3fn. head_dim is a multiple of 8 up to 256.
      k, v: ``(batch, seqlen_k, num_heads_k, head_dim)``, q's dtype;
        ``num_heads % num_heads_k == 0`` (MHA, GQA, MQA). seqlen_k may differ
        from seqlen_q.
      q_descale, k_descale, v_descale: FP8 only. None, a float32 scalar, or
        float32 ``(batch, num_heads_k)``; the real value of a stored element is
        ``stored * descale`` (query head h uses entry ``h // (num_heads //
        num_heads_k)``).
      softmax_scale: scale of ``q @ k.T``; default ``1 / sqrt(head_dim)``.
      causal: query i sees keys ``j <= i + seqlen_k - seqlen_q`` (mask
        aligned to the bottom-right corner).
      window_size: ``(left, right)``: query i sees keys in
        ``[i + seqlen_k - seqlen_q - left, i + seqlen_k - seqlen_q + right]``;
        -1 leaves a side unbounded. causal sets right to 0.
      softcap: if > 0, scores become ``softcap * tanh(score / softcap)``.
      out_dtype: output dtype; q's dtype for float16/bfloat16 inputs, float16
        (default) or bfloat16 for float8 inputs.
      return_lse: also return the natural-log logsumexp of the scaled scores,
        float32 ``(batch, num_heads, seqlen_q)``.

    Returns:
      ``out`` ``(batch, seqlen_q, num_heads, head_dim)``, and ``lse`` when
      ``return_lse``. Rows that see no key give 0 (lse -inf), never NaN.

    Differentiable in reverse mode (``jax.grad``) for float16/bfloat16
    inputs, through ``out`` and ``lse`` (see ``_backward.py``).
    """
    val.check_qkv(q, k, v, 4, "(batch, seqlen, num_heads, head_dim)")
    if k.shape[0] != q.shape[0]:
        raise ValueError(f"k and v must have q's batch size {q.shape[0]}, got {k.shape[0]}")
    cfg = val.make_config(q, softmax_scale=softmax_scale, causal=causal, window_size=window_size,
                          softcap=softcap, out_dtype=out_dtype)
    b, hk = q.shape[0], k.shape[2]
    ds = [val.descale_operand(n, d, q.dtype, b, hk)
          for n, d in (("q_descale", q_descale), ("k_descale", k_descale), ("v_descale", v_descale))]
    out, lse = _dense_op(cfg)(q, k, v, *ds)
    return (out, lse) if return_lse else out


def _check_varlen_on_device(cu_seqlens_q, cu_seqlens_k, seqused_k, total_q: int, total_k: int) -> None:
    def report(ok_q, ok_k, ok_used):
        bad = [name for name, ok in (("cu_seqlens_q", ok_q), ("cu_seqlens_k", ok_k), ("seqused_k", ok_used))
               if not bool(ok)]
        if bad:
            raise ValueError(
                f"jax_fa3 checked mode: invalid {', '.join(bad)}: cu_seqlens must start >= 0, be "
                f"non-decreasing and end <= the token count (q: {total_q}, k: {total_k}); seqused_k "
                "must lie in [0, cu_seqlens_k[b + 1] - cu_seqlens_k[b]]")

    def valid(cu, total):
        return (cu[0] >= 0) & jnp.all(cu[1:] >= cu[:-1]) & (cu[-1] <= total)

    lens_k = cu_seqlens_k[1:] - cu_seqlens_k[:-1]
    ok_used = jnp.all((seqused_k >= 0) & (seqused_k <= lens_k)) if seqused_k is not None else True
    jax.debug.callback(report, valid(cu_seqlens_q, total_q), valid(cu_seqlens_k, total_k), ok_used)


def varlen_attention(q: Array, k: Array, v: Array, cu_seqlens_q: Array, cu_seqlens_k: Array, *,
                     max_seqlen_q: int | None = None, max_seqlen_k: int | None = None,
                     seqused_k: Array | None = None, q_descale: Array | None = None,
                     k_descale: Array | None = None, v_descale: Array | None = None,
                     softmax_scale: float | None = None, causal: bool = False,
                     window_size: tuple[int, int] = (-1, -1), softcap: float = 0.0,
                     out_dtype: Any = None, return_lse: bool = False):
    """Attention on packed variable-length sequences.

    Sequence b owns query rows ``cu_seqlens_q[b]:cu_seqlens_q[b+1]`` and key
    rows ``cu_seqlens_k[b]:cu_seqlens_k[b+1]`` (only the first
    ``seqused_k[b]`` keys when given). Query rows outside every sequence get
    zeros (lse -inf).

    Args:
      q: ``(total_q, num_heads, head_dim)``; k, v: ``(total_k, num_heads_k,
        head_dim)``. dtypes as in :func:`attention`.
      cu_seqlens_q, cu_seqlens_k: int32 ``(batch + 1,)`` cumulative lengths.
      max_seqlen_q, max_seqlen_k: optional static hints. Results never depend
        on them and they may exceed every real length; a changed cu_seqlens
        with the same shapes reuses the compiled executable.
      seqused_k: optional int32 ``(batch,)``.
      q_descale, k_descale, v_descale: FP8 only; None, scalar or float32
        ``(batch, num_heads_k)``.
      Other keywords: as in :func:`attention`; causal and window are aligned
        per sequence to its bottom-right corner.
      return_lse: also return lse, float32 ``(num_heads, total_q)``.

    Returns:
      ``out`` ``(total_q, num_heads, head_dim)`` (and ``lse``).
    """
    val.check_qkv(q, k, v, 3, "(total_tokens, num_heads, head_dim)")
    cu_seqlens_q = val.int32_vector("cu_seqlens_q", cu_seqlens_q, None, "(batch + 1,)")
    batch = cu_seqlens_q.shape[0] - 1
    if batch < 1:
        raise ValueError(f"cu_seqlens_q must have shape (batch + 1,) with batch >= 1, got {tuple(cu_seqlens_q.shape)}")
    cu_seqlens_k = val.int32_vector("cu_seqlens_k", cu_seqlens_k, batch + 1, f"(batch + 1,) = ({batch + 1},)")
    if seqused_k is not None:
        seqused_k = val.int32_vector("seqused_k", seqused_k, batch, f"(batch,) = ({batch},)")
    val.check_max_seqlen("max_seqlen_q", max_seqlen_q)
    val.check_max_seqlen("max_seqlen_k", max_seqlen_k)
    cfg = val.make_config(q, softmax_scale=softmax_scale, causal=causal, window_size=window_size,
                          softcap=softcap, out_dtype=out_dtype)
    hk = k.shape[1]
    ds = [val.descale_operand(n, d, q.dtype, batch, hk)
          for n, d in (("q_descale", q_descale), ("k_descale", k_descale), ("v_descale", v_descale))]
    if _CHECKS["enabled"]:
        _check_varlen_on_device(cu_seqlens_q, cu_seqlens_k, seqused_k, q.shape[0], k.shape[0])
    used = seqused_k if seqused_k is not None else jnp.zeros((0,), jnp.int32)
    out, lse = _varlen_op(cfg)(q, k, v, cu_seqlens_q, cu_seqlens_k, used, *ds)
    return (out, lse) if return_lse else out
