// Marks functions callable from both host and CUDA device code, so the CPU reference
// kernels and the CUDA kernels share one definition of each piece of math.
#pragma once

#if defined(__CUDACC__)
#define IM_HD __host__ __device__ __forceinline__
#else
#define IM_HD inline
#endif
