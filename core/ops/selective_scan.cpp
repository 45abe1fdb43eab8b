// Selective SSM scan (MODEL.md §3): the sequential CPU reference with its hand-derived
// backward, and the CUDA kernels (kernels/cuda/selective_scan.h) for GPU tensors (float32,
// float64, and bfloat16, which computes in float). Both backwards recompute the forward
// states, so forward keeps only its inputs.
//
// With bfloat16 activations the parameters A and D may be bfloat16 too or float32 (MODEL.md
// keeps A_log and D float32 under bf16 training); the kernels take them, and give dA, dD, in
// float32 either way, so a bfloat16 A or D is widened on the way in and its gradient is
// rounded once on the way out.
#include "kernels/cpu/selective_scan.h"
#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops/op_common.h"

#if IM_WITH_CUDA
#include "kernels/cuda/selective_scan.h"
#endif

namespace im {

namespace {

constexpr const char* kOp = "selective_scan";

void check_shape(const Tensor& t, const char* arg, const Shape& expected, const char* layout) {
  IM_CHECK(t.defined(), kOp, ": ", arg, " must be defined");
  IM_CHECK(t.shape() == expected, kOp, ": ", arg, " must be ", layout, " = ", shape_str(expected),
           ", got ", t.describe());
}

// The dtype the kernels take A and D in for activations of dtype t (their compute type).
DType param_dtype(DType t) {
  return t == DType::BFloat16 ? DType::Float32 : t;
}

// A or D: on u's device, in u's dtype or in the kernels' parameter dtype.
void check_param(const Tensor& u, const Tensor& p, const char* arg) {
  IM_CHECK(p.device() == u.device(), kOp, ": device mismatch, ", u.describe(), " and ", arg, " ",
           p.describe());
  const bool bf16 = u.dtype() == DType::BFloat16;
  IM_CHECK(p.dtype() == u.dtype() || p.dtype() == param_dtype(u.dtype()), kOp, ": dtype mismatch, ",
           arg, " ", p.describe(), " must be ", dtype_name(u.dtype()), bf16 ? " or float32" : "",
           " like u ", u.describe());
}

}  // namespace

Tensor selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                      const Tensor& Cm, const Tensor& D, const Tensor& inject, bool reverse) {
  IM_CHECK(u.defined(), kOp, ": u must be defined");
  IM_CHECK(u.dim() == 3, kOp, ": u must be [B, L, E], got ", u.describe());
  IM_CHECK(A.defined(), kOp, ": A must be defined");
  IM_CHECK(A.dim() == 2 && A.size(0) == u.size(2), kOp, ": A must be [E, N] with E = ", u.size(2),
           ", got ", A.describe());
  kernels::cpu::ScanDims dims;
  dims.batch = u.size(0);
  dims.len = u.size(1);
  dims.inner = u.size(2);
  dims.state = A.size(1);
  dims.reverse = reverse;
  const int64_t B = dims.batch, L = dims.len, E = dims.inner, N = dims.state;
  check_shape(delta, "delta", {B, L, E}, "[B, L, E]");
  check_shape(Bm, "Bm", {B, L, N}, "[B, L, N]");
  check_shape(Cm, "Cm", {B, L, N}, "[B, L, N]");
  check_shape(D, "D", {E}, "[E]");
  if (inject.defined()) check_shape(inject, "inject", {B, L, E}, "[B, L, E]");
  for (const Tensor* t : {&delta, &Bm, &Cm, &inject})
    if (t->defined()) detail::check_same_dtype_device(u, *t, kOp);
  check_param(u, A, "A");
  check_param(u, D, "D");
  const bool on_gpu = u.device().is_cuda();
#if IM_WITH_CUDA
  if (on_gpu)
    IM_CHECK(N <= kernels::cuda::kScanMaxState, kOp,
             ": the CUDA kernel takes a state size N of at most ", kernels::cuda::kScanMaxState,
             ", got A ", A.describe());
#else
  detail::require_cpu(u, kOp);
#endif

  // Contiguous, detached operands: the kernel reads raw pointers and backward keeps these.
  auto prep = [](const Tensor& t) { return t.defined() ? t.detach().contiguous() : Tensor(); };
  // A and D in the parameter dtype (a no-op unless they are bfloat16).
  const DType pt = param_dtype(u.dtype());
  const Tensor uc = prep(u), dc = prep(delta), ac = prep(A).to(pt), bc = prep(Bm), cc = prep(Cm),
               Dc = prep(D).to(pt), ic = prep(inject);
  Tensor y = Tensor::empty({B, L, E}, u.dtype(), u.device());
  dispatch_compute(u.dtype(), u.device(), kOp, [&]<typename T>() {
    auto ptr = [](const Tensor& t) {
      return t.defined() ? static_cast<T*>(t.data_ptr()) : static_cast<T*>(nullptr);
    };
    if constexpr (has_cpu_kernel<T>) {
      if (!on_gpu) {
        kernels::cpu::selective_scan<T>(ptr(uc), ptr(dc), ptr(ac), ptr(bc), ptr(cc), ptr(Dc),
                                        ptr(ic), ptr(y), dims);
        return;
      }
    }
#if IM_WITH_CUDA
    auto param = [](const Tensor& t) { return static_cast<compute_t<T>*>(t.data_ptr()); };
    kernels::cuda::selective_scan<T>(ptr(uc), ptr(dc), param(ac), ptr(bc), ptr(cc), param(Dc),
                                     ptr(ic), ptr(y), dims);
#endif
  });

  if (any_requires_grad({u, delta, A, Bm, Cm, D, inject})) {
    const DType a_dtype = A.dtype(), d_dtype = D.dtype();
    record_op(
        kOp, {u, delta, A, Bm, Cm, D, inject}, {y},
        [uc, dc, ac, bc, cc, Dc, ic, dims, a_dtype, d_dtype](const std::vector<Tensor>& g,
                                                             const auto& needs) {
          // In the op's dtype: a bfloat16 y may get a float32 gradient from its consumer.
          const Tensor gc = g[0].to(uc.dtype()).contiguous();
          auto like = [](const Tensor& t) {
            return Tensor::empty(t.shape(), t.dtype(), t.device());
          };
          // The kernel produces every gradient in one sweep; unneeded ones are
          // dropped below (dinject is skipped outright when not wanted).
          Tensor du = like(uc), ddelta = like(dc), dA = like(ac), dBm = like(bc), dCm = like(cc),
                 dD = like(Dc);
          Tensor dinject = ic.defined() && needs[6] ? like(ic) : Tensor();
          dispatch_compute(uc.dtype(), uc.device(), kOp, [&]<typename T>() {
            auto ptr = [](const Tensor& t) {
              return t.defined() ? static_cast<T*>(t.data_ptr()) : static_cast<T*>(nullptr);
            };
            if constexpr (has_cpu_kernel<T>) {
              if (uc.device().is_cpu()) {
                kernels::cpu::selective_scan_backward<T>(
                    ptr(gc), ptr(uc), ptr(dc), ptr(ac), ptr(bc), ptr(cc), ptr(Dc), ptr(ic), ptr(du),
                    ptr(ddelta), ptr(dA), ptr(dBm), ptr(dCm), ptr(dD), ptr(dinject), dims);
                return;
              }
            }
#if IM_WITH_CUDA
            using C = compute_t<T>;
            auto param = [](const Tensor& t) { return static_cast<C*>(t.data_ptr()); };
            // States at chunk boundaries (and bfloat16's float sums of dBm, dCm), in the
            // compute type, alive for this call only.
            const Tensor workspace =
                Tensor::empty({kernels::cuda::selective_scan_workspace_elems<T>(dims)},
                              dtype_of<C>(), uc.device());
            kernels::cuda::selective_scan_backward<T>(
                ptr(gc), ptr(uc), ptr(dc), param(ac), ptr(bc), ptr(cc), param(Dc), ptr(ic), ptr(du),
                ptr(ddelta), param(dA), ptr(dBm), ptr(dCm), param(dD), ptr(dinject),
                param(workspace), dims);
#endif
          });
          // dA, dD back in A's and D's dtype (rounded once when those are bfloat16).
          std::vector<Tensor> out{du, ddelta, dA.to(a_dtype), dBm, dCm, dD.to(d_dtype), dinject};
          for (size_t i = 0; i < out.size(); ++i)
            if (!needs[i]) out[i] = Tensor();
          return out;
        });
  }
  return y;
}

}  // namespace im
