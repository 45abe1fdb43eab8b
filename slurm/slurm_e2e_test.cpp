// slurm/train.sbatch on a real Slurm (ctest label slurm): a one-node Slurm 22.05 on
// localhost with 4 CPUs (slurm/local/one_node_slurm.sh), jobs of 2 and 4 CPU tasks through
// srun and mpirun, and preemption: `scancel --signal=USR1 --batch` makes the job save,
// requeue itself and resume, ending with the parameters of an uninterrupted run.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <regex>

#include "tests/e2e_scratch.h"

namespace {

using im::testing::E2eScratch;
using im::testing::run_shell;
using im::testing::ShellResult;
using im::testing::slurp;
using im::testing::wait_until;

const std::string kSlurmDir = std::string(IM_SOURCE_DIR) + "/slurm";

// What `scontrol show job -o ID` says about a job.
struct JobInfo {
  std::string state;  // PENDING, RUNNING, COMPLETED, FAILED, ...
  int restarts = 0;
  std::string exit_code;  // "code:signal"
};

class SlurmTrain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!im::testing::running_as_root() || std::system("command -v slurmctld >/dev/null") != 0)
      return;  // each test skips, saying why
    scratch_ = std::make_unique<E2eScratch>("im_slurm");
    cluster_dir_ = scratch_->root() + "/cluster";
    // sbatch, scontrol and the jobs (sbatch exports the environment) use this cluster.
    setenv("SLURM_CONF", (cluster_dir_ + "/slurm.conf").c_str(), 1);
    const ShellResult r =
        shell(kSlurmDir + "/local/one_node_slurm.sh start " + cluster_dir_ + " 4");
    started_ = r.exit_code == 0;
    if (!started_) start_error_ = r.out + r.err + slurp(cluster_dir_ + "/log/slurmctld.log");
  }
  // Stops the daemons by PID also when a test failed.
  static void TearDownTestSuite() {
    if (scratch_) shell(kSlurmDir + "/local/one_node_slurm.sh stop " + cluster_dir_);
    scratch_.reset();
  }
  void SetUp() override {
    if (!im::testing::running_as_root()) GTEST_SKIP() << "needs root to run the Slurm daemons";
    if (!scratch_) GTEST_SKIP() << "slurmctld not installed (scripts/install-deps.sh)";
    ASSERT_TRUE(started_) << "the one-node Slurm did not start:\n" << start_error_;
  }

  static ShellResult shell(const std::string& cmd) {
    static int counter = 0;
    return run_shell(cmd, scratch_->root() + "/sh" + std::to_string(counter++));
  }

  // Submits slurm/train.sbatch for run `name`; returns the job id. `env` goes before sbatch.
  static std::string submit(const std::string& name, int tasks, int64_t steps,
                            const std::string& env = "", const std::string& extra = "") {
    const ShellResult r = shell(
        env + " IM_BINARY=" + IM_BINARY + " sbatch --parsable --ntasks=" + std::to_string(tasks) +
        " --time=10 --chdir=" + scratch_->root() + " --output=" + output_path(name) + " " +
        kSlurmDir + "/train.sbatch " + script_args(name, steps, extra));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, r.out.find_first_of(";\n"));
  }
  // train.sbatch takes the config first, then train's flags.
  static std::string script_args(const std::string& name, int64_t steps, const std::string& extra) {
    const std::string flags = scratch_->train_flags(name, steps, extra);
    const std::string config_flag = "--config ";
    EXPECT_EQ(flags.rfind(config_flag, 0), 0u);
    return flags.substr(config_flag.size());
  }
  // Waits until run `name` logged `steps` steps; false at once if job `id` ended first.
  static bool wait_for_steps(const std::string& name, const std::string& id, size_t steps) {
    bool ended = false;
    wait_until(
        [&] { return scratch_->losses(name).size() >= steps || (ended = finished(job(id).state)); },
        120);
    return !ended && scratch_->losses(name).size() >= steps;
  }
  static std::string output_path(const std::string& name) {
    return scratch_->root() + "/" + name + ".out";
  }

  // The end of slurmd's and slurmctld's logs, for failure messages.
  static std::string daemon_logs() {
    return "\nslurmd.log:\n" + shell("tail -n 30 " + cluster_dir_ + "/log/slurmd.log").out +
           "slurmctld.log:\n" + shell("tail -n 30 " + cluster_dir_ + "/log/slurmctld.log").out;
  }

  static JobInfo job(const std::string& id) {
    const ShellResult r = shell("scontrol show job -o " + id);
    JobInfo info;
    std::smatch m;
    if (std::regex_search(r.out, m, std::regex(R"(JobState=(\S+))"))) info.state = m[1];
    if (std::regex_search(r.out, m, std::regex(R"(Restarts=(\d+))")))
      info.restarts = std::stoi(m[1]);
    if (std::regex_search(r.out, m, std::regex(R"( ExitCode=(\S+))"))) info.exit_code = m[1];
    return info;
  }
  static bool finished(const std::string& state) {
    return state == "COMPLETED" || state == "FAILED" || state == "CANCELLED" ||
           state == "TIMEOUT" || state == "NODE_FAIL" || state == "OUT_OF_MEMORY";
  }
  // Waits for the job to end; returns its last JobInfo.
  static JobInfo wait_for_end(const std::string& id, double limit_seconds = 240) {
    JobInfo info;
    wait_until([&] { return finished((info = job(id)).state); }, limit_seconds);
    return info;
  }

  // The parameters of the uninterrupted reference: 2 tasks through srun, kSteps steps.
  static const std::vector<float>& reference_params() {
    static std::vector<float> params;
    if (params.empty()) {
      const std::string id = submit("reference", 2, kSteps, "", "--set checkpoint.every=0");
      const JobInfo info = wait_for_end(id);
      EXPECT_EQ(info.state, "COMPLETED") << slurp(output_path("reference"));
      params = E2eScratch::params(scratch_->step_dir("reference", kSteps));
    }
    return params;
  }

  // Preempts run `name` (submitted with `env`) the way Slurm warns before a time limit,
  // then checks it requeued itself, resumed, and ended where an uninterrupted run ends.
  static void preempt_and_compare(const std::string& name, const std::string& env,
                                  const std::string& reason) {
    const std::string id = submit(name, 2, kSteps, env, "--set checkpoint.every=0");
    ASSERT_TRUE(wait_for_steps(name, id, 3)) << "the job never trained: " << job(id).state << "\n"
                                             << slurp(output_path(name));
    // What --signal=B:USR1@120 does: SIGUSR1 to the batch script only.
    ASSERT_EQ(shell("scancel --signal=USR1 --batch " + id).exit_code, 0);
    // Slurm requeues it and starts it again once its credential has expired (120 s by
    // default; 5 s in the test cluster): no shortcut, the job's own requeue path.
    ASSERT_TRUE(wait_until([&] { return job(id).restarts >= 1; }, 120))
        << "not requeued: " << job(id).state << "\n"
        << slurp(output_path(name));
    const JobInfo info = wait_for_end(id);
    const std::string out = slurp(output_path(name));
    ASSERT_EQ(info.state, "COMPLETED") << out << daemon_logs();
    EXPECT_EQ(info.restarts, 1) << out;

    std::smatch m;
    ASSERT_TRUE(
        std::regex_search(out, m, std::regex("stopping at step (\\d+) of \\d+ on " + reason)))
        << out;
    const int64_t stopped = std::stoll(m[1]);
    EXPECT_LT(stopped, kSteps) << out;
    EXPECT_NE(out.find("got SIGUSR1, asking the ranks to save"), std::string::npos) << out;
    EXPECT_NE(out.find("requeueing job " + id), std::string::npos) << out;
    EXPECT_NE(out.find("resuming from " + scratch_->step_dir(name, stopped)), std::string::npos)
        << out;
    EXPECT_NE(out.find("train.sbatch: training finished"), std::string::npos)
        << out << daemon_logs();
    // Same world size, same data order, restored optimiser and RNG state: bitwise equal.
    EXPECT_EQ(E2eScratch::params(scratch_->step_dir(name, kSteps)), reference_params());
  }

  static constexpr int64_t kSteps = 60;
  static std::unique_ptr<E2eScratch> scratch_;
  static std::string cluster_dir_, start_error_;
  static bool started_;
};
std::unique_ptr<E2eScratch> SlurmTrain::scratch_;
std::string SlurmTrain::cluster_dir_, SlurmTrain::start_error_;
bool SlurmTrain::started_ = false;

