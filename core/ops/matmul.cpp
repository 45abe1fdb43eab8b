// Matrix product over the last two dims, batched and broadcast over the leading ones,
// through BLAS (CPU) or cuBLAS/cuBLASLt (CUDA) without copying operands that are merely
// transposed. bfloat16 runs on the GPU only: bfloat16 operands and output, float32
// accumulation (cuBLASLt).
#include <algorithm>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops/op_common.h"
#include "kernels/cpu/gemm.h"

#if IM_WITH_CUDA
#include "kernels/cuda/gemm.h"
#endif

namespace im {

namespace {

struct GemmOperand {
  Tensor t;  // batch dims expanded; last two dims row-major or transposed
  bool trans = false;
  int64_t ld = 0;
};

// Uses the operand in place when its last two dims are row-major or column-major.
GemmOperand prepare(const Tensor& t) {
  const int64_t r = t.size(-2), c = t.size(-1);
  const int64_t sr = t.strides()[t.dim() - 2], sc = t.strides()[t.dim() - 1];
  if ((sc == 1 || c == 1) && (sr >= std::max<int64_t>(1, c) || r == 1))
    return {t, false, std::max<int64_t>({sr, c, 1})};
  if ((sr == 1 || r == 1) && (sc >= std::max<int64_t>(1, r) || c == 1))
    return {t, true, std::max<int64_t>({sc, r, 1})};
  Tensor copy = t.contiguous();
  return {copy, false, std::max<int64_t>(c, 1)};
}

// One batch dimension covering all of `batch`, when the operand's batch strides allow
// it (dims of size 1 do not matter): the stride between consecutive matrices, or -1.
int64_t collapsed_batch_stride(const Tensor& t, const Shape& batch) {
  int64_t stride = -1, inner = 1;  // inner: batches spanned by the dims after d
  for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
    if (batch[d] == 1) continue;
    const int64_t sd = t.strides()[d];
    if (stride < 0) {
      stride = sd;
    } else if (sd != stride * inner) {
      return -1;
    }
    inner *= batch[d];
  }
  return stride < 0 ? 0 : stride;
}

// The GEMMs of C[batch..., m, n] = A B as few calls as the strides allow: one GEMM when B
// is shared by every batch and A's rows are evenly spaced across batches (a Linear layer
// over [B, L, d]), one strided-batched GEMM when each operand's batch dims collapse to one
// stride, and a loop over the batches otherwise.
template <typename T>
void run_gemms(const GemmOperand& pa, const GemmOperand& pb, T* c, const Shape& batch, int64_t m,
               int64_t n, int64_t k, bool on_gpu) {
  const T* base_a = static_cast<const T*>(pa.t.data_ptr());
  const T* base_b = static_cast<const T*>(pb.t.data_ptr());
  const int64_t batches = shape_numel(batch);
  // alpha = 1, beta = 0 as T (bfloat16 has no conversion from int; both are exact).
  const T one = convert<T>(1.0f), zero = convert<T>(0.0f);
  auto gemm = [&](int64_t rows, const T* a, int64_t sa, const T* b, int64_t sb, T* cc,
                  int64_t count) {
    if (on_gpu) {
#if IM_WITH_CUDA
      kernels::cuda::gemm_strided_batched<T>(pa.trans, pb.trans, rows, n, k, one, a, pa.ld, sa, b,
                                             pb.ld, sb, zero, cc, n, rows * n, count);
#endif
      return;
    }
    if constexpr (has_cpu_kernel<T>) {
      for (int64_t i = 0; i < count; ++i)
        kernels::cpu::gemm<T>(pa.trans, pb.trans, rows, n, k, one, a + i * sa, pa.ld, b + i * sb,
                              pb.ld, zero, cc + i * rows * n, n);
    }
  };
  const int64_t stride_a = collapsed_batch_stride(pa.t, batch);
  const int64_t stride_b = collapsed_batch_stride(pb.t, batch);
  if (batches == 1 || (stride_b == 0 && !pa.trans && stride_a == m * pa.ld)) {
    gemm(batches * m, base_a, 0, base_b, 0, c, 1);
    return;
  }
  if (stride_a >= 0 && stride_b >= 0) {
    gemm(m, base_a, stride_a, base_b, stride_b, c, batches);
    return;
  }
  const int64_t nb = static_cast<int64_t>(batch.size());
  for (int64_t i = 0; i < batches; ++i) {
    int64_t off_a = 0, off_b = 0, rest = i;
    for (int64_t d = nb - 1; d >= 0; --d) {
      const int64_t idx = rest % batch[d];
      rest /= batch[d];
      off_a += idx * pa.t.strides()[d];
      off_b += idx * pb.t.strides()[d];
    }
    gemm(m, base_a + off_a, 0, base_b + off_b, 0, c + i * m * n, 1);
  }
}

Tensor matmul_forward(const Tensor& a, const Tensor& b) {
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  Shape batch_a(a.shape().begin(), a.shape().end() - 2);
  Shape batch_b(b.shape().begin(), b.shape().end() - 2);
  const Shape batch = broadcast_shapes(batch_a, batch_b, "matmul");
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  if (k == 0) return Tensor::zeros(out_shape, a.dtype(), a.device());
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  if (out.numel() == 0) return out;

  Shape shape_a = batch, shape_b = batch;
  shape_a.insert(shape_a.end(), {m, k});
  shape_b.insert(shape_b.end(), {k, n});
  const GemmOperand pa = prepare(a.detach().expand(shape_a));
  const GemmOperand pb = prepare(b.detach().expand(shape_b));
  dispatch_compute(a.dtype(), a.device(), "matmul", [&]<typename T>() {
    run_gemms<T>(pa, pb, static_cast<T*>(out.data_ptr()), batch, m, n, k, a.device().is_cuda());
  });
  return out;
}

// Gradient of a weight shared by every batch (b is 2-D, a has batch dims): one GEMM over
// all rows, A_flat^T G_flat, instead of a GEMM per batch and a sum over them.
Tensor shared_weight_grad(const Tensor& a, const Tensor& g) {
  const int64_t k = a.size(-1), n = g.size(-1);
  const int64_t rows = a.numel() / std::max<int64_t>(k, 1);
  return matmul(a.reshape({rows, k}).transpose(0, 1), g.reshape({rows, n}));
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  IM_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: operands must have at least 2 dims, got ",
           a.describe(), " and ", b.describe());
  detail::check_same_dtype_device(a, b, "matmul");
  IM_CHECK(a.size(-1) == b.size(-2), "matmul: inner dimensions differ, ", a.describe(), " @ ",
           b.describe());
  Tensor out = matmul_forward(a, b);
  if (any_requires_grad({a, b})) {
    const Tensor as = a.detach(), bs = b.detach();
    record_op("matmul", {a, b}, {out}, [as, bs](const std::vector<Tensor>& g, const auto& needs) {
      Tensor ga, gb;
      if (needs[0]) ga = sum_to(matmul(g[0], bs.transpose(-1, -2)), as.shape());
      if (needs[1])
        gb = bs.dim() == 2 && as.dim() > 2 ? shared_weight_grad(as, g[0])
                                           : sum_to(matmul(as.transpose(-1, -2), g[0]), bs.shape());
      return std::vector<Tensor>{ga, gb};
    });
  }
  return out;
}

}  // namespace im
