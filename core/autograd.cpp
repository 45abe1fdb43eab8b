#include "core/autograd.h"

#include <atomic>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/op_registry.h"
#include "core/ops.h"
#include "core/tensor_impl.h"

namespace im {

namespace {
thread_local bool tl_grad_enabled = true;
std::atomic<uint64_t> g_next_sequence_nr{0};
std::atomic<int64_t> g_live_nodes{0};

// The op node: a registered name and a closure holding what forward saved.
class FunctionNode final : public Node {
 public:
  FunctionNode(const char* name, BackwardFn fn) : name_(name), fn_(std::move(fn)) {
    g_live_nodes.fetch_add(1);
  }
  ~FunctionNode() override { g_live_nodes.fetch_sub(1); }
  const char* name() const override { return name_; }
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    IM_CHECK(fn_, "backward through '", name_,
             "' a second time: its saved tensors were freed after the first backward");
    std::vector<bool> needs(next_edges.size());
    for (size_t i = 0; i < next_edges.size(); ++i) needs[i] = next_edges[i].node != nullptr;
    return fn_(grads, needs);
  }
  void release_saved() override { fn_ = nullptr; }

 private:
  const char* name_;
  BackwardFn fn_;
};

// The leaf's sink: adds the incoming gradient into .grad, then fires the leaf's
// "gradient ready" hooks. It runs once per backward, after all uses are summed.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {
    g_live_nodes.fetch_add(1);
  }
  ~AccumulateGrad() override { g_live_nodes.fetch_sub(1); }
  const char* name() const override { return "accumulate_grad"; }
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    AutogradMeta& meta = leaf_->meta();
    Tensor& g = grads[0];
    if (!meta.grad.defined()) {
      // Take the buffer when nothing else can see it; otherwise copy, because the
      // incoming gradient may alias another tensor's (add's backward passes g twice).
      const bool sole_owner = g.is_contiguous() && g.impl_ptr().use_count() == 1 &&
                              g.impl()->storage.use_count() == 1 && g.storage_offset() == 0;
      meta.grad = sole_owner ? std::move(g) : g.clone();
    } else {
      accumulate_into(meta.grad, g);  // widens a bf16 gradient into a float32 slot
    }
    for (auto& hook : meta.grad_ready_hooks) hook(meta.grad);
    return {};
  }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

std::shared_ptr<Node> grad_accumulator_for(const Tensor& leaf) {
  AutogradMeta& meta = leaf.impl()->meta();
  if (auto existing = meta.grad_accumulator.lock()) return existing;
  auto node = std::make_shared<AccumulateGrad>(leaf.impl_ptr());
  node->outputs.push_back(OutputMeta{leaf.shape(), leaf.dtype(), leaf.device()});
  node->sequence_nr = g_next_sequence_nr.fetch_add(1);
  meta.grad_accumulator = node;
  return node;
}

Edge edge_for(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return Edge{};
  if (auto fn = t.grad_fn()) return Edge{fn, t.impl()->autograd->output_nr};
  return Edge{grad_accumulator_for(t), 0};
}

}  // namespace

bool grad_enabled() {
  return tl_grad_enabled;
}

NoGradGuard::NoGradGuard() : previous_(tl_grad_enabled) {
  tl_grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  tl_grad_enabled = previous_;
}

