#include "tests/gradcheck.h"

#include <cmath>
#include <sstream>

#include "core/rng.h"

namespace im::testing {

namespace {
thread_local std::set<std::string>* tl_seen_ops = nullptr;

double weighted_sum(const std::vector<Tensor>& outs, const std::vector<Tensor>& weights) {
  double total = 0;
  for (size_t j = 0; j < outs.size(); ++j) {
    if (!is_floating(outs[j].dtype())) continue;
    const std::vector<double> o = outs[j].to_vector<double>();
    const std::vector<double> w = weights[j].to_vector<double>();
    for (size_t i = 0; i < o.size(); ++i) total += o[i] * w[i];
  }
  return total;
}
}  // namespace

Tensor random_constant(const Shape& shape, uint64_t seed, double lo, double hi) {
  Generator gen(seed);
  return rand_uniform(shape, gen, lo, hi, DType::Float64);
}

Tensor random_input(const Shape& shape, uint64_t seed, double lo, double hi) {
  Tensor t = random_constant(shape, seed, lo, hi);
  t.set_requires_grad(true);
  return t;
}

std::set<std::string> graph_op_names(const Tensor& root) {
  std::set<std::string> names;
  std::vector<Node*> stack;
  std::set<Node*> seen;
  if (auto fn = root.grad_fn()) stack.push_back(fn.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (!seen.insert(n).second) continue;
    names.insert(n->name());
    for (const Edge& e : n->next_edges)
      if (e.node) stack.push_back(e.node.get());
  }
  return names;
}

::testing::AssertionResult gradcheck_multi(const MultiOutputFn& f,
                                           const std::vector<Tensor>& inputs,
                                           GradcheckOptions options) {
  for (const Tensor& t : inputs) {
    if (t.defined() && is_floating(t.dtype()) && t.dtype() != DType::Float64)
      return ::testing::AssertionFailure()
             << "gradcheck needs float64 inputs, got " << t.describe();
  }
  // Fresh leaves so earlier gradients do not leak in.
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) {
    if (!t.defined()) {
      leaves.push_back(t);
      continue;
    }
    Tensor leaf = t.detach().clone();
    if (t.requires_grad()) leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }

  std::vector<Tensor> outs = f(leaves);
  std::vector<Tensor> weights;
  Tensor loss;
  for (size_t j = 0; j < outs.size(); ++j) {
    Tensor w = random_constant(outs[j].shape(), 1000 + j);
    weights.push_back(w);
    if (!is_floating(outs[j].dtype()) || !outs[j].requires_grad()) continue;
    Tensor term = sum(mul(outs[j], w));
    loss = loss.defined() ? add(loss, term) : term;
  }
  if (!loss.defined()) return ::testing::AssertionFailure() << "no output requires grad";
  if (tl_seen_ops) {
    for (const std::string& n : graph_op_names(loss)) tl_seen_ops->insert(n);
  }
  loss.backward();

  std::ostringstream failures;
  int bad = 0;
  for (size_t i = 0; i < leaves.size(); ++i) {
    if (!leaves[i].defined() || !leaves[i].requires_grad()) continue;
    const Tensor& analytic_t = leaves[i].grad();
    std::vector<double> analytic = analytic_t.defined()
                                       ? analytic_t.to_vector<double>()
                                       : std::vector<double>(leaves[i].numel(), 0.0);
    // Perturb a private copy through a contiguous buffer, re-running f without grad.
    std::vector<Tensor> probe = leaves;
    Tensor x = leaves[i].detach().clone();
    probe[i] = x;
    double* px = x.data<double>();
    NoGradGuard no_grad;
    for (int64_t e = 0; e < x.numel(); ++e) {
      const double orig = px[e];
      px[e] = orig + options.eps;
      const double plus = weighted_sum(f(probe), weights);
      px[e] = orig - options.eps;
      const double minus = weighted_sum(f(probe), weights);
      px[e] = orig;
      const double numeric = (plus - minus) / (2 * options.eps);
      const double a = analytic[e];
      if (!(std::abs(a - numeric) <= options.atol + options.rtol * std::abs(numeric))) {
        if (bad < 8)
          failures << "\n  input " << i << " " << leaves[i].describe() << " element " << e
                   << ": analytic " << a << ", numeric " << numeric;
        ++bad;
      }
    }
  }
  if (bad) return ::testing::AssertionFailure() << bad << " gradient mismatches" << failures.str();
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult gradcheck(const SingleOutputFn& f, const std::vector<Tensor>& inputs,
                                     GradcheckOptions options) {
  return gradcheck_multi([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{f(in)}; },
                         inputs, options);
}

std::vector<GradcheckCase>& gradcheck_cases() {
  static std::vector<GradcheckCase> cases;
  return cases;
}

bool register_gradcheck_case(const char* name, std::vector<std::string> ops) {
  gradcheck_cases().push_back(GradcheckCase{name, std::move(ops)});
  return true;
}

CaseScope::CaseScope(std::vector<std::string> declared) : declared_(std::move(declared)) {
  tl_seen_ops = new std::set<std::string>();
}

CaseScope::~CaseScope() {
  for (const std::string& op : declared_) {
    if (!tl_seen_ops->count(op))
      ADD_FAILURE() << "case declares op '" << op << "' but no gradcheck graph contained it";
  }
  delete tl_seen_ops;
  tl_seen_ops = nullptr;
}

}  // namespace im::testing