// The scripts' own checks, before anything is submitted or started (no Slurm needed): one
// line on stderr naming what is wrong, exit 2.
TEST(SlurmScripts, BadInputIsOneLineAndExit2) {
  char tmpl[] = "/tmp/im_slurm_scripts_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, config = std::string(IM_SOURCE_DIR) + "/configs/fmnist_nano.toml";
  int counter = 0;
  auto expect_error = [&](const std::string& cmd, const std::string& piece) {
    const ShellResult r = run_shell(cmd, dir + "/r" + std::to_string(counter++));
    EXPECT_EQ(r.exit_code, 2) << cmd << "\n" << r.out << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << cmd << ": not one line:\n" << r.err;
    EXPECT_NE(r.err.find(piece), std::string::npos) << cmd << "\n" << r.err;
  };
  expect_error("bash " + kSlurmDir + "/train.sbatch",
               "usage: sbatch [options] slurm/train.sbatch CONFIG");
  expect_error("IM_BINARY=/no/such/infomamba_dist bash " + kSlurmDir + "/train.sbatch " + config,
               "/no/such/infomamba_dist is not an executable");
  expect_error(std::string("IM_BINARY=") + IM_BINARY + " IM_LAUNCHER=pbs bash " + kSlurmDir +
                   "/train.sbatch " + config,
               "IM_LAUNCHER must be srun or mpirun, got 'pbs'");
  expect_error(kSlurmDir + "/sweep.sh --frobnicate " + config, "unknown option --frobnicate");
  expect_error(kSlurmDir + "/sweep.sh --nodes 1 --tasks 2 " + config,
               "give --nodes or --tasks, not both");
  expect_error(kSlurmDir + "/sweep.sh /no/such.toml", "config /no/such.toml not found");
  expect_error(kSlurmDir + "/sweep.sh collect " + dir + "/nothing",
               "no directory " + dir + "/nothing");
  std::filesystem::remove_all(dir);
}

