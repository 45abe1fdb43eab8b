// Shared by the e2e tests that drive the real infomamba_dist binary (IM_BINARY): run it in a
// shell, capture exit code, stdout and stderr, and check the one-line error convention.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace im::launch::testing {

struct Outcome {
  int exit_code = -1;
  std::string out, err;
};

// Runs `infomamba_dist ARGS`; stdout and stderr go through files in `dir`.
inline Outcome run_cli(const std::string& args, const std::string& dir) {
  const std::string out_path = dir + "/stdout.txt", err_path = dir + "/stderr.txt";
  const std::string cmd = std::string(IM_BINARY) + " " + args + " >" + out_path + " 2>" + err_path;
  const int status = std::system(cmd.c_str());
  Outcome o;
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  o.out = slurp(out_path);
  o.err = slurp(err_path);
  return o;
}

// Bad input: exit 2 and exactly one stderr line containing every piece.
inline void expect_one_error_line(const Outcome& o, const std::vector<std::string>& pieces) {
  EXPECT_EQ(o.exit_code, 2) << o.err;
  ASSERT_FALSE(o.err.empty());
  EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << "more than one line:\n" << o.err;
  for (const std::string& p : pieces) EXPECT_NE(o.err.find(p), std::string::npos) << o.err;
}

}  // namespace im::launch::testing
