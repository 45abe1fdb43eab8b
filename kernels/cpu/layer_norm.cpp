#include "kernels/cpu/layer_norm.h"

#include <cmath>
#include <vector>

namespace im::kernels::cpu {

template <typename T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd,
                        int64_t rows, int64_t cols, double eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    double s = 0;
    for (int64_t c = 0; c < cols; ++c) s += xr[c];
    const double m = cols > 0 ? s / static_cast<double>(cols) : 0.0;
    double ss = 0;  // two passes: no cancellation from E[x^2] - E[x]^2
    for (int64_t c = 0; c < cols; ++c) ss += (xr[c] - m) * (xr[c] - m);
    const double var = cols > 0 ? ss / static_cast<double>(cols) : 0.0;
    const double rs = 1.0 / std::sqrt(var + eps);
    mean[r] = static_cast<T>(m);
    rstd[r] = static_cast<T>(rs);
    const T tm = static_cast<T>(m), trs = static_cast<T>(rs);
    for (int64_t c = 0; c < cols; ++c) {
      T v = (xr[c] - tm) * trs;
      if (weight) v *= weight[c];
      if (bias) v += bias[c];
      yr[c] = v;
    }
  }
}

template <typename T>
void layer_norm_backward(const T* g, const T* x, const T* mean, const T* rstd, const T* weight,
                         T* dx, T* dweight, T* dbias, int64_t rows, int64_t cols) {
  // Parameter gradients sum over rows; accumulate in double across the whole batch.
  std::vector<double> dw(dweight ? cols : 0, 0.0), db(dbias ? cols : 0, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const T* gr = g + r * cols;
    const T* xr = x + r * cols;
    const double m = mean[r], rs = rstd[r];
    if (dweight || dbias) {
      for (int64_t c = 0; c < cols; ++c) {
        if (dweight) dw[c] += static_cast<double>(gr[c]) * ((xr[c] - m) * rs);
        if (dbias) db[c] += gr[c];
      }
    }
    if (!dx) continue;
    double sum_gw = 0, sum_gw_xhat = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double gw = weight ? static_cast<double>(gr[c]) * weight[c] : gr[c];
      sum_gw += gw;
      sum_gw_xhat += gw * ((xr[c] - m) * rs);
    }
    const double inv_n = 1.0 / static_cast<double>(cols);
    const double a = sum_gw * inv_n, b = sum_gw_xhat * inv_n;
    T* dr = dx + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      const double gw = weight ? static_cast<double>(gr[c]) * weight[c] : gr[c];
      const double xhat = (xr[c] - m) * rs;
      dr[c] = static_cast<T>(rs * (gw - a - xhat * b));
    }
  }
  for (int64_t c = 0; c < static_cast<int64_t>(dw.size()); ++c) dweight[c] = static_cast<T>(dw[c]);
  for (int64_t c = 0; c < static_cast<int64_t>(db.size()); ++c) dbias[c] = static_cast<T>(db[c]);
}

template void layer_norm_forward<float>(const float*, const float*, const float*, float*, float*,
                                        float*, int64_t, int64_t, double);
template void layer_norm_forward<double>(const double*, const double*, const double*, double*,
                                         double*, double*, int64_t, int64_t, double);
template void layer_norm_backward<float>(const float*, const float*, const float*, const float*,
                                         const float*, float*, float*, float*, int64_t, int64_t);
template void layer_norm_backward<double>(const double*, const double*, const double*,
                                          const double*, const double*, double*, double*, double*,
                                          int64_t, int64_t);

}  // namespace im::kernels::cpu