TEST_F(SlurmTrain, TwoTasksThroughSrunFinishWithAVerifiedCheckpoint) {
  const std::vector<float>& params = reference_params();  // the srun job of 2 tasks
  ASSERT_FALSE(params.empty());
  const std::string out = slurp(output_path("reference"));
  EXPECT_NE(out.find("2 ranks x 1 threads via srun"), std::string::npos) << out;
  EXPECT_NE(out.find("world: 2 ranks on 1 node"), std::string::npos) << out;
  EXPECT_NE(out.find("train.sbatch: training finished"), std::string::npos) << out;
  EXPECT_EQ(
      im::dist::read_checkpoint(scratch_->step_dir("reference", kSteps), true).state.world_size, 2);
  EXPECT_EQ(scratch_->losses("reference").size(), static_cast<size_t>(kSteps));
}

TEST_F(SlurmTrain, FourTasksThroughMpirunFinishWithAVerifiedCheckpoint) {
  const std::string id =
      submit("mpirun4", 4, kSteps, "IM_LAUNCHER=mpirun", "--set checkpoint.every=0");
  const JobInfo info = wait_for_end(id);
  const std::string out = slurp(output_path("mpirun4"));
  ASSERT_EQ(info.state, "COMPLETED") << out;
  EXPECT_EQ(info.exit_code, "0:0");
  EXPECT_NE(out.find("4 ranks x 1 threads via mpirun"), std::string::npos) << out;
  EXPECT_NE(out.find("world: 4 ranks on 1 node"), std::string::npos) << out;
  const auto checkpoint = im::dist::read_checkpoint(scratch_->step_dir("mpirun4", kSteps), true);
  EXPECT_EQ(checkpoint.state.world_size, 4);
  EXPECT_EQ(checkpoint.state.step, kSteps);
  // 4 x 8 computes what 2 x 16 does, up to summation order.
  EXPECT_LT(
      im::testing::relative_difference(checkpoint.params.to_vector<float>(), reference_params()),
      1e-5);
}

