// FFI signature of the KV-cache targets, shared by the CPU and CUDA handlers.
//
// Operands: q, k_cache, v_cache, cache_seqlens, k, v, page_table,
// cache_batch_idx, cache_leftpad, rotary_cos, rotary_sin, q_descale,
// k_descale, v_descale (absent ones are (0,) arrays). Results: out, lse,
// workspace, and for the append target the updated k_cache and v_cache
// (aliased to the operands, so donated caches are written in place).
#pragma once

#include <cstdint>
#include <utility>

#include "handlers/ffi_signature.h"
#include "handlers/make_kvcache_params.h"

namespace jax_fa3 {

constexpr int kKvCacheOperands = 14;

// N >= 1 AnyBuffer operands (each step returns a new binding; bindings
// cannot be moved, so there is no N = 0 case).
template <int N, class B>
auto AnyBufferArgs(B&& binding) {
  if constexpr (N == 1) {
    return std::forward<B>(binding).template Arg<ffi::AnyBuffer>();
  } else {
    return AnyBufferArgs<N - 1>(std::forward<B>(binding).template Arg<ffi::AnyBuffer>());
  }
}

template <class B>
auto KvCacheAttrs(B&& binding) {
  return std::forward<B>(binding)
      .template Attr<float>("softmax_scale")
      .template Attr<bool>("causal")
      .template Attr<int64_t>("window_left")
      .template Attr<int64_t>("window_right")
      .template Attr<float>("softcap")
      .template Attr<int64_t>("num_splits")
      .template Attr<bool>("rotary_interleaved");
}

template <class B>
auto KvCacheSignature(B&& binding) {
  return KvCacheAttrs(AnyBufferArgs<kKvCacheOperands>(std::forward<B>(binding))
                          .template Ret<ffi::AnyBuffer>()
                          .template Ret<ffi::AnyBuffer>()
                          .template Ret<ffi::AnyBuffer>());
}

template <class B>
auto KvCacheAppendSignature(B&& binding) {
  return KvCacheAttrs(AnyBufferArgs<kKvCacheOperands>(std::forward<B>(binding))
                          .template Ret<ffi::AnyBuffer>()
                          .template Ret<ffi::AnyBuffer>()
                          .template Ret<ffi::AnyBuffer>()
                          .template Ret<ffi::AnyBuffer>()
                          .template Ret<ffi::AnyBuffer>());
}

struct KvCacheOperands {
  ffi::AnyBuffer q, k_cache, v_cache, cache_seqlens, k, v, page_table, cache_batch_idx, cache_leftpad,
      rotary_cos, rotary_sin, q_descale, k_descale, v_descale;
};

struct KvCacheAttrValues {
  float softmax_scale;
  bool causal;
  int64_t window_left, window_right;
  float softcap;
  int64_t num_splits;
  bool rotary_interleaved;
};

inline KvCacheCall MakeKvCacheCall(const KvCacheOperands& o, ffi::Result<ffi::AnyBuffer>& out,
                                   ffi::Result<ffi::AnyBuffer>& lse, ffi::Result<ffi::AnyBuffer>& workspace,
                                   const KvCacheAttrValues& a) {
  KvCacheCall call;
  call.q = View(o.q);
  call.k_cache = View(o.k_cache);
  call.v_cache = View(o.v_cache);
  call.cache_seqlens = View(o.cache_seqlens);
  call.k_new = View(o.k);
  call.v_new = View(o.v);
  call.page_table = View(o.page_table);
  call.cache_batch_idx = View(o.cache_batch_idx);
  call.cache_leftpad = View(o.cache_leftpad);
  call.rotary_cos = View(o.rotary_cos);
  call.rotary_sin = View(o.rotary_sin);
  call.q_descale = View(o.q_descale);
  call.k_descale = View(o.k_descale);
  call.v_descale = View(o.v_descale);
  call.out = View(out);
  call.lse = View(lse);
  call.workspace = View(workspace);
  call.attrs = Attrs(a.softmax_scale, a.causal, a.window_left, a.window_right, a.softcap);
  call.num_splits = a.num_splits;
  call.rotary_interleaved = a.rotary_interleaved;
  return call;
}

// The append target reads and writes the result caches: XLA has copied the
// operands into them unless they were donated (then they are the same memory).
inline void UseResultCaches(KvCacheCall& call, ffi::Result<ffi::AnyBuffer>& k_cache,
                            ffi::Result<ffi::AnyBuffer>& v_cache) {
  call.k_cache.data = k_cache->untyped_data();
  call.v_cache.data = v_cache->untyped_data();
}

inline ffi::Error PrepareKvCache(const KvCacheCall& call, AttentionParams* params) {
  std::string err = MakeKvCacheParams(call, params);
  if (!err.empty()) return ffi::Error::InvalidArgument("jax_fa3: " + err);
  return ffi::Error::Success();
}

}  // namespace jax_fa3
