// Matrix product over the last two dims, batched and broadcast over the leading ones,
// through BLAS without copying operands that are merely transposed.
#include <algorithm>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops/op_common.h"
#include "kernels/cpu/gemm.h"

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

Tensor matmul_forward(const Tensor& a, const Tensor& b) {
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  Shape batch_a(a.shape().begin(), a.shape().end() - 2);
  Shape batch_b(b.shape().begin(), b.shape().end() - 2);
  const Shape batch = broadcast_shapes(batch_a, batch_b, "matmul");
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  if (out.numel() == 0) return out;

  Shape shape_a = batch, shape_b = batch;
  shape_a.insert(shape_a.end(), {m, k});
  shape_b.insert(shape_b.end(), {k, n});
  const GemmOperand pa = prepare(a.detach().expand(shape_a));
  const GemmOperand pb = prepare(b.detach().expand(shape_b));
  const int64_t batches = shape_numel(batch);
  const int64_t nb = static_cast<int64_t>(batch.size());

  dispatch_float(a.dtype(), "matmul", [&]<typename T>() {
    const T* base_a = static_cast<const T*>(pa.t.data_ptr());
    const T* base_b = static_cast<const T*>(pb.t.data_ptr());
    T* base_c = static_cast<T*>(out.data_ptr());
    for (int64_t i = 0; i < batches; ++i) {
      int64_t off_a = 0, off_b = 0, rest = i;
      for (int64_t d = nb - 1; d >= 0; --d) {
        const int64_t idx = rest % batch[d];
        rest /= batch[d];
        off_a += idx * pa.t.strides()[d];
        off_b += idx * pb.t.strides()[d];
      }
      T* c = base_c + i * m * n;
      if (k == 0) {
        for (int64_t j = 0; j < m * n; ++j) c[j] = T(0);
        continue;
      }
      kernels::cpu::gemm<T>(pa.trans, pb.trans, m, n, k, T(1), base_a + off_a, pa.ld,
                            base_b + off_b, pb.ld, T(0), c, n);
    }
  });
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  IM_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: operands must have at least 2 dims, got ",
           a.describe(), " and ", b.describe());
  detail::check_same_dtype_device(a, b, "matmul");
  detail::require_cpu(a, "matmul");
  IM_CHECK(a.size(-1) == b.size(-2), "matmul: inner dimensions differ, ", a.describe(), " @ ",
           b.describe());
  Tensor out = matmul_forward(a, b);
  if (any_requires_grad({a, b})) {
    const Tensor as = a.detach(), bs = b.detach();
    record_op("matmul", {a, b}, {out}, [as, bs](const std::vector<Tensor>& g, const auto& needs) {
      Tensor ga, gb;
      if (needs[0]) ga = sum_to(matmul(g[0], bs.transpose(-1, -2)), as.shape());
      if (needs[1]) gb = sum_to(matmul(as.transpose(-1, -2), g[0]), bs.shape());
      return std::vector<Tensor>{ga, gb};
    });
  }
  return out;
}

}  // namespace im