int64_t live_node_count() {
  return g_live_nodes.load();
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!tl_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record_op(const char* name, const std::vector<Tensor>& inputs,
               const std::vector<Tensor>& outputs, BackwardFn backward) {
  if (!any_requires_grad(inputs)) return;
  IM_CHECK(op_registry_contains(name), "internal: op '", name,
           "' records a backward but is not in the op registry");
  auto node = std::make_shared<FunctionNode>(name, std::move(backward));
  node->sequence_nr = g_next_sequence_nr.fetch_add(1);
  node->next_edges.reserve(inputs.size());
  for (const Tensor& t : inputs) node->next_edges.push_back(edge_for(t));
  for (uint32_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    node->outputs.push_back(OutputMeta{out.shape(), out.dtype(), out.device()});
    // Integer outputs (indices) carry no gradient.
    if (!is_floating(out.dtype())) continue;
    AutogradMeta& meta = out.impl()->meta();
    meta.grad_fn = node;
    meta.output_nr = i;
    meta.requires_grad = true;
  }
}

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& root_grads) {
  IM_CHECK(roots.size() == root_grads.size(), "backward: ", roots.size(), " roots but ",
           root_grads.size(), " gradients");
  NoGradGuard no_grad;  // backward math is not itself recorded

  // Pending gradients per node input slot, and how many edges still feed each node.
  std::unordered_map<Node*, std::vector<Tensor>> buffers;
  std::unordered_map<Node*, int> dependencies;
  std::vector<std::shared_ptr<Node>> root_nodes;

  auto add_to_buffer = [&](const std::shared_ptr<Node>& node, uint32_t slot, const Tensor& g) {
    auto& buf = buffers[node.get()];
    if (buf.empty()) buf.resize(node->outputs.size());
    if (!buf[slot].defined()) {
      buf[slot] = g;
    } else {
      buf[slot] = add(buf[slot], g);
    }
  };

  for (size_t i = 0; i < roots.size(); ++i) {
    IM_CHECK(roots[i].requires_grad(), "backward: tensor ", roots[i].describe(),
             " does not require grad and has no grad_fn");
    Edge e = edge_for(roots[i]);
    IM_CHECK(root_grads[i].shape() == roots[i].shape(), "backward: gradient shape ",
             shape_str(root_grads[i].shape()), " does not match tensor shape ",
             shape_str(roots[i].shape()));
    add_to_buffer(e.node, e.input_nr, root_grads[i]);
    root_nodes.push_back(e.node);
  }

  // Count incoming edges of every node reachable from the roots.
  {
    std::unordered_set<Node*> seen;
    std::vector<Node*> stack;
    for (auto& r : root_nodes)
      if (seen.insert(r.get()).second) stack.push_back(r.get());
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      for (const Edge& e : n->next_edges) {
        if (!e.node) continue;
        dependencies[e.node.get()] += 1;
        if (seen.insert(e.node.get()).second) stack.push_back(e.node.get());
      }
    }
  }

  auto newer_first = [](const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) {
    return a->sequence_nr < b->sequence_nr;
  };
  std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>,
                      decltype(newer_first)>
      ready(newer_first);
  {
    std::unordered_set<Node*> queued;
    for (auto& r : root_nodes)
      if (dependencies[r.get()] == 0 && queued.insert(r.get()).second) ready.push(r);
  }

  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.top();
    ready.pop();
    std::vector<Tensor> grads = std::move(buffers[node.get()]);
    buffers.erase(node.get());
    grads.resize(node->outputs.size());
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!grads[i].defined()) {
        const OutputMeta& m = node->outputs[i];
        grads[i] =
            Tensor::zeros(m.shape, is_floating(m.dtype) ? m.dtype : DType::Float32, m.device);
      }
    }
    for (auto& [slot, hook] : node->output_hooks) hook(grads[slot]);

    std::vector<Tensor> input_grads = node->apply(grads);
    node->release_saved();
    grads.clear();  // free the incoming gradients as soon as the node is done

    for (size_t i = 0; i < node->next_edges.size(); ++i) {
      const Edge& e = node->next_edges[i];
      if (!e.node) continue;
      if (i < input_grads.size() && input_grads[i].defined()) {
        IM_CHECK(input_grads[i].shape() == e.node->outputs[e.input_nr].shape,
                 "internal: backward of '", node->name(), "' returned gradient ",
                 shape_str(input_grads[i].shape()), " for input ", i, " of shape ",
                 shape_str(e.node->outputs[e.input_nr].shape));
        add_to_buffer(e.node, e.input_nr, input_grads[i]);
      }
      if (--dependencies[e.node.get()] == 0) ready.push(e.node);
    }
  }
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const int64_t lead = grad.dim() - static_cast<int64_t>(shape.size());
  IM_CHECK(lead >= 0, "sum_to: cannot reduce ", shape_str(grad.shape()), " to ", shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < grad.dim(); ++d) {
    if (d < lead || (shape[d - lead] == 1 && grad.size(d) != 1)) dims.push_back(d);
  }
  Tensor reduced = dims.empty() ? grad : sum(grad, dims, /*keepdim=*/true);
  return reduced.reshape(shape);
}

}  // namespace im
