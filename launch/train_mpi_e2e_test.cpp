// Data-parallel training through the real binary under mpirun (ctest labels mpi and e2e):
// exactness across world sizes, bitwise resume, resharding, crash safety of checkpoints,
// and failure handling (a rank that throws or is killed ends the job on every rank).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "data/test_util.h"
#include "dist/checkpoint.h"
#include "tests/e2e_scratch.h"
#include "tests/process_util.h"

namespace fs = std::filesystem;
namespace dt = im::data::testing;
using Clock = std::chrono::steady_clock;

namespace {

using im::testing::slurp;
using im::testing::spawn;
using im::testing::wait_exit;

struct Outcome {
  int exit_code = -1;
  std::string out, err;
  double seconds = 0;
};

class TrainMpi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // 640 training samples (20 global batches of 32) and 64 test samples, in 4 shards.
    scratch_ = std::make_unique<im::testing::E2eScratch>("im_train_mpi");
    root_ = scratch_->root();
  }
  static void TearDownTestSuite() { scratch_.reset(); }

  // Shell command line of `infomamba_dist ARGS` on `ranks` ranks (0: without mpirun).
  static std::string command(int ranks, const std::string& args, const std::string& env = "") {
    return im::testing::mpirun_prefix(ranks, env) + IM_BINARY + " " + args;
  }

  static Outcome run(const std::string& args, int ranks = 0, const std::string& env = "") {
    static int counter = 0;
    const im::testing::ShellResult r = im::testing::run_shell(
        command(ranks, args, env), root_ + "/out" + std::to_string(counter++));
    return Outcome{r.exit_code, r.out, r.err, r.seconds};
  }

  // A small model on the synthetic data; drop-path on, so its per-sample mask is exercised.
  static std::string train_args(const std::string& name, int64_t max_steps,
                                const std::string& extra = "") {
    return "train " +
           scratch_->train_flags(
               name, max_steps, "--set model.drop_path=0.2 --set data.augment_crop_pad=2 " + extra);
  }
  static std::string run_dir(const std::string& name) { return scratch_->run_dir(name); }
  static std::map<int64_t, double> losses(const std::string& name) {
    return scratch_->losses(name);
  }
  static std::vector<float> params(const std::string& checkpoint_dir) {
    return im::testing::E2eScratch::params(checkpoint_dir);
  }
  static std::string step_dir(const std::string& name, int64_t step) {
    return scratch_->step_dir(name, step);
  }
  static double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
    return im::testing::relative_difference(a, b);
  }

  static void expect_close_losses(const std::map<int64_t, double>& want,
                                  const std::map<int64_t, double>& got, int64_t from, int64_t to,
                                  const std::string& what) {
    for (int64_t s = from; s <= to; ++s) {
      ASSERT_TRUE(want.count(s) && got.count(s)) << what << ": no loss for step " << s;
      EXPECT_NEAR(got.at(s), want.at(s), 1e-5 * std::abs(want.at(s))) << what << " step " << s;
    }
  }

  // Waits (up to 60 s) until run `name` has logged `steps` training steps.
  static bool wait_for_steps(const std::string& name, size_t steps) {
    for (int i = 0; i < 600; ++i) {
      if (losses(name).size() >= steps) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  // The pid a rank wrote into its own log (run.rank_logs), 0 if not there yet.
  static pid_t rank_pid(const std::string& name, int rank) {
    const std::string text =
        slurp(run_dir(name) + "/logs/rank_0000" + std::to_string(rank) + ".log");
    std::smatch m;
    return std::regex_search(text, m, std::regex(R"(pid (\d+))")) ? std::stoi(m[1]) : 0;
  }

  static std::unique_ptr<im::testing::E2eScratch> scratch_;
  static std::string root_;
};
std::unique_ptr<im::testing::E2eScratch> TrainMpi::scratch_;
std::string TrainMpi::root_;

TEST_F(TrainMpi, OneTwoAndFourRanksTrainTheSameModel) {
  // The global batch is 32 in every run: 1 x 32, 2 x 16, 4 x 8.
  for (int ranks : {1, 2, 4}) {
    const std::string name = "exact" + std::to_string(ranks);
    const Outcome o =
        run(train_args(name, 20, "--set checkpoint.every=0 --set run.rank_logs=true"), ranks);
    ASSERT_EQ(o.exit_code, 0) << o.err;
    // 4 shards: each rank reads only those its columns of the batches draw from.
    for (int r = 0; r < ranks; ++r) {
      const std::string log = slurp(run_dir(name) + "/logs/rank_0000" + std::to_string(r) + ".log");
      EXPECT_NE(log.find("(" + std::to_string(4 / ranks) + " of 4)"), std::string::npos)
          << "rank " << r << " of " << ranks << ":\n"
          << log;
    }
    EXPECT_NE(o.out.find(std::to_string(ranks) + (ranks == 1 ? " rank," : " ranks,")),
              std::string::npos)
        << o.out;
    // Only rank 0 prints: one start line.
    EXPECT_EQ(o.out.find("train fmnist_nano"), o.out.rfind("train fmnist_nano")) << o.out;
  }
  const auto reference = losses("exact1");
  ASSERT_EQ(reference.size(), 20u);
  const std::vector<float> p1 = params(step_dir("exact1", 20));
  for (int ranks : {2, 4}) {
    const std::string name = "exact" + std::to_string(ranks);
    expect_close_losses(reference, losses(name), 1, 20, name);
    const double rel = relative_difference(p1, params(step_dir(name, 20)));
    EXPECT_LT(rel, 1e-5) << name << ": parameters differ from one rank's by " << rel;
    // The optimiser state is partitioned: one file per rank.
    EXPECT_TRUE(fs::exists(step_dir(name, 20) + "/rank_0000" + std::to_string(ranks - 1) + ".h5"));
  }
}

TEST_F(TrainMpi, ResumeContinuesBitwiseIdentically) {
  const Outcome straight = run(train_args("straight", 40, "--set checkpoint.every=20"), 2);
  ASSERT_EQ(straight.exit_code, 0) << straight.err;
  // Resume the step-20 checkpoint into a fresh run directory and finish the same 40 steps.
  const Outcome resumed = run(
      train_args("resumed", 40, "--set checkpoint.every=20 --resume " + step_dir("straight", 20)),
      2);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resuming from " + step_dir("straight", 20) + " (step 20)"),
            std::string::npos)
      << resumed.out;
  const auto a = losses("straight"), b = losses("resumed");
  ASSERT_EQ(b.size(), 20u);
  for (const auto& [step, loss] : b) EXPECT_EQ(loss, a.at(step)) << "step " << step;
  EXPECT_EQ(params(step_dir("straight", 40)), params(step_dir("resumed", 40)));
}

