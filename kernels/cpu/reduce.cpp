#include "kernels/cpu/reduce.h"

#include <cmath>
#include <vector>

namespace im::kernels::cpu {

template <typename T>
void sum_rows(const T* x, T* out, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * cols;
    double acc = 0;
    for (int64_t c = 0; c < cols; ++c) acc += row[c];
    out[r] = static_cast<T>(acc);
  }
}

template <typename T>
void max_rows(const T* x, T* out, int64_t* argmax, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * cols;
    int64_t best = 0;
    for (int64_t c = 1; c < cols; ++c) {
      if (std::isnan(row[best])) break;
      if (row[c] > row[best] || std::isnan(row[c])) best = c;
    }
    out[r] = row[best];
    argmax[r] = best;
  }
}

template <typename T>
void var_rows(const T* x, T* var, T* mean, int64_t rows, int64_t cols, int64_t correction) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * cols;
    double s = 0;
    for (int64_t c = 0; c < cols; ++c) s += row[c];
    const double m = s / static_cast<double>(cols);
    double ss = 0;  // two passes: no cancellation from E[x^2] - E[x]^2
    for (int64_t c = 0; c < cols; ++c) ss += (row[c] - m) * (row[c] - m);
    const double denom = static_cast<double>(cols - correction);
    var[r] = static_cast<T>(denom > 0 ? ss / denom : NAN);
    mean[r] = static_cast<T>(m);
  }
}

template <typename T>
void sum_cols(const T* x, T* out, int64_t rows, int64_t cols) {
  std::vector<double> acc(cols, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * cols;
    for (int64_t c = 0; c < cols; ++c) acc[c] += row[c];
  }
  for (int64_t c = 0; c < cols; ++c) out[c] = static_cast<T>(acc[c]);
}

template void sum_cols<float>(const float*, float*, int64_t, int64_t);
template void sum_cols<double>(const double*, double*, int64_t, int64_t);
template void sum_rows<float>(const float*, float*, int64_t, int64_t);
template void sum_rows<double>(const double*, double*, int64_t, int64_t);
template void max_rows<float>(const float*, float*, int64_t*, int64_t, int64_t);
template void max_rows<double>(const double*, double*, int64_t*, int64_t, int64_t);
template void var_rows<float>(const float*, float*, float*, int64_t, int64_t, int64_t);
template void var_rows<double>(const double*, double*, double*, int64_t, int64_t, int64_t);

}  // namespace im::kernels::cpu
