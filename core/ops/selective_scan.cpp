// Selective SSM scan (MODEL.md §3): the sequential CPU reference with its hand-derived
// backward, and the CUDA kernels (kernels/cuda/selective_scan.h) for GPU tensors (float32,
// float64, and bfloat16, which computes in float). Both backwards recompute the forward
// states, so forward keeps only its inputs.
//
// Several problems (the two directions of a bidirectional scan) run as one recorded op, on
// the GPU in one kernel launch forward and one backward (kernels/cuda/selective_scan.h).
//
// With bfloat16 activations the parameters A, D and the delta bias may be bfloat16 too or
// float32 (MODEL.md keeps A_log, D and b_Δ float32 under bf16 training); the kernels take them,
// and give their gradients, in float32 either way, so a bfloat16 one is widened on the way in
// and its gradient is rounded once on the way out. The delta bias and the softplus of Δ are
// applied inside the kernels (kernels/scan_delta.h).
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

// A problem's operands, validated, contiguous, detached, A/D/bias in the parameter dtype.
struct Prepared {
  Tensor u, delta, A, Bm, Cm, D, inject, bias;
  kernels::cpu::ScanDims dims;
  DType a_dtype, d_dtype, bias_dtype;
};

Prepared prepare(const ScanProblemArgs& a) {
  const Tensor &u = a.u, &delta = a.delta, &A = a.A, &Bm = a.Bm, &Cm = a.Cm, &D = a.D;
  const Tensor &inject = a.opts.inject, &delta_bias = a.opts.delta_bias;
  IM_CHECK(u.defined(), kOp, ": u must be defined");
  IM_CHECK(u.dim() == 3, kOp, ": u must be [B, L, E], got ", u.describe());
  IM_CHECK(A.defined(), kOp, ": A must be defined");
  IM_CHECK(A.dim() == 2 && A.size(0) == u.size(2), kOp, ": A must be [E, N] with E = ", u.size(2),
           ", got ", A.describe());
  Prepared p;
  kernels::cpu::ScanDims& dims = p.dims;
  dims.batch = u.size(0);
  dims.len = u.size(1);
  dims.inner = u.size(2);
  dims.state = A.size(1);
  dims.reverse = a.opts.reverse;
  dims.softplus_delta = a.opts.delta_softplus;
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
  if (delta_bias.defined()) {
    check_shape(delta_bias, "delta_bias", {E}, "[E]");
    check_param(u, delta_bias, "delta_bias");
  }
#if IM_WITH_CUDA
  if (u.device().is_cuda())
    IM_CHECK(N <= kernels::cuda::kScanMaxState, kOp,
             ": the CUDA kernel takes a state size N of at most ", kernels::cuda::kScanMaxState,
             ", got A ", A.describe());
#else
  detail::require_cpu(u, kOp);
#endif
  // Contiguous, detached operands: the kernel reads raw pointers and backward keeps these.
  auto prep = [](const Tensor& t) { return t.defined() ? t.detach().contiguous() : Tensor(); };
  // A, D and the bias in the parameter dtype (a no-op unless they are bfloat16).
  const DType pt = param_dtype(u.dtype());
  p.u = prep(u);
  p.delta = prep(delta);
  p.A = prep(A).to(pt);
  p.Bm = prep(Bm);
  p.Cm = prep(Cm);
  p.D = prep(D).to(pt);
  p.inject = prep(inject);
  p.bias = delta_bias.defined() ? prep(delta_bias).to(pt) : Tensor();
  p.a_dtype = A.dtype();
  p.d_dtype = D.dtype();
  p.bias_dtype = delta_bias.defined() ? delta_bias.dtype() : pt;
  return p;
}

template <typename T>
T* ptr_of(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.data_ptr()) : nullptr;
}

