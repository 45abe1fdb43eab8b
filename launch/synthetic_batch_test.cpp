// bench's synthetic data: the model's input shape, this rank's columns of the global batch,
// labels and token ids in range.
#include "launch/synthetic_batch.h"

#include <gtest/gtest.h>

using namespace im::launch;

TEST(SyntheticBatch, ImagesInTheModelsShapeSlicedByRank) {
  im::layers::ModelConfig m;  // 1 x 28 x 28, 10 classes
  int64_t covered = 0;
  for (int rank = 0; rank < 3; ++rank) {
    const im::data::Batch b = synthetic_batch(m, 10, rank, 3, 7);
    const int64_t n = b.labels.size(0);
    EXPECT_EQ(b.global_offset, covered);
    EXPECT_EQ(b.global_size, 10);
    EXPECT_EQ(b.inputs.shape(), (im::Shape{n, 1, 28, 28}));
    EXPECT_EQ(b.inputs.dtype(), im::DType::Float32);
    for (int64_t y : b.labels.to_vector<int64_t>()) {
      EXPECT_GE(y, 0);
      EXPECT_LT(y, 10);
    }
    covered += n;
  }
  EXPECT_EQ(covered, 10);
  // Deterministic in (seed, rank); ranks draw different data.
  EXPECT_EQ(synthetic_batch(m, 10, 1, 3, 7).inputs.to_vector<float>(),
            synthetic_batch(m, 10, 1, 3, 7).inputs.to_vector<float>());
  EXPECT_NE(synthetic_batch(m, 10, 0, 2, 7).inputs.to_vector<float>(),
            synthetic_batch(m, 10, 1, 2, 7).inputs.to_vector<float>());
}

TEST(SyntheticBatch, TokenIdsWithinTheVocabulary) {
  im::layers::ModelConfig m;
  m.modality = "text";
  m.vocab_size = 5;
  m.max_len = 12;
  m.num_classes = 3;
  const im::data::Batch b = synthetic_batch(m, 8, 0, 1, 1);
  EXPECT_EQ(b.inputs.shape(), (im::Shape{8, 12}));
  std::vector<int> seen(5, 0);
  for (int64_t id : b.inputs.to_vector<int64_t>()) {
    ASSERT_GE(id, 0);
    ASSERT_LT(id, 5);
    ++seen[id];
  }
  for (int count : seen) EXPECT_GT(count, 0);  // 96 draws reach every one of 5 ids
  for (int64_t y : b.labels.to_vector<int64_t>()) EXPECT_LT(y, 3);
}
