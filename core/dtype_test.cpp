// dtype sizes and conversions, bfloat16 rounding in particular.
#include "core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "core/tensor.h"

using im::bfloat16;
using im::DType;
using im::Tensor;

namespace {
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace

TEST(DType, SizesAndNames) {
  EXPECT_EQ(im::dtype_size(DType::BFloat16), 2u);
  EXPECT_EQ(im::dtype_size(DType::Int64), 8u);
  EXPECT_STREQ(im::dtype_name(DType::UInt8), "uint8");
  EXPECT_TRUE(im::is_floating(DType::BFloat16));
  EXPECT_FALSE(im::is_floating(DType::Int32));
}

TEST(BFloat16, ExactValuesRoundTrip) {
  for (float f : {0.0f, 1.0f, -2.5f, 0.15625f, 65536.0f}) {
    EXPECT_EQ(bfloat16::from_float(f).to_float(), f);
  }
}

TEST(BFloat16, RoundsToNearestEven) {
  // 1 + 2^-8 is exactly halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even (1).
  EXPECT_EQ(bfloat16::from_float(from_bits(0x3F808000u)).bits, 0x3F80u);
  // 1 + 3*2^-8 is halfway between 1 + 2^-7 (odd mantissa) and 1 + 2^-6: goes up to even.
  EXPECT_EQ(bfloat16::from_float(from_bits(0x3F818000u)).bits, 0x3F82u);
  // Just above halfway rounds up; just below rounds down.
  EXPECT_EQ(bfloat16::from_float(from_bits(0x3F808001u)).bits, 0x3F81u);
  EXPECT_EQ(bfloat16::from_float(from_bits(0x3F807FFFu)).bits, 0x3F80u);
  // Rounding carries into the exponent.
  EXPECT_EQ(bfloat16::from_float(from_bits(0x3FFFFFFFu)).bits, 0x4000u);
}

TEST(BFloat16, SpecialValues) {
  EXPECT_TRUE(std::isinf(bfloat16::from_float(std::numeric_limits<float>::infinity()).to_float()));
  EXPECT_TRUE(std::isnan(bfloat16::from_float(std::numeric_limits<float>::quiet_NaN()).to_float()));
  // A NaN whose payload sits only in the low bits must not round to infinity.
  EXPECT_TRUE(std::isnan(bfloat16::from_float(from_bits(0x7F800001u)).to_float()));
  // The largest finite float rounds to infinity in bf16 (it is past the last bf16 step).
  EXPECT_TRUE(std::isinf(bfloat16::from_float(std::numeric_limits<float>::max()).to_float()));
}

TEST(DType, TensorConversions) {
  Tensor f = Tensor::from_vector<float>({1.5f, -2.0f, 3.999f, 1.0f + 1.0f / 256}, {4});
  Tensor b = f.to(DType::BFloat16);
  EXPECT_EQ(b.dtype(), DType::BFloat16);
  const auto back = b.to(DType::Float32).to_vector<float>();
  EXPECT_EQ(back[0], 1.5f);
  EXPECT_EQ(back[1], -2.0f);
  EXPECT_EQ(back[2], 4.0f);
  EXPECT_EQ(back[3], 1.0f);  // the tie went to even
  EXPECT_EQ(f.to(DType::Int32).to_vector<int32_t>(), (std::vector<int32_t>{1, -2, 3, 1}));
  EXPECT_EQ(f.to(DType::Float64).to_vector<double>()[0], 1.5);
  Tensor u = Tensor::from_vector<uint8_t>({0, 255}, {2});
  EXPECT_EQ(u.to(DType::Float32).to_vector<float>(), (std::vector<float>{0.0f, 255.0f}));
  EXPECT_EQ(Tensor::arange(5, DType::Int64).to_vector<int64_t>()[4], 4);
}