#if IM_WITH_CUDA
// The operands every CUDA problem struct (forward and backward) takes from a Prepared.
template <typename T, typename Problem>
void set_inputs(Problem& q, const Prepared& p) {
  using C = compute_t<T>;
  q.u = ptr_of<T>(p.u);
  q.delta = ptr_of<T>(p.delta);
  q.A = ptr_of<C>(p.A);
  q.Bm = ptr_of<T>(p.Bm);
  q.Cm = ptr_of<T>(p.Cm);
  q.D = ptr_of<C>(p.D);
  q.inject = ptr_of<T>(p.inject);
  q.delta_bias = ptr_of<C>(p.bias);
  q.dims = p.dims;
}
#endif

// The problems' outputs y, every problem on the device of the first.
std::vector<Tensor> run_forward(const std::vector<Prepared>& ps) {
  const Tensor& u0 = ps[0].u;
  std::vector<Tensor> ys;
  for (const Prepared& p : ps) {
    detail::check_same_dtype_device(u0, p.u, kOp);
    ys.push_back(Tensor::empty(p.u.shape(), p.u.dtype(), p.u.device()));
  }
  dispatch_compute(u0.dtype(), u0.device(), kOp, [&]<typename T>() {
    if constexpr (has_cpu_kernel<T>) {
      if (u0.device().is_cpu()) {
        for (size_t i = 0; i < ps.size(); ++i) {
          const Prepared& p = ps[i];
          kernels::cpu::selective_scan<T>(
              ptr_of<T>(p.u), ptr_of<T>(p.delta), ptr_of<T>(p.A), ptr_of<T>(p.Bm), ptr_of<T>(p.Cm),
              ptr_of<T>(p.D), ptr_of<T>(p.inject), ptr_of<T>(p.bias), ptr_of<T>(ys[i]), p.dims);
        }
        return;
      }
    }
#if IM_WITH_CUDA
    std::vector<kernels::cuda::ScanProblem<T>> problems(ps.size());
    for (size_t i = 0; i < ps.size(); ++i) {
      const Prepared& p = ps[i];
      set_inputs<T>(problems[i], p);
      problems[i].y = ptr_of<T>(ys[i]);
    }
    kernels::cuda::selective_scan_multi<T>(problems.data(), static_cast<int>(problems.size()));
#endif
  });
  return ys;
}

constexpr size_t kInputsPerProblem = 8;  // u, delta, A, Bm, Cm, D, inject, delta_bias

