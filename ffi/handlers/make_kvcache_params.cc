#include "handlers/make_kvcache_params.h"

#include <algorithm>
#include <sstream>

#include "kernels/split_kv.h"

namespace jax_fa3 {
namespace {

// Paged caches: a page holds a whole number of 16-row MMA tiles.
constexpr int64_t kPageSizeMultiple = 16;

std::string Expect(const char* name, const BufferView& b, const char* what) {
  return Describe(name, b) + ": expected " + what;
}

std::string CheckRank4Like(const char* name, const BufferView& b, DType dtype, int64_t heads_k, int64_t head_dim) {
  if (b.dims.size() != 4) return Describe(name, b) + ": expected rank 4";
  if (b.dtype != dtype) return Describe(name, b) + ": expected q's dtype " + DTypeName(dtype);
  if (b.dims[2] != heads_k || b.dims[3] != head_dim) {
    std::ostringstream os;
    os << Describe(name, b) << ": expected (..., " << heads_k << ", " << head_dim << ") = (..., num_heads_k, head_dim)";
    return os.str();
  }
  return "";
}

// Shapes of the cache, its page table / batch index and the appended tokens.
std::string CheckCache(const KvCacheCall& call, int64_t batch, AttentionParams* p) {
  const BufferView& kc = call.k_cache;
  KvCache& c = p->cache;
  const bool paged = NumElements(call.page_table) > 0;
  if (paged) {
    const BufferView& pt = call.page_table;
    if (pt.dtype != DType::kS32 || pt.dims.size() != 2 || pt.dims[0] != batch) {
      return Expect("page_table", pt, ("int32(" + std::to_string(batch) + ", max_pages)").c_str());
    }
    if (NumElements(call.cache_batch_idx) > 0) return "cache_batch_idx cannot be combined with page_table";
    const int64_t page_size = kc.dims[1];
    if (page_size % kPageSizeMultiple != 0) {
      return Describe("k_cache", kc) + ": the page size (dim 1) must be a multiple of 16, got " +
             std::to_string(page_size);
    }
    if (pt.dims[1] * page_size > kMaxInt) return Describe("page_table", pt) + ": max_pages * page_size too large";
    c.page_table = static_cast<const int32_t*>(pt.data);
    c.page_table_stride = pt.dims[1];
    c.page_size = FastDivisor(static_cast<int>(page_size));
    c.capacity = static_cast<int>(pt.dims[1] * page_size);
  } else {
    if (NumElements(call.cache_batch_idx) > 0) {
      if (auto e = CheckInt32Vector("cache_batch_idx", call.cache_batch_idx, batch); !e.empty()) return e;
      c.batch_idx = static_cast<const int32_t*>(call.cache_batch_idx.data);
    } else if (kc.dims[0] != batch) {
      return Describe("k_cache", kc) + ": batch (dim 0) must match q's batch " + std::to_string(batch) +
             " unless cache_batch_idx is given";
    }
    c.capacity = static_cast<int>(kc.dims[1]);
  }
  c.num_blocks = static_cast<int>(kc.dims[0]);
  if (c.num_blocks < 1) return Describe("k_cache", kc) + ": the cache is empty";

  if (auto e = CheckInt32Vector("cache_seqlens", call.cache_seqlens, batch); !e.empty()) return e;
  c.seqlens = static_cast<const int32_t*>(call.cache_seqlens.data);
  if (NumElements(call.cache_leftpad) > 0) {
    if (auto e = CheckInt32Vector("cache_leftpad", call.cache_leftpad, batch); !e.empty()) return e;
    c.leftpad = static_cast<const int32_t*>(call.cache_leftpad.data);
  }

  const bool has_k = NumElements(call.k_new) > 0 || call.k_new.dims.size() == 4;
  const bool has_v = NumElements(call.v_new) > 0 || call.v_new.dims.size() == 4;
  if (has_k != has_v) return "k and v must be given together";
  if (has_k) {
    const int64_t hk = kc.dims[2], d = kc.dims[3];
    if (auto e = CheckRank4Like("k", call.k_new, kc.dtype, hk, d); !e.empty()) return e;
    if (call.v_new.dims != call.k_new.dims) return Describe("v", call.v_new) + " must match " + Describe("k", call.k_new);
    if (auto e = CheckRank4Like("v", call.v_new, kc.dtype, hk, d); !e.empty()) return e;
    if (call.k_new.dims[0] != batch) return Describe("k", call.k_new) + ": batch must match q's batch";
    c.k_new = call.k_new.data;
    c.v_new = call.v_new.data;
    c.seqlen_new = static_cast<int>(call.k_new.dims[1]);
    c.new_stride = {call.k_new.dims[1] * hk * d, hk * d, d};
  }
  return "";
}

std::string CheckRotary(const KvCacheCall& call, DType in, int64_t head_dim, Rotary* r) {
  const bool has_cos = NumElements(call.rotary_cos) > 0, has_sin = NumElements(call.rotary_sin) > 0;
  if (has_cos != has_sin) return "rotary_cos and rotary_sin must be given together";
  if (!has_cos) return "";
  if (!Is16Bit(in)) return std::string("rotary embedding needs float16 or bfloat16 inputs, got ") + DTypeName(in);
  const BufferView& cs = call.rotary_cos;
  if (cs.dtype != DType::kF32 || cs.dims.size() != 2 || 2 * cs.dims[1] > head_dim) {
    return Expect("rotary_cos", cs, "float32(seqlen_ro, rotary_dim / 2) with rotary_dim <= head_dim");
  }
  if (call.rotary_sin.dtype != DType::kF32 || call.rotary_sin.dims != cs.dims) {
    return Describe("rotary_sin", call.rotary_sin) + " must match " + Describe("rotary_cos", cs);
  }
  r->cos = static_cast<const float*>(cs.data);
  r->sin = static_cast<const float*>(call.rotary_sin.data);
  r->rotary_dim = static_cast<int>(2 * cs.dims[1]);
  r->seqlen_ro = static_cast<int>(cs.dims[0]);
  r->interleaved = call.rotary_interleaved;
  return "";
}

}  // namespace

std::string MakeKvCacheParams(const KvCacheCall& call, AttentionParams* p) {
  const BufferView& q = call.q;
  if (q.dims.size() != 4) return Describe("q", q) + ": expected rank 4 (batch, seqlen_q, num_heads, head_dim)";
  const DType in = q.dtype;
  if (!Is16Bit(in) && in != DType::kF8E4M3) return Describe("q", q) + ": expected float16, bfloat16 or float8_e4m3fn";
  const int64_t batch = q.dims[0], seqlen_q = q.dims[1], heads = q.dims[2], head_dim = q.dims[3];
  if (head_dim < 8 || head_dim > 256 || head_dim % 8 != 0) {
    return Describe("q", q) + ": head_dim must be a multiple of 8 in [8, 256], got " + std::to_string(head_dim);
  }
  if (call.k_cache.dims.size() != 4) return Describe("k_cache", call.k_cache) + ": expected rank 4";
  const int64_t heads_k = call.k_cache.dims[2];
  if (auto e = CheckRank4Like("k_cache", call.k_cache, in, heads_k, head_dim); !e.empty()) return e;
  if (call.v_cache.dims != call.k_cache.dims || call.v_cache.dtype != in) {
    return Describe("v_cache", call.v_cache) + " must match " + Describe("k_cache", call.k_cache);
  }
  if (heads_k < 1 || heads % heads_k != 0) {
    return "num_heads (" + std::to_string(heads) + ") must be a positive multiple of num_heads_k (" +
           std::to_string(heads_k) + ")";
  }
  if (batch < 1 || batch * seqlen_q * heads * head_dim > kMaxInt * 8) return Describe("q", q) + ": unsupported size";
  if (auto e = CheckCache(call, batch, p); !e.empty()) return e;
  if (auto e = CheckRotary(call, in, head_dim, &p->rotary); !e.empty()) return e;

  const DType out = call.out.dtype;
  if (Is16Bit(in) ? out != in : !Is16Bit(out)) {
    return Describe("out", call.out) + ": output dtype must be " + (Is16Bit(in) ? DTypeName(in) : "float16 or bfloat16");
  }
  if (call.out.dims != q.dims) return Describe("out", call.out) + " must have the shape of " + Describe("q", q);
  const std::vector<int64_t> lse_dims{batch, heads, seqlen_q};
  if (call.lse.dtype != DType::kF32 || call.lse.dims != lse_dims) {
    return Describe("lse", call.lse) + ": expected float32" + ShapeStr(lse_dims);
  }
  const int64_t per_split = std::max<int64_t>(1, WorkspaceFloatsPerSplit(batch, seqlen_q, heads, head_dim));
  if (call.workspace.dtype != DType::kF32 || call.workspace.dims.size() != 1 ||
      call.workspace.dims[0] % per_split != 0) {
    return Expect("workspace", call.workspace, "float32(splits * batch * seqlen_q * num_heads * (head_dim + 1),)");
  }
  const int64_t max_splits =
      std::clamp<int64_t>(call.workspace.dims[0] / per_split, 1, kMaxSplits);  // the workspace's splits
  if (call.num_splits < 0 || call.num_splits > max_splits) {
    return "num_splits must be in [0, " + std::to_string(max_splits) +
           "] (the workspace's splits, at most " + std::to_string(kMaxSplits) + "), got " +
           std::to_string(call.num_splits);
  }
  p->q = q.data;
  p->k = call.k_cache.data;
  p->v = call.v_cache.data;
  p->out = call.out.data;
  p->lse = static_cast<float*>(call.lse.data);
  p->q_stride = {seqlen_q * heads * head_dim, heads * head_dim, head_dim};
  p->out_stride = p->q_stride;
  p->k_stride = {call.k_cache.dims[1] * heads_k * head_dim, heads_k * head_dim, head_dim};
  p->v_stride = p->k_stride;
  p->lse_batch_stride = heads * seqlen_q;
  p->lse_head_stride = seqlen_q;
  p->batch = static_cast<int>(batch);
  p->seqlen_q = static_cast<int>(seqlen_q);
  p->seqlen_k = p->cache.capacity;
  p->num_heads = static_cast<int>(heads);
  p->num_heads_k = static_cast<int>(heads_k);
  p->head_dim = static_cast<int>(head_dim);
  if (auto e = FillScoreRule(call.attrs, call.q_descale, call.k_descale, call.v_descale, in, out, p); !e.empty()) {
    return e;
  }
  p->split.num_splits = static_cast<int>(call.num_splits);
  p->split.max_splits = static_cast<int>(max_splits);
  if (call.workspace.dims[0] > 0) {
    p->split.out_accum = static_cast<float*>(call.workspace.data);
    p->split.lse_accum = p->split.out_accum + max_splits * batch * seqlen_q * heads * head_dim;
  }
  return "";
}

}  // namespace jax_fa3