TEST_F(TrainMpi, CheckpointOfFourRanksResumesOnTwoAndThree) {
  const Outcome four = run(train_args("four", 20, "--set checkpoint.every=10"), 4);
  ASSERT_EQ(four.exit_code, 0) << four.err;
  const auto reference = losses("four");
  const std::vector<float> final_params = params(step_dir("four", 20));
  for (int ranks : {2, 3}) {
    const std::string name = "reshard" + std::to_string(ranks);
    const Outcome o = run(
        train_args(name, 20, "--set checkpoint.every=10 --resume " + step_dir("four", 10)), ranks);
    ASSERT_EQ(o.exit_code, 0) << o.err;
    EXPECT_NE(o.out.find("written by 4 ranks, resharded onto " + std::to_string(ranks)),
              std::string::npos)
        << o.out;
    expect_close_losses(reference, losses(name), 11, 20, name);
    EXPECT_LT(relative_difference(final_params, params(step_dir(name, 20))), 1e-5) << name;
  }
}

TEST_F(TrainMpi, KilledDuringACheckpointWriteResumesFromThePreviousOne) {
  // Rank 1 dies (SIGKILL) after writing its file of the step-10 checkpoint.
  const std::string args = train_args("crash", 15, "--set checkpoint.every=5");
  const Outcome crashed = run(args, 2, "INFOMAMBA_FAULT_KILL_IN_CHECKPOINT=1:10");
  EXPECT_NE(crashed.exit_code, 0);
  EXPECT_TRUE(fs::exists(step_dir("crash", 5) + "/manifest.pb"));
  EXPECT_FALSE(fs::exists(step_dir("crash", 10)));
  EXPECT_EQ(slurp(run_dir("crash") + "/checkpoints/latest"), "step_00000005\n");

  const Outcome resumed = run(args + " --resume auto", 2);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resuming from " + step_dir("crash", 5)), std::string::npos)
      << resumed.out;
  EXPECT_FALSE(fs::exists(step_dir("crash", 10) + ".tmp"));  // cleared by the next save
  // The run it finished equals one that never crashed.
  const Outcome clean = run(train_args("clean", 15, "--set checkpoint.every=5"), 2);
  ASSERT_EQ(clean.exit_code, 0) << clean.err;
  EXPECT_EQ(params(step_dir("crash", 15)), params(step_dir("clean", 15)));

  // A flipped byte in a rank file of the newest checkpoint: reported by name, skipped.
  const std::string victim = step_dir("crash", 15) + "/rank_00001.h5";
  auto bytes = dt::read_bytes(victim);
  bytes[bytes.size() / 2] ^= 0x10;
  dt::write_bytes(victim, bytes);
  const Outcome skipped = run(args + " --resume auto", 2);
  ASSERT_EQ(skipped.exit_code, 0) << skipped.err;
  EXPECT_NE(skipped.err.find("warning: checkpoint file " + victim + " fails its checksum"),
            std::string::npos)
      << skipped.err;
  EXPECT_NE(skipped.out.find("resuming from " + step_dir("crash", 10) + " (step 10)"),
            std::string::npos)
      << skipped.out;
}

