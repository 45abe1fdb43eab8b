// CUDA kernels of the concept filter's discrete selections (layers/concept_masks.h): the
// same uint8 masks as the CPU code there, bit for bit. They compute in double from
// float32, float64 or bfloat16 inputs (each widens to double exactly, as the CPU's
// conversion does; bfloat16 is read as stored, with no float64 copy), add
// in the CPU's order and round every product and sum separately (no FMA contraction),
// so the only difference left is the last bit of the GPU's exp and log in the budget's
// entropy, which moves a budget only when it falls within ~1e-15 of the CPU's rounding
// slack (1e-12 below an integer).
#pragma once

#include <cstdint>

namespace im::kernels::cuda {

// buckets[k] = argmax_h <centers[k], phi[h]> (the first h on ties; 0 when no dot
// product exceeds -inf) for centres [K, dc] and bucket embeddings [H, dc], contiguous.
// `buckets` is K int64 in device memory.
template <typename T>
void concept_buckets(const T* centers, const T* phi, int64_t* buckets, int64_t K, int64_t H,
                     int64_t dc);

// mask[row, k] = 1 unless buckets[k] is among the top_r largest of probs[row, :]
// (ties: lower bucket first); a row whose kept set would be empty is all 0. probs
// [rows, H] contiguous, buckets K int64 in device memory, mask [rows, K].
template <typename T>
void bucket_mask(const T* probs, const int64_t* buckets, uint8_t* mask, int64_t rows, int64_t H,
                 int64_t K, int64_t top_r);

// Token-wise budget over logits [rows, K] (-inf where already masked): keeps the
// budget's largest entries (ties: lower index), masks the rest. `log_k` is log(K) as the
// host computes it (1 when K == 1).
template <typename T>
void budget_mask(const T* logits, uint8_t* mask, int64_t rows, int64_t K, int64_t k_min,
                 int64_t k_max, double log_k);

}  // namespace im::kernels::cuda
