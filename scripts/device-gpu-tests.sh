#!/usr/bin/env bash
# Builds for Hopper (sm_90) and runs the gpu suite plus the CPU suites on a GPU host.
# Used with the device tool; logs go to $OUT (or ./device-logs when OUT is unset).
set -uo pipefail
out="${OUT:-device-logs}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt" 2>&1
cat "$out/gpu.txt"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DINFOMAMBA_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build build-gpu -j 16 > "$out/build.log" 2>&1 || { grep -E "error|FAILED" "$out/build.log" | head -40; exit 1; }
./build-gpu/launch/infomamba_dist diag | tee "$out/diag.txt"
(cd build-gpu && ctest -L gpu --output-on-failure) 2>&1 | tee "$out/ctest-gpu.log" | tail -25
(cd build-gpu && ctest -j 16 -LE "gpu|slurm") 2>&1 | tee "$out/ctest-cpu.log" | tail -5
if command -v compute-sanitizer >/dev/null || [ -x /usr/local/cuda/bin/compute-sanitizer ]; then
  cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  for t in kernels/cuda_kernel_tests core/core_gpu_tests; do
    log="$out/memcheck-$(basename "$t").log"
    "$cs" --tool memcheck --error-exitcode 3 "./build-gpu/$t" > "$log" 2>&1
    echo "compute-sanitizer memcheck $t: exit code $? ($(grep -E 'ERROR SUMMARY' "$log"))"
  done
fi
