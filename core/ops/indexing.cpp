// Index-driven ops: embedding, gather / scatter_add, where, masked_fill and topk.
// Index tensors are made contiguous once and range-checked before any kernel reads
// through them, so a bad id is an im::Error naming it, never an out-of-bounds read.
// On CUDA tensors that check reads one int64 back from the device (a stream sync).
// Values are float32 or float64 anywhere and bfloat16 on a GPU; sums over repeated
// indices (embedding and gather backward, scatter_add) accumulate in float32 for
// bfloat16 and are rounded once.
#include <optional>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops/last_dim.h"
#include "core/ops/op_common.h"
#include "kernels/cpu/indexing.h"

#if IM_WITH_CUDA
#include "kernels/cuda/graph.h"
#include "kernels/cuda/indexing.h"
#include "kernels/cuda/runtime.h"
#endif

namespace im {

namespace {

struct BadIndex {
  int64_t position;  // in row-major order of the index tensor
  int64_t value;
};

// The first entry of a contiguous index tensor outside [0, limit), if any.
std::optional<BadIndex> find_bad_index(const Tensor& index, int64_t limit, const char* op) {
  return dispatch_index(index.dtype(), op, [&]<typename I>() -> std::optional<BadIndex> {
    const I* p = index.data<I>();
    if (index.device().is_cpu()) {
      const int64_t pos = kernels::cpu::first_out_of_range<I>(p, index.numel(), limit);
      if (pos < 0) return std::nullopt;
      return BadIndex{pos, static_cast<int64_t>(p[pos])};
    }
#if IM_WITH_CUDA
    // A step being captured into a CUDA graph cannot read a value back: the indices there
    // are the model's own (in range by construction) or the batch's labels, which a replay
    // checks on the host before it launches (launch/train_step.cpp).
    if (kernels::cuda::stream_capturing(kernels::cuda::current_stream())) return std::nullopt;
    const Tensor scratch = Tensor::empty({1}, DType::Int64, index.device());
    const int64_t pos =
        kernels::cuda::first_out_of_range<I>(p, index.numel(), limit, scratch.data<int64_t>());
    if (pos < 0) return std::nullopt;
    I value{};
    kernels::cuda::memcpy_device_to_host(&value, p + pos, sizeof(I));
    return BadIndex{pos, static_cast<int64_t>(value)};
#else
    throw Error(detail::concat(op, ": ", index.describe(), ": ", cuda_unavailable_reason()));
#endif
  });
}

void check_index_tensor(const Tensor& index, const char* op, const char* arg) {
  IM_CHECK(index.defined(), op, ": ", arg, " is undefined");
  IM_CHECK(index.dtype() == DType::Int32 || index.dtype() == DType::Int64, op, ": ", arg,
           " must be an int32 or int64 tensor, got ", index.describe());
}

// bfloat16 passes here; dispatch_compute then rejects it on the CPU with its own message.
void check_float_tensor(const Tensor& t, const char* op, const char* arg) {
  IM_CHECK(t.defined(), op, ": ", arg, " is undefined");
  IM_CHECK(is_floating(t.dtype()), op, ": ", arg,
           " must be a float32, float64 or bfloat16 tensor, got ", t.describe());
}

void check_mask_tensor(const Tensor& m, const char* op, const char* arg) {
  IM_CHECK(m.defined(), op, ": ", arg, " is undefined");
  IM_CHECK(m.dtype() == DType::UInt8, op, ": ", arg, " must be a uint8 tensor, got ", m.describe());
}

// Index, mask or condition tensors must live where the data does.
void check_same_device(const Tensor& data, const Tensor& t, const char* op, const char* arg) {
  IM_CHECK(t.device() == data.device(), op, ": ", arg, " ", t.describe(),
           " must be on the same device as ", data.describe());
}

// ---- gather / scatter-add cores, shared by topk's backward -----------------------------

// The dtype sums over repeated indices run in: float32 for bfloat16 (float atomics, and
// no bfloat16 rounding per addition), the values' own dtype otherwise.
DType accumulate_dtype(DType values) {
  return values == DType::BFloat16 ? DType::Float32 : values;
}

// An accumulator back in the values' dtype: a float32 accumulator of bfloat16 values is
// rounded once here; other accumulators already are in it.
Tensor from_accumulator(const Tensor& acc, DType dtype) {
  return acc.dtype() == dtype ? acc : acc.to(dtype);
}

// out (index's shape) = x gathered along dim; index contiguous and already validated.
Tensor gather_kernel(const Tensor& x, int64_t dim, const Tensor& index) {
  Tensor out = Tensor::empty(index.shape(), x.dtype(), x.device());
  const Tensor xd = x.detach();
  dispatch_compute(x.dtype(), x.device(), "gather", [&]<typename T>() {
    dispatch_index(index.dtype(), "gather", [&]<typename I>() {
      if constexpr (has_cpu_kernel<T>) {
        if (x.device().is_cpu()) {
          kernels::cpu::gather<T, I>(xd.data<T>(), xd.strides(), dim, index.data<I>(),
                                     out.data<T>(), index.shape());
          return;
        }
      }
#if IM_WITH_CUDA
      kernels::cuda::gather<T, I>(xd.data<T>(), xd.strides(), dim, index.data<I>(), out.data<T>(),
                                  index.shape());
#endif
    });
  });
  return out;
}

// acc (in accumulate_dtype(src.dtype()), modified in place) += src scattered along dim
// over index's shape.
void scatter_add_kernel(Tensor& acc, int64_t dim, const Tensor& index, const Tensor& src) {
  const Tensor sd = src.detach();
  dispatch_compute(src.dtype(), src.device(), "scatter_add", [&]<typename T>() {
    dispatch_index(index.dtype(), "scatter_add", [&]<typename I>() {
      if constexpr (has_cpu_kernel<T>) {
        if (acc.device().is_cpu()) {
          kernels::cpu::scatter_add<T, I>(acc.data<T>(), acc.strides(), dim, index.data<I>(),
                                          sd.data<T>(), sd.strides(), index.shape());
          return;
        }
      }
#if IM_WITH_CUDA
      kernels::cuda::scatter_add<T, I>(acc.data<compute_t<T>>(), acc.strides(), dim,
                                       index.data<I>(), sd.data<T>(), sd.strides(), index.shape());
#endif
    });
  });
}

// A zero tensor of `shape` plus src scattered along dim: the backward of gather and topk.
Tensor scatter_into_zeros(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  Tensor acc = Tensor::zeros(shape, accumulate_dtype(src.dtype()), src.device());
  scatter_add_kernel(acc, dim, index, src);
  return from_accumulator(acc, src.dtype());
}

// ---- where / masked_fill cores, shared with their backward ----------------------------

Tensor where_kernel(const Tensor& cond, const Tensor& a, const Tensor& b, const Shape& shape) {
  const Tensor ec = cond.detach().expand(shape), ea = a.detach().expand(shape),
               eb = b.detach().expand(shape);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  dispatch_compute(a.dtype(), a.device(), "where", [&]<typename T>() {
    if constexpr (has_cpu_kernel<T>) {
      if (a.device().is_cpu()) {
        kernels::cpu::where<T>(ec.data<uint8_t>(), ec.strides(), ea.data<T>(), ea.strides(),
                               eb.data<T>(), eb.strides(), out.data<T>(), shape);
        return;
      }
    }
#if IM_WITH_CUDA
    kernels::cuda::where<T>(ec.data<uint8_t>(), ec.strides(), ea.data<T>(), ea.strides(),
                            eb.data<T>(), eb.strides(), out.data<T>(), shape);
#endif
  });
  return out;
}

Tensor masked_fill_kernel(const Tensor& x, const Tensor& mask, double value) {
  const Tensor xd = x.detach(), em = mask.detach().expand(x.shape());
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_compute(x.dtype(), x.device(), "masked_fill", [&]<typename T>() {
    if constexpr (has_cpu_kernel<T>) {
      if (x.device().is_cpu()) {
        kernels::cpu::masked_fill<T>(xd.data<T>(), xd.strides(), em.data<uint8_t>(), em.strides(),
                                     static_cast<T>(value), out.data<T>(), x.shape());
        return;
      }
    }
#if IM_WITH_CUDA
    kernels::cuda::masked_fill<T>(xd.data<T>(), xd.strides(), em.data<uint8_t>(), em.strides(),
                                  convert<T>(value), out.data<T>(), x.shape());
#endif
  });
  return out;
}

// Shared shape rules of gather and scatter_add (torch semantics).
void check_gather_shapes(const Tensor& x, int64_t dim, const Tensor& index, const char* op,
                         const char* x_arg) {
  IM_CHECK(index.dim() == x.dim(), op, ": index ", index.describe(), " must have as many dims as ",
           x_arg, " ", x.describe());
  for (int64_t d = 0; d < x.dim(); ++d) {
    IM_CHECK(d == dim || index.size(d) <= x.size(d), op, ": index ", index.describe(),
             " is larger than ", x_arg, " ", x.describe(), " in dimension ", d);
  }
}

void check_index_values(const Tensor& index, int64_t dim, int64_t limit, const char* op) {
  if (auto bad = find_bad_index(index, limit, op)) {
    throw Error(detail::concat(op, ": index ", bad->value, " at position ", bad->position, " of ",
                               index.describe(), " is out of range for dimension ", dim,
                               " of size ", limit));
  }
}

}  // namespace

// ---- embedding ------------------------------------------------------------------------

Tensor embedding(const Tensor& table, const Tensor& ids, int64_t padding_idx) {
  check_float_tensor(table, "embedding", "table");
  check_index_tensor(ids, "embedding", "ids");
  check_same_device(table, ids, "embedding", "ids");
  IM_CHECK(table.dim() == 2, "embedding: table must be [vocab, width], got ", table.describe());
  const int64_t vocab = table.size(0), width = table.size(1);
  IM_CHECK(padding_idx < vocab, "embedding: padding_idx ", padding_idx,
           " out of range for a table of ", vocab, " rows");
  const Tensor ids_c = ids.detach().contiguous();
  if (auto bad = find_bad_index(ids_c, vocab, "embedding")) {
    throw Error(detail::concat("embedding: id ", bad->value, " at position ", bad->position, " of ",
                               ids.describe(), " is out of range [0, ", vocab, ") for a table of ",
                               vocab, " rows"));
  }
  Shape out_shape = ids.shape();
  out_shape.push_back(width);
  Tensor out = Tensor::empty(out_shape, table.dtype(), table.device());
  const Tensor tc = table.detach().contiguous();
  const int64_t n = ids.numel();
  dispatch_compute(table.dtype(), table.device(), "embedding", [&]<typename T>() {
    dispatch_index(ids_c.dtype(), "embedding", [&]<typename I>() {
      if constexpr (has_cpu_kernel<T>) {
        if (table.device().is_cpu()) {
          kernels::cpu::embedding_forward<T, I>(tc.data<T>(), ids_c.data<I>(), out.data<T>(), n,
                                                width);
          return;
        }
      }
#if IM_WITH_CUDA
      kernels::cuda::embedding_forward<T, I>(tc.data<T>(), ids_c.data<I>(), out.data<T>(), n,
                                             width);
#endif
    });
  });
  const DType dtype = table.dtype();
  const Device device = table.device();
  record_op("embedding", {table}, {out},
            [ids_c, vocab, width, n, padding_idx, dtype, device](const std::vector<Tensor>& g,
                                                                 const auto&) {
              const Tensor gc = g[0].contiguous();
              Tensor acc = Tensor::zeros({vocab, width}, accumulate_dtype(dtype), device);
              dispatch_compute(dtype, device, "embedding", [&]<typename T>() {
                dispatch_index(ids_c.dtype(), "embedding", [&]<typename I>() {
                  if constexpr (has_cpu_kernel<T>) {
                    if (device.is_cpu()) {
                      kernels::cpu::embedding_backward<T, I>(gc.data<T>(), ids_c.data<I>(),
                                                             acc.data<T>(), n, width, padding_idx);
                      return;
                    }
                  }
#if IM_WITH_CUDA
                  kernels::cuda::embedding_backward<T, I>(gc.data<T>(), ids_c.data<I>(),
                                                          acc.data<compute_t<T>>(), n, width,
                                                          padding_idx);
#endif
                });
              });
              return std::vector<Tensor>{from_accumulator(acc, dtype)};
            });
  return out;
}

// ---- gather / scatter_add -------------------------------------------------------------

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_float_tensor(x, "gather", "x");
  check_index_tensor(index, "gather", "index");
  check_same_device(x, index, "gather", "index");
  IM_CHECK(x.dim() >= 1, "gather: x must have at least 1 dimension, got ", x.describe());
  dim = wrap_dim(dim, x.dim(), "gather");
  check_gather_shapes(x, dim, index, "gather", "x");
  const Tensor ic = index.detach().contiguous();
  check_index_values(ic, dim, x.size(dim), "gather");
  Tensor out = gather_kernel(x, dim, ic);
  const Shape x_shape = x.shape();
  record_op("gather", {x}, {out}, [ic, dim, x_shape](const std::vector<Tensor>& g, const auto&) {
    return std::vector<Tensor>{scatter_into_zeros(x_shape, dim, ic, g[0])};
  });
  return out;
}

