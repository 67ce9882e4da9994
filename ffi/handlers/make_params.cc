#include "handlers/make_params.h"

#include <algorithm>
#include <sstream>
#include <utility>

#include "kernels/hopper/tail_split_layout.h"

namespace jax_fa3 {

// Validation helpers, declared in make_params.h (also used by the KV-cache
// target's validation).
std::string ShapeStr(const std::vector<int64_t>& dims) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < dims.size(); ++i) os << (i ? ", " : "") << dims[i];
  if (dims.size() == 1) os << ",";
  os << ")";
  return os.str();
}

int64_t NumElements(const BufferView& b) {
  int64_t n = 1;
  for (int64_t d : b.dims) n *= d;
  return n;
}

std::string Describe(const char* name, const BufferView& b) {
  return std::string(name) + " " + DTypeName(b.dtype) + ShapeStr(b.dims);
}

bool Is16Bit(DType t) { return t == DType::kF16 || t == DType::kBF16; }

// Checks that `b` is absent, a scalar, or (batch, heads_k) float32 and
// fills the descale view.
std::string CheckDescale(const char* name, const BufferView& b, int batch, int heads_k,
                         DType in_dtype, Descale* out) {
  if (NumElements(b) == 0 && !b.dims.empty()) return "";
  if (in_dtype != DType::kF8E4M3) {
    return std::string(name) + " is only allowed for float8_e4m3fn inputs, got " +
           DTypeName(in_dtype) + " inputs";
  }
  if (b.dtype != DType::kF32) return Describe(name, b) + ": descale must be float32";
  out->ptr = static_cast<const float*>(b.data);
  if (b.dims.empty() || (b.dims.size() == 1 && b.dims[0] == 1)) return "";
  if (b.dims.size() == 2 && b.dims[0] == batch && b.dims[1] == heads_k) {
    out->batch_stride = heads_k;
    out->head_stride = 1;
    return "";
  }
  std::ostringstream os;
  os << Describe(name, b) << ": expected a scalar or shape (" << batch << ", " << heads_k
     << ") = (batch, num_heads_k)";
  return os.str();
}

std::string CheckInt32Vector(const char* name, const BufferView& b, int64_t expected_len) {
  if (b.dtype != DType::kS32 || b.dims.size() != 1 || b.dims[0] != expected_len) {
    std::ostringstream os;
    os << Describe(name, b) << ": expected int32(" << expected_len << ",)";
    return os.str();
  }
  return "";
}

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF16: return "float16";
    case DType::kBF16: return "bfloat16";
    case DType::kF8E4M3: return "float8_e4m3fn";
    case DType::kF32: return "float32";
    case DType::kS32: return "int32";
    default: return "unsupported-dtype";
  }
}

// The fields every call shares once shapes are known (p->batch and
// p->num_heads_k set): descales, softmax scale, softcap, window, dtypes.
std::string FillScoreRule(const AttentionAttrs& a, const BufferView& q_descale, const BufferView& k_descale,
                          const BufferView& v_descale, DType in, DType out, AttentionParams* p) {
  if (!(a.softmax_scale > 0.f)) return "softmax_scale must be positive, got " + std::to_string(a.softmax_scale);
  if (a.softcap < 0.f) return "softcap must be >= 0, got " + std::to_string(a.softcap);
  if (a.window_left < -1 || a.window_right < -1) return "window_size entries must be >= -1";
  struct DescaleArg {
    const char* name;
    const BufferView* view;
    Descale* dst;
  };
  for (const DescaleArg& d : {DescaleArg{"q_descale", &q_descale, &p->q_descale},
                              DescaleArg{"k_descale", &k_descale, &p->k_descale},
                              DescaleArg{"v_descale", &v_descale, &p->v_descale}}) {
    if (auto e = CheckDescale(d.name, *d.view, p->batch, p->num_heads_k, in, d.dst); !e.empty()) return e;
  }
  p->softmax_scale = a.softmax_scale;
  p->softcap = a.softcap;
  p->window_left = static_cast<int>(a.window_left < 0 ? -1 : std::min<int64_t>(a.window_left, kMaxInt));
  p->window_right = static_cast<int>(a.window_right < 0 ? -1 : std::min<int64_t>(a.window_right, kMaxInt));
  if (a.causal) p->window_right = 0;
  p->in_dtype = in;
  p->out_dtype = out;
  return "";
}

