// The NCCL communicator on one GPU (a communicator of size 1, run under mpirun -np 1):
// every collective goes through NCCL on its own stream and back, CPU tensors go to MPI,
// and the gradient reducer's whole path (buckets launched from backward's hooks, the
// optimiser's stream waiting on their events) gives the gradients of a plain backward
// (to the last bits, which the kernels' atomic sums leave free).
// Skipped without a GPU (ctest label gpu).
#include <gtest/gtest.h>
#include <mpi.h>

#include "core/ops.h"
#include "dist/mpi_communicator.h"
#include "dist/nccl_communicator.h"
#include "dist/reducer.h"
#include "layers/infomamba.h"
#include "layers/losses.h"
#include "layers/optimizer.h"
#include "layers/parameter_store.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Tensor;
using im::dist::ReduceOp;
using im::testing::rel_error;

namespace {

struct NcclOnOneGpu {
  std::unique_ptr<im::dist::Communicator> host = im::dist::make_mpi_communicator(MPI_COMM_WORLD);
  std::unique_ptr<im::dist::Communicator> nccl =
      im::dist::make_nccl_communicator(*host, Device::cuda(0), "rank 0 of 1 (test)", 60);
};

im::layers::ModelConfig tiny_model() {
  im::layers::ModelConfig cfg;
  cfg.channels = 1;
  cfg.image_size = 8;
  cfg.patch = 4;
  cfg.d_model = 16;
  cfg.depth = 2;
  cfg.num_concepts = 4;
  cfg.num_buckets = 4;
  cfg.k_min = 2;
  cfg.k_max = 4;
  cfg.d_proj = 8;
  cfg.num_classes = 3;
  return cfg;
}

}  // namespace

TEST(NcclCommunicator, CollectivesOnTheGpuReturnTheirInputsForOneRank) {
  REQUIRE_GPU();
  NcclOnOneGpu c;
  ASSERT_EQ(c.nccl->size(), 1);
  im::Generator gen(1);
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor x = im::randn({1000003}, gen, dt);
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max, ReduceOp::Min}) {
      Tensor g = x.to(Device::cuda());
      c.nccl->all_reduce(g, op);
      EXPECT_EQ(rel_error(g, x), 0.0);
    }
    Tensor g = x.to(Device::cuda());
    c.nccl->all_reduce_async(g, ReduceOp::Sum)->wait();
    EXPECT_EQ(rel_error(g, x), 0.0);
    c.nccl->broadcast(g, 0);
    EXPECT_EQ(rel_error(g, x), 0.0);
    const Tensor gathered = c.nccl->all_gather(g.slice(0, 0, 7));
    EXPECT_EQ(gathered.shape(), (im::Shape{1, 7}));
    EXPECT_EQ(gathered.device(), Device::cuda());
    EXPECT_EQ(rel_error(gathered.reshape({7}), x.slice(0, 0, 7)), 0.0);
    const Tensor scattered = c.nccl->reduce_scatter(g.slice(0, 0, 10), ReduceOp::Sum);
    EXPECT_EQ(rel_error(scattered, x.slice(0, 0, 10)), 0.0);
  }
  // A duplicate is a separate NCCL communicator over the same ranks.
  std::unique_ptr<im::dist::Communicator> dup = c.nccl->duplicate();
  Tensor ones = Tensor::ones({33}, DType::Float32, Device::cuda());
  dup->all_reduce(ones, ReduceOp::Sum);
  EXPECT_EQ(ones.to(Device::cpu()).to_vector<float>(), std::vector<float>(33, 1.f));
}

TEST(NcclCommunicator, CpuTensorsGoThroughTheHostCommunicator) {
  REQUIRE_GPU();
  NcclOnOneGpu c;
  Tensor flags = Tensor::from_vector<int64_t>({3, -1}, {2});
  c.nccl->all_reduce(flags, ReduceOp::Max);
  EXPECT_EQ(flags.device(), Device::cpu());
  EXPECT_EQ(flags.to_vector<int64_t>(), (std::vector<int64_t>{3, -1}));
}

TEST(NcclCommunicator, ReducerPathGivesThePlainGradientsAndTrains) {
  REQUIRE_GPU();
  NcclOnOneGpu c;
  const im::layers::ModelConfig cfg = tiny_model();
  auto build = [&](std::unique_ptr<im::layers::InfoMamba>& model,
                   std::unique_ptr<im::layers::ParameterStore>& store) {
    im::Generator gen(7);
    model = std::make_unique<im::layers::InfoMamba>(cfg, gen);
    store = std::make_unique<im::layers::ParameterStore>(*model, DType::Float32, Device::cuda());
  };
  std::unique_ptr<im::layers::InfoMamba> plain_model, dp_model;
  std::unique_ptr<im::layers::ParameterStore> plain, dp;
  build(plain_model, plain);
  build(dp_model, dp);
  im::dist::ReducerOptions options;
  options.bucket_bytes = 4096;  // several buckets for a model this small
  im::dist::GradientReducer reducer(*dp, *c.nccl, options);
  im::layers::AdamW opt_plain(*plain, im::layers::OptimConfig{});
  im::layers::AdamW opt_dp(*dp, im::layers::OptimConfig{});
  im::Generator data(3);
  const Tensor labels = Tensor::from_vector<int64_t>({0, 1, 2, 1}, {4}).to(Device::cuda());
  for (int step = 0; step < 3; ++step) {
    const Tensor x = im::randn({4, 1, 8, 8}, data).to(Device::cuda());
    auto loss_of = [&](im::layers::InfoMamba& m) {
      im::layers::ForwardContext ctx;
      const im::layers::ModelOutput out = m.forward(x, ctx);
      return im::layers::compute_losses(out, m.prototypes(), labels, im::layers::LossConfig{},
                                        nullptr)
          .total;
    };
    plain->zero_grad();
    loss_of(*plain_model).backward();
    dp->zero_grad();
    reducer.prepare(true);
    loss_of(*dp_model).backward();
    reducer.finish();
    EXPECT_GT(reducer.launched_during_backward(), 0);  // buckets started from the hooks
    // Avg over one rank is the identity. The two backward passes themselves may differ in
    // the last bits: the scan, embedding and scatter kernels sum with atomics, in an order
    // that varies between runs. A reducer that dropped, doubled or raced a bucket would be
    // off by far more than this.
    EXPECT_LT(rel_error(dp->flat_grads(), plain->flat_grads()), 1e-6) << "step " << step;
    opt_plain.step(1e-3);
    opt_dp.step(1e-3);
  }
  EXPECT_LT(rel_error(dp->flat_params(), plain->flat_params()), 1e-6);
}
