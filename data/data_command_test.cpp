#include "data/data_command.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/test_util.h"

namespace im::data {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing::TempDir;

struct Result {
  int rc;
  std::string out, err;
};

Result run(std::vector<std::string> args) {
  args.insert(args.begin(), "data");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  const int rc = run_data_command(static_cast<int>(argv.size()), argv.data());
  Result r{rc, ::testing::internal::GetCapturedStdout(), ::testing::internal::GetCapturedStderr()};
  return r;
}

// One line on stderr, in the CLI's error form, and exit status 2.
void expect_error(const Result& r, const std::string& piece) {
  EXPECT_EQ(r.rc, 2);
  EXPECT_THAT(r.err, StartsWith("infomamba_dist data: error: "));
  EXPECT_THAT(r.err, HasSubstr(piece));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(DataCommandTest, ConvertsAndSummarises) {
  TempDir src, out;
  testing::write_synthetic_idx_set(src.path(), 9, 4, 3, 3, true);
  const Result r = run({"mnist", "--src", src.path(), "--out=" + out.path(), "--shards", "2"});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("wrote 2 train shards (9 samples) and 2 test shards (4 samples)"));
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(Dataset::open(out.path(), "test").num_samples(), 4);
}

TEST(DataCommandTest, HelpPrintsUsage) {
  const Result r = run({"--help"});
  EXPECT_EQ(r.rc, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: infomamba_dist data <dataset> --out DIR"));
}

TEST(DataCommandTest, BadArgumentsGetOneLineAndStatus2) {
  TempDir dir;
  expect_error(run({}), "which dataset?");
  expect_error(run({"cifar", "--out", dir.path()}), "unknown dataset 'cifar'");
  expect_error(run({"fashion-mnist"}), "--out DIR is required");
  expect_error(run({"mnist", "--out", dir.path()}), "mnist needs --src DIR");
  expect_error(run({"fashion-mnist", "--out", dir.path(), "--shards", "0"}),
               "--shards '0' is not a positive integer");
  expect_error(run({"fashion-mnist", "--out", dir.path(), "--shards", "3x"}),
               "--shards '3x' is not a positive integer");
  expect_error(run({"fashion-mnist", "--out"}), "option --out needs a value");
  expect_error(run({"fashion-mnist", "--frob", "1"}), "unknown option '--frob'");
  expect_error(run({"fashion-mnist", "mnist"}), "unexpected argument 'mnist'");
}

TEST(DataCommandTest, MissingSourceFilesGetOneLineAndStatus2) {
  TempDir src, out;
  expect_error(run({"mnist", "--src", src.path(), "--out", out.path()}),
               "has no train-labels-idx1-ubyte[.gz]");
  expect_error(run({"mnist", "--src", src / "absent", "--out", out.path()}),
               "source directory '" + (src / "absent") + "' does not exist");
}

}  // namespace
}  // namespace im::data