// Gradients of every problem's inputs (kInputsPerProblem each, undefined where not needed)
// for the gradients g of their outputs.
std::vector<Tensor> run_backward(const std::vector<Prepared>& ps, const std::vector<Tensor>& g,
                                 const std::vector<bool>& needs) {
  auto like = [](const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); };
  struct Grads {
    Tensor dy, du, ddelta, dA, dBm, dCm, dD, dinject, dbias;
  };
  std::vector<Grads> gs(ps.size());
  for (size_t i = 0; i < ps.size(); ++i) {
    const Prepared& p = ps[i];
    Grads& r = gs[i];
    // In the op's dtype: a bfloat16 y may get a float32 gradient from its consumer.
    r.dy = g[i].to(p.u.dtype()).contiguous();
    // The kernels produce every gradient in one sweep; unneeded ones are dropped below
    // (dinject and the bias gradient are skipped outright when not wanted).
    r.du = like(p.u);
    r.ddelta = like(p.delta);
    r.dA = like(p.A);
    r.dBm = like(p.Bm);
    r.dCm = like(p.Cm);
    r.dD = like(p.D);
    const size_t base = i * kInputsPerProblem;
    if (p.inject.defined() && needs[base + 6]) r.dinject = like(p.inject);
    if (p.bias.defined() && needs[base + 7]) r.dbias = like(p.bias);
  }
  const Tensor& u0 = ps[0].u;
  dispatch_compute(u0.dtype(), u0.device(), kOp, [&]<typename T>() {
    if constexpr (has_cpu_kernel<T>) {
      if (u0.device().is_cpu()) {
        for (size_t i = 0; i < ps.size(); ++i) {
          const Prepared& p = ps[i];
          const Grads& r = gs[i];
          kernels::cpu::selective_scan_backward<T>(
              ptr_of<T>(r.dy), ptr_of<T>(p.u), ptr_of<T>(p.delta), ptr_of<T>(p.A), ptr_of<T>(p.Bm),
              ptr_of<T>(p.Cm), ptr_of<T>(p.D), ptr_of<T>(p.inject), ptr_of<T>(p.bias),
              ptr_of<T>(r.du), ptr_of<T>(r.ddelta), ptr_of<T>(r.dA), ptr_of<T>(r.dBm),
              ptr_of<T>(r.dCm), ptr_of<T>(r.dD), ptr_of<T>(r.dinject), ptr_of<T>(r.dbias), p.dims);
        }
        return;
      }
    }
#if IM_WITH_CUDA
    using C = compute_t<T>;
    std::vector<kernels::cuda::ScanBackwardProblem<T>> problems(ps.size());
    // States at chunk boundaries (and bfloat16's float sums of dBm, dCm), in the compute
    // type, alive for this call only.
    std::vector<Tensor> workspaces;
    for (size_t i = 0; i < ps.size(); ++i) {
      const Prepared& p = ps[i];
      const Grads& r = gs[i];
      workspaces.push_back(Tensor::empty({kernels::cuda::selective_scan_workspace_elems<T>(p.dims)},
                                         dtype_of<C>(), p.u.device()));
      kernels::cuda::ScanBackwardProblem<T>& q = problems[i];
      set_inputs<T>(q, p);
      q.dy = ptr_of<T>(r.dy);
      q.du = ptr_of<T>(r.du);
      q.ddelta = ptr_of<T>(r.ddelta);
      q.dA = ptr_of<C>(r.dA);
      q.dBm = ptr_of<T>(r.dBm);
      q.dCm = ptr_of<T>(r.dCm);
      q.dD = ptr_of<C>(r.dD);
      q.dinject = ptr_of<T>(r.dinject);
      q.ddelta_bias = ptr_of<C>(r.dbias);
      q.workspace = ptr_of<C>(workspaces.back());
    }
    kernels::cuda::selective_scan_backward_multi<T>(problems.data(),
                                                    static_cast<int>(problems.size()));
#endif
  });
  std::vector<Tensor> out;
  for (size_t i = 0; i < ps.size(); ++i) {
    const Prepared& p = ps[i];
    Grads& r = gs[i];
    // dA, dD and the bias gradient back in their inputs' dtype (rounded once when bfloat16).
    std::vector<Tensor> grads{r.du,
                              r.ddelta,
                              r.dA.to(p.a_dtype),
                              r.dBm,
                              r.dCm,
                              r.dD.to(p.d_dtype),
                              r.dinject,
                              r.dbias.defined() ? r.dbias.to(p.bias_dtype) : Tensor()};
    for (size_t k = 0; k < grads.size(); ++k)
      out.push_back(needs[i * kInputsPerProblem + k] ? grads[k] : Tensor());
  }
  return out;
}

}  // namespace

std::vector<Tensor> selective_scan_multi(const std::vector<ScanProblemArgs>& problems) {
  IM_CHECK(!problems.empty(), kOp, ": needs at least one problem");
  std::vector<Prepared> ps;
  std::vector<Tensor> inputs;
  for (const ScanProblemArgs& a : problems) {
    ps.push_back(prepare(a));
    for (const Tensor* t :
         {&a.u, &a.delta, &a.A, &a.Bm, &a.Cm, &a.D, &a.opts.inject, &a.opts.delta_bias})
      inputs.push_back(*t);
  }
  std::vector<Tensor> ys = run_forward(ps);
  if (any_requires_grad(inputs))
    record_op(kOp, inputs, ys, [ps](const std::vector<Tensor>& g, const auto& needs) {
      return run_backward(ps, g, needs);
    });
  return ys;
}

Tensor selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                      const Tensor& Cm, const Tensor& D, const SelectiveScanOptions& opts) {
  return selective_scan_multi({{u, delta, A, Bm, Cm, D, opts}})[0];
}

Tensor selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                      const Tensor& Cm, const Tensor& D, const Tensor& inject, bool reverse) {
  return selective_scan(u, delta, A, Bm, Cm, D, {.inject = inject, .reverse = reverse});
}

}  // namespace im