Tensor scatter_add(const Tensor& base, int64_t dim, const Tensor& index, const Tensor& src) {
  check_float_tensor(base, "scatter_add", "base");
  check_float_tensor(src, "scatter_add", "src");
  check_index_tensor(index, "scatter_add", "index");
  detail::check_same_dtype_device(base, src, "scatter_add");
  check_same_device(base, index, "scatter_add", "index");
  IM_CHECK(base.dim() >= 1, "scatter_add: base must have at least 1 dimension, got ",
           base.describe());
  dim = wrap_dim(dim, base.dim(), "scatter_add");
  check_gather_shapes(base, dim, index, "scatter_add", "base");
  IM_CHECK(src.dim() == index.dim(), "scatter_add: src ", src.describe(),
           " must have as many dims as index ", index.describe());
  for (int64_t d = 0; d < src.dim(); ++d) {
    IM_CHECK(index.size(d) <= src.size(d), "scatter_add: index ", index.describe(),
             " is larger than src ", src.describe(), " in dimension ", d);
  }
  const Tensor ic = index.detach().contiguous();
  check_index_values(ic, dim, base.size(dim), "scatter_add");
  const Tensor bd = base.detach();
  const DType acc_dtype = accumulate_dtype(base.dtype());
  Tensor acc = acc_dtype == base.dtype() ? bd.clone() : bd.to(acc_dtype);
  scatter_add_kernel(acc, dim, ic, src);
  Tensor out = from_accumulator(acc, base.dtype());
  const Shape src_shape = src.shape();
  record_op("scatter_add", {base, src}, {out},
            [ic, dim, src_shape](const std::vector<Tensor>& g, const auto& needs) {
              Tensor dsrc;
              if (needs[1]) {
                // Only the index-shaped leading block of src was read; the rest gets zero.
                const Tensor gathered = gather_kernel(g[0], dim, ic);
                if (ic.shape() == src_shape) {
                  dsrc = gathered;
                } else {
                  dsrc = Tensor::zeros(src_shape, g[0].dtype(), g[0].device());
                  Tensor window = dsrc.detach();
                  for (int64_t d = 0; d < ic.dim(); ++d) window = window.slice(d, 0, ic.size(d));
                  window.copy_(gathered);
                }
              }
              return std::vector<Tensor>{needs[0] ? g[0] : Tensor(), dsrc};
            });
  return out;
}

