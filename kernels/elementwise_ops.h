// The math of every elementwise op and of its derivative, written once and used by
// both the CPU reference kernels and the CUDA kernels.
#pragma once

#include <cmath>

#include "kernels/host_device.h"

namespace im::kernels {

enum class UnaryOp {
  Neg,
  Exp,
  Log,
  Sqrt,
  Rsqrt,
  Abs,
  Tanh,
  Sigmoid,
  Silu,
  GeluTanh,
  GeluErf,
  Softplus,  // p0 = beta, p1 = threshold: beta*x above it passes through unchanged
  Pow,       // p0 = exponent
  Clamp,     // p0 = low, p1 = high
};

enum class BinaryOp { Add, Sub, Mul, Div };

struct UnaryParams {
  double p0 = 0;
  double p1 = 0;
};

template <typename T>
IM_HD T sigmoid_of(T x) {
  return T(1) / (T(1) + exp(-x));
}

// y = f(x)
template <typename T>
IM_HD T unary_forward(UnaryOp op, UnaryParams p, T x) {
  using std::abs, std::exp, std::log, std::sqrt, std::tanh, std::erf, std::pow, std::log1p;
  constexpr T kSqrt2OverPi = T(0.7978845608028654);
  constexpr T kInvSqrt2 = T(0.7071067811865476);
  switch (op) {
    case UnaryOp::Neg:
      return -x;
    case UnaryOp::Exp:
      return exp(x);
    case UnaryOp::Log:
      return log(x);
    case UnaryOp::Sqrt:
      return sqrt(x);
    case UnaryOp::Rsqrt:
      return T(1) / sqrt(x);
    case UnaryOp::Abs:
      return abs(x);
    case UnaryOp::Tanh:
      return tanh(x);
    case UnaryOp::Sigmoid:
      return sigmoid_of(x);
    case UnaryOp::Silu:
      return x * sigmoid_of(x);
    case UnaryOp::GeluTanh:
      return T(0.5) * x * (T(1) + tanh(kSqrt2OverPi * (x + T(0.044715) * x * x * x)));
    case UnaryOp::GeluErf:
      return T(0.5) * x * (T(1) + erf(x * kInvSqrt2));
    case UnaryOp::Softplus: {
      const T bx = T(p.p0) * x;
      if (bx > T(p.p1)) return x;
      // log(1+e^bx) computed without overflow for large bx and without losing small ones.
      const T m = bx > T(0) ? bx : T(0);
      return (m + log1p(exp(-abs(bx)))) / T(p.p0);
    }
    case UnaryOp::Pow:
      return pow(x, T(p.p0));
    case UnaryOp::Clamp: {
      const T lo = T(p.p0), hi = T(p.p1);
      return x < lo ? lo : (x > hi ? hi : x);
    }
  }
  return x;
}

// Ops whose derivative below reads the output y rather than (only) the input x.
IM_HD constexpr bool backward_reads_output(UnaryOp op) {
  return op == UnaryOp::Exp || op == UnaryOp::Sqrt || op == UnaryOp::Rsqrt || op == UnaryOp::Tanh ||
         op == UnaryOp::Sigmoid;
}

// dL/dx = g * f'(x), with y = f(x) available where the derivative is cheaper from y.
template <typename T>
IM_HD T unary_backward(UnaryOp op, UnaryParams p, T g, T x, T y) {
  using std::exp, std::sqrt, std::tanh, std::pow;
  constexpr T kSqrt2OverPi = T(0.7978845608028654);
  constexpr T kInvSqrt2Pi = T(0.3989422804014327);
  constexpr T kInvSqrt2 = T(0.7071067811865476);
  switch (op) {
    case UnaryOp::Neg:
      return -g;
    case UnaryOp::Exp:
      return g * y;
    case UnaryOp::Log:
      return g / x;
    case UnaryOp::Sqrt:
      return g * T(0.5) / y;
    case UnaryOp::Rsqrt:
      return g * T(-0.5) * y * y * y;
    case UnaryOp::Abs:
      return x > T(0) ? g : (x < T(0) ? -g : T(0));
    case UnaryOp::Tanh:
      return g * (T(1) - y * y);
    case UnaryOp::Sigmoid:
      return g * y * (T(1) - y);
    case UnaryOp::Silu: {
      const T s = sigmoid_of(x);
      return g * s * (T(1) + x * (T(1) - s));
    }
    case UnaryOp::GeluTanh: {
      const T inner = kSqrt2OverPi * (x + T(0.044715) * x * x * x);
      const T t = tanh(inner);
      const T dinner = kSqrt2OverPi * (T(1) + T(3) * T(0.044715) * x * x);
      return g * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * dinner);
    }
    case UnaryOp::GeluErf: {
      using std::erf;
      const T cdf = T(0.5) * (T(1) + erf(x * kInvSqrt2));
      const T pdf = kInvSqrt2Pi * exp(T(-0.5) * x * x);
      return g * (cdf + x * pdf);
    }
    case UnaryOp::Softplus: {
      const T bx = T(p.p0) * x;
      if (bx > T(p.p1)) return g;
      return g * sigmoid_of(bx);
    }
    case UnaryOp::Pow:
      return g * T(p.p0) * pow(x, T(p.p0) - T(1));
    case UnaryOp::Clamp:
      return (x < T(p.p0) || x > T(p.p1)) ? T(0) : g;
  }
  return g;
}

template <typename T>
IM_HD T binary_forward(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::Add:
      return a + b;
    case BinaryOp::Sub:
      return a - b;
    case BinaryOp::Mul:
      return a * b;
    case BinaryOp::Div:
      return a / b;
  }
  return a;
}

}  // namespace im::kernels