TEST_F(SlurmTrain, PreemptedSrunJobRequeuesResumesAndEndsLikeAnUninterruptedRun) {
  // srun passes the signal on; the stop file is there too, and either may come first.
  preempt_and_compare("preempt_srun", "", "(SIGUSR1|the stop file)");
}

// The known trap elsewhere: a handler that never fires under mpirun (an Open MPI 4.1.6 was
// seen not to forward SIGUSR1). Here the batch script asks the ranks through the stop file.
TEST_F(SlurmTrain, PreemptedMpirunJobRequeuesResumesAndEndsLikeAnUninterruptedRun) {
  // mpirun is never signalled, so even an mpirun that drops SIGUSR1 is no problem.
  preempt_and_compare("preempt_mpirun", "IM_LAUNCHER=mpirun", "the stop file");
}

// scancel (SIGTERM to the script and the ranks): the ranks save, the job is not requeued.
TEST_F(SlurmTrain, CancelledJobSavesAndIsNotRequeued) {
  const std::string name = "cancelled";
  const std::string id = submit(name, 2, 100000, "", "--set checkpoint.every=0");
  ASSERT_TRUE(wait_for_steps(name, id, 3)) << slurp(output_path(name));
  ASSERT_EQ(shell("scancel " + id).exit_code, 0);
  const JobInfo info = wait_for_end(id);
  const std::string out = slurp(output_path(name));
  EXPECT_EQ(info.state, "CANCELLED") << out;
  EXPECT_EQ(info.restarts, 0) << out;
  EXPECT_EQ(out.find("requeueing"), std::string::npos) << out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      out, m, std::regex(R"(stopping at step (\d+) of \d+ on (SIGTERM|the stop file))")))
      << out;
  EXPECT_EQ(im::dist::read_checkpoint(scratch_->step_dir(name, std::stoll(m[1])), true).state.step,
            std::stoll(m[1]));
}

// slurm/sweep.sh: one bench job per size, then one table with the efficiency column.
TEST_F(SlurmTrain, SweepRunsABenchJobPerSizeAndTabulatesThem) {
  const std::string out = scratch_->root() + "/sweep";
  const ShellResult r = shell(
      "cd " + scratch_->root() + " && IM_BINARY=" + IM_BINARY + " " + kSlurmDir +
      "/sweep.sh --tasks 1,2 --per-rank-batch 8 --out " + out + " " + IM_SOURCE_DIR +
      "/configs/fmnist_nano.toml --warmup 1 --steps 3 --set model.d_model=32 --set model.depth=2");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << slurp(out + "/logs/n001_r0001.out")
                            << slurp(out + "/logs/n001_r0002.out");
  std::ifstream csv(out + "/results.csv");
  std::vector<std::string> lines;
  for (std::string line; std::getline(csv, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_EQ(lines[0],
            "nodes,ranks,global_batch,samples_per_s,samples_per_s_per_rank,step_ms,comm_ms,data_ms,"
            "speedup,efficiency");
  // Weak scaling: 8 samples per rank; the smallest size is the base of the efficiency.
  EXPECT_EQ(lines[1].rfind("1,1,8,", 0), 0u) << lines[1];
  EXPECT_EQ(lines[1].substr(lines[1].size() - 10), ",1.00,1.00") << lines[1];
  EXPECT_EQ(lines[2].rfind("1,2,16,", 0), 0u) << lines[2];
  const std::string md = slurp(out + "/results.md");
  EXPECT_NE(md.find("| nodes | ranks | global batch | samples/s"), std::string::npos) << md;
  EXPECT_NE(r.out.find("wrote " + out + "/results.csv"), std::string::npos) << r.out;
}

}  // namespace
