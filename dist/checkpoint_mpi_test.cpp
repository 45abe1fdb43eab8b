// Sharded checkpoints under mpirun: each rank writes only its slice of the parameters and
// optimiser state, the manifest indexes every file, and the result reads back whole on
// any number of ranks (here: as one process would, and into a differently seeded model).
#include <gtest/gtest.h>

#include <filesystem>

#include "core/ops.h"
#include "dist/checkpoint.h"
#include "dist/mpi_communicator.h"
#include "layers/basic.h"

namespace fs = std::filesystem;
using im::DType;
using im::Tensor;
using namespace im::dist;
using namespace im::layers;

namespace {

class Net : public Module {
 public:
  explicit Net(im::Generator& gen) {
    a = &register_module("a", std::make_unique<Linear>(7, 33, true, gen, DType::Float32));
    b = &register_module("b", std::make_unique<Linear>(33, 5, false, gen, DType::Float32));
  }
  Linear* a;
  Linear* b;
};

// A directory every rank sees: rank 0 makes it, everyone learns its name.
std::string shared_temp_dir(Communicator& comm) {
  std::string path;
  if (comm.rank() == 0) {
    char tmpl[] = "/tmp/im_ckpt_mpi_XXXXXX";
    path = mkdtemp(tmpl);
  }
  Tensor buf = Tensor::zeros({256}, DType::Int64);
  for (size_t i = 0; i < path.size(); ++i) buf.data<int64_t>()[i] = path[i];
  comm.broadcast(buf, 0);
  path.clear();
  for (int64_t i = 0; i < 256 && buf.data<int64_t>()[i]; ++i)
    path.push_back(static_cast<char>(buf.data<int64_t>()[i]));
  return path;
}

}  // namespace

TEST(CheckpointMpi, EachRankWritesItsSliceAndAnyWorldReadsItBack) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  const std::string tmp = shared_temp_dir(*comm);
  im::Generator gen(5);  // same seed everywhere: identical replicas
  Net net(gen);
  ParameterStore store(net, DType::Float32);
  AdamW opt(store, {});
  store.flat_grads().copy_(im::randn({store.numel()}, gen));
  opt.step(1e-2);
  TrainingState state;
  state.step = 12;
  state.cursor = {1, 64};
  state.rng = {{"train", {3, 9}}};
  const std::string dir = save_checkpoint(tmp + "/run", store, &opt, state, 0, comm.get());

  // One file per rank, each holding its own slice only.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.path().extension() == ".h5";
  EXPECT_EQ(files, comm->size());
  const CheckpointContents c = read_checkpoint(dir, true);
  EXPECT_EQ(c.state.world_size, comm->size());
  EXPECT_EQ(c.state.cursor, state.cursor);
  EXPECT_EQ(c.params.to_vector<float>(), store.flat_params().to_vector<float>());
  EXPECT_EQ(c.exp_avg.to_vector<float>(), opt.exp_avg().to_vector<float>());
  EXPECT_EQ(c.exp_avg_sq.to_vector<float>(), opt.exp_avg_sq().to_vector<float>());

  im::Generator other(77);
  Net fresh(other);
  ParameterStore fresh_store(fresh, DType::Float32);
  AdamW fresh_opt(fresh_store, {});
  load_checkpoint(dir, fresh_store, &fresh_opt);
  EXPECT_EQ(fresh_store.flat_params().to_vector<float>(), store.flat_params().to_vector<float>());
  EXPECT_EQ(fresh_opt.steps_taken(), 12);
  comm->barrier();
  if (comm->rank() == 0) fs::remove_all(tmp);
}
