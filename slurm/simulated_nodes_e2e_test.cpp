// Two simulated nodes (ctest label slurm): network namespaces joined by a bridge
// (slurm/local/netns_nodes.sh), mpirun launching the remote rank through
// slurm/local/netns_rsh.sh instead of ssh, all traffic over TCP between the namespaces.
// A 2-node run trains what a 1-node run trains; cutting a node's link ends every rank
// within 60 s and leaves the last checkpoint valid, from which --resume auto finishes.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <sstream>

#include "tests/e2e_scratch.h"

namespace {

using im::testing::E2eScratch;
using im::testing::run_shell;
using im::testing::ShellResult;
using im::testing::slurp;
using im::testing::wait_until;

const std::string kNodesScript = std::string(IM_SOURCE_DIR) + "/slurm/local/netns_nodes.sh";

class SimulatedNodes : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!im::testing::running_as_root()) return;  // each test skips, saying why
    scratch_ = std::make_unique<E2eScratch>("im_nodes");
    name_ = "im" + std::to_string(getpid() % 100000);
    const ShellResult r = shell(kNodesScript + " up " + name_ + " 2");
    up_ = r.exit_code == 0;
    if (!up_) {
      error_ = r.err;
      return;
    }
    std::istringstream addresses(r.out);
    for (std::string a; std::getline(addresses, a);) addresses_.push_back(a);
    subnet_ = addresses_.at(0).substr(0, addresses_.at(0).rfind('.')) + ".0/24";
  }
  // Removes the namespaces, killing whatever a test left in them, also after a failure.
  static void TearDownTestSuite() {
    if (scratch_) shell(kNodesScript + " down " + name_);
    scratch_.reset();
  }
  void SetUp() override {
    if (!im::testing::running_as_root()) GTEST_SKIP() << "needs root for network namespaces";
    ASSERT_TRUE(up_) << "could not make the simulated nodes: " << error_;
  }

  static ShellResult shell(const std::string& cmd) {
    static int counter = 0;
    return run_shell(cmd, scratch_->root() + "/sh" + std::to_string(counter++));
  }

  // mpirun inside node 0's namespace, one rank on each node. The keepalive settings make
  // mpirun notice a node that dropped off the network in seconds (docs/CLUSTER_TESTING.md).
  static std::string two_node_mpirun(const std::string& train_flags) {
    const std::string hostfile = scratch_->root() + "/hostfile";
    std::ofstream(hostfile) << addresses_[0] << " slots=1\n" << addresses_[1] << " slots=1\n";
    const std::string mpirun = std::string(IM_MPIEXEC) + " --allow-run-as-root -np 2 --hostfile " +
                               hostfile + " --mca plm_rsh_agent " + IM_SOURCE_DIR +
                               "/slurm/local/netns_rsh.sh" +
                               " --mca btl tcp,self --mca btl_tcp_if_include " + subnet_ +
                               " --mca oob_tcp_if_include " + subnet_ +
                               " --mca oob_tcp_keepalive_time 2 --mca oob_tcp_keepalive_intvl 1"
                               " --mca oob_tcp_keepalive_probes 2 -x OMP_NUM_THREADS=1 " +
                               IM_BINARY + " train " + train_flags;
    return "ip netns exec " + name_ + "-node0 unshare --uts sh -c 'hostname node0; exec " + mpirun +
           "'";
  }
  static std::string one_node_mpirun(const std::string& train_flags) {
    return im::testing::mpirun_prefix(2) + IM_BINARY + " train " + train_flags;
  }
  static std::string node_pids(int node) {
    return shell("ip netns pids " + name_ + "-node" + std::to_string(node)).out;
  }

  static std::unique_ptr<E2eScratch> scratch_;
  static std::string name_, subnet_, error_;
  static std::vector<std::string> addresses_;
  static bool up_;
};
std::unique_ptr<E2eScratch> SimulatedNodes::scratch_;
std::string SimulatedNodes::name_, SimulatedNodes::subnet_, SimulatedNodes::error_;
std::vector<std::string> SimulatedNodes::addresses_;
bool SimulatedNodes::up_ = false;

