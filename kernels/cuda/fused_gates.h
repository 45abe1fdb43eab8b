// CUDA kernels of the mixer's fused gates; the semantics of kernels/cpu/fused_gates.h on
// device pointers, for float32, float64 and bfloat16 (storage only: computed in float).
// One launch per forward; one per backward for every elementwise gradient, which also
// leaves per-block partial column sums of the parameter gradients (float for bfloat16,
// double otherwise) in the workspace, and a small second launch adds those in a fixed
// order and rounds each sum to T once (deterministic). Operands are read 16 bytes at a time
// when every pointer, row stride and the row length allow it.
#pragma once

#include <cstddef>

#include "kernels/bfloat16.h"
#include "kernels/fused_gates_ops.h"

namespace im::kernels::cuda {

template <typename T>
void gated_fusion_forward(const GatedFusionArgs<T>& a, T* out);

// Device scratch (bytes) that gated_fusion_backward needs for these operands and outputs;
// 0 when none (workspace may then be null).
template <typename T>
size_t gated_fusion_backward_workspace_bytes(const GatedFusionArgs<T>& a, const T* dout,
                                             const GatedFusionGrads<T>& d);

template <typename T>
void gated_fusion_backward(const GatedFusionArgs<T>& a, const T* dout, const GatedFusionGrads<T>& d,
                           void* workspace);

template <typename T>
void sigmoid_gate_forward(const SigmoidGateArgs<T>& a, T* out);

template <typename T>
size_t sigmoid_gate_backward_workspace_bytes(const SigmoidGateArgs<T>& a, const T* dout,
                                             const SigmoidGateGrads<T>& d);

template <typename T>
void sigmoid_gate_backward(const SigmoidGateArgs<T>& a, const T* dout, const SigmoidGateGrads<T>& d,
                           void* workspace);

}  // namespace im::kernels::cuda