// ---- where / masked_fill ----------------------------------------------------------------

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_mask_tensor(cond, "where", "cond");
  check_float_tensor(a, "where", "a");
  check_float_tensor(b, "where", "b");
  detail::check_same_dtype_device(a, b, "where");
  check_same_device(a, cond, "where", "cond");
  const Shape shape =
      broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape(), "where"), "where");
  Tensor out = where_kernel(cond, a, b, shape);
  const Tensor cs = cond.detach();
  const Shape sa = a.shape(), sb = b.shape();
  record_op("where", {a, b}, {out},
            [cs, sa, sb, shape](const std::vector<Tensor>& g, const auto& needs) {
              const Tensor zero = Tensor::zeros({}, g[0].dtype(), g[0].device());
              return std::vector<Tensor>{
                  needs[0] ? sum_to(where_kernel(cs, g[0], zero, shape), sa) : Tensor(),
                  needs[1] ? sum_to(where_kernel(cs, zero, g[0], shape), sb) : Tensor()};
            });
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_float_tensor(x, "masked_fill", "x");
  check_mask_tensor(mask, "masked_fill", "mask");
  check_same_device(x, mask, "masked_fill", "mask");
  IM_CHECK(broadcast_shapes(mask.shape(), x.shape(), "masked_fill") == x.shape(),
           "masked_fill: mask ", mask.describe(), " does not broadcast to x's shape ",
           shape_str(x.shape()));
  Tensor out = masked_fill_kernel(x, mask, value);
  const Tensor ms = mask.detach();
  record_op("masked_fill", {x}, {out}, [ms](const std::vector<Tensor>& g, const auto&) {
    return std::vector<Tensor>{masked_fill_kernel(g[0], ms, 0.0)};
  });
  return out;
}