TEST_F(SimulatedNodes, TwoNodeRunTrainsWhatOneNodeTrains) {
  const ShellResult two = shell(two_node_mpirun(scratch_->train_flags("two_nodes", 20)));
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
  EXPECT_NE(two.out.find("world: 2 ranks on 2 nodes: node 0 (node0): ranks 0; node 1 (node1): "
                         "ranks 1"),
            std::string::npos)
      << two.out;
  const ShellResult one = shell(one_node_mpirun(scratch_->train_flags("one_node", 20)));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_NE(one.out.find("world: 2 ranks on 1 node"), std::string::npos) << one.out;

  const auto l2 = scratch_->losses("two_nodes"), l1 = scratch_->losses("one_node");
  ASSERT_EQ(l2.size(), 20u);
  ASSERT_EQ(l1.size(), 20u);
  for (const auto& [step, loss] : l1) EXPECT_NEAR(l2.at(step), loss, 1e-5 * std::abs(loss));
  // Two ranks either way: the same sums over TCP as over shared memory.
  EXPECT_LT(
      im::testing::relative_difference(E2eScratch::params(scratch_->step_dir("two_nodes", 20)),
                                       E2eScratch::params(scratch_->step_dir("one_node", 20))),
      1e-6);
}

TEST_F(SimulatedNodes, CuttingANodesLinkEndsEveryRankAndTheLastCheckpointResumes) {
  const std::string name = "cut";
  const std::string flags = scratch_->train_flags(name, 100000, "--set checkpoint.every=5");
  const pid_t mpirun = im::testing::spawn(two_node_mpirun(flags) + " >" + scratch_->root() +
                                          "/cut.out 2>" + scratch_->root() + "/cut.err");
  ASSERT_TRUE(wait_until([&] { return scratch_->losses(name).size() >= 12; }, 120))
      << slurp(scratch_->root() + "/cut.err");
  ASSERT_FALSE(node_pids(1).empty()) << "no rank runs on node 1";

  const auto cut_at = std::chrono::steady_clock::now();
  ASSERT_EQ(shell(kNodesScript + " cut " + name_ + " 1").exit_code, 0);
  const int code = im::testing::wait_exit(mpirun, 60);
  EXPECT_NE(code, -2) << "mpirun still running 60 s after the cut";
  EXPECT_NE(code, 0);
  // Node 1's rank lost its daemon's connection too: nothing may be left running there.
  EXPECT_TRUE(wait_until(
      [&] { return node_pids(1).empty() && node_pids(0).empty(); },
      std::max(
          1.0,
          60 - std::chrono::duration<double>(std::chrono::steady_clock::now() - cut_at).count())))
      << "left running: node0 [" << node_pids(0) << "] node1 [" << node_pids(1) << "]";
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - cut_at).count();
  EXPECT_LT(seconds, 60);
  std::cout << "every rank ended " << seconds << " s after the cut (mpirun exit " << code << ")\n";

  // The newest checkpoint that verifies is one of the periodic ones; resume from it on one node.
  const auto newest = im::dist::newest_valid_checkpoint(
      scratch_->run_dir(name), true,
      [](const std::string& w) { std::cout << "skipped: " << w << "\n"; });
  ASSERT_TRUE(newest.has_value());
  const int64_t saved = newest->state.step;
  EXPECT_GE(saved, 10);
  EXPECT_EQ(saved % 5, 0);
  const ShellResult resumed = shell(one_node_mpirun(
      scratch_->train_flags(name, saved + 5, "--set checkpoint.every=5") + " --resume auto"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resuming from " + newest->dir), std::string::npos) << resumed.out;
}

}  // namespace
