#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace im::kernels::cpu {

namespace {

// OpenBLAS's own threads spin in sched_yield between calls and fight the OpenMP threads
// of the other kernels for the cores; all CPU threading goes through OpenMP instead, and
// large products are split into row blocks here.
struct SingleThreadedBlas {
  SingleThreadedBlas() { openblas_set_num_threads(1); }
};

template <typename T, typename Call>
void gemm_rows(bool trans_a, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, T* c,
               int64_t ldc, Call&& call) {
  static const SingleThreadedBlas once;
  (void)once;
  const int64_t work = m * n * k;
  const int64_t min_rows = 16;
  if (work < (1 << 18) || m < 2 * min_rows) {
    call(m, a, c);
    return;
  }
  parallel_for(m, min_rows, [&](int64_t begin, int64_t end) {
    // Row block [begin, end) of op(A): rows of A, or columns when A is transposed.
    const T* a_block = trans_a ? a + begin : a + begin * lda;
    call(end - begin, a_block, c + begin * ldc);
  });
}

}  // namespace

template <>
void gemm<float>(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc) {
  gemm_rows<float>(
      trans_a, m, n, k, a, lda, c, ldc, [&](int64_t rows, const float* a_rows, float* c_rows) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(rows),
                    static_cast<int>(n), static_cast<int>(k), alpha, a_rows, static_cast<int>(lda),
                    b, static_cast<int>(ldb), beta, c_rows, static_cast<int>(ldc));
      });
}

template <>
void gemm<double>(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                  const double* a, int64_t lda, const double* b, int64_t ldb, double beta,
                  double* c, int64_t ldc) {
  gemm_rows<double>(
      trans_a, m, n, k, a, lda, c, ldc, [&](int64_t rows, const double* a_rows, double* c_rows) {
        cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(rows),
                    static_cast<int>(n), static_cast<int>(k), alpha, a_rows, static_cast<int>(lda),
                    b, static_cast<int>(ldb), beta, c_rows, static_cast<int>(ldc));
      });
}

template <typename T>
void gemm_bias(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
               const T* b, int64_t ldb, const T* bias, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  // C starts as the bias in every row and the product is added to it (beta = 1).
  for (int64_t r = 0; r < m; ++r) {
    T* row = c + r * ldc;
    if (bias)
      std::copy(bias, bias + n, row);
    else
      std::fill(row, row + n, T(0));
  }
  if (k > 0) gemm<T>(trans_a, trans_b, m, n, k, T(1), a, lda, b, ldb, T(1), c, ldc);
}

template <typename T>
void gemm_bias_grad(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a,
                    int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, T* bias_grad) {
  if (m == 0) return;
  if (n > 0) {
    if (k > 0) {
      gemm<T>(trans_a, trans_b, m, n, k, T(1), a, lda, b, ldb, T(0), c, ldc);
    } else {
      for (int64_t r = 0; r < m; ++r) std::fill(c + r * ldc, c + r * ldc + n, T(0));
    }
  }
  std::vector<double> acc(m, 0.0);
  if (trans_a) {  // A stored [k, m]: walk its rows, adding each into the m sums
    for (int64_t j = 0; j < k; ++j) {
      const T* row = a + j * lda;
      for (int64_t i = 0; i < m; ++i) acc[i] += row[i];
    }
  } else {
    for (int64_t i = 0; i < m; ++i) {
      const T* row = a + i * lda;
      for (int64_t j = 0; j < k; ++j) acc[i] += row[j];
    }
  }
  for (int64_t i = 0; i < m; ++i) bias_grad[i] = static_cast<T>(acc[i]);
}

template void gemm_bias<float>(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t,
                               const float*, int64_t, const float*, float*, int64_t);
template void gemm_bias<double>(bool, bool, int64_t, int64_t, int64_t, const double*, int64_t,
                                const double*, int64_t, const double*, double*, int64_t);
template void gemm_bias_grad<float>(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t,
                                    const float*, int64_t, float*, int64_t, float*);
template void gemm_bias_grad<double>(bool, bool, int64_t, int64_t, int64_t, const double*, int64_t,
                                     const double*, int64_t, double*, int64_t, double*);

}  // namespace im::kernels::cpu
