// Finite-difference gradient checking in float64, and the registry of gradcheck cases
// that proves every op in core's op registry is covered.
//
//   GRADCHECK_CASE(softmax_last_dim, "softmax") {
//     auto x = im::testing::random_input({3, 17}, 1);
//     EXPECT_TRUE(im::testing::gradcheck([](auto& in) { return im::softmax(in[0], -1); }, {x}));
//   }
//
// A case lists the ops it covers; the harness checks that each listed op really appears
// in the graph it differentiated, so the coverage test cannot be satisfied by a label.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/tensor.h"

namespace im::testing {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-5;
};

using MultiOutputFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
using SingleOutputFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Compares autograd's gradient of sum_j <w_j, f_j(inputs)> (random weights w_j) with
// central differences, for every input that requires grad. Inputs must be float64.
::testing::AssertionResult gradcheck(const SingleOutputFn& f, const std::vector<Tensor>& inputs,
                                     GradcheckOptions options = {});
::testing::AssertionResult gradcheck_multi(const MultiOutputFn& f,
                                           const std::vector<Tensor>& inputs,
                                           GradcheckOptions options = {});

// A float64 leaf with values uniform in [lo, hi), requiring grad.
Tensor random_input(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0);
// Same, but not requiring grad (constants such as masks' partners).
Tensor random_constant(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0);

// Names of every node reachable from root's grad_fn.
std::set<std::string> graph_op_names(const Tensor& root);

struct GradcheckCase {
  std::string name;
  std::vector<std::string> ops;
};
std::vector<GradcheckCase>& gradcheck_cases();
bool register_gradcheck_case(const char* name, std::vector<std::string> ops);

// While alive, records op names gradcheck() sees; on destruction fails the test if a
// declared op never appeared.
class CaseScope {
 public:
  explicit CaseScope(std::vector<std::string> declared);
  ~CaseScope();

 private:
  std::vector<std::string> declared_;
};

}  // namespace im::testing

#define GRADCHECK_CASE(case_name, ...)                                   \
  static void gradcheck_body_##case_name();                              \
  [[maybe_unused]] static const bool gradcheck_registered_##case_name =  \
      ::im::testing::register_gradcheck_case(#case_name, {__VA_ARGS__}); \
  TEST(Gradcheck, case_name) {                                           \
    ::im::testing::CaseScope scope({__VA_ARGS__});                       \
    gradcheck_body_##case_name();                                        \
  }                                                                      \
  static void gradcheck_body_##case_name()