TEST_F(TrainMpi, ARankThatThrowsEndsEveryRank) {
  const Outcome o = run(train_args("throw", 200), 3, "INFOMAMBA_FAULT_THROW_AT_STEP=1:3");
  EXPECT_NE(o.exit_code, 0);
  EXPECT_LT(o.seconds, 60.0);
  EXPECT_NE(o.err.find("rank 1 of 3"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("injected failure at step 3"), std::string::npos) << o.err;
  EXPECT_EQ(losses("throw").count(50), 0u);  // it did not go on training
}

// A rank that stops responding without dying (hung, or its node cut off): nothing tells
// mpirun, so the other ranks' collective watchdog (dist.timeout_s) must end the job.
TEST_F(TrainMpi, AHungRankEndsTheJobThroughTheCollectiveWatchdog) {
  const Outcome o =
      run(train_args("hang", 200, "--set dist.timeout_s=3"), 2, "INFOMAMBA_FAULT_HANG_AT_STEP=1:3");
  EXPECT_NE(o.exit_code, 0);
  EXPECT_LT(o.seconds, 30.0);
  EXPECT_NE(o.err.find("rank 0 of 2"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("did not complete within 3 s (dist.timeout_s)"), std::string::npos) << o.err;
  EXPECT_EQ(losses("hang").count(5), 0u);  // nobody trained past the hung step
}

TEST_F(TrainMpi, AKilledRankEndsEveryRankWithin60Seconds) {
  const std::string name = "killed";
  const std::string cmd = command(3, train_args(name, 2000, "--set run.rank_logs=true")) + " >" +
                          root_ + "/killed.out 2>" + root_ + "/killed.err";
  const pid_t launcher = fork();
  ASSERT_GE(launcher, 0);
  if (launcher == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait until training runs, then SIGKILL rank 1 (its pid is in its own log).
  const std::string log = run_dir(name) + "/logs/rank_00001.log";
  const std::regex pid_re(R"(pid (\d+))");
  pid_t victim = 0;
  for (int i = 0; i < 600 && !victim; ++i) {
    std::smatch m;
    const std::string text = slurp(log);
    if (losses(name).size() >= 2 && std::regex_search(text, m, pid_re))
      victim = std::stoi(m[1]);
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GT(victim, 0) << "training never started: " << slurp(root_ + "/killed.err");
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  const auto killed_at = Clock::now();
  int status = 0;
  pid_t done = 0;
  while ((done = waitpid(launcher, &status, WNOHANG)) == 0 &&
         Clock::now() - killed_at < std::chrono::seconds(90))
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (done == 0) {
    kill(launcher, SIGKILL);
    waitpid(launcher, &status, 0);
    FAIL() << "the job was still running 90 s after a rank was killed";
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - killed_at).count();
  EXPECT_LT(seconds, 60.0);
  EXPECT_TRUE(!WIFEXITED(status) || WEXITSTATUS(status) != 0);
  EXPECT_LT(losses(name).size(), 2000u);
}

TEST_F(TrainMpi, ASetupErrorIsOneLineAndExit2OnEveryRank) {
  const Outcome o = run(train_args("bad", 5, "--set data.dir=" + root_ + "/missing"), 2);
  EXPECT_EQ(o.exit_code, 2);
  size_t lines = 0;
  for (size_t p = o.err.find("error:"); p != std::string::npos; p = o.err.find("error:", p + 1))
    ++lines;
  EXPECT_EQ(lines, 1u) << o.err;
  EXPECT_NE(o.err.find(root_ + "/missing"), std::string::npos) << o.err;
  EXPECT_FALSE(fs::exists(run_dir("bad") + "/checkpoints"));
}

// Preemption as Slurm announces it through mpirun (--signal=B:USR1, forwarded by the batch
// script): every rank saves, the job exits 75, and --resume auto finishes the same run.
TEST_F(TrainMpi, SigusrToMpirunSavesExitsForRequeueAndResumesExactly) {
  const std::string args = train_args("preempt", 30, "--set checkpoint.every=0");
  const pid_t mpirun =
      spawn(command(2, args) + " >" + root_ + "/preempt.out 2>" + root_ + "/preempt.err");
  ASSERT_TRUE(wait_for_steps("preempt", 3)) << slurp(root_ + "/preempt.err");
  ASSERT_EQ(kill(mpirun, SIGUSR1), 0);
  EXPECT_EQ(wait_exit(mpirun, 60), 75) << slurp(root_ + "/preempt.err");
  const std::string out = slurp(root_ + "/preempt.out");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(stopping at step (\d+) of 30 on SIGUSR1)")))
      << out;
  const int64_t stopped = std::stoll(m[1]);
  EXPECT_LT(stopped, 30);
  EXPECT_EQ(im::dist::read_checkpoint(step_dir("preempt", stopped), true).state.step, stopped);

  const Outcome resumed = run(args + " --resume auto", 2);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resuming from " + step_dir("preempt", stopped)), std::string::npos)
      << resumed.out;
  const Outcome straight = run(train_args("unpreempted", 30, "--set checkpoint.every=0"), 2);
  ASSERT_EQ(straight.exit_code, 0) << straight.err;
  EXPECT_EQ(params(step_dir("preempt", 30)), params(step_dir("unpreempted", 30)));
}

// A launcher that passes no signal on (mpirun builds differ): the batch script creates the
// stop file instead, and the ranks stop the same way.
TEST_F(TrainMpi, TheStopFileSavesAndExits75) {
  const std::string name = "stopfile", stop_file = root_ + "/stop-request";
  const pid_t mpirun = spawn(
      command(2, train_args(name, 200, "--set checkpoint.every=0") + " --stop-file " + stop_file) +
      " >" + root_ + "/stopfile.out 2>" + root_ + "/stopfile.err");
  ASSERT_TRUE(wait_for_steps(name, 3)) << slurp(root_ + "/stopfile.err");
  std::ofstream(stop_file).put('\n');
  EXPECT_EQ(wait_exit(mpirun, 60), 75) << slurp(root_ + "/stopfile.err");
  const std::string out = slurp(root_ + "/stopfile.out");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      out, m, std::regex("stopping at step (\\d+) of 200 on the stop file " + stop_file)))
      << out;
  EXPECT_EQ(im::dist::read_checkpoint(step_dir(name, std::stoll(m[1])), true).state.step,
            std::stoll(m[1]));
}

// srun and Slurm's time limit send SIGTERM to every task: the same save and exit 75.
TEST_F(TrainMpi, SigtermToEveryRankSavesAndExits75) {
  const std::string name = "sigterm";
  const pid_t mpirun =
      spawn(command(2, train_args(name, 200, "--set checkpoint.every=0 --set run.rank_logs=true")) +
            " >" + root_ + "/sigterm.out 2>" + root_ + "/sigterm.err");
  ASSERT_TRUE(wait_for_steps(name, 2)) << slurp(root_ + "/sigterm.err");
  const pid_t r0 = rank_pid(name, 0), r1 = rank_pid(name, 1);
  ASSERT_GT(r0, 0);
  ASSERT_GT(r1, 0);
  kill(r0, SIGTERM);
  kill(r1, SIGTERM);
  EXPECT_EQ(wait_exit(mpirun, 60), 75) << slurp(root_ + "/sigterm.err");
  EXPECT_NE(slurp(root_ + "/sigterm.out").find("on SIGTERM: checkpoint"), std::string::npos)
      << slurp(root_ + "/sigterm.out");
  EXPECT_NO_THROW(im::dist::resolve_checkpoint(run_dir(name)));
}

TEST_F(TrainMpi, WallTimeLimitSavesAndExits75) {
  const Outcome o = run(train_args("walltime", 200, "--set train.max_wall_minutes=0.0001"), 2);
  EXPECT_EQ(o.exit_code, 75) << o.err;
  EXPECT_NE(o.out.find("on train.max_wall_minutes: checkpoint"), std::string::npos) << o.out;
  EXPECT_EQ(slurp(run_dir("walltime") + "/checkpoints/latest"), "step_00000001\n");
}

}  // namespace
