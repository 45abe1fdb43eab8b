#include "kernels/cpu/selective_scan.h"

#include "kernels/scan_delta.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace im::kernels::cpu {

namespace {

// Time index of the s-th step in scan order.
inline int64_t step_time(int64_t s, const ScanDims& d) {
  return d.reverse ? d.len - 1 - s : s;
}

// The effective step of channel e at row `row` (kernels/scan_delta.h).
template <typename T>
inline T step_of(const T* delta, const T* bias, int64_t row, int64_t e, const ScanDims& d) {
  return scan_delta(delta[row * d.inner + e], bias ? bias[e] : T(0), d.softplus_delta);
}

// Runs the recurrence of sample b. With `y` set, writes y; with `states` set, stores
// h_t [E, N] and the decay exp(delta_t A) [E, N] at t*E*N (original time order), and with
// `steps` the step Δ_t [E] at t*E, for the backward sweep, which then needs no exp or
// softplus of its own.
template <typename T>
void scan_sample(int64_t b, const T* u, const T* delta, const T* A, const T* Bm, const T* Cm,
                 const T* D, const T* inject, const T* bias, T* y, T* states, T* decays, T* steps,
                 T* h, const ScanDims& d) {
  const int64_t E = d.inner, N = d.state;
  std::fill(h, h + E * N, T(0));
  for (int64_t s = 0; s < d.len; ++s) {
    const int64_t t = step_time(s, d);
    const int64_t row = b * d.len + t;
    const T* ut = u + row * E;
    const T* it = inject ? inject + row * E : nullptr;
    const T* bt = Bm + row * N;
    const T* ct = Cm + row * N;
    for (int64_t e = 0; e < E; ++e) {
      const T de = step_of(delta, bias, row, e, d);
      if (steps) steps[t * E + e] = de;
      const T drive = de * (ut[e] + (it ? it[e] : T(0)));
      const T* ae = A + e * N;
      T* he = h + e * N;
      T* decay = decays ? decays + (t * E + e) * N : nullptr;
      T acc = T(0);
      for (int64_t n = 0; n < N; ++n) {
        const T a = std::exp(de * ae[n]);
        if (decay) decay[n] = a;
        he[n] = a * he[n] + drive * bt[n];
        acc += ct[n] * he[n];
      }
      if (y) y[row * E + e] = acc + D[e] * ut[e];
    }
    if (states) std::copy(h, h + E * N, states + t * E * N);
  }
}

}  // namespace

template <typename T>
void selective_scan(const T* u, const T* delta, const T* A, const T* Bm, const T* Cm, const T* D,
                    const T* inject, const T* delta_bias, T* y, const ScanDims& d) {
  // Samples are independent: one thread per sample at a time.
#pragma omp parallel
  {
    std::vector<T> h(static_cast<size_t>(d.inner * d.state));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < d.batch; ++b)
      scan_sample(b, u, delta, A, Bm, Cm, D, inject, delta_bias, y, static_cast<T*>(nullptr),
                  static_cast<T*>(nullptr), static_cast<T*>(nullptr), h.data(), d);
  }
}

