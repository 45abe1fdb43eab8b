#include "kernels/cpu/softmax.h"

#include <cmath>

namespace im::kernels::cpu {

namespace {

// NaN propagates: a NaN anywhere in the row makes the whole row NaN.
template <typename T>
T row_max(const T* row, int64_t cols) {
  T m = row[0];
  for (int64_t c = 1; c < cols; ++c) {
    if (std::isnan(row[c])) return row[c];
    if (row[c] > m) m = row[c];
  }
  return m;
}

}  // namespace

template <typename T>
void softmax_forward(const T* x, T* y, int64_t rows, int64_t cols) {
  if (cols == 0) return;
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const T m = row_max(xr, cols);
    double total = 0;
    for (int64_t c = 0; c < cols; ++c) {
      yr[c] = std::exp(xr[c] - m);
      total += yr[c];
    }
    const T inv = static_cast<T>(1.0 / total);
    for (int64_t c = 0; c < cols; ++c) yr[c] *= inv;
  }
}

template <typename T>
void log_softmax_forward(const T* x, T* y, int64_t rows, int64_t cols) {
  if (cols == 0) return;
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const T m = row_max(xr, cols);
    double total = 0;
    for (int64_t c = 0; c < cols; ++c) total += std::exp(xr[c] - m);
    // Subtracting m and log(total) separately keeps x - m exact for the largest entry.
    const T log_total = static_cast<T>(std::log(total));
    for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - m) - log_total;
  }
}

template <typename T>
void softmax_backward(const T* g, const T* y, T* dx, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* gr = g + r * cols;
    const T* yr = y + r * cols;
    T* dr = dx + r * cols;
    double dot = 0;
    for (int64_t c = 0; c < cols; ++c) dot += static_cast<double>(gr[c]) * yr[c];
    const T d = static_cast<T>(dot);
    for (int64_t c = 0; c < cols; ++c) dr[c] = yr[c] * (gr[c] - d);
  }
}

template <typename T>
void log_softmax_backward(const T* g, const T* y, T* dx, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* gr = g + r * cols;
    const T* yr = y + r * cols;
    T* dr = dx + r * cols;
    double total = 0;
    for (int64_t c = 0; c < cols; ++c) total += gr[c];
    const T s = static_cast<T>(total);
    for (int64_t c = 0; c < cols; ++c) dr[c] = gr[c] - std::exp(yr[c]) * s;
  }
}

template void softmax_forward<float>(const float*, float*, int64_t, int64_t);
template void softmax_forward<double>(const double*, double*, int64_t, int64_t);
template void log_softmax_forward<float>(const float*, float*, int64_t, int64_t);
template void log_softmax_forward<double>(const double*, double*, int64_t, int64_t);
template void softmax_backward<float>(const float*, const float*, float*, int64_t, int64_t);
template void softmax_backward<double>(const double*, const double*, double*, int64_t, int64_t);
template void log_softmax_backward<float>(const float*, const float*, float*, int64_t, int64_t);
template void log_softmax_backward<double>(const double*, const double*, double*, int64_t, int64_t);

}  // namespace im::kernels::cpu
