#!/usr/bin/env bash
# The GPU checks, for a GPU host reached through the device tool (docs/CLUSTER_TESTING.md).
# Builds for Hopper (sm_90) into build-gpu, then runs the stages named on the command line
# (default: build tests):
#   build     configure and build (kept between calls on a warm machine)
#   tests     ctest -L gpu (every CUDA kernel against the CPU, the model, NCCL)
#   cpu       the CPU suites on this host (ctest -LE "gpu|slurm")
#   memcheck  compute-sanitizer memcheck over the gpu test binaries
#   bench     selective-scan kernel bench and `infomamba_dist bench` runs (PERFORMANCE.md)
#   train     Fashion-MNIST nano for one epoch on the GPU, fp32 and bf16, and the 15-epoch recipe
#             (needs datasets/fashion-mnist)
#   profile   GPU time per kernel of training and inference steps of the small preset at 224
#             (bench --kernel-profile)
# Logs go to $OUT (or ./device-logs when OUT is unset).
set -uo pipefail
out="${OUT:-device-logs}"
mkdir -p "$out"
stages="${*:-build tests}"
bin=./build-gpu/launch/infomamba_dist
has() { [[ " $stages " == *" $1 "* ]]; }

if has build; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt" 2>&1
  cat "$out/gpu.txt"
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DINFOMAMBA_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
  cmake --build build-gpu -j 16 > "$out/build.log" 2>&1 || { grep -E "error|FAILED" "$out/build.log" | head -40; exit 1; }
  echo "build ok"
  "$bin" diag | tee "$out/diag.txt"
fi
if has tests; then
  (cd build-gpu && timeout 500 ctest -L gpu --output-on-failure --timeout 240) 2>&1 \
    | tee "$out/ctest-gpu.log" | grep -E "Failed|FAILED|Passed|tests passed|Error|error:" | tail -40
fi
if has cpu; then
  (cd build-gpu && ctest -j 16 -LE "gpu|slurm") 2>&1 | tee "$out/ctest-cpu.log" | tail -5
fi
if has memcheck; then
  cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  for t in kernels/cuda_kernel_tests core/core_gpu_tests layers/layers_gpu_tests launch/launch_gpu_tests; do
    log="$out/memcheck-$(basename "$t").log"
    # The capture-failure test makes CUDA refuse a copy inside a graph capture on purpose;
    # memcheck counts that API error, so it runs outside memcheck (in the tests stage).
    timeout 280 "$cs" --tool memcheck --error-exitcode 3 "./build-gpu/$t" \
      --gtest_filter='-*CannotBeCaptured*' > "$log" 2>&1
    echo "compute-sanitizer memcheck $t: exit code $? ($(grep -E 'ERROR SUMMARY' "$log"))"
  done
fi
if has bench; then
  ./build-gpu/kernels/selective_scan_bench 2>&1 | tee "$out/scan-bench.txt" | tail -8
  run_bench() {  # name, then bench arguments
    local name=$1; shift
    timeout 240 "$bin" bench "$@" --json "$out/bench-$name.json" > "$out/bench-$name.txt" 2>&1
    echo "== bench $name (exit $?)"; grep -E "throughput|step time|forward|backward|optimiser|peak GPU|achieved|MFU|error" "$out/bench-$name.txt"
  }
  run_bench nano-train --config configs/fmnist_nano.toml --set train.device=cuda --warmup 5 --steps 30
  # configs/bench_small_224.toml is bf16 (989.4 TFLOP/s dense bf16 peak); fp32 for comparison
  # (494.7 TFLOP/s dense TF32).
  run_bench small224-train --config configs/bench_small_224.toml --warmup 3 --steps 10 --peak-tflops 989.4
  run_bench small224-train-fp32 --config configs/bench_small_224.toml --set train.precision=fp32 \
    --warmup 3 --steps 10 --peak-tflops 494.7
  # The same step launched kernel by kernel (no CUDA graph), for comparison.
  run_bench small224-train-eager --config configs/bench_small_224.toml --set train.cuda_graph=false \
    --warmup 3 --steps 10 --peak-tflops 989.4
  for s in 224 384 512; do
    run_bench "small$s-infer" --config configs/bench_small_224.toml --mode inference \
      --set model.image_size=$s --warmup 3 --steps 10 --peak-tflops 989.4
  done
fi
if has train; then
  timeout 250 "$bin" train --config configs/fmnist_nano.toml --set train.device=cuda \
    --set run.dir="$out/fmnist_nano_gpu" 2>&1 | tee "$out/train-nano-gpu.log" | tail -3
  timeout 250 "$bin" train --config configs/fmnist_nano.toml --set train.device=cuda \
    --set train.precision=bf16 --set run.dir="$out/fmnist_nano_gpu_bf16" 2>&1 \
    | tee "$out/train-nano-gpu-bf16.log" | tail -3
  timeout 250 "$bin" train --config configs/fmnist_nano_full.toml --set train.device=cuda \
    --set run.dir="$out/fmnist_nano_full_gpu" 2>&1 | tee "$out/train-nano-full-gpu.log" | tail -3
fi
if has profile; then
  # CUPTI's GPU time per kernel over the timed steps (bench --kernel-profile); ncu, which
  # replays every kernel, hung on this program (2026-11-24).
  "$bin" bench --config configs/bench_small_224.toml --warmup 3 --steps 5 --kernel-profile 40 \
    2>&1 | tee "$out/profile-train.txt" | grep -v "^bench-result"
  "$bin" bench --config configs/bench_small_224.toml --mode inference --warmup 3 --steps 5 \
    --kernel-profile 25 2>&1 | tee "$out/profile-inference.txt" | grep -v "^bench-result"
fi