template <typename T>
void selective_scan_backward(const T* dy, const T* u, const T* delta, const T* A, const T* Bm,
                             const T* Cm, const T* D, const T* inject, const T* delta_bias, T* du,
                             T* ddelta, T* dA, T* dBm, T* dCm, T* dD, T* dinject, T* ddelta_bias,
                             const ScanDims& d) {
  const int64_t L = d.len, E = d.inner, N = d.state;
  // dA and dD sum over samples: each sample writes its own partial (in double, so float32
  // gradients do not drift with length or width), and the partials are added in sample
  // order afterwards, so the result does not depend on the number of threads.
  std::vector<double> partial_A(static_cast<size_t>(d.batch * E * N), 0.0);
  std::vector<double> partial_D(static_cast<size_t>(d.batch * E), 0.0);
  std::vector<double> partial_bias(ddelta_bias ? static_cast<size_t>(d.batch * E) : 0, 0.0);

#pragma omp parallel
  {
    std::vector<T> states(static_cast<size_t>(L * E * N)), decays(states.size());
    std::vector<T> steps(static_cast<size_t>(L * E));
    std::vector<T> h(static_cast<size_t>(E * N));
    // Carry of the adjoint state: exp(delta_{next} A) * dh_{next}, "next" in scan order.
    std::vector<T> carry(static_cast<size_t>(E * N));
    std::vector<double> acc_B(static_cast<size_t>(N)), acc_C(static_cast<size_t>(N));

#pragma omp for schedule(static)
    for (int64_t b = 0; b < d.batch; ++b) {
      double* acc_A = partial_A.data() + b * E * N;
      double* acc_D = partial_D.data() + b * E;
      double* acc_bias = ddelta_bias ? partial_bias.data() + b * E : nullptr;
      scan_sample(b, u, delta, A, Bm, Cm, D, inject, delta_bias, static_cast<T*>(nullptr),
                  states.data(), decays.data(), steps.data(), h.data(), d);
      std::fill(carry.begin(), carry.end(), T(0));
      for (int64_t s = L - 1; s >= 0; --s) {
        const int64_t t = step_time(s, d);
        const int64_t row = b * L + t;
        // h_{t-1} in scan order; the first step starts from the zero state.
        const T* hprev = s > 0 ? states.data() + step_time(s - 1, d) * E * N : nullptr;
        const T* hcur = states.data() + t * E * N;
        const T* acur = decays.data() + t * E * N;
        const T* ut = u + row * E;
        const T* it = inject ? inject + row * E : nullptr;
        const T* gt = dy + row * E;
        const T* bt = Bm + row * N;
        const T* ct = Cm + row * N;
        std::fill(acc_B.begin(), acc_B.end(), 0.0);
        std::fill(acc_C.begin(), acc_C.end(), 0.0);
        for (int64_t e = 0; e < E; ++e) {
          const T g = gt[e], de = steps[t * E + e];
          const T x = ut[e] + (it ? it[e] : T(0));
          const T* ae = A + e * N;
          const T* he = hcur + e * N;
          const T* ad = acur + e * N;
          const T* hp = hprev ? hprev + e * N : nullptr;
          T* ce = carry.data() + e * N;
          double* dae = acc_A + e * N;
          T dx_sum = T(0), ddelta_sum = T(0);
          for (int64_t n = 0; n < N; ++n) {
            const T dh = ce[n] + ct[n] * g;  // total adjoint of h_t[e, n]
            const T a = ad[n];
            const T hpn = hp ? hp[n] : T(0);
            acc_C[n] += static_cast<double>(g) * he[n];
            acc_B[n] += static_cast<double>(dh) * de * x;
            dae[n] += static_cast<double>(dh) * de * a * hpn;
            dx_sum += dh * bt[n];
            ddelta_sum += dh * (ae[n] * a * hpn + bt[n] * x);
            ce[n] = a * dh;
          }
          const T dx = dx_sum * de;
          du[row * E + e] = g * D[e] + dx;
          if (dinject) dinject[row * E + e] = dx;
          // Back through the bias and softplus to the given delta (and the bias).
          const T draw =
              ddelta_sum * scan_delta_slope(delta[row * E + e], delta_bias ? delta_bias[e] : T(0),
                                            d.softplus_delta);
          ddelta[row * E + e] = draw;
          if (acc_bias) acc_bias[e] += static_cast<double>(draw);
          acc_D[e] += static_cast<double>(g) * ut[e];
        }
        for (int64_t n = 0; n < N; ++n) {
          dBm[row * N + n] = static_cast<T>(acc_B[n]);
          dCm[row * N + n] = static_cast<T>(acc_C[n]);
        }
      }
    }
  }  // omp parallel
  for (int64_t i = 0; i < E * N; ++i) {
    double sum = 0;
    for (int64_t b = 0; b < d.batch; ++b) sum += partial_A[b * E * N + i];
    dA[i] = static_cast<T>(sum);
  }
  for (int64_t e = 0; e < E; ++e) {
    double sum = 0;
    for (int64_t b = 0; b < d.batch; ++b) sum += partial_D[b * E + e];
    dD[e] = static_cast<T>(sum);
    if (ddelta_bias) {
      double bias_sum = 0;
      for (int64_t b = 0; b < d.batch; ++b) bias_sum += partial_bias[b * E + e];
      ddelta_bias[e] = static_cast<T>(bias_sum);
    }
  }
}

#define IM_CPU_SCAN_INSTANTIATE(T)                                                                 \
  template void selective_scan<T>(const T*, const T*, const T*, const T*, const T*, const T*,      \
                                  const T*, const T*, T*, const ScanDims&);                        \
  template void selective_scan_backward<T>(const T*, const T*, const T*, const T*, const T*,       \
                                           const T*, const T*, const T*, const T*, T*, T*, T*, T*, \
                                           T*, T*, T*, T*, const ScanDims&);
IM_CPU_SCAN_INSTANTIATE(float)
IM_CPU_SCAN_INSTANTIATE(double)
#undef IM_CPU_SCAN_INSTANTIATE

}  // namespace im::kernels::cpu