std::string MakeParams(const AttentionCall& call, AttentionParams* p) {
  const size_t rank = call.varlen ? 3 : 4;
  for (auto [name, buf] : {std::pair<const char*, const BufferView*>{"q", &call.q},
                           {"k", &call.k}, {"v", &call.v}}) {
    if (buf->dims.size() != rank) {
      return Describe(name, *buf) + ": expected rank " + std::to_string(rank);
    }
  }
  const DType in = call.q.dtype;
  if (!Is16Bit(in) && in != DType::kF8E4M3) {
    return Describe("q", call.q) + ": expected float16, bfloat16 or float8_e4m3fn";
  }
  if (call.k.dtype != in || call.v.dtype != in) {
    return "q, k and v must share a dtype, got " + Describe("q", call.q) + ", " +
           Describe("k", call.k) + ", " + Describe("v", call.v);
  }
  const auto& qd = call.q.dims;
  const auto& kd = call.k.dims;
  if (call.v.dims != kd) return Describe("v", call.v) + " must match " + Describe("k", call.k);
  const int64_t head_dim = qd[rank - 1];
  const int64_t heads = qd[rank - 2];
  const int64_t heads_k = kd[rank - 2];
  if (kd[rank - 1] != head_dim) {
    return Describe("k", call.k) + ": head_dim must match " + Describe("q", call.q);
  }
  if (head_dim < 8 || head_dim > 256 || head_dim % 8 != 0) {
    return Describe("q", call.q) + ": head_dim must be a multiple of 8 in [8, 256], got " +
           std::to_string(head_dim);
  }
  if (heads < 1 || heads_k < 1 || heads % heads_k != 0) {
    return "num_heads (" + std::to_string(heads) + ") must be a positive multiple of num_heads_k (" +
           std::to_string(heads_k) + ")";
  }
  int64_t batch = 0;
  if (call.varlen) {
    batch = call.cu_seqlens_q.dims.empty() ? 0 : call.cu_seqlens_q.dims[0] - 1;
    if (batch < 1) return Describe("cu_seqlens_q", call.cu_seqlens_q) + ": expected int32(batch + 1,) with batch >= 1";
    if (auto e = CheckInt32Vector("cu_seqlens_q", call.cu_seqlens_q, batch + 1); !e.empty()) return e;
    if (auto e = CheckInt32Vector("cu_seqlens_k", call.cu_seqlens_k, batch + 1); !e.empty()) return e;
    if (NumElements(call.seqused_k) > 0 || call.seqused_k.dims.empty()) {
      if (auto e = CheckInt32Vector("seqused_k", call.seqused_k, batch); !e.empty()) return e;
    }
  } else {
    batch = qd[0];
    if (kd[0] != batch) return Describe("k", call.k) + ": batch must match " + Describe("q", call.q);
  }
  const int64_t rows_q = qd[rank - 3];
  const int64_t rows_k = kd[rank - 3];
  if (batch * rows_q * heads * head_dim > kMaxInt * 8 || rows_q > kMaxInt || rows_k > kMaxInt) {
    return Describe("q", call.q) + ": too large for 32-bit row indexing";
  }

  const DType out = call.out.dtype;
  if (Is16Bit(in) ? out != in : !Is16Bit(out)) {
    return Describe("out", call.out) + ": output dtype must be " +
           (Is16Bit(in) ? DTypeName(in) : "float16 or bfloat16") + " for " + DTypeName(in) + " inputs";
  }
  if (call.out.dims != qd) return Describe("out", call.out) + " must have the shape of " + Describe("q", call.q);
  const std::vector<int64_t> lse_dims =
      call.varlen ? std::vector<int64_t>{heads, rows_q} : std::vector<int64_t>{batch, heads, rows_q};
  if (call.lse.dtype != DType::kF32 || call.lse.dims != lse_dims) {
    return Describe("lse", call.lse) + ": expected float32" + ShapeStr(lse_dims);
  }
  if (call.scratch.dtype != DType::kS32 || call.scratch.dims.size() != 1 || call.scratch.dims[0] < 1) {
    return Describe("scratch", call.scratch) + ": expected int32(n,) with n >= 1";
  }

  p->q = call.q.data;
  p->k = call.k.data;
  p->v = call.v.data;
  p->out = call.out.data;
  p->lse = static_cast<float*>(call.lse.data);
  p->tile_counter = static_cast<int32_t*>(call.scratch.data);
  const int64_t scratch_bytes = call.scratch.dims[0] * int64_t{sizeof(int32_t)};
  if (!call.varlen && scratch_bytes > hopper::kTailScratchOffset) {
    p->tail_scratch = static_cast<char*>(call.scratch.data) + hopper::kTailScratchOffset;
    p->tail_scratch_bytes = scratch_bytes - hopper::kTailScratchOffset;
  }
  p->q_stride = {call.varlen ? 0 : rows_q * heads * head_dim, heads * head_dim, head_dim};
  p->k_stride = {call.varlen ? 0 : rows_k * heads_k * head_dim, heads_k * head_dim, head_dim};
  p->v_stride = p->k_stride;
  p->out_stride = p->q_stride;
  p->lse_batch_stride = call.varlen ? 0 : heads * rows_q;
  p->lse_head_stride = rows_q;
  if (call.varlen) {
    p->cu_seqlens_q = static_cast<const int32_t*>(call.cu_seqlens_q.data);
    p->cu_seqlens_k = static_cast<const int32_t*>(call.cu_seqlens_k.data);
    p->seqused_k = NumElements(call.seqused_k) > 0 ? static_cast<const int32_t*>(call.seqused_k.data) : nullptr;
  }
  p->batch = static_cast<int>(batch);
  p->seqlen_q = static_cast<int>(rows_q);
  p->seqlen_k = static_cast<int>(rows_k);
  p->num_heads = static_cast<int>(heads);
  p->num_heads_k = static_cast<int>(heads_k);
  p->head_dim = static_cast<int>(head_dim);
  return FillScoreRule(call.attrs, call.q_descale, call.k_descale, call.v_descale, in, out, p);
}

}  // namespace jax_fa3
