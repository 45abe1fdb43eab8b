#include "data/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>

TEST(Crc32c, KnownAnswers) {
  // RFC 3720 (iSCSI) test vectors.
  EXPECT_EQ(im::data::crc32c("123456789", 9), 0xE3069283u);
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xFF);
  EXPECT_EQ(im::data::crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(im::data::crc32c(ones.data(), ones.size()), 0x62A8AB43u);
}

TEST(Crc32c, IncrementalEqualsWhole) {
  const char* s = "the quick brown fox jumps over the lazy dog";
  const size_t n = std::strlen(s);
  EXPECT_EQ(im::data::crc32c(s + 10, n - 10, im::data::crc32c(s, 10)), im::data::crc32c(s, n));
}
