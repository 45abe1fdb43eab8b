// The MPI communicator and world, run with 1, 2 and 4 ranks (ctest label mpi).
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/ops.h"
#include "dist/mpi_communicator.h"
#include "dist/world.h"

using im::DType;
using im::Tensor;
using namespace im::dist;

namespace {

std::unique_ptr<Communicator> comm() { return make_mpi_communicator(MPI_COMM_WORLD); }

// Rank r holds value(i, r) at element i.
double value(int64_t i, int r) { return static_cast<double>(i % 13) + 10.0 * r + 1; }

Tensor rank_tensor(int64_t n, DType dtype, int r) {
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = value(i, r);
  return Tensor::from_vector(v, {n}).to(dtype);
}

}  // namespace

TEST(World, KnowsRanksNodesAndLocalRanks) {
  const World& w = World::get();
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  EXPECT_EQ(w.size(), size);
  EXPECT_GE(w.rank(), 0);
  EXPECT_LT(w.rank(), w.size());
  EXPECT_EQ(w.num_nodes(), 1) << "every rank runs on this machine";
  EXPECT_EQ(w.local_size(), w.size());
  EXPECT_EQ(w.local_rank(), w.rank());
  const std::string expected = w.size() == 1 ? "ranks 0" : "ranks 0-" + std::to_string(w.size() - 1);
  EXPECT_NE(w.node_map().find(expected), std::string::npos) << w.node_map();
  EXPECT_EQ(&World::get(), &w);
}

TEST(MpiCommunicator, AllReduceEveryOpAndDtypeAtOddSizes) {
  auto c = comm();
  const int size = c->size();
  for (DType dtype : {DType::Float32, DType::Float64, DType::Int64}) {
    for (int64_t n : {1, 17, 100003}) {
      for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max, ReduceOp::Min}) {
        if (op == ReduceOp::Avg && dtype == DType::Int64) continue;
        Tensor t = rank_tensor(n, dtype, c->rank());
        c->all_reduce(t, op);
        const auto got = t.to_vector<double>();
        for (int64_t i : {int64_t{0}, n / 2, n - 1}) {
          double want = op == ReduceOp::Max ? value(i, size - 1) : value(i, 0);
          if (op == ReduceOp::Sum || op == ReduceOp::Avg) {
            want = 0;
            for (int r = 0; r < size; ++r) want += value(i, r);
            if (op == ReduceOp::Avg) want /= size;
          }
          ASSERT_NEAR(got[i], want, 1e-4 * std::abs(want)) << n << " " << im::dtype_name(dtype);
        }
      }
    }
  }
}

TEST(MpiCommunicator, AsyncAllReduceCompletesWhileWorkGoesOn) {
  auto c = comm();
  Tensor a = rank_tensor(50001, DType::Float32, c->rank());
  Tensor b = rank_tensor(7, DType::Float64, c->rank());
  auto wa = c->all_reduce_async(a, ReduceOp::Avg);
  auto wb = c->all_reduce_async(b, ReduceOp::Sum);
  // Unrelated compute while the reductions are in flight.
  Tensor x = im::Tensor::ones({64, 64});
  for (int i = 0; i < 5; ++i) x = im::matmul(x, x) * (1.0 / 64);
  wb->wait();
  wa->wait();
  EXPECT_TRUE(wa->test());
  double mean0 = 0, sum1 = 0;
  for (int r = 0; r < c->size(); ++r) {
    mean0 += value(0, r) / c->size();
    sum1 += value(1, r);
  }
  EXPECT_NEAR(a.to_vector<float>()[0], mean0, 1e-4);
  EXPECT_NEAR(b.to_vector<double>()[1], sum1, 1e-12);
}

TEST(MpiCommunicator, BroadcastFromEveryRoot) {
  auto c = comm();
  for (int root = 0; root < c->size(); ++root) {
    Tensor t = rank_tensor(33, DType::Float64, c->rank());
    c->broadcast(t, root);
    EXPECT_EQ(t.to_vector<double>(), rank_tensor(33, DType::Float64, root).to_vector<double>());
  }
  Tensor t = Tensor::zeros({2});
  EXPECT_THROW(c->broadcast(t, c->size()), im::Error);
}

TEST(MpiCommunicator, AllGatherAndReduceScatter) {
  auto c = comm();
  const int size = c->size();
  Tensor mine = rank_tensor(5, DType::Float32, c->rank()).reshape({1, 5});
  Tensor all = c->all_gather(mine);
  EXPECT_EQ(all.shape(), (im::Shape{size, 1, 5}));
  for (int r = 0; r < size; ++r)
    EXPECT_EQ(all.select(0, r).reshape({5}).to_vector<float>(),
              rank_tensor(5, DType::Float32, r).to_vector<float>());
  // Each rank contributes [size*3] = its rank + 1 everywhere; block k of the sum is
  // size*(size+1)/2 in every element.
  Tensor contrib = Tensor::full({size * 3, 2}, c->rank() + 1.0, DType::Float64);
  Tensor block = c->reduce_scatter(contrib, ReduceOp::Sum);
  EXPECT_EQ(block.shape(), (im::Shape{3, 2}));
  for (double v : block.to_vector<double>()) EXPECT_EQ(v, size * (size + 1) / 2.0);
  if (size > 1) {
    EXPECT_THROW(c->reduce_scatter(Tensor::zeros({size + 1}), ReduceOp::Sum), im::Error);
  }
  c->barrier();
}

TEST(MpiCommunicator, RejectsWhatMpiCannotCarry) {
  auto c = comm();
  Tensor ints = Tensor::zeros({3}, DType::Int32);
  EXPECT_THROW(c->all_reduce(ints, ReduceOp::Sum), im::Error);
  Tensor strided = Tensor::zeros({4, 4}).transpose(0, 1);
  EXPECT_THROW(c->all_reduce(strided, ReduceOp::Sum), im::Error);
}
