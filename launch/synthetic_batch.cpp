#include "launch/synthetic_batch.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/rng.h"
#include "data/sampler.h"

namespace im::launch {

namespace {
// n integers uniform in [0, bound).
Tensor uniform_ints(int64_t n, int64_t bound, Generator& gen, const Shape& shape) {
  const std::vector<double> u =
      rand_uniform({n}, gen, 0.0, 1.0, DType::Float64).to_vector<double>();
  std::vector<int64_t> ints(u.size());
  for (size_t i = 0; i < u.size(); ++i)
    ints[i] = std::min(bound - 1, static_cast<int64_t>(std::floor(u[i] * bound)));
  return Tensor::from_vector<int64_t>(ints, shape);
}
}  // namespace

data::Batch synthetic_batch(const layers::ModelConfig& model, int64_t global_batch, int rank,
                            int world, uint64_t seed) {
  const data::SliceRange mine = data::rank_slice(global_batch, rank, world);
  const int64_t b = mine.end - mine.begin;
  // Each rank draws its own slice from its own Philox key: nothing global to materialise.
  Generator gen(seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(rank + 1));
  data::Batch batch;
  if (model.modality == "image") {
    batch.inputs = randn({b, model.channels, model.image_size, model.image_size}, gen);
  } else {
    batch.inputs = uniform_ints(b * model.max_len, model.vocab_size, gen, {b, model.max_len});
  }
  batch.labels = uniform_ints(b, model.num_classes, gen, {b});
  batch.global_offset = mine.begin;
  batch.global_size = global_batch;
  return batch;
}

}  // namespace im::launch