// ---- topk -------------------------------------------------------------------------------

TopK topk(const Tensor& x, int64_t k, int64_t dim) {
  check_float_tensor(x, "topk", "x");
  IM_CHECK(x.dim() >= 1, "topk: x must have at least 1 dimension, got ", x.describe());
  const detail::LastDimPlan p = detail::plan_last_dim(x.shape(), dim, "topk");
  IM_CHECK(k >= 0 && k <= p.cols, "topk: k = ", k, " out of range [0, ", p.cols, "] for dimension ",
           p.dim, " of ", x.describe());
  const Tensor rows = detail::to_rows(x, p);
  Shape rows_shape = rows.shape();
  rows_shape.back() = k;
  Tensor values_rows = Tensor::empty(rows_shape, x.dtype(), x.device());
  Tensor indices_rows = Tensor::empty(rows_shape, DType::Int64, x.device());
  dispatch_compute(x.dtype(), x.device(), "topk", [&]<typename T>() {
    if constexpr (has_cpu_kernel<T>) {
      if (x.device().is_cpu()) {
        kernels::cpu::topk_rows<T>(rows.data<T>(), values_rows.data<T>(),
                                   indices_rows.data<int64_t>(), p.rows, p.cols, k);
        return;
      }
    }
#if IM_WITH_CUDA
    kernels::cuda::topk_rows<T>(rows.data<T>(), values_rows.data<T>(), indices_rows.data<int64_t>(),
                                p.rows, p.cols, k);
#endif
  });
  TopK result{detail::from_rows(values_rows, p), detail::from_rows(indices_rows, p)};
  if (any_requires_grad({x})) {
    // values = gather(x, dim, indices), so the gradient scatters back to the picks.
    const Tensor idx = result.indices.detach();
    const Shape x_shape = x.shape();
    const int64_t d = p.dim;
    record_op("topk", {x}, {result.values},
              [idx, d, x_shape](const std::vector<Tensor>& g, const auto&) {
                return std::vector<Tensor>{scatter_into_zeros(x_shape, d, idx, g[0])};
              });
  }
  return result;
}

}  // namespace im
