// CUDA selective SSM scan (docs/MODEL.md §3); same semantics, layouts and reverse flag as
// the CPU reference (kernels/cpu/selective_scan.h), which it is tested against.
//
//   x_t = u_t + inject_t
//   h_t[e,n] = exp(delta_t[e] A[e,n]) h_{t-1}[e,n] + delta_t[e] Bm_t[n] x_t[e]
//   y_t[e]   = sum_n Cm_t[n] h_t[e,n] + D[e] u_t[e]
//
// Layouts (contiguous, device memory): u, delta, inject, y [B, L, E]; A [E, N];
// Bm, Cm [B, L, N]; D [E]. N (the state size) may be anything up to kScanMaxState.
//
// Forward and backward are one kernel each, parallel over batch x channel; a channel's N
// states live in registers (forward: one thread per channel up to N = 16; backward: 4
// states per thread) and the sequence is walked in chunks staged through shared memory.
// The backward kernel first runs the recurrence forward once to store the state at every
// chunk boundary (the workspace, about N/16 times the size of u), then walks the chunks
// in reverse scan order: it recomputes one chunk's states into shared memory and runs the
// adjoint recurrence over them. dA, dBm, dCm and dD are sums over threads, added with
// atomics, so float results may differ between runs in the last bits. Float32 keeps its
// state in float and computes exp(delta A) with the hardware's exp2 (about 2 ulp).
//
// bfloat16 (T): u, delta, Bm, Cm, inject, y and their gradients are bfloat16 storage; the
// parameters A and D and their gradients dA, dD are in the compute type C = compute_t<T>
// (float: MODEL.md keeps A_log and D float32 under bf16 training), and all arithmetic is
// float, as float32 does it. The state never leaves float (registers, shared memory and the
// workspace's chunk-boundary states); dBm and dCm are summed in float in the workspace and
// rounded to bfloat16 once, after the scan. For float32 and float64, C is T.
//
// Δ: the kernels apply delta_bias and the softplus of dims.softplus_delta themselves
// (kernels/scan_delta.h), in the compute type, so Δ never exists as a rounded tensor; the
// backward returns the gradient of the given delta and sums the bias gradient (compute
// type, like dA and dD).
//
// Several independent problems (the two directions of a bidirectional scan, each with its
// own pointers, dims and reverse flag) can run in one launch through the *_multi entries.
// Everything is queued on the current stream (kernels/cuda/stream.h).
#pragma once

#include <cstdint>

#include "kernels/bfloat16.h"
#include "kernels/cpu/selective_scan.h"

namespace im::kernels::cuda {

using cpu::ScanDims;

// Largest state size N the kernels take (they throw std::runtime_error beyond it).
constexpr int64_t kScanMaxState = 64;
// Problems one *_multi launch takes at most (more are split over several launches).
constexpr int kScanMaxProblems = 2;
// Scan steps between the states the backward kernel stores (its chunk length).
constexpr int64_t kScanBackwardChunk = 16;

template <typename T>
struct ScanProblem {
  const T* u = nullptr;
  const T* delta = nullptr;
  const compute_t<T>* A = nullptr;
  const T* Bm = nullptr;
  const T* Cm = nullptr;
  const compute_t<T>* D = nullptr;
  const T* inject = nullptr;                 // may be null: no injection
  const compute_t<T>* delta_bias = nullptr;  // [E]; may be null: no bias
  T* y = nullptr;
  ScanDims dims;
};

template <typename T>
struct ScanBackwardProblem {
  const T* dy = nullptr;
  const T* u = nullptr;
  const T* delta = nullptr;
  const compute_t<T>* A = nullptr;
  const T* Bm = nullptr;
  const T* Cm = nullptr;
  const compute_t<T>* D = nullptr;
  const T* inject = nullptr;                 // may be null: no injection
  const compute_t<T>* delta_bias = nullptr;  // [E]; may be null: no bias
  // Every gradient is overwritten; dinject and ddelta_bias may be null (not wanted), the
  // others may not.
  T* du = nullptr;
  T* ddelta = nullptr;
  compute_t<T>* dA = nullptr;
  T* dBm = nullptr;
  T* dCm = nullptr;
  compute_t<T>* dD = nullptr;
  T* dinject = nullptr;
  compute_t<T>* ddelta_bias = nullptr;
  // Scratch of selective_scan_workspace_elems<T>(dims) elements of the compute type (may be
  // null when that is 0): the states at chunk boundaries, [B, ceil(L / kScanBackwardChunk)
  // - 1, E, N], then for bfloat16 the float sums of dBm and dCm, [2, B, L, N].
  compute_t<T>* workspace = nullptr;
  ScanDims dims;
};

// Elements of compute_t<T> the backward kernel needs as workspace for these dims (T may be
// left out for float32 and float64, which need the same count).
template <typename T = float>
int64_t selective_scan_workspace_elems(const ScanDims& d);

// One problem without a delta bias (the signature of the CPU kernel without delta_bias, with
// A, D, dA, dD in the compute type).
template <typename T>
void selective_scan(const T* u, const T* delta, const compute_t<T>* A, const T* Bm, const T* Cm,
                    const compute_t<T>* D, const T* inject, T* y, const ScanDims& d);

template <typename T>
void selective_scan_backward(const T* dy, const T* u, const T* delta, const compute_t<T>* A,
                             const T* Bm, const T* Cm, const compute_t<T>* D, const T* inject,
                             T* du, T* ddelta, compute_t<T>* dA, T* dBm, T* dCm, compute_t<T>* dD,
                             T* dinject, compute_t<T>* workspace, const ScanDims& d);

// `count` independent problems, in one kernel launch when they are at most
// kScanMaxProblems and their state sizes round up to the same kernel (N up to 4, 8, 16,
// 32 or 64); otherwise in as few launches as that allows.
template <typename T>
void selective_scan_multi(const ScanProblem<T>* problems, int count);

template <typename T>
void selective_scan_backward_multi(const ScanBackwardProblem<T>* problems, int count);

}  // namespace im::kernels::cuda
