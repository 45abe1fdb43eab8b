#include "kernels/cpu/fused_gates.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace im::kernels::cpu {

namespace {

template <typename T>
T at(const RowOperand<T>& x, int64_t r, int64_t c) {
  return x.p[r * x.stride + c];
}

template <typename T>
T param_or(const T* p, int64_t c, T fallback) {
  return p ? p[c] : fallback;
}

// Threads take disjoint ranges of columns and walk every row for them: the elementwise
// outputs are disjoint and each column's sum runs over the rows in order on one thread, so
// the result does not depend on the thread count and matches sum_cols exactly.
template <typename F>
void for_column_ranges(int64_t rows, int64_t cols, F&& f) {
  if (rows <= 0) {
    f(int64_t{0}, cols);  // empty rows: the column sums are zero
    return;
  }
  parallel_for(cols, std::max<int64_t>(1, kParallelGrain / rows), f);
}

}  // namespace

template <typename T>
void gated_fusion_forward(const GatedFusionArgs<T>& a, T* out) {
  const bool has_y = a.y0.p, two = a.y1.p, has_g = a.g.p;
  for_column_ranges(a.rows, a.cols, [&](int64_t c0, int64_t c1) {
    for (int64_t r = 0; r < a.rows; ++r) {
      for (int64_t c = c0; c < c1; ++c) {
        const T m = has_y ? mean_of(at(a.y0, r, c), two ? at(a.y1, r, c) : T(0), two) : T(0);
        const T gv = has_g ? at(a.g, r, c) : T(0);
        const T f = fused_of(has_y, m, param_or(a.alpha_h, c, T(1)), has_g, gv,
                             param_or(a.alpha_g, c, T(1)));
        const T z = at(a.z, r, c);
        out[r * a.cols + c] = f * silu_from(z, sigmoid_of(z));
      }
    }
  });
}

template <typename T>
void gated_fusion_backward(const GatedFusionArgs<T>& a, const T* dout,
                           const GatedFusionGrads<T>& d) {
  const bool has_y = a.y0.p, two = a.y1.p, has_g = a.g.p;
  for_column_ranges(a.rows, a.cols, [&](int64_t c0, int64_t c1) {
    // Rows outer, the range's columns inner (row-major memory in order); each column's
    // sums still run over the rows in order on one thread.
    std::vector<double> sum_h(static_cast<size_t>(c1 - c0), 0.0), sum_g(sum_h.size(), 0.0);
    for (int64_t r = 0; r < a.rows; ++r) {
      for (int64_t c = c0; c < c1; ++c) {
        const T ah = param_or(a.alpha_h, c, T(1)), ag = param_or(a.alpha_g, c, T(1));
        const int64_t i = r * a.cols + c;
        const T m = has_y ? mean_of(at(a.y0, r, c), two ? at(a.y1, r, c) : T(0), two) : T(0);
        const T gv = has_g ? at(a.g, r, c) : T(0);
        const T z = at(a.z, r, c), s = sigmoid_of(z);
        const T dfused = dout[i] * silu_from(z, s);
        if (d.dy) d.dy[i] = two ? dfused * ah * T(0.5) : dfused * ah;
        if (d.dg) d.dg[i] = dfused * ag;
        if (d.dz) d.dz[i] = silu_grad_from(dout[i] * fused_of(has_y, m, ah, has_g, gv, ag), z, s);
        sum_h[c - c0] += dfused * m;
        sum_g[c - c0] += dfused * gv;
      }
    }
    for (int64_t c = c0; c < c1; ++c) {
      if (d.dalpha_h) d.dalpha_h[c] = static_cast<T>(sum_h[c - c0]);
      if (d.dalpha_g) d.dalpha_g[c] = static_cast<T>(sum_g[c - c0]);
    }
  });
}

template <typename T>
void sigmoid_gate_forward(const SigmoidGateArgs<T>& a, T* out) {
  for_column_ranges(a.rows, a.cols, [&](int64_t c0, int64_t c1) {
    for (int64_t r = 0; r < a.rows; ++r) {
      for (int64_t c = c0; c < c1; ++c) {
        const T s = sigmoid_of(at(a.pre, r, c) + param_or(a.bias, c, T(0)));
        out[r * a.cols + c] = s * at(a.g, r, c);
      }
    }
  });
}

template <typename T>
void sigmoid_gate_backward(const SigmoidGateArgs<T>& a, const T* dout,
                           const SigmoidGateGrads<T>& d) {
  for_column_ranges(a.rows, a.cols, [&](int64_t c0, int64_t c1) {
    std::vector<double> sum(static_cast<size_t>(c1 - c0), 0.0);  // rows outer, as above
    for (int64_t r = 0; r < a.rows; ++r) {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t i = r * a.cols + c;
        const T s = sigmoid_of(at(a.pre, r, c) + param_or(a.bias, c, T(0)));
        const T dpre = sigmoid_grad_from(dout[i] * at(a.g, r, c), s);
        if (d.dpre) d.dpre[i] = dpre;
        if (d.dg) d.dg[i] = dout[i] * s;
        sum[c - c0] += dpre;
      }
    }
    if (d.dbias)
      for (int64_t c = c0; c < c1; ++c) d.dbias[c] = static_cast<T>(sum[c - c0]);
  });
}

#define IM_CPU_INSTANTIATE(T)                                                 \
  template void gated_fusion_forward<T>(const GatedFusionArgs<T>&, T*);       \
  template void gated_fusion_backward<T>(const GatedFusionArgs<T>&, const T*, \
                                         const GatedFusionGrads<T>&);         \
  template void sigmoid_gate_forward<T>(const SigmoidGateArgs<T>&, T*);       \
  template void sigmoid_gate_backward<T>(const SigmoidGateArgs<T>&, const T*, \
                                         const SigmoidGateGrads<T>&);
IM_CPU_INSTANTIATE(float)
IM_CPU_INSTANTIATE(double)
#undef IM_CPU_INSTANTIATE

}  // namespace im::kernels::cpu
