// The bucketed reducer under mpirun: averages equal an explicit all-reduce, buckets
// start during backward, micro-batch accumulation, and data-parallel exactness against
// one process computing the whole global batch.
#include <gtest/gtest.h>

#include <cmath>

#include "core/ops.h"
#include "dist/mpi_communicator.h"
#include "dist/reducer.h"
#include "layers/basic.h"

using im::DType;
using im::Tensor;
using namespace im::dist;
using namespace im::layers;

namespace {

class Mlp3 : public Module {
 public:
  explicit Mlp3(im::Generator& gen) {
    for (int i = 0; i < 3; ++i)
      layers.push_back(&register_module("l" + std::to_string(i),
                                        std::make_unique<Linear>(i ? 16 : 5, i == 2 ? 3 : 16,
                                                                 true, gen, DType::Float64)));
  }
  Tensor forward(const Tensor& x) {
    Tensor h = x;
    for (size_t i = 0; i < layers.size(); ++i) {
      h = layers[i]->forward(h);
      if (i + 1 < layers.size()) h = im::tanh(h);
    }
    return h;
  }
  std::vector<Linear*> layers;
};

// The same model (same seed) on every rank, a flat store, and per-rank data.
struct Replica {
  im::Generator gen{42};
  Mlp3 model{gen};
  ParameterStore store{model, DType::Float64};
  std::unique_ptr<Communicator> comm = make_mpi_communicator(MPI_COMM_WORLD);
};

Tensor batch_of(int64_t first, int64_t count) {
  // Sample i is a deterministic function of i, so slices of one global batch agree.
  std::vector<double> v(count * 5);
  for (int64_t s = 0; s < count; ++s)
    for (int64_t j = 0; j < 5; ++j) v[s * 5 + j] = std::sin(0.7 * (first + s) + 1.3 * j);
  return Tensor::from_vector(v, {count, 5});
}

void backward_on(Replica& s, const Tensor& x) {
  im::mean(im::mul(s.model.forward(x), s.model.forward(x))).backward();
}

double max_rel_diff(const Tensor& a, const Tensor& b) {
  const auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < va.size(); ++i)
    worst = std::max(worst, std::abs(va[i] - vb[i]) / (std::abs(vb[i]) + 1e-12));
  return worst;
}

}  // namespace

TEST(GradientReducer, BucketsCoverTheFlatSpaceInReverseOrder) {
  Replica s;
  GradientReducer reducer(s.store, *s.comm, ReducerOptions{.bucket_bytes = 1024});
  const auto& buckets = reducer.buckets();
  ASSERT_GT(buckets.size(), 2u);
  EXPECT_EQ(buckets.front().end, s.store.numel());
  EXPECT_EQ(buckets.front().params.front(), s.store.slots().size() - 1)
      << "the first bucket holds the last registered parameter";
  for (size_t i = 1; i < buckets.size(); ++i) EXPECT_EQ(buckets[i].end, buckets[i - 1].begin);
  EXPECT_EQ(buckets.back().begin, 0);
}

TEST(GradientReducer, AveragesLikeAnAllReduceAndOverlapsBackward) {
  Replica s;
  GradientReducer reducer(s.store, *s.comm, ReducerOptions{.bucket_bytes = 1024});
  const Tensor x = batch_of(100 * s.comm->rank(), 6);
  s.store.zero_grad();
  reducer.prepare(false);  // local gradients only
  backward_on(s, x);
  Tensor expected = s.store.flat_grads().clone();
  s.comm->all_reduce(expected, ReduceOp::Avg);

  s.store.zero_grad();
  reducer.prepare(true);
  backward_on(s, x);
  reducer.finish();
  EXPECT_LT(max_rel_diff(s.store.flat_grads(), expected), 1e-12);
  EXPECT_GE(reducer.launched_during_backward(), 1) << "no bucket started before backward ended";
}

TEST(GradientReducer, AccumulatesMicroBatchesWithoutCommunicatingUntilTheLast) {
  Replica s;
  GradientReducer reducer(s.store, *s.comm, ReducerOptions{.bucket_bytes = 2048});
  const Tensor a = batch_of(10 * s.comm->rank(), 3), b = batch_of(10 * s.comm->rank() + 3, 3);
  s.store.zero_grad();
  reducer.prepare(false);
  backward_on(s, a);
  backward_on(s, b);
  Tensor expected = s.store.flat_grads().clone();
  s.comm->all_reduce(expected, ReduceOp::Avg);

  s.store.zero_grad();
  reducer.prepare(false);
  backward_on(s, a);
  EXPECT_EQ(reducer.launched_during_backward(), 0);
  reducer.finish();  // no-op for a non-synchronised micro-batch
  reducer.prepare(true);
  backward_on(s, b);
  reducer.finish();
  EXPECT_LT(max_rel_diff(s.store.flat_grads(), expected), 1e-12);
}

TEST(GradientReducer, DataParallelEqualsOneProcessOnTheGlobalBatch) {
  Replica s;
  const int64_t global = 12, per_rank = global / s.comm->size();
  ASSERT_EQ(global % s.comm->size(), 0) << "run with 1, 2 or 4 ranks";
  // One process, whole batch.
  s.store.zero_grad();
  backward_on(s, batch_of(0, global));
  const Tensor single = s.store.flat_grads().clone();
  // Each rank its slice, averaged by the reducer.
  GradientReducer reducer(s.store, *s.comm, ReducerOptions{.bucket_bytes = 512});
  s.store.zero_grad();
  reducer.prepare(true);
  backward_on(s, batch_of(s.comm->rank() * per_rank, per_rank));
  reducer.finish();
  EXPECT_LT(max_rel_diff(s.store.flat_grads(), single), 1e-10);
}
